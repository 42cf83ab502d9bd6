"""Wazuh rules and decoder generated from the pattern library."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from memtrail.cli import app
from memtrail.core.settings import Settings
from patterns.engine.api import PatternInfo
from sinks.wazuh.content import DATA_DIR, DECODERS_FILE, IDS_FILE, RULES_FILE, generate
from sinks.wazuh.rules import BASE_JSON_RULE, BASE_SYSLOG_RULE, LEVELS, assign_ids, render_rules


def _info(pid: str, severity: str = "critical", techniques: tuple[str, ...] = ("T1620",)) -> PatternInfo:
    return PatternInfo(
        id=pid,
        name=f"name of {pid} & <co>",
        description="d",
        severity=severity,
        techniques=techniques,
        tags=("fileless", "memfd"),
        category="fileless",
        source="syscall",
        file="/somewhere/10-fileless.yaml",
    )


def _find(el: ET.Element, path: str) -> ET.Element:
    found = el.find(path)
    assert found is not None, path
    return found


def _rules(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    assert root.tag == "group" and root.get("name") == "memtrail,"
    return {r.get("id", ""): r for r in root.findall("rule")}


def test_rule_ids_are_stable_when_patterns_are_added_or_removed() -> None:
    first = assign_ids(["MT-B", "MT-A"], {})
    assert first == {"MT-A": 100110, "MT-B": 100111}
    later = assign_ids(["MT-0", "MT-B", "MT-C"], first)  # MT-A removed, two new ones
    assert later == {"MT-A": 100110, "MT-B": 100111, "MT-0": 100112, "MT-C": 100113}
    assert all(100000 <= v <= 120000 for v in later.values())


def test_rules_xml_levels_mitre_and_matching() -> None:
    infos = [_info(f"MT-{sev.upper()}-001", sev, ("T1055.008", "T1055")) for sev in LEVELS]
    ids = assign_ids([i.id for i in infos], {})
    rules = _rules(render_rules(infos, ids))
    base = rules[str(BASE_JSON_RULE)]
    assert base.findtext("decoded_as") == "json"
    assert _find(base, "field").get("name") == "integration" and base.findtext("field") == "^memtrail$"
    assert rules[str(BASE_SYSLOG_RULE)].findtext("decoded_as") == "memtrail"
    for info in infos:
        rule = rules[str(ids[info.id])]
        assert int(rule.get("level", "")) == LEVELS[info.severity]
        assert rule.findtext("if_sid") == f"{BASE_JSON_RULE}, {BASE_SYSLOG_RULE}"
        field = _find(rule, "field")
        assert field.get("name") == "memtrail.rule.id" and field.get("type") == "pcre2"
        assert field.text == "^" + info.id.replace("-", r"\-") + "$"
        assert [e.text for e in rule.findall("mitre/id")] == ["T1055.008", "T1055"]
        assert info.name in rule.findtext("description", "")
        assert rule.findtext("group") == "memtrail,fileless,memfd,"
    assert sorted(int(r.get("level", "")) for r in rules.values())[2:] == [3, 7, 10, 13]


def test_unknown_severity_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="MT-X: unknown severity 'urgent'"):
        render_rules([_info("MT-X", "urgent")], {"MT-X": 100110})


def _library():
    from patterns.engine.api import list_patterns

    infos, _errors = list_patterns(Settings().patterns_dirs)
    return infos


def test_committed_wazuh_files_are_current() -> None:
    """Fails when the library changed without `memtrail wazuh rules` being run."""
    gen = generate(_library())
    assert (DATA_DIR / RULES_FILE).read_text() == gen.rules, "run `memtrail wazuh rules`"
    assert (DATA_DIR / DECODERS_FILE).read_text() == gen.decoders
    assert orjson.loads((DATA_DIR / IDS_FILE).read_bytes()) == gen.ids, "run `memtrail wazuh rules`"


def test_committed_rules_parse_and_every_technique_is_in_the_attack_catalog() -> None:
    from patterns.mitre.catalog import load_catalog

    catalog = load_catalog()
    rules = _rules((DATA_DIR / RULES_FILE).read_text())
    techniques = {e.text for r in rules.values() for e in r.findall("mitre/id")}
    assert techniques, "no technique in the generated rules"
    assert {t for t in techniques if catalog.get(t or "") is None} == set()
    ids = orjson.loads((DATA_DIR / IDS_FILE).read_bytes())
    # a pattern merged into another keeps its recorded id (never reused) but has no rule
    from sinks.wazuh.rules import FIRST_PATTERN_RULE

    assert {int(k) for k in rules if int(k) >= FIRST_PATTERN_RULE} == {ids[p.id] for p in _library()}
    decoder = ET.fromstring((DATA_DIR / DECODERS_FILE).read_text())
    assert decoder.get("name") == "memtrail" and decoder.findtext("plugin_decoder") == "JSON_Decoder"


def test_cli_regenerates_into_a_directory(tmp_path: Path) -> None:
    ids = tmp_path / "ids.json"
    shutil.copy(DATA_DIR / IDS_FILE, ids)
    result = CliRunner().invoke(app, ["wazuh", "rules", "--out", str(tmp_path / "out"), "--ids", str(ids)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / RULES_FILE).read_text() == (DATA_DIR / RULES_FILE).read_text()
    assert ids.read_bytes() == (DATA_DIR / IDS_FILE).read_bytes()
