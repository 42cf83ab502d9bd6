"""The committed JSON Schemas are the exported models; alerts serialise with ECS field names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from schemas.alerts import Alert, stable_id
from schemas.export import OUT, render


def test_committed_json_schemas_match_models() -> None:
    for fname, text in render().items():
        path = Path(OUT) / fname
        assert path.exists(), f"{path} missing: run `memtrail schemas export`"
        assert path.read_text() == text, f"{path} is stale: run `memtrail schemas export`"


def test_alert_json_uses_ecs_names() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    alert = Alert.model_validate(
        {
            "id": stable_id("MT-X", "e1"),
            "@timestamp": now,
            "rule": {"id": "MT-X", "name": "x", "severity": "critical"},
            "threat": {"technique": {"id": ["T1055.008", "T1055"]}, "tactic": {"name": ["Defense Evasion"]}},
            "process": {"pid": 1, "executable": "/bin/x", "command_line": "x"},
            "host": {"name": "h"},
            "message": "m",
            "evidence": [{"id": "e1"}],
            "first_seen": now,
            "last_seen": now,
        }
    )
    doc = alert.to_json_dict()
    assert doc["@timestamp"].startswith("2026-01-02T03:04:05")
    assert doc["threat"]["technique"]["id"] == ["T1055.008", "T1055"]
    assert doc["container"]["id"] is None
    assert Alert.model_validate(doc) == alert


def test_stable_id_is_deterministic_and_part_sensitive() -> None:
    assert stable_id("a", "b") == stable_id("a", "b")
    assert stable_id("a", "b") != stable_id("ab", "")
