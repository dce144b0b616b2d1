"""deploy/grafana/dashboards: the JSON is a well-formed dashboard, every metric a PromQL expression
names is one the code exports (with the labels it uses), and every SQL panel parses with PostgreSQL's
own parser and reads tables and columns the stores' schema has."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from deploy_checks import DEPLOY
from deploy_metrics import exported_metrics
from pglast.parser import ParseError, parse_sql_json

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
#: Labels Prometheus adds to every series (scrape target and the Kubernetes relabelling of
#: deploy/k8s/monitoring/prometheus-scrape.yaml), and the series Prometheus makes itself.
TARGET_LABELS = {"job", "instance", "namespace", "pod"}
SYNTHETIC = {"up": frozenset()}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels") or []
    return out


def targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels(dashboard) for t in p.get("targets") or []]


def metrics_of(expr: str) -> list[tuple[str, set[str]]]:
    """``[(metric, label names in its matchers)]`` of a PromQL expression; grouping labels as ``("", {...})``."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)  # string literals
    s = re.sub(r"\[[^\]]*\]", "", s)  # range and subquery selectors
    s = re.sub(r"\$\{?\w+\}?", "", s)  # Grafana variables
    out: list[tuple[str, set[str]]] = []
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", s):
        out.append(("", {x.strip() for x in m.group(1).split(",") if x.strip()}))
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", s):
        name, matchers, call = m.groups()
        if call or name in _KEYWORDS:
            continue
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers or ""))
        out.append((name, labels))
    return out


def check_promql(expr: str) -> list[str]:
    known = {**exported_metrics(), **SYNTHETIC}
    found = metrics_of(expr)
    names = [n for n, _ in found if n]
    problems = [] if names else [f"{expr!r}: names no metric"]
    usable = set(TARGET_LABELS)
    for name, labels in found:
        if not name:
            continue
        if name not in known:
            problems.append(f"{name}: not exported by the code ({expr!r})")
            continue
        usable |= known[name]
        unknown = labels - known[name] - TARGET_LABELS
        if unknown:
            problems.append(f"{name}: has no label(s) {sorted(unknown)} ({expr!r})")
    for name, labels in found:
        if not name and labels - usable:
            problems.append(f"grouping by {sorted(labels - usable)}, which no metric of {expr!r} has")
    return problems


# --- SQL -----------------------------------------------------------------------------------------------------------

_MACROS = [
    (r"\$__timeGroupAlias\(([^,()]+),\s*'[^']*'\)",
     r'to_timestamp(floor(extract(epoch FROM \1) / 300) * 300) AS "time"'),
    (r"\$__timeFilter\(([^()]+)\)", r"\1 BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z'"),
    (r"\$__timeFrom\(\)", "'2026-01-01T00:00:00Z'"),
    (r"\$__timeTo\(\)", "'2026-01-02T00:00:00Z'"),
    (r"\$\{?\w+\}?", "x"),  # template variables, quoted in the queries
]


def expand(sql: str) -> str:
    """The SQL Grafana would send, macros and variables substituted as its PostgreSQL datasource does."""
    for pattern, replacement in _MACROS:
        sql = re.sub(pattern, replacement, sql)
    return sql


def walk(node: Any, kind: str) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node[kind]] if kind in node else []
        return found + [x for v in node.values() for x in walk(v, kind)]
    if isinstance(node, list):
        return [x for v in node for x in walk(v, kind)]
    return []


@cache
def schema_columns() -> dict[str, frozenset[str]]:
    """``rva.<table> -> columns`` of the stores' PostgreSQL schema (native rendering of every migration)."""
    from rva.stores.postgres_schema import MIGRATIONS

    out = {}
    for _, _, render in MIGRATIONS:
        for stmt in render(False):
            tree = json.loads(parse_sql_json(stmt))
            for create in walk(tree, "CreateStmt"):
                rel = create["relation"]
                cols = [e["ColumnDef"]["colname"] for e in create["tableElts"] if "ColumnDef" in e]
                out[f"{rel['schemaname']}.{rel['relname']}"] = frozenset(cols)
    return out


def check_sql(sql: str) -> list[str]:
    try:
        tree = json.loads(parse_sql_json(expand(sql)))
    except ParseError as err:
        return [f"does not parse: {err}\n{expand(sql)}"]
    tables = schema_columns()
    problems, columns = [], set()
    for rel in walk(tree, "RangeVar"):
        name = f"{rel.get('schemaname', 'public')}.{rel['relname']}"
        if name not in tables:
            problems.append(f"reads {name}, which the stores' schema does not have")
        else:
            columns |= tables[name]
    aliases = {t["name"] for t in walk(tree, "ResTarget") if t.get("name")}
    for alias in walk(tree, "Alias") + walk(tree, "alias"):  # AS t(ts): a node, or a field of RangeFunction
        aliases |= {c["String"]["sval"] for c in alias.get("colnames") or []}
    for ref in walk(tree, "ColumnRef"):
        last = ref["fields"][-1]
        if "String" in last and last["String"]["sval"] not in columns | aliases:
            problems.append(f"column {last['String']['sval']} is in none of the tables read")
    return problems


# --- tests ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] == path.stem and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"{panel['title']}: no query"
        for t in panel["targets"]:
            uid = t["datasource"]["uid"]
            assert uid.startswith("${") and uid[2:-1] in variables, f"{panel['title']}: datasource {uid}"
            assert variables[uid[2:-1]]["query"] == t["datasource"]["type"]
    assert len({p["title"] for p in panels(dashboard)}) == len(ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_promql_metric_is_exported_by_the_code(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    problems = []
    for title, t in targets(dashboard):
        if "expr" in t:
            problems += [f"{title}: {p}" for p in check_promql(t["expr"])]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if var["type"] == "query" and isinstance(query, dict) and "query" in query:
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query["query"])
            assert m, query
            problems += check_promql(m.group(1))
            if m.group(1) in exported_metrics() and m.group(2) not in exported_metrics()[m.group(1)]:
                problems.append(f"variable {var['name']}: {m.group(1)} has no label {m.group(2)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_sql_query_parses_and_reads_the_stores_schema(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    queries = [(title, t["rawSql"]) for title, t in targets(dashboard) if "rawSql" in t]
    queries += [(v["name"], v["query"]["rawSql"]) for v in dashboard["templating"]["list"]
                if isinstance(v.get("query"), dict) and "rawSql" in v["query"]]
    problems = [f"{title}: {p}" for title, sql in queries for p in check_sql(sql)]
    assert not problems, "\n".join(problems)


def test_the_dashboards_cover_what_operators_watch() -> None:
    pipeline = json.dumps(json.loads((DEPLOY / "grafana/dashboards/rva-pipeline.json").read_text()))
    for metric in ("rva_frames_total", "rva_dropped_total", "rva_queue_depth", "rva_stage_latency_seconds_bucket",
                   "rva_events_published_total", "rva_errors_total"):
        assert metric in pipeline
    store = json.dumps(json.loads((DEPLOY / "grafana/dashboards/rva-store.json").read_text()))
    for table in ("rva.visits", "rva.line_counts_30s", "rva.queue_stats_30s", "rva.zone_counts_30s"):
        assert table in store


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(rva_frame_total[5m])", "rva_frame_total: not exported"),
        ('sum(rva_queue_depth{camera="a"})', "has no label(s) ['camera']"),
        ("sum by (reason) (rate(rva_frames_total[5m]))", "grouping by ['reason']"),
        ("rva_stage_latency_seconds", "rva_stage_latency_seconds: not exported"),
        ("sum(rate(rva_frames_total[5m]))", ""),
        ('histogram_quantile(0.9, sum by (le, stage) (rate(rva_stage_latency_seconds_bucket{service="x"}[1m])))', ""),
    ],
)
def test_promql_check(expr: str, problem: str) -> None:
    problems = check_promql(expr)
    assert any(problem in p for p in problems) if problem else not problems, problems


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT zone FROM rva.visit", "reads rva.visit"),
        ("SELECT zonee FROM rva.visits", "column zonee"),
        ("SELECT zone FROM rva.visits WHERE", "does not parse"),
        ("SELECT $__timeGroupAlias(bucket, '5m'), sum(in_count) AS n FROM rva.line_counts_30s "
         "WHERE $__timeFilter(bucket) AND store = '$store' GROUP BY 1", ""),
    ],
)
def test_sql_check(sql: str, problem: str) -> None:
    problems = check_sql(sql)
    assert any(problem in p for p in problems) if problem else not problems, problems
