"""The library checks of `memtrail patterns lint`: subsumption, examples the sensors can emit,
near-miss no_match examples, merged ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from patterns.engine import emitted
from patterns.engine.assemble import build_engine
from patterns.engine.core import PatternEngine
from patterns.engine.lint import (
    decisive_fields,
    far_no_match,
    invalid_examples,
    replaced_ids,
    sketch_problems,
    subsumed_patterns,
)

OPEN_W = {"syscall": ["open", "openat", "openat2"], "flags": {"flags_any": ["O_WRONLY", "O_RDWR", "O_CREAT"]}}


def _pattern(pid: str, cond: Any, match: list[Any], no_match: list[Any], **kw: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "name": f"pattern {pid}",
        "description": "a pattern written for a lint test",
        "severity": "warning",
        "techniques": ["T1059"],
        "condition": cond,
        "examples": {"match": match, "no_match": no_match},
        **kw,
    }


def _engine(tmp_path: Path, *patterns: dict[str, Any]) -> PatternEngine:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"patterns": list(patterns)}))
    eng = build_engine([tmp_path], [])
    assert eng.errors == []
    return eng


def _write(path: str, uid: int = 0) -> dict[str, Any]:
    return {"syscall": "openat", "args": {"path": path, "flags": ["O_WRONLY"]}, "process": {"uid": uid}}


def test_a_pattern_whose_examples_another_raises_is_subsumed(tmp_path: Path) -> None:
    generic = _pattern(
        "MT-T-001", {**OPEN_W, "path": {"startswith": "/etc/"}}, [_write("/etc/a")], [_write("/tmp/a")]
    )
    specific = _pattern(
        "MT-T-002",
        {**OPEN_W, "path": {"startswith": "/etc/cron.d/"}},
        [_write("/etc/cron.d/x")],
        [_write("/etc/a")],
    )
    errs = subsumed_patterns(_engine(tmp_path, generic, specific))
    assert [(e.pattern_id, "MT-T-001" in e.message) for e in errs] == [("MT-T-002", True)]


def test_one_example_of_its_own_coverage_clears_subsumption(tmp_path: Path) -> None:
    generic = _pattern(
        "MT-T-001", {**OPEN_W, "path": {"startswith": "/etc/"}}, [_write("/etc/a")], [_write("/tmp/a")]
    )
    wider = _pattern(
        "MT-T-002",
        {**OPEN_W, "path": {"startswith": ["/etc/cron.d/", "/var/spool/cron/"]}},
        [_write("/etc/cron.d/x"), _write("/var/spool/cron/root")],
        [_write("/etc/a")],
    )
    assert subsumed_patterns(_engine(tmp_path, generic, wider)) == []


def test_a_sequence_is_not_subsumed_by_a_single_event_pattern(tmp_path: Path) -> None:
    single = _pattern("MT-T-001", {"syscall": "execve", "path": {"startswith": "/tmp/"}},
                      [{"args": {"filename": "/tmp/x"}}], [{"args": {"filename": "/usr/bin/x"}}])  # fmt: skip
    seq = {
        **_pattern("MT-T-002", None, [], []),
        "condition": None,
        "sequence": {
            "window": "60s",
            "steps": [
                {"condition": {**OPEN_W, "path": {"startswith": "/tmp/"}}, "capture": {"f": "path"}},
                {"condition": {"syscall": "execve"}, "bind": {"f": "path"}},
            ],
        },
        "examples": {
            "match": [[_write("/tmp/x"), {"args": {"filename": "/tmp/x"}}]],
            "no_match": [[_write("/tmp/x"), {"args": {"filename": "/tmp/y"}}]],
        },
    }
    del seq["condition"]
    eng = _engine(tmp_path, single, seq)
    assert subsumed_patterns(eng) == []


def test_emitted_fields_come_from_the_decoder() -> None:
    table = emitted.syscall_args()
    assert {"filename", "argv", "exe_path", "ld_preload", "stdio", "exe_file"} <= table["execve"]
    assert "resolve" in table["openat2"] and "resolve" not in table["openat"]
    assert {"w_to_x", "region_kind"} <= table["mprotect"]
    assert "target" in table["ptrace"] and "trail" in table["connect"]
    top, ka = emitted.k8s_audit_paths()
    assert "ka" in top and "ka.req.pod.host_pid" in ka and "ka.user.name" in ka


def test_physically_impossible_examples() -> None:
    assert sketch_problems({"syscall": "execve", "args": {"filename": "/bin/x", "argv": ["x"]}}) == []
    assert sketch_problems({"syscall": "execve", "args": {"argv": ["x"]}}) == [
        "a successful exec without a path (args.filename)"
    ]
    fexecve = {"syscall": "execveat", "args": {"filename": "", "dirfd": 3, "flags": ["AT_EMPTY_PATH"]}}
    assert sketch_problems(fexecve) == []
    assert sketch_problems({"syscall": "execve", "ret": -2, "args": {"argv": ["x"]}}) == []
    shell = {
        "syscall": "execve",
        "args": {"filename": "/bin/sh", "argv": ["sh"]},
        "process": {"cmdline": "sh -i"},
    }
    assert sketch_problems(shell) == ["process.cmdline is not the exec's args.argv joined (give one of them)"]
    assert "directory" in sketch_problems(_write("/etc/cron.d/"))[0]
    assert "directory" in sketch_problems(_write("/etc/cron.d"))[0]
    assert sketch_problems({**_write("/etc/cron.d"), "ret": -21}) == []
    assert sketch_problems(_write("/etc/cron.d/job")) == []
    assert sketch_problems({"syscall": "openat", "args": {"path": "/x", "cmd": "y"}}) == [
        "args.cmd is not emitted for openat"
    ]
    assert sketch_problems({"syscall": "fchmodat", "args": {}}) == [
        "syscall 'fchmodat' is not an event type the sensor emits"
    ]
    assert sketch_problems({"syscall": "connect", "args": {"domain": "x.example"}}) == [
        "args.domain is not emitted for connect"
    ]
    assert sketch_problems({"syscall": "connect", "args": {"trail": {"list": "l", "colour": "red"}}}) == [
        "args.trail.colour is not a trail-hit field"
    ]
    wx = {"syscall": "mprotect", "args": {"prot": ["PROT_READ", "PROT_EXEC"], "wx": True}}
    assert sketch_problems(wx) == ["args.wx without PROT_WRITE|PROT_EXEC in args.prot"]
    audit = {"syscall": "k8s_audit", "ka": {"verb": "create", "req": {"pod": {"hostpid": True}}}}
    assert sketch_problems(audit) == ["'ka.req.pod.hostpid' is not a field the audit normalizer emits"]
    assert sketch_problems({"syscall": "k8s_audit", "ka": {"event": {"anything": 1}}}) == []


def test_invalid_examples_also_checks_the_event_schema(tmp_path: Path) -> None:
    bad = _pattern(
        "MT-T-001",
        {"syscall": "execve", "path": "/bin/x"},
        [{"args": {"filename": "/bin/x"}, "process": {"pid": "many"}}],
        [{"args": {"filename": "/bin/y"}}],
    )
    errs = invalid_examples(_engine(tmp_path, bad).compiled())
    assert len(errs) == 1 and "process.pid" in errs[0].message and errs[0].field == "examples.match[0]"


def test_no_match_examples_must_be_near_misses(tmp_path: Path) -> None:
    cond = {**OPEN_W, "path": {"startswith": "/etc/cron.d/"}}
    near = _pattern("MT-T-001", cond, [_write("/etc/cron.d/x")], [_write("/etc/crontab.bak")])
    assert far_no_match(_engine(tmp_path, near).compiled()) == []
    far = _pattern("MT-T-001", cond, [_write("/etc/cron.d/x")], [_write("/etc/crontab.bak", uid=1000)])
    errs = far_no_match(_engine(tmp_path, far).compiled())
    assert len(errs) == 1 and "process.uid" in errs[0].message
    # an exception's field is decisive: the no_match may show the exception
    exc = _pattern(
        "MT-T-001",
        cond,
        [_write("/etc/cron.d/x")],
        [{**_write("/etc/cron.d/x"), "process": {"uid": 0, "exe": "/usr/bin/crontab"}}],
        exceptions=[{"exe.name": "crontab"}],
    )
    assert far_no_match(_engine(tmp_path, exc).compiled()) == []


def test_an_execs_command_line_goes_with_its_program(tmp_path: Path) -> None:
    p = _pattern(
        "MT-T-001",
        {"syscall": "execve", "path.name": "nmap"},
        [{"args": {"filename": "/usr/bin/nmap", "argv": ["nmap", "-sS", "10.0.0.0/24"]}}],
        [{"args": {"filename": "/usr/bin/cat", "argv": ["cat", "nmap.txt"]}}],
    )
    eng = _engine(tmp_path, p)
    cp = eng.compiled()[0]
    assert {"args.filename", "args.argv"} <= decisive_fields(cp)
    assert far_no_match(eng.compiled()) == []


def test_a_multi_event_no_match_may_leave_out_a_step(tmp_path: Path) -> None:
    seq = {
        **_pattern("MT-T-001", None, [], []),
        "sequence": {
            "window": "60s",
            "steps": [
                {"condition": {**OPEN_W, "path": {"startswith": "/tmp/"}}, "capture": {"f": "path"}},
                {"condition": {"syscall": "execve"}, "bind": {"f": "path"}},
            ],
        },
        "examples": {
            "match": [[_write("/tmp/x"), {"args": {"filename": "/tmp/x"}}]],
            "no_match": [
                [{"args": {"filename": "/tmp/x"}}],
                [_write("/tmp/x", uid=7), {"args": {"filename": "/tmp/x"}}],
            ],
        },
    }
    del seq["condition"]
    errs = far_no_match(_engine(tmp_path, seq).compiled())
    assert [e.field for e in errs] == ["examples.no_match[1]"]


def test_replaced_ids_are_gone_and_claimed_once(tmp_path: Path) -> None:
    a = _pattern("MT-T-001", {"syscall": "execve", "path": "/bin/a"}, [{"args": {"filename": "/bin/a"}}],
                 [{"args": {"filename": "/bin/b"}}], replaces=["MT-T-009", "MT-T-002"])  # fmt: skip
    b = _pattern("MT-T-002", {"syscall": "execve", "path": "/bin/c"}, [{"args": {"filename": "/bin/c"}}],
                 [{"args": {"filename": "/bin/b"}}], replaces=["MT-T-009"])  # fmt: skip
    errs = replaced_ids(_engine(tmp_path, a, b).compiled())
    assert sorted(e.message for e in errs) == [
        "MT-T-002 still exists",
        "MT-T-009 is already replaced by MT-T-001",
    ]
