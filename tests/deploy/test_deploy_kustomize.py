"""deploy/kustomize.py, the pure-Python ``kustomize build`` the Kubernetes tests render with."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_checks import kustomize

K = kustomize()


def deployment(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "rva:1", **container}],
                     "volumes": [{"name": "config", "configMap": {"name": "settings"}}]}}},
    }


def write(root: Path, files: dict[str, Any]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump_all(
            content if isinstance(content, list) else [content]))
    return root


@pytest.mark.parametrize(
    ("patch", "check"),
    [
        # strategic merge: containers and env merge by name, maps merge, null deletes
        ({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}}}},
         lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                                                            {"name": "B", "value": "2"}]),
        ({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "A", "value": "9"}]}]}}}},
         lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "9"}]),
        ({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "x:1"}]}}}},
         lambda d: [c["name"] for c in d["spec"]["template"]["spec"]["containers"]] == ["web", "sidecar"]),
        ({"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "delete"}]}}}},
         lambda d: d["spec"]["template"]["spec"]["containers"] == []),
        ({"spec": {"selector": None}}, lambda d: "selector" not in d["spec"]),
        ({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "x"}}}}},
         lambda d: d["spec"]["template"]["metadata"]["labels"] == {"tier": "x"}),
        # lists without a merge key are replaced
        ({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["b"]}]}}}},
         lambda d: d["spec"]["template"]["spec"]["containers"][0]["args"] == ["b"]),
    ],
)
def test_strategic_merge(patch: dict[str, Any], check: Any) -> None:
    base = deployment(env=[{"name": "A", "value": "1"}], args=["a"])
    assert check(K.strategic_merge(base, {"kind": "Deployment", "metadata": {"name": "web"}, **patch}))


def test_strategic_merge_delete_of_a_resource() -> None:
    assert K.strategic_merge(deployment(), {"$patch": "delete"}) is None


@pytest.mark.parametrize(
    ("ops", "path", "expected"),
    [
        ([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "rva:2"}],
         ("spec", "template", "spec", "containers", 0, "image"), "rva:2"),
        ([{"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
          {"op": "add", "path": "/metadata/labels/x~1y", "value": "z"}],
         ("metadata", "labels"), {"a/b": "c", "x/y": "z"}),
        ([{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "s"}}],
         ("spec", "template", "spec", "containers", 1, "name"), "s"),
        ([{"op": "remove", "path": "/spec/template/spec/volumes/0"}], ("spec", "template", "spec", "volumes"), []),
    ],
)
def test_json6902(ops: list[dict[str, Any]], path: tuple[Any, ...], expected: Any) -> None:
    node: Any = K.json6902(deployment(), ops)
    for key in path:
        node = node[key]
    assert node == expected


def test_json6902_test_and_replace_of_nothing_fail() -> None:
    with pytest.raises(K.KustomizeError):
        K.json6902(deployment(), [{"op": "test", "path": "/metadata/name", "value": "other"}])
    with pytest.raises(K.KustomizeError):
        K.json6902(deployment(), [{"op": "replace", "path": "/metadata/nope", "value": 1}])


def test_generators_hash_names_and_rename_references(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "settings.yaml": "a: 1\n",
        "app.yaml": deployment(env=[{"name": "K", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}},
                                    {"name": "O", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}]),
        "kustomization.yaml": {
            "resources": ["app.yaml"], "namespace": "ns",
            "configMapGenerator": [{"name": "settings", "files": ["settings.yaml"], "literals": ["mode=edge"]}],
            "secretGenerator": [{"name": "creds", "literals": ["k=v"]}],
            "labels": [{"pairs": {"team": "rva"}, "includeTemplates": True}],
            "images": [{"name": "rva", "newName": "reg.example/rva", "newTag": "2"}],
        },
    })
    out = {r["kind"]: r for r in K.build(root)}
    cm, secret, dep = out["ConfigMap"], out["Secret"], out["Deployment"]
    assert cm["data"] == {"settings.yaml": "a: 1\n", "mode": "edge"}
    assert cm["metadata"]["name"] == f"settings-{K.content_hash({**cm, 'metadata': {'name': 'settings'}})}"
    assert len(cm["metadata"]["name"]) == len("settings-") + 10
    assert base64.b64decode(secret["data"]["k"]) == b"v"
    spec = dep["spec"]["template"]["spec"]
    assert spec["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
    assert spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert spec["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "other"  # not generated here
    assert spec["containers"][0]["image"] == "reg.example/rva:2"
    assert {r["metadata"]["namespace"] for r in out.values()} == {"ns"}
    assert dep["metadata"]["labels"] == {"team": "rva"}
    assert dep["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "rva"}
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "web"}  # selectors untouched
    assert "annotations" not in cm["metadata"]
    assert [r["kind"] for r in K.build(root)] == ["ConfigMap", "Secret", "Deployment"]


def test_the_hash_follows_the_content() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}
    other = {**cm, "data": {"a": "2"}}
    assert K.content_hash(cm) != K.content_hash(other)
    assert K.content_hash(cm) == K.content_hash({**cm, "data": {"a": "1"}})
    assert set(K.content_hash(cm)) <= set("2456789bcdfghkmt")  # kustomize swaps 0 1 3 a e for letters


def test_overlay_merges_replaces_and_patches(tmp_path: Path) -> None:
    write(tmp_path / "base", {
        "app.yaml": deployment(),
        "kustomization.yaml": {"resources": ["app.yaml"],
                               "configMapGenerator": [{"name": "settings", "literals": ["a=1", "b=2"]}]},
    })
    root = write(tmp_path / "overlay", {
        "patch.yaml": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                       "spec": {"replicas": 3}},
        "kustomization.yaml": {
            "resources": ["../base"],
            "configMapGenerator": [{"name": "settings", "behavior": "merge", "literals": ["b=3"]}],
            "patches": [{"path": "patch.yaml"},
                        {"target": {"kind": "Deployment", "name": "w.*"},
                         "patch": "- {op: add, path: /spec/paused, value: true}"}],
        },
    })
    out = {r["kind"]: r for r in K.build(root)}
    assert out["ConfigMap"]["data"] == {"a": "1", "b": "3"}
    assert out["Deployment"]["spec"]["replicas"] == 3
    assert out["Deployment"]["spec"]["paused"] is True


@pytest.mark.parametrize(
    ("kustomization", "files", "message"),
    [
        ({"resources": ["app.yaml"], "namePrefix": "x-"}, {}, "unsupported kustomization fields"),
        ({"resources": ["app.yaml"], "configMapGenerator": [{"name": "c", "files": ["../secret.txt"]}]},
         {}, "outside the kustomization directory"),
        ({"resources": ["app.yaml"], "patches": [{"patch": "kind: Deployment\nmetadata: {name: nope}\n"}]},
         {}, "matches no resource"),
        ({"resources": ["app.yaml", "app.yaml"]}, {}, "duplicate resource"),
        ({"resources": ["app.yaml"], "configMapGenerator": [{"name": "settings", "behavior": "merge",
                                                              "literals": ["a=1"]}]}, {}, "behavior merge"),
        ({"resources": ["app.yaml"], "labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]}, {}, "selectors"),
        ({"resources": ["app.yaml"], "components": ["comp"]},
         {"comp/kustomization.yaml": {"kind": "Kustomization"}}, "kind: Component"),
    ],
)
def test_what_kustomize_would_refuse_is_refused(tmp_path: Path, kustomization: dict[str, Any],
                                                files: dict[str, Any], message: str) -> None:
    (tmp_path / "secret.txt").write_text("x")
    root = write(tmp_path / "k", {"app.yaml": deployment(), "kustomization.yaml": kustomization, **files})
    with pytest.raises(K.KustomizeError, match=message):
        K.build(root)
