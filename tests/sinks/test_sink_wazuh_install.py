"""Wazuh content that loads: <mitre> ids a Wazuh 4.x manager knows, and an installer through its API.

No Wazuh manager runs here: the installer is tested against a stand-in that answers like the
manager's API (wazuh 4.x: authenticate, PUT rules/decoders files, configuration validation,
restart) and checks each request strictly.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memtrail.cli import app
from patterns.mitre.catalog import Catalog, Technique, load_catalog
from sinks.wazuh.content import DATA_DIR, DECODERS_FILE, RULES_FILE
from sinks.wazuh.rules import WAZUH_ATTACK_RELEASED, wazuh_mitre_ids
from tests.sinks.sinkfakes import Recorder, Request, json_reply


def test_shipped_rules_name_only_techniques_of_wazuh_s_attack_release() -> None:
    cat = load_catalog()
    ids = set(re.findall(r"<id>(T\d{4}(?:\.\d{3})?)</id>", (DATA_DIR / RULES_FILE).read_text()))
    assert ids, "rules carry MITRE ids"
    too_new = sorted(i for i in ids if (cat.get(i).created or "9999") >= WAZUH_ATTACK_RELEASED)  # type: ignore[union-attr]
    assert not too_new, too_new


def test_a_newer_sub_technique_becomes_its_known_parent() -> None:
    cat = Catalog(
        {
            "T1055": Technique("T1055", "Process Injection", ("defense-evasion",), "u", "2017-05-31"),
            "T1055.099": Technique("T1055.099", "New", ("defense-evasion",), "u", "2025-10-01"),
            "T1999": Technique("T1999", "Brand new", ("impact",), "u", "2025-10-01"),
        },
        "18.1",
    )
    assert wazuh_mitre_ids(["T1055.099", "T1055", "T1999"], cat) == ["T1055"]


def _manager(failed_rules: bool = False, invalid: bool = False) -> Recorder:
    def handle(r: Request) -> Any:
        if r.path == "/security/user/authenticate":
            ok = r.headers.get("authorization") == "Basic " + base64.b64encode(b"wazuh-wui:pw").decode()
            return json_reply(200 if ok else 401, {"data": {"token": "T0K"}, "error": 0})
        assert r.headers.get("authorization") == "Bearer T0K", r.path
        if r.method == "PUT" and r.path.startswith(("/rules/files/", "/decoders/files/")):
            assert (
                r.query == {"overwrite": ["true"]} and r.headers["content-type"] == "application/octet-stream"
            )
            failed = [{"error": {"code": 1113, "message": "XML syntax error"}, "id": ["x"]}]
            fail = failed_rules and r.path.startswith("/rules/")
            return json_reply(200, {"data": {"affected_items": [] if fail else ["x"], "failed_items": failed if fail else []}, "error": 1 if fail else 0})  # fmt: skip
        if r.method == "GET" and r.path == "/manager/configuration/validation":
            status = "KO" if invalid else "OK"
            return json_reply(200, {"data": {"affected_items": [{"name": "node01", "status": status}], "failed_items": []}, "error": 0})  # fmt: skip
        if r.method == "PUT" and r.path == "/manager/restart":
            return json_reply(200, {"data": {"affected_items": ["node01"], "failed_items": []}, "error": 0})
        return json_reply(404, {"title": "Not Found", "detail": r.path})

    return Recorder(handler=handle).start()


def _run(rec: Recorder, *args: str) -> Any:
    env = {"MEMTRAIL_WAZUH_URL": rec.url, "MEMTRAIL_WAZUH_USER": "wazuh-wui", "MEMTRAIL_WAZUH_PASSWORD": "pw"}
    return CliRunner().invoke(app, ["wazuh", "install", *args], env=env)


def test_install_uploads_the_decoder_then_the_rules_validates_and_restarts() -> None:
    rec = _manager()
    try:
        result = _run(rec)
    finally:
        rec.stop()
    assert result.exit_code == 0, result.output
    assert rec.paths() == [
        "POST /security/user/authenticate",
        f"PUT /decoders/files/{DECODERS_FILE}",
        f"PUT /rules/files/{RULES_FILE}",
        "GET /manager/configuration/validation",
        "PUT /manager/restart",
    ]
    assert rec.requests[1].body == (DATA_DIR / DECODERS_FILE).read_bytes()
    assert rec.requests[2].body == (DATA_DIR / RULES_FILE).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"failed_rules": True}, "XML syntax error"), ({"invalid": True}, "does not validate")],
)
def test_a_refused_file_or_invalid_configuration_never_restarts(kwargs: dict[str, bool], needle: str) -> None:
    rec = _manager(**kwargs)
    try:
        result = _run(rec)
    finally:
        rec.stop()
    assert result.exit_code == 1 and needle in result.output
    assert "PUT /manager/restart" not in rec.paths()


def test_wrong_credentials_are_one_line(tmp_path: Path) -> None:
    rec = _manager()
    try:
        env = {"MEMTRAIL_WAZUH_URL": rec.url, "MEMTRAIL_WAZUH_USER": "x", "MEMTRAIL_WAZUH_PASSWORD": "y"}
        result = CliRunner().invoke(app, ["wazuh", "install"], env=env)
    finally:
        rec.stop()
    assert result.exit_code == 1 and "authenticate: HTTP 401" in result.output
