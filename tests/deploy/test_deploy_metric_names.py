"""Metric names across components follow one convention (``memtrail_`` prefix, base units,
``_total`` counters, bounded labels), and every metric the alert rules use is exported."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy.deploy_support import CHART, PROMETHEUS_DIR

#: Modules holding the process-wide collectors of the sensor, stream workers and sinks
#: (the shim and the audit webhook build per-app registries, checked by their own tests).
METRIC_MODULES = ("sensors.metrics", "streams.metrics", "sinks.metrics")
#: Labels whose values grow without bound (one series per process, file or alert).
UNBOUNDED_LABELS = {"id", "pid", "tid", "ppid", "container_id", "path", "filename", "cmdline", "alert_id",
                    "key", "offset", "event_id", "exe", "comm", "user", "uid"}  # fmt: skip
NON_BASE_UNITS = re.compile(
    r"_(ms|millis|milliseconds|us|microseconds|ns|nanoseconds|kb|mb|gb|kib|mib|percent)(_|$)"
)


def _families() -> list[tuple[str, str, set[str]]]:
    """(family name, type, label names) of every memtrail_ metric registered by METRIC_MODULES."""
    for module in METRIC_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"{module} does not import: {exc}")
    out = []
    for fam in REGISTRY.collect():
        if fam.name.startswith("memtrail_"):
            labels = {k for s in fam.samples for k in s.labels if k not in {"le", "quantile"}}
            labels |= set(getattr(_collector_for(fam.name), "_labelnames", ()))
            out.append((fam.name, fam.type, labels))
    return out


def _collector_for(name: str) -> object | None:
    for collector, names in REGISTRY._collector_to_names.items():  # labels of series not yet seen
        if name in names or f"{name}_total" in names:
            return collector
    return None


def _sample_names() -> set[str]:
    names: set[str] = set()
    for fam in REGISTRY.collect():
        if fam.name.startswith("memtrail_"):
            names.add(fam.name)
            names.update(s.name for s in fam.samples)
            if fam.type == "counter":
                names.add(f"{fam.name}_total")
            if fam.type == "histogram":
                names.update(f"{fam.name}_{s}" for s in ("bucket", "sum", "count"))
    return names


def test_metric_names_follow_the_convention() -> None:
    families = _families()
    assert len(families) >= 10, families
    problems = []
    for name, kind, labels in families:
        if not re.fullmatch(r"memtrail_[a-z][a-z0-9_]*", name):
            problems.append(f"{name}: not snake_case under memtrail_")
        if NON_BASE_UNITS.search(name):
            problems.append(f"{name}: use base units (seconds, bytes)")
        if (
            kind in {"histogram", "summary"}
            and re.search(r"latency|duration|time", name)
            and not name.endswith("_seconds")
        ):
            problems.append(f"{name}: a time distribution ends in _seconds")
        if kind == "gauge" and name.endswith("_total"):
            problems.append(f"{name}: a gauge must not end in _total")
        if unbounded := labels & UNBOUNDED_LABELS:
            problems.append(f"{name}: unbounded labels {sorted(unbounded)}")
    assert not problems, "\n".join(problems)


def test_the_operator_metrics_exist() -> None:
    """Events received/lost/filtered per syscall, spool depth, producer errors, consumer lag,
    processing latency, alerts by severity, sink deliveries/failures/retries."""
    fams = {name: (kind, labels) for name, kind, labels in _families()}
    assert "syscall" in fams["memtrail_sensor_events"][1]
    for name in [
        "memtrail_sensor_events_lost",
        "memtrail_sensor_events_filtered",
        "memtrail_sensor_spool_depth_messages",
        "memtrail_sensor_producer_errors",
        "memtrail_stream_consumer_lag",
        "memtrail_sink_deliveries",
        "memtrail_sink_failures",
        "memtrail_sink_retries",
    ]:
        assert name in fams, f"{name} missing; have {sorted(fams)}"
    assert "severity" in fams["memtrail_alerts"][1]
    assert any(kind == "histogram" and n.startswith("memtrail_stream_") for n, (kind, _) in fams.items()), (
        "processing latency histogram"
    )


def test_alert_rules_use_exported_metrics() -> None:
    _families()
    exported = _sample_names()
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yaml").read_text())
    missing = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            for name in set(re.findall(r"\bmemtrail_[a-z0-9_]+\b", expr)) - {"memtrail_"}:
                if name not in exported:
                    missing.append(f"{rule['alert']}: {name}")
            for pattern in re.findall(r'__name__=~"([^"]+)"', expr):
                if not any(re.fullmatch(pattern, n) for n in exported):
                    missing.append(f"{rule['alert']}: nothing matches {pattern}")
    assert not missing, "\n".join(missing)


def test_the_grafana_dashboard_queries_exported_metrics_with_valid_promql(tmp_path: Path) -> None:
    """Every panel's query names exported metrics and parses (promtool, as a recording rule)."""
    _families()
    exported = _sample_names()
    dash = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    missing = [
        f"{e}: {n}"
        for e in exprs
        for n in set(re.findall(r"\bmemtrail_[a-z0-9_]+\b", e))
        if n not in exported
    ]
    assert not missing, "\n".join(missing)
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"memtrail:panel_{i}", "expr": e}
                                                          for i, e in enumerate(exprs)]}]}  # fmt: skip
    (tmp_path / "panels.yaml").write_text(yaml.safe_dump(rules))
    p = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "panels.yaml")], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
