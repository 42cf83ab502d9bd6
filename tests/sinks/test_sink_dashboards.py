"""Shipped OpenSearch Dashboards saved objects, and the import request `memtrail dashboards import` sends.

OpenSearch Dashboards cannot run here: a local recording HTTP server stands in for it.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from typer.testing import CliRunner

from memtrail.cli import app
from sinks.opensearch.dashboards import SAVED_OBJECTS, ImportFailed, import_saved_objects
from tests.sinks.sinkfakes import Recorder, json_reply


def _objects() -> list[dict]:
    return [orjson.loads(line) for line in SAVED_OBJECTS.read_bytes().splitlines() if line.strip()]


def test_saved_objects_are_complete_and_references_resolve() -> None:
    objs = _objects()
    by_id = {(o["type"], o["id"]): o for o in objs}
    assert len(by_id) == len(objs)
    (pattern,) = [o for o in objs if o["type"] == "index-pattern"]
    assert pattern["attributes"] == {"title": "memtrail-alerts-*", "timeFieldName": "@timestamp"}
    titles = {o["attributes"]["title"] for o in objs if o["type"] == "visualization"}
    assert titles == {
        "Memtrail: alerts over time",
        "Memtrail: alerts by severity",
        "Memtrail: alerts by ATT&CK technique",
        "Memtrail: alerts by container",
        "Memtrail: top patterns",
    }
    fields_used = set()
    for o in objs:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in by_id, ref
        if o["type"] == "visualization":
            vis = orjson.loads(o["attributes"]["visState"])
            fields_used |= {a["params"]["field"] for a in vis["aggs"] if "field" in a["params"]}
            orjson.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert fields_used == {
        "@timestamp",
        "memtrail.severity",
        "threat.technique.id",  # ECS: parent techniques only, so nothing is counted twice
        "container.name",
        "container.image.name",
        "memtrail.patterns",  # top patterns: every pattern of an incident, not only its primary
    }
    (dash,) = [o for o in objs if o["type"] == "dashboard"]
    panels = orjson.loads(dash["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == {r["name"] for r in dash["references"]}
    assert len(panels) == 5


def test_dashboard_fields_are_keywords_in_the_index_template() -> None:
    from sinks.opensearch.sink import index_template

    props = index_template()["template"]["mappings"]["properties"]
    for path in (
        "memtrail.severity",
        "threat.technique.id",
        "threat.technique.subtechnique.id",
        "container.name",
        "container.image.name",
        "rule.id",
        "rule.name",
        "memtrail.patterns",
        "memtrail.incident.id",
    ):
        node = props
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]["properties"]
        assert node[leaf]["type"] == "keyword", path


def test_import_posts_multipart_ndjson_with_xsrf_header() -> None:
    rec = Recorder(handler=lambda r: json_reply(200, {"success": True, "successCount": 7})).start()
    try:
        result = CliRunner().invoke(
            app, ["dashboards", "import", rec.url, "--user", "admin", "--password", "pw"]
        )
    finally:
        rec.stop()
    assert result.exit_code == 0, result.output
    assert "imported 7 saved objects" in result.output
    (req,) = rec.requests
    assert (req.method, req.path, req.query) == (
        "POST",
        "/api/saved_objects/_import",
        {"overwrite": ["true"]},
    )
    assert req.headers["osd-xsrf"] == "true"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"admin:pw").decode()
    ctype = req.headers["content-type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    boundary = ctype.split("boundary=")[1].encode()
    (part,) = [p for p in req.body.split(b"--" + boundary) if b"Content-Disposition" in p]
    head, _, content = part.partition(b"\r\n\r\n")
    assert b'name="file"; filename="dashboards.ndjson"' in head
    assert b"Content-Type: application/ndjson" in head
    assert content.rstrip(b"\r\n") == SAVED_OBJECTS.read_bytes().rstrip(b"\n")


def test_the_index_pattern_follows_the_sinks_index_prefix() -> None:
    rec = Recorder(handler=lambda r: json_reply(200, {"success": True, "successCount": 7})).start()
    try:
        result = CliRunner().invoke(
            app, ["dashboards", "import", rec.url], env={"MEMTRAIL_OPENSEARCH_INDEX_PREFIX": "prod-alerts"}
        )
    finally:
        rec.stop()
    assert result.exit_code == 0, result.output
    (req,) = rec.requests
    objs = [orjson.loads(line) for line in req.body.splitlines() if line.startswith(b"{")]
    (pattern,) = [o for o in objs if o.get("type") == "index-pattern"]
    assert pattern["attributes"]["title"] == "prod-alerts-*"


def test_import_reports_partial_failure_and_http_errors() -> None:
    answer = {
        "success": False,
        "successCount": 6,
        "errors": [{"id": "memtrail-alerts", "type": "index-pattern", "error": {"type": "conflict"}}],
    }
    rec = Recorder(handler=lambda r: json_reply(200, answer)).start()
    try:
        with pytest.raises(ImportFailed, match="index-pattern/memtrail-alerts: conflict"):
            import_saved_objects(rec.url)
        rec.handler = lambda r: json_reply(403, {"message": "forbidden"})
        result = CliRunner().invoke(app, ["dashboards", "import", rec.url])
        assert result.exit_code == 1 and "HTTP 403" in result.output
    finally:
        rec.stop()
