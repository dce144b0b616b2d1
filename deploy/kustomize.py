#!/usr/bin/env python3
"""A small pure-Python ``kustomize build``: the subset deploy/k8s/ uses, so CI renders it without the binary.

    python deploy/kustomize.py build deploy/k8s/overlays/edge > edge.yaml   # same as `kubectl kustomize ...`

Supported kustomization fields (any other field is an error, never silently ignored): ``resources``
(files and directories), ``components`` (``kind: Component``), ``configMapGenerator`` /
``secretGenerator`` (``files``, ``literals``, ``envs``; ``behavior`` create/merge/replace;
``options``), ``generatorOptions``, ``patches`` (strategic merge or JSON 6902, ``path`` or inline
``patch``, ``target`` by group/version/kind/name/namespace/labelSelector), ``namespace``, ``labels``
(``pairs``, ``includeTemplates``; selectors are never touched), ``commonAnnotations`` and ``images``.

Semantics follow kustomize v5: resources, then components, then the kustomization's own generators,
then its transformers; generated ConfigMaps and Secrets get kustomize's content-hash suffix at the end
of the top-level build and every reference to them in a pod spec is renamed; files may only be read
from inside the kustomization's directory (kustomize's default load restrictor). Strategic merge
knows the list merge keys of the fields used here (containers, env, volumes, ports, ...); any other
list is replaced, as kustomize does for lists without a merge key.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_FIELDS = {
    "apiVersion", "kind", "resources", "components", "configMapGenerator", "secretGenerator", "generatorOptions",
    "patches", "namespace", "labels", "commonAnnotations", "images",
}
_CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass",
    "PriorityClass", "IngressClass", "RuntimeClass", "APIService", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "CSIDriver", "Node",
}
# kustomize's legacy output order (kinds not listed come between, by kind then name).
_ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount", "PodSecurityPolicy",
    "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service",
    "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment", "StatefulSet",
    "CronJob", "PodDisruptionBudget",
]
_ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
# Strategic-merge list keys (from the Kubernetes API's patchMergeKey) for the fields used in deploy/k8s.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name", "volumeDevices": "devicePath",
}
_GENERATED = "kustomize.rva/generated"  # internal marker, removed before output


class KustomizeError(ValueError):
    """A kustomization this renderer cannot build (or kustomize would refuse)."""


def build(path: str | Path) -> list[Resource]:
    """Render the kustomization in directory ``path`` like ``kustomize build``.

    Raises:
        KustomizeError: An unsupported field, a missing file, a patch that matches nothing, a duplicate id...

    """
    return finish(_build_dir(Path(path).resolve(), "Kustomization"))


def build_inline(kustomization: dict[str, Any], directory: str | Path) -> list[Resource]:
    """Render a kustomization given as a mapping, as if it were the file of ``directory``."""
    return finish(_build(kustomization, Path(directory).resolve(), "Kustomization"))


def finish(resources: list[Resource]) -> list[Resource]:
    """Hash-suffix generated ConfigMaps/Secrets, rename their references, check ids, sort."""
    renames: dict[tuple[str, str | None, str], str] = {}
    for res in resources:
        meta = res["metadata"]
        if meta.get("annotations", {}).pop(_GENERATED, None) == "hash":
            new = f"{meta['name']}-{content_hash(res)}"
            renames[(res["kind"], meta.get("namespace"), meta["name"])] = new
            meta["name"] = new
        if meta.get("annotations") == {}:
            del meta["annotations"]
    for res in resources:
        ns = res["metadata"].get("namespace")
        for spec in pod_specs(res):
            for kind, holder, key in config_refs(spec):
                new = renames.get((kind, ns, holder[key]))
                if new:
                    holder[key] = new
    seen: set[tuple[str, str, str | None, str]] = set()
    for res in resources:
        rid = resource_id(res)
        if rid in seen:
            raise KustomizeError(f"duplicate resource {rid}")
        seen.add(rid)
    return sorted(resources, key=_order)


def dump(resources: list[Resource]) -> str:
    """Multi-document YAML, as ``kustomize build`` prints it."""
    return yaml.safe_dump_all(resources, sort_keys=False, default_flow_style=False)


def resource_id(res: Resource) -> tuple[str, str, str | None, str]:
    """``(group, kind, namespace, name)``: what must be unique in a build."""
    group = res["apiVersion"].rpartition("/")[0]
    return group, res["kind"], res["metadata"].get("namespace"), res["metadata"]["name"]


def content_hash(res: Resource) -> str:
    """Kustomize's name suffix: sha256 of the sorted JSON of kind/name/data, 10 hex chars, some letters swapped."""
    doc: dict[str, Any] = {"kind": res["kind"], "name": res["metadata"]["name"], "data": res.get("data", {})}
    if res["kind"] == "Secret":
        doc["type"] = res.get("type", "Opaque")
    if res.get("binaryData"):
        doc["binaryData"] = res["binaryData"]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # as Go's json.Marshal
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def pod_specs(res: Resource) -> Iterator[dict[str, Any]]:
    """The pod specs inside a workload (Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod)."""
    kind, spec = res.get("kind"), res.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield spec.get("template", {}).get("spec", {})


def pod_templates(res: Resource) -> Iterator[dict[str, Any]]:
    """The pod templates (``metadata`` + ``spec``) of a workload."""
    kind, spec = res.get("kind"), res.get("spec") or {}
    if kind == "CronJob":
        yield spec.setdefault("jobTemplate", {}).setdefault("spec", {}).setdefault("template", {})
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield spec.setdefault("template", {})


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Init containers and containers of a pod spec."""
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def config_refs(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """``(kind, holder, key)`` for every ConfigMap/Secret name a pod spec refers to (``holder[key]`` is the name)."""
    for vol in spec.get("volumes") or []:
        if "configMap" in vol:
            yield "ConfigMap", vol["configMap"], "name"
        if "secret" in vol:
            yield "Secret", vol["secret"], "secretName"
        for src in (vol.get("projected") or {}).get("sources") or []:
            for kind, field in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if field in src:
                    yield kind, src[field], "name"
    for ref in spec.get("imagePullSecrets") or []:
        yield "Secret", ref, "name"
    for c in containers(spec):
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field in source:
                    yield kind, source[field], "name"
        for env_from in c.get("envFrom") or []:
            for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if field in env_from:
                    yield kind, env_from[field], "name"


# --- building ------------------------------------------------------------------------------------------------------


def _load_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            doc = yaml.safe_load((directory / name).read_text(encoding="utf-8")) or {}
            if not isinstance(doc, dict):
                raise KustomizeError(f"{directory / name}: expected a mapping")
            return doc
    raise KustomizeError(f"{directory}: no kustomization.yaml")


def _build_dir(directory: Path, expected_kind: str) -> list[Resource]:
    return _build(_load_kustomization(directory), directory, expected_kind)


def _build(k: dict[str, Any], directory: Path, expected_kind: str) -> list[Resource]:
    unknown = set(k) - _FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    kind = k.get("kind", "Kustomization")
    if kind != expected_kind:
        raise KustomizeError(f"{directory}: expected kind {expected_kind}, got {kind}")
    acc: list[Resource] = []
    for entry in k.get("resources") or []:
        path = (directory / entry).resolve()
        if path.is_dir():
            acc += _build_dir(path, "Kustomization")
        else:
            acc += _load_resources(_inside(directory, entry))
    for entry in k.get("components") or []:
        acc = _apply_component(acc, (directory / entry).resolve())
    return _transform(acc, k, directory)


def _apply_component(acc: list[Resource], directory: Path) -> list[Resource]:
    comp = _load_kustomization(directory)
    if comp.get("kind") != "Component":
        raise KustomizeError(f"{directory}: a component needs kind: Component")
    inner = {key: value for key, value in comp.items() if key not in ("resources", "components")}
    added = _build({"kind": "Component", "resources": comp.get("resources") or [],
                    "components": comp.get("components") or []}, directory, "Component")
    return _transform(acc + added, inner, directory)


def _transform(acc: list[Resource], k: dict[str, Any], directory: Path) -> list[Resource]:
    options = k.get("generatorOptions") or {}
    for gen in k.get("configMapGenerator") or []:
        acc = _generate(acc, gen, options, directory, "ConfigMap")
    for gen in k.get("secretGenerator") or []:
        acc = _generate(acc, gen, options, directory, "Secret")
    for patch in k.get("patches") or []:
        acc = _apply_patch(acc, patch, directory)
    if k.get("namespace"):
        for res in acc:
            if res["kind"] not in _CLUSTER_SCOPED:
                res["metadata"]["namespace"] = k["namespace"]
    for label in k.get("labels") or []:
        extra = set(label) - {"pairs", "includeTemplates", "includeSelectors"}
        if extra or label.get("includeSelectors"):
            raise KustomizeError(f"{directory}: labels support pairs and includeTemplates only (selectors untouched)")
        for res in acc:
            res["metadata"].setdefault("labels", {}).update(label["pairs"])
            if label.get("includeTemplates"):
                for template in pod_templates(res):
                    template.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if k.get("commonAnnotations"):
        for res in acc:
            res["metadata"].setdefault("annotations", {}).update(k["commonAnnotations"])
    for image in k.get("images") or []:
        for res in acc:
            for spec in pod_specs(res):
                for c in containers(spec):
                    c["image"] = _retag(c["image"], image)
    return acc


def _inside(directory: Path, relative: str) -> Path:
    path = (directory / relative).resolve()
    try:
        path.relative_to(directory)
    except ValueError:
        raise KustomizeError(f"{directory}: {relative} is outside the kustomization directory "
                             "(kustomize's load restrictor refuses it)") from None
    if not path.is_file():
        raise KustomizeError(f"{directory}: no file {relative}")
    return path


def _load_resources(path: Path) -> list[Resource]:
    out = []
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
            raise KustomizeError(f"{path}: every document needs apiVersion, kind and metadata")
        out.append(doc)
    return out


def _generate(acc: list[Resource], gen: dict[str, Any], defaults: dict[str, Any], directory: Path,
              kind: str) -> list[Resource]:
    extra = set(gen) - {"name", "namespace", "behavior", "files", "literals", "envs", "options", "type"}
    if extra:
        raise KustomizeError(f"{directory}: unsupported {kind} generator fields {sorted(extra)}")
    data: dict[str, str] = {}
    for entry in gen.get("files") or []:
        key, _, rel = entry.rpartition("=") if "=" in entry else ("", "", entry)
        path = _inside(directory, rel)
        data[key or path.name] = path.read_text(encoding="utf-8")
    for entry in gen.get("literals") or []:
        key, sep, value = entry.partition("=")
        if not sep:
            raise KustomizeError(f"{directory}: literal {entry!r} is not KEY=VALUE")
        data[key] = value
    for rel in gen.get("envs") or []:
        for line in _inside(directory, rel).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    if kind == "Secret":
        data = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    options = {**defaults, **(gen.get("options") or {})}
    meta: dict[str, Any] = {"name": gen["name"]}
    if gen.get("namespace"):
        meta["namespace"] = gen["namespace"]
    if options.get("labels"):
        meta["labels"] = dict(options["labels"])
    meta["annotations"] = dict(options.get("annotations") or {})
    if not options.get("disableNameSuffixHash"):
        meta["annotations"][_GENERATED] = "hash"
    behavior = gen.get("behavior", "create")
    existing = [r for r in acc if r["kind"] == kind and r["metadata"]["name"] == gen["name"]]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"{directory}: {kind} {gen['name']} exists; use behavior merge or replace")
        res: Resource = {"apiVersion": "v1", "kind": kind, "metadata": meta, "data": data}
        if kind == "Secret":
            res["type"] = gen.get("type", "Opaque")
        return [*acc, res]
    if behavior not in ("merge", "replace") or len(existing) != 1:
        raise KustomizeError(f"{directory}: behavior {behavior} needs exactly one {kind} {gen['name']} to change")
    target = existing[0]
    target["data"] = {**target.get("data", {}), **data} if behavior == "merge" else data
    target["metadata"].setdefault("labels", {}).update(meta.get("labels", {}))
    target["metadata"].setdefault("annotations", {}).update(meta["annotations"])
    return acc


def _retag(image: str, rule: dict[str, Any]) -> str:
    name, digest = image.split("@", 1) if "@" in image else (image, None)
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != rule["name"]:
        return image
    name = rule.get("newName", name)
    if rule.get("digest"):
        return f"{name}@{rule['digest']}"
    tag = rule.get("newTag", tag)
    out = f"{name}:{tag}" if tag else name
    return f"{out}@{digest}" if digest and "newTag" not in rule else out


# --- patches -------------------------------------------------------------------------------------------------------


def _apply_patch(acc: list[Resource], patch: dict[str, Any], directory: Path) -> list[Resource]:
    extra = set(patch) - {"path", "patch", "target", "options"}
    if extra or ("path" in patch) == ("patch" in patch):
        raise KustomizeError(f"{directory}: a patch needs exactly one of path or patch (got {sorted(patch)})")
    text = _inside(directory, patch["path"]).read_text(encoding="utf-8") if "path" in patch else patch["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    target = patch.get("target")
    if len(docs) == 1 and isinstance(docs[0], list):
        if not target:
            raise KustomizeError(f"{directory}: a JSON 6902 patch needs a target")
        return _each_target(acc, target, lambda r: json6902(r, docs[0]), directory)
    for doc in docs:
        if target:
            acc = _each_target(acc, target, lambda r, d=doc: strategic_merge(r, d), directory)
        else:
            sel = {"kind": doc.get("kind"), "name": doc.get("metadata", {}).get("name")}
            if doc.get("metadata", {}).get("namespace"):
                sel["namespace"] = doc["metadata"]["namespace"]
            acc = _each_target(acc, sel, lambda r, d=doc: strategic_merge(r, d), directory)
    return acc


def _each_target(acc: list[Resource], target: dict[str, Any], fn: Callable[[Resource], Resource | None],
                 directory: Path) -> list[Resource]:
    out, hits = [], 0
    for res in acc:
        if _matches(res, target):
            hits += 1
            new = fn(copy.deepcopy(res))
            if new is not None:
                out.append(new)
        else:
            out.append(res)
    if not hits:
        raise KustomizeError(f"{directory}: patch target {target} matches no resource")
    return out


def _matches(res: Resource, target: dict[str, Any]) -> bool:
    group, _, version = res["apiVersion"].rpartition("/")
    meta = res["metadata"]
    checks = {"group": group, "version": version, "kind": res["kind"], "name": meta["name"],
              "namespace": meta.get("namespace", "")}
    for key, value in target.items():
        if key == "labelSelector":
            labels = meta.get("labels") or {}
            for term in str(value).split(","):
                k, _, v = term.partition("=")
                if labels.get(k.strip()) != v.strip():
                    return False
        elif key in checks:
            if not re.fullmatch(str(value), str(checks[key])):
                return False
        else:
            raise KustomizeError(f"unsupported patch target field {key!r}")
    return True


def strategic_merge(res: Resource, patch: dict[str, Any]) -> Resource | None:
    """Apply a strategic-merge patch (``$patch: delete`` of the whole resource returns None)."""
    if patch.get("$patch") == "delete":
        return None
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
    body["metadata"] = {k: v for k, v in (patch.get("metadata") or {}).items() if k not in ("name", "namespace")}
    return _merge_map(res, body)


def _merge_map(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_map(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(key, out[key], value)
        else:
            out[key] = _strip_directives(value)
    return out


def _merge_list(field: str, base: list[Any], patch: list[Any]) -> list[Any]:
    key = _MERGE_KEYS.get(field)
    if field == "ports":  # container ports merge on containerPort, Service ports on port
        key = "containerPort" if any(isinstance(i, dict) and "containerPort" in i for i in base + patch) else "port"
    if not key or not all(isinstance(i, dict) for i in base + patch):
        return [_strip_directives(i) for i in patch]
    out = list(base)
    for item in patch:
        where = next((n for n, old in enumerate(out) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if where is not None:
                del out[where]
        elif where is None:
            out.append(_strip_directives(item))
        else:
            out[where] = _merge_map(out[where], item)
    return out


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def json6902(res: Resource, ops: list[dict[str, Any]]) -> Resource:
    """Apply JSON patch operations (RFC 6902: add, remove, replace, test)."""
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = res
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op["value"])
            elif kind == "remove":
                del parent[index]
            elif kind == "replace":
                parent[index] = op["value"]
            elif kind == "test" and parent[index] != op["value"]:
                raise KustomizeError(f"JSON patch test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in parent:
                raise KustomizeError(f"JSON patch replace: no {op['path']}")
            parent[last] = op["value"]
        elif kind == "remove":
            del parent[last]
        elif kind == "test":
            if parent.get(last) != op["value"]:
                raise KustomizeError(f"JSON patch test failed at {op['path']}")
        else:
            raise KustomizeError(f"unsupported JSON patch op {kind!r}")
    return res


def _order(res: Resource) -> tuple[int, str, str]:
    kind = res["kind"]
    if kind in _ORDER_FIRST:
        rank = _ORDER_FIRST.index(kind)
    elif kind in _ORDER_LAST:
        rank = len(_ORDER_FIRST) + 1 + _ORDER_LAST.index(kind)
    else:
        rank = len(_ORDER_FIRST)
    return rank, kind, res["metadata"]["name"]


def main(argv: list[str] | None = None) -> int:
    """``build DIR``: print the rendered manifests."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="render a kustomization directory").add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(dump(build(args.directory)))
    except (KustomizeError, OSError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
