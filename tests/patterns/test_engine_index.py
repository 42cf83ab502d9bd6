"""The engine's candidate index and fast predicates never lose a match.

The index (syscall, exact values, prefixes, regexes, flags, ``true`` booleans, the branches
of an ``any``) only narrows which triggers an event is tested against; ``Trigger.fast``
is the condition reordered with index-guaranteed syscall tests left out. Both must agree
with the plain condition (``Trigger.pred``) on every event.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.engine import index as core
from patterns.engine.assemble import assemble, build_engine
from patterns.engine.core import PatternEngine
from patterns.engine.examples import fill_example
from patterns.engine.loader import Loaded, RawPattern


def _engine(*conds: Any) -> PatternEngine:
    specs = [
        {
            "id": f"MT-TEST-{i:03d}",
            "name": "test pattern",
            "description": "a pattern made by a test",
            "severity": "warning",
            "techniques": ["T1059"],
            "condition": c,
        }
        for i, c in enumerate(conds, 1)
    ]
    eng = assemble(Loaded(patterns=[RawPattern(s, "<test>") for s in specs]))
    assert eng.errors == [], eng.errors
    return eng


def _hits(eng: PatternEngine, event: dict[str, Any]) -> list[str]:
    return sorted(a.rule.id for a in eng.process(fill_example([event])[0]))


def _cands(eng: PatternEngine, event: dict[str, Any]) -> set[str]:
    return {t.pattern.id for t in eng.candidates(fill_example([event])[0])}


def _uniq(eng: PatternEngine, event: dict[str, Any]) -> set[str]:
    """The candidates the engine tries (deduplicated, gated)."""
    return {t.pattern.id for t in eng._index.unique_candidates(fill_example([event])[0])}


def test_flag_index_reads_lists_and_pipe_strings() -> None:
    eng = _engine(
        {"syscall": "mmap", "args.prot": {"flags_all": ["PROT_WRITE", "PROT_EXEC"]}},
        {"syscall": "openat", "flags": {"flags_any": ["O_WRONLY", "O_RDWR"]}},
    )
    wx = {"syscall": "mmap", "args": {"prot": ["PROT_READ", "PROT_WRITE", "PROT_EXEC"]}}
    assert _hits(eng, wx) == ["MT-TEST-001"]
    assert _hits(eng, {"syscall": "mmap", "args": {"prot": "PROT_WRITE|PROT_EXEC"}}) == ["MT-TEST-001"]
    assert _hits(eng, {"syscall": "mmap", "args": {"prot": ["PROT_WRITE"]}}) == []
    rx = {"syscall": "mmap", "args": {"prot": ["PROT_READ", "PROT_EXEC"]}}
    assert _cands(eng, rx) == set()  # a benign library mapping reaches nothing
    assert _hits(eng, {"syscall": "openat", "args": {"path": "/x", "flags": "O_RDWR|O_CREAT"}}) == [
        "MT-TEST-002"
    ]
    assert _cands(eng, {"syscall": "openat", "args": {"path": "/x", "flags": ["O_RDONLY"]}}) == set()


def test_any_without_a_shared_key_is_indexed_by_each_branch() -> None:
    eng = _engine(
        {
            "syscall": ["mmap", "mprotect"],
            "any": [{"args.prot": {"flags_all": ["PROT_WRITE", "PROT_EXEC"]}}, {"args.w_to_x": True}],
        }
    )
    assert _hits(eng, {"syscall": "mprotect", "args": {"prot": ["PROT_READ"], "w_to_x": True}}) == [
        "MT-TEST-001"
    ]
    assert _hits(eng, {"syscall": "mmap", "args": {"prot": ["PROT_WRITE", "PROT_EXEC"]}}) == ["MT-TEST-001"]
    assert _cands(eng, {"syscall": "mprotect", "args": {"prot": ["PROT_READ"], "w_to_x": False}}) == set()


def test_triggers_that_need_an_absent_field_are_not_tried() -> None:
    """A condition that needs a field (``exists``, a comparison, a regex on it; or, for an
    ``any``, every field of one branch) is not a candidate of an event without it."""
    eng = _engine(
        {"syscall": "execve", "args.ld_preload": {"exists": True}},
        {"syscall": "execve", "any": [{"args.tunables_len": {"gt": 512}}, {"args.tunables": {"regex": "="}}]},
    )
    plain = {"syscall": "execve", "args": {"filename": "/bin/true", "argv": ["true"]}}
    assert _uniq(eng, plain) == set()
    preload = {"syscall": "execve", "args": {"filename": "/bin/true", "ld_preload": "/x.so"}}
    assert _uniq(eng, preload) == {"MT-TEST-001"}
    assert _hits(eng, preload) == ["MT-TEST-001"]
    tunable = {"syscall": "execve", "args": {"filename": "/bin/true", "tunables": "a=b=c"}}
    assert _uniq(eng, tunable) == {"MT-TEST-002"}
    assert _hits(eng, tunable) == ["MT-TEST-002"]
    assert _hits(eng, {"syscall": "execve", "args": {"filename": "/bin/true", "tunables_len": 600}}) == [
        "MT-TEST-002"
    ]


def test_a_narrow_any_is_the_index_key() -> None:
    """A shell started by one named service is found by the service's name (in exe or comm),
    not tried on every shell."""
    eng = _engine(
        {
            "syscall": "execve",
            "exe.name": ["sh", "bash", "dash", "zsh"],
            "all": [
                {"any": [{"parent.name": "nginx"}, {"parent.comm": "nginx"}]},
                {"any": [{"uid": 0}, {"gid": 0}]},
            ],
        }
    )
    by_shell = {
        "syscall": "execve",
        "process": {"exe": "/bin/sh", "uid": 0, "ancestors": [{"exe": "/bin/bash"}]},
    }
    assert _uniq(eng, by_shell) == set()
    by_nginx = {
        "syscall": "execve",
        "process": {"exe": "/bin/sh", "uid": 0, "ancestors": [{"exe": "/usr/sbin/nginx"}]},
    }
    assert _hits(eng, by_nginx) == ["MT-TEST-001"]
    named = {
        "syscall": "execve",
        "process": {"exe": "/bin/sh", "uid": 0, "ancestors": [{"exe": "/usr/bin/python3", "comm": "nginx"}]},
    }
    assert _hits(eng, named) == ["MT-TEST-001"]


def test_a_later_step_is_not_tried_without_an_open_match() -> None:
    spec = {
        "id": "MT-TEST-SEQ",
        "name": "test sequence",
        "description": "a pattern made by a test",
        "severity": "warning",
        "techniques": ["T1059"],
        "sequence": {
            "key": "process",
            "window": "10s",
            "steps": [
                {"condition": {"syscall": "memfd_create"}},
                {"condition": {"syscall": "execve"}},
            ],
        },
    }
    eng = assemble(Loaded(patterns=[RawPattern(spec, "<test>")]))
    later = eng.get("MT-TEST-SEQ").triggers[1]  # type: ignore[union-attr]
    assert later.waits_on == "MT-TEST-SEQ"
    tried = []
    fast = later.fast
    object.__setattr__(later, "fast", lambda e: tried.append(e) or fast(e))
    exe = {"syscall": "execve", "time": 1.0, "process": {"pid": 7}, "args": {"filename": "/bin/x"}}
    assert _hits(eng, exe) == [] and tried == []
    assert _hits(eng, {"syscall": "memfd_create", "time": 2.0, "ret": 3, "process": {"pid": 7}}) == []
    assert _hits(eng, {**exe, "time": 3.0}) == ["MT-TEST-SEQ"] and len(tried) == 1


def test_contradictory_syscalls_never_match() -> None:
    eng = _engine({"syscall": "execve", "all": [{"syscall": "openat"}], "args.filename": "/bin/x"})
    assert _hits(eng, {"syscall": "execve", "args": {"filename": "/bin/x"}}) == []
    assert _hits(eng, {"syscall": "openat", "args": {"filename": "/bin/x"}}) == []


def test_regex_index_tests_each_pattern_on_its_own_and_remembers_values() -> None:
    eng = _engine(
        {"syscall": "execve", "cmdline": {"regex": r"\bcurl\b.*\|\s*sh"}},
        {"syscall": "execve", "cmdline": {"regex": r"(?i)base64\s+-d"}},
    )
    ev = {"syscall": "execve", "args": {"argv": ["sh", "-c", "curl x | sh"]}}
    for _ in range(2):  # the second time from the remembered result
        assert _cands(eng, ev) == {"MT-TEST-001"}
        assert _hits(eng, ev) == ["MT-TEST-001"]
    assert _hits(eng, {"syscall": "execve", "args": {"argv": ["sh", "-c", "BASE64 -d f"]}}) == ["MT-TEST-002"]
    assert _cands(eng, {"syscall": "execve", "args": {"argv": ["ls", "-l"]}}) == set()


def _flags_as_strings(o: Any) -> Any:
    if isinstance(o, dict):
        return {
            k: "|".join(v)
            if k in ("flags", "prot", "prev_prot")
            and isinstance(v, list)
            and all(isinstance(x, str) for x in v)
            else _flags_as_strings(v)
            for k, v in o.items()
        }
    if isinstance(o, list):
        return [_flags_as_strings(x) for x in o]
    return o


@pytest.fixture(scope="module")
def library() -> PatternEngine:
    return build_engine([DEFAULT_PATTERNS_DIR], [])


def test_index_and_fast_predicates_agree_with_conditions_on_every_library_example(
    library: PatternEngine,
) -> None:
    """Every library example event (and its ``A|B`` flag-string form): each trigger whose
    condition holds is a candidate, and its fast predicate gives the same answer."""
    events: list[dict[str, Any]] = []
    for cp in library.compiled():
        ex = cp.spec.examples
        for item in (*ex.match, *ex.no_match) if ex else ():
            events.extend(fill_example(item))
            events.extend(fill_example(_flags_as_strings(copy.deepcopy(item))))
    triggers = [t for cp in library.compiled() if cp.spec.enabled for t in cp.triggers]
    assert len(events) > 1500
    missed: list[tuple[str, int, str]] = []
    for e in events:
        cands = set(map(id, library.candidates(e)))
        for t in triggers:
            try:
                holds = bool(t.pred(e))
            except Exception:
                holds = False
            if holds and id(t) not in cands:
                missed.append((t.pattern.id, t.step, "not a candidate"))
            elif id(t) in cands:
                try:
                    fast = bool(t.fast(e))
                except Exception:
                    fast = False
                if fast != holds:
                    missed.append((t.pattern.id, t.step, "fast predicate differs"))
    assert missed == []


def test_remembered_index_results_stay_bounded() -> None:
    eng = _engine(
        {"syscall": "openat", "path": {"startswith": "/etc/"}},
        {"syscall": "openat", "path": {"regex": r"/\.ssh/"}},
    )
    for i in range(core.MEMO_SIZE + 100):
        assert _cands(eng, {"syscall": "openat", "args": {"path": f"/etc/x{i}", "flags": ["O_RDONLY"]}}) == {
            "MT-TEST-001"
        }
    long_path = "/home/u/.ssh/" + "x" * core.MEMO_MAX_LEN
    assert _hits(eng, {"syscall": "openat", "args": {"path": long_path}}) == ["MT-TEST-002"]
    _, _, _, pidx, rgroup = eng._index._plan["openat"].fields[0]
    assert pidx is not None and rgroup is not None
    assert 0 < len(pidx.memo) <= core.MEMO_SIZE
    assert long_path not in rgroup.memo


def _inlined_field_shapes(e: dict[str, Any]) -> list[dict[str, Any]]:
    """Shapes the generated code's inlined ``exe.name``, ``path`` and ``path.typed`` must
    read as their functions do: process or args not a dict or empty, an exe without a name,
    the caller's own and another process's /proc/<pid>/ path, an exec's resolved file."""
    out = []
    pid = (e.get("process") or {}).get("pid") if isinstance(e.get("process"), dict) else None
    for field, bad in (("process", ["x"]), ("process", None), ("process", {}), ("args", "x"), ("args", {})):
        o = copy.deepcopy(e)
        o[field] = bad
        out.append(o)
    o = copy.deepcopy(e)
    if isinstance(o.get("process"), dict):
        o["process"] = {**o["process"], "exe": "", "comm": "sh"}
        out.append(o)
    for path in (f"/proc/{pid}/status", "/proc/1/environ", f"/proc/{pid}"):
        o = copy.deepcopy(e)
        o["args"] = {**(o.get("args") or {}), "path": path, "exe_path": path, "path_typed": None}
        out.append(o)
    # the name an exec ran by missing or not a string (``path.name`` and ``exec.fd`` share it)
    for name in (None, 7, "", "/proc/self/fd/3"):
        o = copy.deepcopy(e)
        if isinstance(o.get("args"), dict):
            o["args"] = {**o["args"], "filename": name, "exe_path": "/dev/shm/x"}
            out.append(o)
    return out


def test_generated_candidates_equal_the_generic_walk() -> None:
    """Each plan's generated candidates function returns exactly what walking the plan's
    description does, in the same order, on the recorded realistic stream and the library's
    examples, and on odd shapes (lists and strings where dicts are expected)."""
    from tests.patterns.differential import corpus

    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    events = corpus()[::3]
    odd: list[dict[str, Any]] = []
    for e in events[:3000:50]:
        for bad in ([{"exe_file": {"nlink": 0}}], "x", {"exe_file": ["a"], "stdio": None}):
            o = copy.deepcopy(e)
            o["args"] = bad
            odd.append(o)
        o = copy.deepcopy(e)
        o["container"] = [{"privileged": True, "image": "x"}]
        odd.append(o)
        odd.extend(_inlined_field_shapes(e))

    def outcome(fn: Any, e: dict[str, Any]) -> Any:
        try:
            return fn(e)
        except Exception as exc:  # a getter that fails on a malformed event fails either way
            return type(exc)

    dropped = 0
    for e in [*events, *odd, *events[:2000]]:  # the repeats hit the remembered results
        generic = outcome(eng._index.candidates_generic, e)
        assert outcome(eng._index.candidates, e) == generic, e
        unique = outcome(eng._index.unique_candidates, e)
        if not isinstance(generic, list):
            assert unique == generic, e
            continue
        # the engine's form: the walk's triggers, first occurrences in order, less those
        # whose required facts (flags, fields) cannot hold, whose conditions are then false
        kept = set(unique)
        assert list(unique) == [t for t in dict.fromkeys(generic) if t in kept], e
        for t in dict.fromkeys(generic):
            if t not in kept:
                dropped += 1
                assert outcome(t.pred, e) in (False, TypeError, AttributeError), (t.pattern.id, e)
    assert dropped, "the gates dropped nothing on the realistic stream"


def test_generated_predicates_equal_the_closures() -> None:
    """Every trigger's generated predicate (``Trigger.fast``) agrees with the conjunction of
    its closures on the recorded stream, the library's examples and odd value shapes (lists,
    dicts, strings and bools where scalars are expected), raising where they raise."""
    from patterns.engine.conditions import fast_predicate
    from tests.patterns.differential import corpus

    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    events = corpus()[::7]
    odd: list[dict[str, Any]] = []
    for e in events[:4000:40]:
        for field, bad in (
            ("ret", "0"),
            ("ret", [0, -1]),
            ("ret", True),
            ("args", {"flags": "O_RDWR|O_CREAT"}),
        ):
            o = copy.deepcopy(e)
            o[field] = bad
            odd.append(o)
        o = copy.deepcopy(e)
        o["args"] = {**(o.get("args") or {}), "flags": {"x": 1}, "path": ["/etc/shadow"], "family": 2}
        odd.append(o)
        odd.extend(_inlined_field_shapes(e))

    def outcome(fn: Any, e: dict[str, Any]) -> Any:
        try:
            return bool(fn(e))
        except Exception as exc:
            return type(exc)

    for cp in eng.compiled():
        for t, s in zip(cp.triggers, cp.steps, strict=True):
            ref = fast_predicate(s.cond, drop_syscall=bool(s.cond.hints.exact.get("syscall")))
            for e in [*events, *odd]:
                if e.get("syscall") in (s.cond.hints.exact.get("syscall") or {e.get("syscall")}):
                    assert outcome(t.fast, e) == outcome(ref, e), (cp.id, e)


def test_new_values_that_probe_like_known_ones_reuse_their_candidates() -> None:
    """Candidates are remembered by the classes of the fields' values (what the probes find
    by a value, what each gate test says of it): a connect to an address never seen finds
    the candidates of one seen before, an address a gate singles out gets its own, and the
    classes stay bounded under a flood of distinct values."""
    from patterns.engine import plancode

    eng = _engine(
        {"syscall": "connect", "args.addr": "169.254.169.254"},
        {
            "syscall": "connect",
            "args.family": "AF_INET",
            "exe.name": "curl",
            "args.addr": {"regex": r"^10\.96\."},
        },
        {"syscall": "connect", "args.family": "AF_INET"},
    )
    ns = eng._index._plan["connect"].unique.__globals__  # type: ignore[union-attr]
    by_class = ns["BY_CLASS"]

    def connect(addr: str, exe: str = "/usr/bin/curl") -> dict[str, Any]:
        return {
            "syscall": "connect",
            "args": {"family": "AF_INET", "addr": addr, "port": 443},
            "process": {"exe": exe},
        }

    assert _uniq(eng, connect("10.0.0.1")) == {"MT-TEST-003"}
    classes = len(by_class)
    for i in range(1, 200):
        assert _uniq(eng, connect(f"10.0.{i}.{i}")) == {"MT-TEST-003"}
    assert len(by_class) == classes  # every new address was in the known class
    assert _uniq(eng, connect("10.96.0.1")) == {"MT-TEST-002", "MT-TEST-003"}
    assert _uniq(eng, connect("10.96.0.1", "/usr/bin/wget")) == {"MT-TEST-003"}
    assert _uniq(eng, connect("169.254.169.254")) == {"MT-TEST-001", "MT-TEST-003"}
    assert _hits(eng, connect("169.254.169.254")) == ["MT-TEST-001", "MT-TEST-003"]
    assert _hits(eng, connect("10.96.0.1")) == ["MT-TEST-002", "MT-TEST-003"]

    names = eng._index._plan["connect"].names
    known = ns[f"K{names.index('args.addr')}"]
    for i in range(plancode.MEMO_SIZE + 50):
        _uniq(eng, connect(f"192.0.{i // 250}.{i % 250}"))
    assert 0 < len(known) <= plancode.MEMO_SIZE
    assert len(by_class) <= plancode.MEMO_SIZE
    long_addr = "10.96." + "9" * plancode.CLASS_MAX_LEN
    assert _uniq(eng, connect(long_addr)) == {"MT-TEST-002", "MT-TEST-003"}
    assert long_addr not in known


def test_computed_fields_keyed_by_their_sources_never_share_a_remembered_result() -> None:
    """``exe.name`` is remembered by the executable's path else the comm, an exec's
    ``path.name`` by the name it ran by else the resolved path: events that differ only in
    the fallback source must not reuse each other's candidates. The third pattern makes
    ``process.exe`` a plain field of the open plan, whose key then reuses its value."""
    eng = _engine(
        {"syscall": "openat", "exe.name": "nginx", "path": {"startswith": "/etc/"}},
        {"syscall": "execve", "path.name": "sh"},
        {"syscall": "openat", "process.exe": {"startswith": "/tmp/"}},
    )

    def opened(exe: str, comm: str) -> dict[str, Any]:
        return {"syscall": "openat", "args": {"path": "/etc/hosts"}, "process": {"exe": exe, "comm": comm}}

    def executed(filename: str, exe_path: str) -> dict[str, Any]:
        return {"syscall": "execve", "args": {"filename": filename, "exe_path": exe_path, "argv": ["x"]}}

    for _ in range(2):  # the second round reads the remembered results
        for event, want in (
            (opened("", "nginx"), ["MT-TEST-001"]),
            (opened("", "bash"), []),
            (opened("/usr/sbin/nginx", "x"), ["MT-TEST-001"]),
            (executed("", "/usr/bin/dash"), []),
            (executed("", "/bin/sh"), ["MT-TEST-002"]),
            (executed("/bin/sh", "/usr/bin/dash"), ["MT-TEST-002"]),
        ):
            # the candidates themselves, not only the alerts (a predicate would hide a wrong reuse)
            assert _uniq(eng, event) == set(want), event
            assert _hits(eng, event) == want, event
