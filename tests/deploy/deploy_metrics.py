"""The Prometheus metrics the code exports: names (with their sample suffixes) and label names, read from
the ``Counter``/``Gauge``/``Histogram`` calls in the source."""

from __future__ import annotations

from functools import cache
from typing import Any

from deploy_checks import REPO

# --- metrics the code exports ----------------------------------------------------------------------------------------

_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


@cache
def exported_metrics() -> dict[str, frozenset[str]]:
    """Every Prometheus series name the code can export -> its label names.

    Found by parsing ``Counter("name", "help", [labels])`` (and Gauge, Histogram, Summary, Info, Enum)
    calls in rva/, services/ and gateway/, with the suffixes prometheus_client adds: ``_total`` for
    counters (the given name minus any ``_total``), ``_bucket``/``_sum``/``_count`` for histograms
    (``le`` on buckets), ``_created`` timestamps.
    """
    import ast

    out: dict[str, frozenset[str]] = {}
    for package in ("rva", "services", "gateway"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                first = node.args[0]
                if func not in _SUFFIXES or not isinstance(first, ast.Constant) or not isinstance(first.value, str):
                    continue
                labels = _labelnames(node)
                base = first.value.removesuffix("_total") if func == "Counter" else first.value
                for suffix in _SUFFIXES[func]:
                    extra = {"le"} if suffix == "_bucket" else set()
                    out[base + suffix] = frozenset(labels | extra)
    return out


def _labelnames(call: Any) -> set[str]:
    import ast

    node = call.args[2] if len(call.args) > 2 else next(
        (kw.value for kw in call.keywords if kw.arg == "labelnames"), None)
    if isinstance(node, ast.List | ast.Tuple):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()

