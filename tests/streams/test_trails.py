"""Trail lists: format, matcher, reload, and connect events through the engine with the trail attached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.engine.api import load_engine
from streams.trails import SHIPPED_LISTS_DIR, TrailMatcher, TrailStore, annotate, parse_trail_list

CUSTOM = """\
# name: acme-c2
# source: ACME incident 2026-041 (internal)
# severity: critical
198.51.100.66        # beacon target of the loader
203.0.113.128/25     # C2 fleet
evil.example.org     # staging domain
not-an-indicator!    # broken line
10.0.0.1 10.0.0.2    # two on one line
"""


def connect(addr: str, port: int = 443, **args: object) -> dict:
    return {
        "v": 1,
        "id": f"h:{port}:{addr}",
        "ts_ns": 1,
        "time": 1_700_000_000.0,
        "host": "node-1",
        "syscall": "connect",
        "ret": 0,
        "args": {
            "fd": 3,
            "family": "AF_INET6" if ":" in addr else "AF_INET",
            "addr": addr,
            "port": port,
            **args,
        },
        "process": {
            "pid": 10,
            "tid": 10,
            "ppid": 1,
            "uid": 0,
            "gid": 0,
            "comm": "curl",
            "exe": "/usr/bin/curl",
        },
        "cgroup_id": 0,
        "container_id": None,
        "container": None,
        "source": "syscall",
    }


def test_format_reports_bad_lines_and_keeps_the_rest() -> None:
    tl, errors = parse_trail_list(CUSTOM, "custom/acme.txt")
    assert (tl.name, tl.source, tl.severity, tl.category) == (
        "acme-c2",
        "ACME incident 2026-041 (internal)",
        "critical",
        "malicious",
    )
    assert [(e.indicator, e.kind) for e in tl.entries] == [
        ("198.51.100.66", "ip"),
        ("203.0.113.128/25", "cidr"),
        ("evil.example.org", "domain"),
    ]
    assert [(e.line, "not an IP" in e.message or "one indicator" in e.message) for e in errors] == [
        (7, True),
        (8, True),
    ]
    _, errors = parse_trail_list("1.2.3.4 # x\n", "nosource.txt")
    assert "source" in str(errors[0])


def test_shipped_lists_load_cleanly_and_name_their_source() -> None:
    store = TrailStore([SHIPPED_LISTS_DIR])
    assert store.errors == []
    assert {tl.name for tl in store.lists} >= {"cloud-metadata", "mining-pools", "rfc5737-test"}
    assert all(tl.source and tl.source != "unknown" for tl in store.lists)


@pytest.mark.parametrize(
    ("value", "indicator", "list_name"),
    [
        ("198.51.100.66", "198.51.100.66", "acme-c2"),  # exact IP beats the TEST-NET-2 CIDR
        ("203.0.113.200", "203.0.113.128/25", "acme-c2"),  # longest prefix wins over /24
        ("203.0.113.5", "203.0.113.0/24", "rfc5737-test"),
        ("::ffff:169.254.169.254", "169.254.169.254", "cloud-metadata"),  # v4-mapped v6
        ("2001:db8::1", "2001:db8::/32", "rfc5737-test"),
        ("8.8.8.8", None, None),
        ("not-an-ip", None, None),
    ],
)
def test_ip_and_cidr_matching(
    tmp_path: Path, value: str, indicator: str | None, list_name: str | None
) -> None:
    (tmp_path / "acme.txt").write_text(CUSTOM)
    m = TrailStore([SHIPPED_LISTS_DIR, tmp_path]).matcher
    hit = m.match_ip(value)
    assert (hit.entry.indicator if hit else None, hit.list_name if hit else None) == (indicator, list_name)


def test_domains_match_subdomains_but_not_lookalikes() -> None:
    tl, _ = parse_trail_list(CUSTOM, "acme.txt")
    m = TrailMatcher([tl])
    assert m.match_domain("EVIL.example.org.") is not None
    assert m.match_domain("cdn.evil.example.org") is not None
    assert m.match_domain("notevil.example.org") is None
    assert m.match_domain("org") is None


def test_annotate_copies_only_on_a_hit() -> None:
    tl, _ = parse_trail_list(CUSTOM, "acme.txt")
    m = TrailMatcher([tl])
    miss = connect("8.8.8.8")
    assert annotate(miss, m) is miss
    other = {**connect("198.51.100.66"), "syscall": "openat"}
    assert annotate(other, m) is other
    ev = connect("198.51.100.66", 8443)
    out = annotate(ev, m)
    assert "trail" not in ev["args"]  # the caller's event is not mutated
    assert out["args"]["trail"] == {
        "indicator": "198.51.100.66",
        "type": "ip",
        "value": "198.51.100.66",
        "list": "acme-c2",
        "source": "ACME incident 2026-041 (internal)",
        "info": "beacon target of the loader",
        "category": "malicious",
        "severity": "critical",
    }
    by_name = annotate(connect("192.0.2.200", domain="cdn.evil.example.org"), m)
    assert by_name["args"]["trail"]["indicator"] == "evil.example.org"


def test_reload_on_change(tmp_path: Path) -> None:
    f = tmp_path / "acme.txt"
    f.write_text("# source: test\n198.51.100.66  # one\n")
    store = TrailStore([tmp_path])
    assert store.reload_if_changed() is False
    assert store.matcher.match_ip("198.51.100.67") is None
    f.write_text("# source: test\n198.51.100.66  # one\n198.51.100.67  # two\n")
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # mtime granularity
    assert store.reload_if_changed() is True
    hit = store.matcher.match_ip("198.51.100.67")
    assert hit is not None and hit.entry.info == "two"
    (tmp_path / "more.txt").write_text("# source: test\n192.0.2.1\n")
    assert store.reload_if_changed() is True and store.generation == 3
    f.unlink()
    assert store.reload_if_changed() is True and store.matcher.match_ip("198.51.100.66") is None


@pytest.fixture(scope="module")
def engine():
    eng = load_engine([DEFAULT_PATTERNS_DIR])
    assert not [e for e in eng.errors if "network_trails" in e.file], eng.errors
    return eng


def test_connect_to_listed_address_alerts_with_the_trail(tmp_path: Path, engine) -> None:
    (tmp_path / "acme.txt").write_text(CUSTOM)
    store = TrailStore([SHIPPED_LISTS_DIR, tmp_path])
    events = [connect("8.8.8.8"), connect("203.0.113.129", 8443), connect("192.0.2.7", 80)]
    alerts = engine.process_batch(annotate(e, store.matcher) for e in events)
    by_rule = {a.rule.id: a for a in alerts if a.rule.id.startswith("MT-TRAIL")}
    assert set(by_rule) == {"MT-TRAIL-001", "MT-TRAIL-004"}
    a = by_rule["MT-TRAIL-001"]
    assert a.rule.severity == "error" and a.threat.technique.id == ["T1071"]
    trail = a.evidence[0]["args"]["trail"]
    assert (trail["list"], trail["source"], trail["info"]) == (
        "acme-c2",
        "ACME incident 2026-041 (internal)",
        "C2 fleet",
    )
    assert "acme-c2" in a.message and "203.0.113.129:8443" in a.message
    assert by_rule["MT-TRAIL-004"].rule.severity == "info"


def test_metadata_service_from_a_container(engine) -> None:
    store = TrailStore([SHIPPED_LISTS_DIR])
    cid = "ab" * 32
    ev = {**connect("169.254.169.254", 80), "container_id": cid, "container": {"id": cid, "name": "web"}}
    alerts = [a for a in engine.process(annotate(ev, store.matcher)) if a.rule.id.startswith("MT-TRAIL")]
    assert [(a.rule.id, a.threat.technique.id) for a in alerts] == [("MT-TRAIL-003", ["T1552.005", "T1552"])]
    assert alerts[0].container.name == "web"


def test_trails_command_checks_lists_and_looks_up(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from memtrail.cli import app

    (tmp_path / "acme.txt").write_text(CUSTOM)
    runner = CliRunner()
    ok = runner.invoke(app, ["trails", "--dir", str(SHIPPED_LISTS_DIR), "--match", "169.254.169.254"])
    assert ok.exit_code == 0, ok.output
    assert "cloud-metadata" in ok.output and "169.254.169.254: 169.254.169.254 on cloud-metadata" in ok.output
    bad = runner.invoke(app, ["trails", "--dir", str(tmp_path), "--match", "cdn.evil.example.org"])
    assert bad.exit_code == 1
    assert "cdn.evil.example.org: evil.example.org on acme-c2" in bad.output
    assert "acme.txt:7" in bad.output  # the broken line, by number
