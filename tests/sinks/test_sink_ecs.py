"""OpenSearch documents and the index template against the official ECS field definitions.

Every field outside ``memtrail.*`` must be an ECS field with a compatible type, in the template
and in a real incident's document; Memtrail-only fields live under ``memtrail.*``. The
definitions come from Elastic's npm package (tests/sinks/ecs_fields.py), fetched from the npm
registry into a cache: nothing of Elastic's is copied into the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sinks.opensearch.documents import ECS_VERSION, from_document, to_document
from sinks.opensearch.sink import index_template
from tests.sinks.ecs_fields import ECS_PACKAGE, fetch, fields

#: TypeScript type (as the package spells it) → OpenSearch mapping types that hold it.
COMPATIBLE = {
    "string": {"keyword", "text", "date", "wildcard", "match_only_text"},
    "string | Array<string>": {"keyword", "text"},
    "number": {"long", "integer", "short", "float", "double", "scaled_float"},
    "Record<string, unknown>": {"flat_object", "object"},
}


@pytest.fixture(scope="module")
def ecs() -> dict[str, str]:
    try:
        return fields(fetch(Path.home() / ".cache" / "memtrail-ecs"))
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the ECS definitions ({ECS_PACKAGE}) could not be fetched from the npm registry: {exc}")


def _leaves(props: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in props.items():
        path = prefix + name
        if "properties" in spec:
            out |= _leaves(spec["properties"], path + ".")
        else:
            out[path] = spec.get("type", "object")
    return out


def _doc_leaves(doc: Any, prefix: str = "") -> set[str]:
    if isinstance(doc, dict) and not prefix.endswith("labels."):
        return set().union(*(_doc_leaves(v, f"{prefix}{k}.") for k, v in doc.items())) if doc else set()
    return {prefix.rstrip(".")}


def test_the_ecs_version_is_the_definitions_version(ecs: dict[str, str]) -> None:
    assert ecs["ecs.version"].strip("'") == ECS_VERSION


def test_every_template_field_outside_memtrail_is_ecs_with_a_compatible_type(ecs: dict[str, str]) -> None:
    mapped = _leaves(index_template()["template"]["mappings"]["properties"])
    wrong = []
    for path, typ in mapped.items():
        if path.split(".", 1)[0] == "memtrail":
            continue
        if path not in ecs:
            wrong.append(f"{path}: not an ECS field")
        elif typ not in COMPATIBLE.get("string" if ecs[path].startswith("'") else ecs[path], set()):
            wrong.append(f"{path}: mapped {typ}, ECS says {ecs[path]}")
    assert not wrong, "\n".join(wrong)
    # what operators filter on, ECS-named (the names other tools' dashboards already use)
    for path in ("event.kind", "event.category", "event.type", "ecs.version", "container.image.name",
                 "orchestrator.resource.name", "threat.technique.subtechnique.id", "process.parent.pid"):  # fmt: skip
        assert path in mapped, path


def test_an_incident_document_is_ecs_and_gives_the_alert_back(ecs: dict[str, str]) -> None:
    from tests.sinks.test_sink_incidents import incident

    alert = incident()
    alert["kubernetes"] = {"pod_name": "web-0", "namespace": "shop"}
    doc = orjson.loads(orjson.dumps(to_document(alert)))
    outside = sorted(p for p in _doc_leaves(doc) if not p.startswith("memtrail.") and p not in ecs)
    assert not [p for p in outside if not p.startswith("container.labels")], outside
    assert doc["event"]["kind"] == "alert" and "intrusion_detection" in doc["event"]["category"]
    tech = doc["threat"]["technique"]
    assert not any("." in t for t in tech["id"]), "sub-techniques are not counted as techniques"
    assert all("." in t for t in tech.get("subtechnique", {}).get("id", []))
    assert doc["orchestrator"] == {
        "type": "kubernetes",
        "namespace": "shop",
        "resource": {"type": "pod", "name": "web-0"},
    }
    back = from_document(doc)
    for key in (
        "id",
        "rule",
        "threat",
        "container",
        "kubernetes",
        "patterns",
        "count",
        "revision",
        "evidence",
    ):
        assert back[key] == orjson.loads(orjson.dumps(alert)).get(key, back[key]), key
