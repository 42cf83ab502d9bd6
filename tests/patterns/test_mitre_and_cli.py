"""The vendored ATT&CK catalog and the `memtrail patterns` commands (run as a user would)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from memtrail.cli import app
from patterns.mitre.catalog import load_catalog
from tests.paths import REPO

runner = CliRunner()


def test_catalog_lookup() -> None:
    cat = load_catalog()
    t = cat.get("T1055.008")
    assert t is not None
    assert t.name == "Ptrace System Calls"
    assert "privilege-escalation" in t.tactics and "defense-evasion" in t.tactics
    assert t.url == "https://attack.mitre.org/techniques/T1055/008"
    assert cat.display_name("T1055.008") == "Process Injection: Ptrace System Calls"
    assert cat.get("T1620") is not None and cat.get("T9999") is None
    assert len(cat) > 600  # techniques + sub-techniques of Enterprise ATT&CK


def test_generator_reproduces_the_vendored_file(tmp_path: Path) -> None:
    """The generator turns MITRE STIX (bundle form) into the catalog's format."""
    bundle = {
        "type": "bundle",
        "objects": [
            {
                "type": "attack-pattern",
                "name": "Ptrace System Calls",
                "created": "2020-01-14T17:18:32.126Z",
                "external_references": [
                    {
                        "source_name": "mitre-attack",
                        "external_id": "T1055.008",
                        "url": "https://attack.mitre.org/techniques/T1055/008",
                    }
                ],
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": "privilege-escalation"},
                    {"kill_chain_name": "mitre-attack", "phase_name": "defense-evasion"},
                ],
            },
            {"type": "attack-pattern", "name": "old", "revoked": True, "external_references": []},
        ],
    }
    src = tmp_path / "enterprise-attack.json"
    src.write_text(json.dumps(bundle))
    out = tmp_path / "out.json"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "mitre_catalog.py"), "--source", str(src), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    doc = json.loads(out.read_text())
    assert doc["techniques"] == {
        "T1055.008": {
            "name": "Ptrace System Calls",
            "tactics": ["defense-evasion", "privilege-escalation"],
            "url": "https://attack.mitre.org/techniques/T1055/008",
            "created": "2020-01-14",
        }
    }
    vendored = json.loads((REPO / "patterns" / "mitre" / "enterprise.json").read_text())
    assert vendored["techniques"]["T1055.008"] == doc["techniques"]["T1055.008"]


def test_cli_lint_test_stats() -> None:
    r = runner.invoke(app, ["patterns", "lint"])
    assert r.exit_code == 0, r.output
    assert " 0 problems" in r.output
    r = runner.invoke(app, ["patterns", "stats", "--json"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.output)
    assert stats["patterns"] >= 720 and stats["techniques"] >= 60
    assert {"by_category", "by_severity", "by_technique", "by_tactic"} <= set(stats)
    r = runner.invoke(app, ["patterns", "test", "--pattern", "MT-FILELESS-001"])
    assert r.exit_code == 0 and "1 passed, 0 failed" in r.output


def test_cli_lint_rejects_duplicates_and_bad_patterns(tmp_path: Path) -> None:
    body = (
        "  - {id: %s, name: same thing, description: duplicated logic here, severity: info,"
        " techniques: [T1059], condition: {syscall: execve, path: /bin/x},"
        " examples: {match: [{args: {filename: /bin/x}}], no_match: [{args: {filename: /bin/y}}]}}\n"
    )
    (tmp_path / "a.yaml").write_text("patterns:\n" + body % "MT-A-001" + body % "MT-A-002")
    r = runner.invoke(app, ["patterns", "lint", "--dir", str(tmp_path)])
    assert r.exit_code == 1
    assert "same logic as MT-A-001" in r.output


def test_cli_explain() -> None:
    ev = {"syscall": "execve", "args": {"filename": "/dev/shm/x", "argv": ["x"], "exe_memfd": True}}
    r = runner.invoke(app, ["patterns", "explain", json.dumps(ev)])
    assert r.exit_code == 0, r.output
    assert "MT-SHM-001" in r.output and "ALERT" in r.output
    assert "MT-FILELESS-002" in r.output
    r = runner.invoke(app, ["patterns", "explain", "{not json"])
    assert r.exit_code == 2
