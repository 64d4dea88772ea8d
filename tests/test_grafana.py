"""The Grafana dashboard in deploy/ shows only metrics the service exports, by their labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import core.metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "netroom.json"
NAME = re.compile(r"\b((?:netroom|process)_[a-z_]+)\b")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
SELECTOR = re.compile(r"\{([^}]*)\}")
# Labels Prometheus adds to every series, and the histogram buckets' own.
ALWAYS = {"instance", "job", "le"}


def _exported() -> dict[str, set[str]]:
    """Every series name the registry exposes, with the labels it carries."""
    names: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        labels = set(getattr(family, "_labelnames", ()))
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names[family.name + suffix] = labels
    for metric in (m for m in vars(core.metrics).values() if hasattr(m, "_labelnames")):
        base = metric._name  # type: ignore[attr-defined]
        for suffix in ("", "_total", "_bucket", "_sum", "_count"):
            if base + suffix in names:
                names[base + suffix] = set(metric._labelnames)  # type: ignore[attr-defined]
    return names


def _exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", ())
    ]


def test_every_panel_queries_exported_metrics_by_their_labels() -> None:
    exported = _exported()
    exprs = _exprs()
    assert len(exprs) >= 20
    for title, expr in exprs:
        used = NAME.findall(expr)
        assert used, f"{title}: no metric in {expr}"
        for name in used:
            assert name in exported, f"{title}: {name} is not exported"
        known = set().union(*(exported[n] for n in used)) | ALWAYS
        for grouping in GROUPING.findall(expr):
            labels = {label.strip() for label in grouping.split(",")}
            assert labels <= known, f"{title}: no label {labels - known} on {used}"
        for selector in SELECTOR.findall(expr):
            labels = {m.split("=")[0].strip(" !~") for m in selector.split(",")}
            assert labels <= known, f"{title}: no label {labels - known} on {used}"


def test_every_metric_of_the_service_has_a_panel() -> None:
    shown = {name for _, expr in _exprs() for name in NAME.findall(expr)}
    for base in core.metrics.NAMES:
        assert any(name.startswith(base) for name in shown), f"{base} has no panel"
