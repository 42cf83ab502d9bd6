"""The engine on in-memory events: language operators, multi-event kinds, state bounds, reload."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from patterns.engine import state
from patterns.engine.api import load_engine, validate_spec
from patterns.engine.assemble import assemble, build_engine
from patterns.engine.core import PatternEngine
from patterns.engine.examples import fill_example
from patterns.engine.loader import Loaded, RawPattern


def _engine(*specs: dict[str, Any], lists: dict[str, list[Any]] | None = None) -> PatternEngine:
    loaded = Loaded(lists=lists or {}, patterns=[RawPattern(s, "<test>") for s in specs])
    eng = assemble(loaded)
    assert eng.errors == [], eng.errors
    return eng


def _spec(pid: str = "MT-TEST-001", **kind: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "name": "test pattern",
        "description": "a pattern made by a test",
        "severity": "warning",
        "techniques": ["T1059"],
        **kind,
    }


def _ids(eng: Any, events: list[dict[str, Any]]) -> list[str]:
    return [a.rule.id for a in eng.process_batch(events)]


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        ({"eq": "/bin/sh"}, "/bin/sh", True),
        ({"ne": "/bin/sh"}, "/bin/sh", False),
        (["/bin/sh", "/bin/bash"], "/bin/bash", True),
        ({"not_in": ["/bin/sh"]}, "/bin/bash", True),
        ({"startswith": ["/tmp/", "/dev/shm/"]}, "/dev/shm/x", True),
        ({"endswith": "sh"}, "/bin/bash", True),
        ({"contains": "shm"}, "/dev/shm/x", True),
        ({"icontains": "SHM"}, "/dev/shm/x", True),
        ({"glob": "/proc/*/mem"}, "/proc/12/mem", True),
        ({"glob": "/proc/*/mem"}, "/proc/12/maps", False),
        ({"regex": r"^/proc/\d+/environ$"}, "/proc/1/environ", True),
        ({"startswith": "/tmp/", "endswith": ".so"}, "/tmp/x.so", True),
        ({"startswith": "/tmp/", "endswith": ".so"}, "/tmp/x.py", False),
        ("$tmp_dirs", "/var/tmp", True),
        (None, None, True),
        ({"exists": True}, None, False),
    ],
)
def test_string_operators(test: Any, value: Any, expected: bool) -> None:
    eng = _engine(_spec(condition={"syscall": "openat", "args.path": test}), lists={"tmp_dirs": ["/var/tmp"]})
    ev = fill_example({"syscall": "openat", "args": {"path": value, "flags": ["O_RDONLY"]}})
    assert bool(_ids(eng, ev)) is expected


def test_numeric_flags_and_boolean_logic() -> None:
    cond = {
        "syscall": "mmap",
        "args.len": {"gte": 4096, "lt": 1 << 30},
        "args.prot": {"flags_all": ["PROT_WRITE", "PROT_EXEC"], "flags_none": ["PROT_NONE"]},
        "any": [{"uid": 0}, {"comm": {"in": ["a", "b"]}}],
        "not": {"exe": {"startswith": "/usr/lib/jvm/"}},
    }
    eng = _engine(_spec(condition=cond))

    def ev(**kw: Any) -> list[dict[str, Any]]:
        base: dict[str, Any] = {"syscall": "mmap", "args": {"len": 8192, "prot": ["PROT_WRITE", "PROT_EXEC"]}}
        base.update(kw)
        return fill_example(base)

    assert _ids(eng, ev(process={"uid": 0, "exe": "/tmp/x"})) == ["MT-TEST-001"]
    assert _ids(eng, ev(process={"uid": 1, "exe": "/tmp/x", "comm": "a"})) == ["MT-TEST-001"]
    assert _ids(eng, ev(process={"uid": 1, "exe": "/tmp/x", "comm": "c"})) == []
    assert _ids(eng, ev(process={"uid": 0, "exe": "/usr/lib/jvm/bin/java"})) == []
    assert _ids(eng, ev(args={"len": 10, "prot": ["PROT_WRITE", "PROT_EXEC"]}, process={"uid": 0})) == []
    assert _ids(eng, ev(args={"len": 8192, "prot": ["PROT_WRITE"]}, process={"uid": 0})) == []


def test_list_fields_and_generic_paths() -> None:
    """ancestors.* maps over the list; a k8s-audit-shaped event works with no engine change."""
    eng = _engine(
        _spec("MT-TEST-001", condition={"syscall": "execve", "ancestors.name": "nginx"}),
        _spec(
            "MT-TEST-002",
            source="k8s_audit",
            condition={"ka.verb": "create", "ka.target.subresource": "exec", "ka.user.name": {"ne": "admin"}},
        ),
    )
    ev = fill_example({"process": {"ancestors": [{"pid": 1, "exe": "/usr/sbin/nginx"}]}})
    assert _ids(eng, ev) == ["MT-TEST-001"]
    audit = {
        "id": "a1",
        "time": 1.0,
        "host": "k",
        "source": "k8s_audit",
        "ka": {"verb": "create", "target": {"subresource": "exec"}, "user": {"name": "bob"}},
    }
    assert _ids(eng, [audit]) == ["MT-TEST-002"]


def _memfd_seq(key: str = "tree") -> dict[str, Any]:
    return _spec(
        sequence={
            "key": key,
            "window": "30s",
            "steps": [
                {"condition": {"syscall": "memfd_create"}, "capture": {"fd": "ret"}},
                {"condition": {"syscall": "execve"}, "bind": {"fd": "exec.fd"}},
            ],
        }
    )


def test_sequence_binds_fd_within_window_and_tree() -> None:
    eng = _engine(_memfd_seq())
    child = {"pid": 9, "ppid": 8, "ancestors": [{"pid": 8}]}
    hit = fill_example(
        [
            {"syscall": "memfd_create", "ret": 3, "process": {"pid": 8}},
            {"syscall": "execve", "args": {"filename": "/proc/8/fd/3"}, "process": child, "time": 5},
        ]
    )
    alerts = eng.process_batch(hit)
    assert [a.rule.id for a in alerts] == ["MT-TEST-001"]
    assert [e["id"] for e in alerts[0].evidence] == [e["id"] for e in hit]
    # deterministic id: the same events in a fresh engine give the same alert id
    assert _engine(_memfd_seq()).process_batch(hit)[0].id == alerts[0].id
    # wrong fd, too late, unrelated process: nothing
    assert _ids(_engine(_memfd_seq()), [hit[0], {**hit[1], "args": {"filename": "/proc/8/fd/4"}}]) == []
    assert _ids(_engine(_memfd_seq()), [hit[0], {**hit[1], "time": hit[0]["time"] + 31}]) == []
    stranger = {**hit[1], "process": {"pid": 50, "ppid": 1, "ancestors": [{"pid": 1}]}}
    assert _ids(_engine(_memfd_seq()), [hit[0], stranger]) == []
    # key=process does not follow the fork
    assert _ids(_engine(_memfd_seq("process")), hit) == []


def test_run_hands_a_failing_event_to_the_caller_and_goes_on() -> None:
    """``run`` with ``failed``: an event the engine cannot read (its process a list: the
    sequence state trips on it) goes to ``failed``, the attack after it still alerts;
    without ``failed`` the error propagates."""
    hit = fill_example(
        [
            {"syscall": "memfd_create", "ret": 3, "process": {"pid": 8}},
            {"syscall": "execve", "args": {"filename": "/proc/8/fd/3"}, "process": {"pid": 8}, "time": 5},
        ]
    )
    poison: dict[str, Any] = {**hit[1], "process": ["not", "a", "process"], "id": "poison"}
    eng = _engine(_memfd_seq())
    failed: list[tuple[Any, Exception]] = []
    alerts: list[Any] = []
    eng.run([hit[0], poison, hit[1]], alerts, lambda e, exc: failed.append((e, exc)))
    assert [a.rule.id for a in alerts] == ["MT-TEST-001"]
    assert [e for e, _ in failed] == [poison]
    with pytest.raises(AttributeError):
        _engine(_memfd_seq()).run([hit[0], poison], [])


def test_threshold_counts_within_window_and_distinct() -> None:
    spec = _spec(
        threshold={
            "key": "container",
            "window": 10,
            "count": 3,
            "distinct": "path",
            "condition": {"syscall": "openat", "path": {"startswith": "/etc/"}},
        }
    )
    eng = _engine(spec)
    mk = lambda p, t: {"syscall": "openat", "time": t, "args": {"path": p}, "container_id": "c1"}  # noqa: E731
    assert _ids(eng, fill_example([mk("/etc/a", 0), mk("/etc/a", 1), mk("/etc/b", 2)])) == []
    assert _ids(eng, fill_example([mk("/etc/c", 3)])) == ["MT-TEST-001"]
    eng = _engine(spec)
    assert _ids(eng, fill_example([mk("/etc/a", 0), mk("/etc/b", 1), mk("/etc/c", 20)])) == []


def test_absence_fires_only_without_follow_up() -> None:
    spec = _spec(
        absence={
            "key": "process",
            "window": 5,
            "first": {"condition": {"syscall": "connect"}, "capture": {"port": "args.port"}},
            "then": {"condition": {"syscall": "process_exit"}},
        }
    )
    eng = _engine(spec)
    ev = fill_example(
        [{"syscall": "connect", "args": {"port": 4444}}, {"syscall": "process_exit", "time": 2}]
    )
    assert _ids(eng, ev) == []
    assert eng.flush(ev[0]["time"] + 10) == []
    eng = _engine(spec)
    ev = fill_example([{"syscall": "connect", "args": {"port": 4444}}])
    assert _ids(eng, ev) == []
    later = fill_example([{"syscall": "openat", "time": 6, "process": {"pid": 1}}])
    assert _ids(eng, later) == ["MT-TEST-001"]  # due alert returned with the next event


def test_exceptions_and_global_allow(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        """
lists:
  good: [trusted]
allow:
  - id: allow-image
    description: images we trust
    source: test
    condition: {container.image: {startswith: "registry.local/"}}
patterns:
  - id: MT-TEST-001
    name: shell
    description: a shell started
    severity: info
    techniques: [T1059.004]
    condition: {syscall: execve, path: /bin/sh}
    exceptions:
      - parent.name: $good
"""
    )
    eng = build_engine([tmp_path], [])
    assert eng.errors == []
    base = {"syscall": "execve", "args": {"filename": "/bin/sh"}}
    assert _ids(eng, fill_example(base)) == ["MT-TEST-001"]
    assert (
        _ids(eng, fill_example({**base, "process": {"ancestors": [{"pid": 1, "exe": "/x/trusted"}]}})) == []
    )
    assert _ids(eng, fill_example({**base, "container": {"image": "registry.local/app:1"}})) == []
    assert eng.suppressed == 2


def test_bad_patterns_are_rejected_precisely_and_the_rest_load(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        """
patterns:
  - id: MT-OK-001
    name: fine one
    description: this one is fine
    severity: info
    techniques: [T1059]
    condition: {syscall: execve}
  - id: MT-BAD-001
    name: typo in operator
    description: startwith is not an operator
    severity: info
    techniques: [T1059]
    condition: {syscall: execve, path: {startwith: /tmp/}}
  - id: MT-BAD-002
    name: unknown key
    description: has a key the schema does not know
    severity: loud
    techniques: [T9999]
    condition: {syscall: execve}
    colour: red
  - id: MT-BAD-003
    name: unknown technique
    description: technique not in ATT&CK
    severity: info
    techniques: [T1999]
    condition: {syscall: execve}
"""
    )
    (tmp_path / "broken.yaml").write_text("patterns: [\n")
    eng = build_engine([tmp_path], [])
    assert [p.id for p in eng.patterns()] == ["MT-OK-001"]
    errs = {(e.pattern_id, e.field) for e in eng.errors}
    assert ("MT-BAD-001", "condition.path.startwith") in errs
    assert ("MT-BAD-002", "severity") in errs
    assert ("MT-BAD-002", "colour") in errs
    assert ("MT-BAD-003", "techniques[0]") in errs
    assert any(e.file.endswith("broken.yaml") and "cannot parse" in e.message for e in eng.errors)
    msg = next(str(e) for e in eng.errors if e.pattern_id == "MT-BAD-001")
    assert "bad.yaml [MT-BAD-001] condition.path.startwith: unknown operator 'startwith'" in msg


def test_seed_json_form(tmp_path: Path) -> None:
    seed = {
        "patterns": [
            {
                "name": "custom_pattern",
                "description": "preload from tmp",
                "indicators": [
                    {"type": "syscall", "value": "execve", "condition": "equals", "required": True},
                    {"type": "env", "value": "LD_PRELOAD=/tmp/", "condition": "contains", "required": True},
                ],
                "mitreTechniques": ["T1574.006"],
                "severity": "warning",
            },
            {
                "name": "broken",
                "indicators": [{"type": "colour", "value": "x"}],
                "mitreTechniques": ["T1059"],
            },
        ]
    }
    (tmp_path / "patterns.json").write_text(json.dumps(seed))
    eng = load_engine([tmp_path])
    assert [p.id for p in eng.patterns()] == ["MT-CUSTOM-CUSTOM-PATTERN"]
    assert eng.errors and "indicators[0].type" in eng.errors[0].message
    ev = fill_example({"syscall": "execve", "args": {"filename": "/bin/ls", "ld_preload": "/tmp/x.so"}})
    assert _ids(eng, ev) == ["MT-CUSTOM-CUSTOM-PATTERN"]
    assert _ids(eng, fill_example({"syscall": "execve", "args": {"filename": "/bin/ls"}})) == []


def test_upsert_hot_reload_and_validate(tmp_path: Path) -> None:
    eng = _engine(_spec(condition={"syscall": "execve", "path": "/bin/a"}))
    bad = _spec("MT-TEST-002", condition={"syscall": "execve", "path": {"regex": "("}})
    assert validate_spec(bad) and eng.upsert_pattern(bad)
    failing_example = _spec(
        "MT-TEST-002",
        condition={"syscall": "execve", "path": "/bin/b"},
        examples={
            "match": [{"args": {"filename": "/bin/c"}}],
            "no_match": [{"args": {"filename": "/bin/a"}}],
        },
    )
    errs = eng.upsert_pattern(failing_example)
    assert errs and errs[0].field == "examples.match[0]"
    good = {**failing_example, "examples": {"match": [{"args": {"filename": "/bin/b"}}], "no_match": [{}]}}
    assert validate_spec(good) == []
    assert eng.upsert_pattern(good) == []
    assert _ids(eng, fill_example({"args": {"filename": "/bin/b"}})) == ["MT-TEST-002"]
    seed = {
        "name": "tmp exec",
        "description": "exec from tmp",
        "indicators": [
            {"type": "syscall", "value": "execve", "condition": "equals", "required": True},
            {"type": "path", "value": "/tmp/", "condition": "starts_with", "required": True},
        ],
        "mitreTechniques": ["T1059"],
        "severity": "high",
    }
    assert eng.upsert_pattern(seed) == []
    seed_alerts = eng.process_batch(fill_example({"args": {"filename": "/tmp/x"}}))
    assert [(a.rule.id, a.rule.severity) for a in seed_alerts] == [("MT-CUSTOM-TMP-EXEC", "error")]
    assert eng.upsert_pattern({**seed, "severity": "loud"})[0].message.startswith("severity")
    assert eng.delete_pattern("MT-TEST-002")
    assert _ids(eng, fill_example({"args": {"filename": "/bin/b"}})) == []

    f = tmp_path / "p.yaml"
    f.write_text(
        "patterns:\n- {id: MT-R-001, name: r one, description: reload test, severity: info,"
        " techniques: [T1059], condition: {syscall: execve, path: /bin/x}}\n"
    )
    eng = build_engine([tmp_path], [])
    assert _ids(eng, fill_example({"args": {"filename": "/bin/x"}})) == ["MT-R-001"]
    assert eng.reload_if_changed() is None
    f.write_text(f.read_text().replace("/bin/x", "/bin/y"))
    os.utime(f, (f.stat().st_mtime + 5, f.stat().st_mtime + 5))
    assert eng.reload_if_changed() == []
    assert _ids(eng, fill_example({"args": {"filename": "/bin/x"}})) == []
    assert _ids(eng, fill_example({"args": {"filename": "/bin/y"}})) == ["MT-R-001"]


def test_state_is_bounded_under_a_flood_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "MAX_KEYS_PER_PATTERN", 100)
    eng = _engine(_memfd_seq("process"))
    for i in range(1000):
        eng.process(
            {
                "id": str(i),
                "time": 1.0 + i * 0.001,
                "host": "h",
                "syscall": "memfd_create",
                "ret": 3,
                "process": {"pid": i},
            }
        )
    assert eng.state_size() <= 100
    eng.expire(1000.0)
    assert eng.state_size() == 0


def test_index_skips_patterns_that_cannot_match() -> None:
    eng = _engine(
        _spec("MT-TEST-001", condition={"syscall": "execve", "exe.name": "nc"}),
        _spec("MT-TEST-002", condition={"syscall": "openat", "path": {"startswith": "/etc/"}}),
    )
    ids = lambda ev: [t.pattern.id for t in eng.candidates(ev)]  # noqa: E731
    assert ids({"syscall": "execve", "process": {"exe": "/bin/nc"}}) == ["MT-TEST-001"]
    assert ids({"syscall": "execve", "process": {"exe": "/bin/ls"}}) == []
    assert ids({"syscall": "openat", "args": {"path": "/etc/passwd"}}) == ["MT-TEST-002"]
    assert ids({"syscall": "openat", "args": {"path": "/var/x"}}) == []
    assert ids({"syscall": "mmap"}) == []


def test_fork_shares_patterns_but_not_state() -> None:
    eng = _engine(_memfd_seq())
    first = fill_example([{"syscall": "memfd_create", "ret": 3}])
    second = fill_example([{"syscall": "execve", "args": {"filename": "/proc/self/fd/3"}, "time": 1}])
    eng.process_batch(first)
    other = eng.fork()
    assert other.pattern_count() == eng.pattern_count()
    assert _ids(other, second) == []
    assert _ids(eng, second) == ["MT-TEST-001"]


def _eid(pid: int, start: int) -> str:
    return f"0123456789ab-{pid}-{start}"


def test_pid_reuse_never_continues_an_old_process_sequence() -> None:
    """Keys are entity ids: a new process that reuses a pid starts from scratch."""
    old = {"pid": 8, "ppid": 1, "entity_id": _eid(8, 100), "ancestors": [{"pid": 1, "entity_id": _eid(1, 1)}]}
    new = {**old, "entity_id": _eid(8, 900)}
    first = {"syscall": "memfd_create", "ret": 3, "process": old}
    then_exec = {"syscall": "execve", "args": {"filename": "/proc/self/fd/3"}, "time": 5}
    for key in ("process", "tree"):
        same = fill_example([first, {**then_exec, "process": old}])
        assert _ids(_engine(_memfd_seq(key)), same) == ["MT-TEST-001"], key
        reused = fill_example([first, {**then_exec, "process": new}])
        assert _ids(_engine(_memfd_seq(key)), reused) == [], key
    # tree: a child of the OLD process continues it; a child of the new one (same parent pid) does not
    child_of = lambda parent: {  # noqa: E731
        "pid": 9,
        "ppid": 8,
        "entity_id": _eid(9, 950),
        "ancestors": [{"pid": 8, "entity_id": parent["entity_id"]}, {"pid": 1, "entity_id": _eid(1, 1)}],
    }
    hit = fill_example([first, {**then_exec, "process": child_of(old)}])
    assert _ids(_engine(_memfd_seq()), hit) == ["MT-TEST-001"]
    miss = fill_example([first, {**then_exec, "process": child_of(new)}])
    assert _ids(_engine(_memfd_seq()), miss) == []
    # an ancestor further up: the grandparent's entity
    gchild = {**child_of(new), "ancestors": [{"pid": 8, "entity_id": _eid(8, 900)}, old]}
    assert _ids(_engine(_memfd_seq()), fill_example([first, {**then_exec, "process": gchild}])) == [
        "MT-TEST-001"
    ]


def test_threshold_and_absence_key_on_entity() -> None:
    spec = _spec(threshold={"key": "process", "window": 10, "count": 2, "condition": {"syscall": "openat"}})
    p1 = {"pid": 7, "entity_id": _eid(7, 1)}
    p2 = {"pid": 7, "entity_id": _eid(7, 2)}
    mk = lambda p, t: {"syscall": "openat", "time": t, "args": {"path": "/x"}, "process": p}  # noqa: E731
    assert _ids(_engine(spec), fill_example([mk(p1, 0), mk(p2, 1)])) == []
    assert _ids(_engine(spec), fill_example([mk(p1, 0), mk(p1, 1)])) == ["MT-TEST-001"]
    absence = _spec(
        absence={
            "key": "process",
            "window": 5,
            "first": {"condition": {"syscall": "connect"}},
            "then": {"condition": {"syscall": "process_exit"}},
        }
    )
    eng = _engine(absence)
    ev = fill_example(
        [
            {"syscall": "connect", "args": {"port": 1}, "process": p1},
            {"syscall": "process_exit", "time": 1, "process": p2},  # another process's exit
        ]
    )
    assert _ids(eng, ev) == []
    assert [a.rule.id for a in eng.flush(ev[0]["time"] + 10)] == ["MT-TEST-001"]
