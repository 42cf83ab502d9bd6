"""Library checks and reports: duplicate conditions, examples, statistics, explain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from patterns.engine.api import PatternError
from patterns.engine.compile import CompiledPattern
from patterns.engine.fields import EXECS
from patterns.mitre.catalog import TACTIC_IDS, load_catalog, tactic_name


def duplicate_conditions(patterns: Iterable[CompiledPattern]) -> list[PatternError]:
    """Two patterns whose logic compiles to the same canonical form are one pattern twice."""
    seen: dict[Any, CompiledPattern] = {}
    errs: list[PatternError] = []
    for cp in patterns:
        first = seen.setdefault(cp.canon, cp)
        if first is not cp:
            errs.append(
                PatternError(
                    cp.info.file,
                    cp.id,
                    "condition",
                    f"same logic as {first.id} ({first.info.file}): merge them or make them differ",
                )
            )
    return errs


def replaced_ids(patterns: Iterable[CompiledPattern]) -> list[PatternError]:
    """An id in ``replaces`` was merged away: no pattern may still carry it, nor two claim it."""
    cps = list(patterns)
    live = {cp.id for cp in cps}
    claimed: dict[str, str] = {}
    errs: list[PatternError] = []
    for cp in cps:
        for r in cp.spec.replaces:
            if r in live:
                errs.append(PatternError(cp.info.file, cp.id, "replaces", f"{r} still exists"))
            elif claimed.setdefault(r, cp.id) != cp.id:
                errs.append(
                    PatternError(cp.info.file, cp.id, "replaces", f"{r} is already replaced by {claimed[r]}")
                )
    return errs


def library_stats(patterns: Iterable[CompiledPattern]) -> dict[str, Any]:
    cat = load_catalog()
    by_cat: Counter[str] = Counter()
    by_sev: Counter[str] = Counter()
    by_tech: Counter[str] = Counter()
    by_tactic: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_maturity: Counter[str] = Counter()
    n = 0
    for cp in patterns:
        n += 1
        by_cat[cp.spec.category or "-"] += 1
        by_sev[cp.spec.severity] += 1
        by_kind[cp.kind] += 1
        by_maturity[cp.spec.maturity] += 1
        tactics: set[str] = set()
        for t in cp.spec.techniques:
            by_tech[t] += 1
            tech = cat.get(t)
            tactics.update(tech.tactics if tech else ())
        for ta in tactics:
            by_tactic[f"{TACTIC_IDS.get(ta, ta)} {tactic_name(ta)}"] += 1
    parents = {t.split(".")[0] for t in by_tech}
    return {
        "patterns": n,
        "techniques": len(by_tech),
        "parent_techniques": len(parents),
        "by_category": dict(by_cat.most_common()),
        "by_severity": dict(by_sev.most_common()),
        "by_kind": dict(by_kind.most_common()),
        "by_maturity": dict(by_maturity.most_common()),
        "by_technique": dict(sorted(by_tech.items())),
        "by_tactic": dict(by_tactic.most_common()),
    }


def explain(engine: Any, event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For one event: which patterns its cheap keys reach, and for each whether each step's
    condition and the exceptions hold (a single event can only complete single-event patterns)."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for trig in engine.candidates(event):
        if id(trig) in seen:
            continue
        seen.add(id(trig))
        cp = trig.pattern
        try:
            hit = bool(trig.pred(event))
        except Exception as exc:
            hit = False
            err: str | None = str(exc)
        else:
            err = None
        excepted = [i for i, f in enumerate(cp.exceptions) if hit and _safe(f, event)]
        out.append(
            {
                "pattern": cp.id,
                "name": cp.spec.name,
                "kind": cp.kind,
                "step": cp.steps[trig.step].name if cp.kind != "condition" else None,
                "condition_holds": hit,
                "suppressed_by_exception": bool(excepted),
                "would_alert": hit and not excepted and cp.kind == "condition",
                "techniques": list(cp.spec.techniques),
                "error": err,
            }
        )
    out.sort(key=lambda r: (not r["condition_holds"], r["pattern"]))
    return out


def _safe(f: Any, e: Mapping[str, Any]) -> bool:
    try:
        return bool(f(e))
    except Exception:
        return False


# --- subsumption -------------------------------------------------------------------------


#: kinds compared with each other: a multi-event pattern's worth is the correlation of its
#: events, so only a pattern of the same kind can make it redundant (a single-event pattern
#: firing on one of its steps does not)
def _kind_class(cp: CompiledPattern) -> str:
    return cp.kind


class ExampleRunner:
    """Runs examples through one engine holding the whole library: each example gets its own
    host and a time slot one longest-window apart, so no state of one reaches the next
    (cheaper than a fresh engine, whose index build costs more than the run)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine.fork()
        self.gap = float(engine.longest_window_s) + 10.0
        self.n = 0

    def alert_ids(self, example: Any) -> set[str]:
        from patterns.engine.examples import fill_example

        self.n += 1
        events = fill_example(example)
        shift = self.n * self.gap
        for e in events:
            e["time"] += shift
            e["host"] = f"{e['host']}-{self.n}"
        alerts = list(self.engine.process_batch(events))
        alerts.extend(self.engine.flush(events[-1]["time"] + self.gap - 5.0))
        return {a.rule.id for a in alerts}


def subsumed_patterns(engine: Any) -> list[PatternError]:
    """A pattern whose every ``match`` example also raises one other pattern of the same kind
    is a variant of that pattern: merge it into it, or give it an example only it detects."""
    cps = [cp for cp in engine.compiled() if cp.spec.examples is not None]
    kind = {cp.id: _kind_class(cp) for cp in engine.compiled()}
    runner = ExampleRunner(engine)
    errs: list[PatternError] = []
    for cp in cps:
        assert cp.spec.examples is not None
        common: set[str] | None = None
        for item in cp.spec.examples.match:
            try:
                ids = runner.alert_ids(item)
            except (ValueError, TypeError, KeyError):
                common = set()
            else:
                ids = {i for i in ids if i != cp.id and kind.get(i) == kind[cp.id]}
                common = ids if common is None else common & ids
            if not common:
                break
        if common:
            others = ", ".join(sorted(common)[:4]) + (" ..." if len(common) > 4 else "")
            errs.append(
                PatternError(
                    cp.info.file,
                    cp.id,
                    "examples.match",
                    f"subsumed: every match example also raises {others}: merge it, or show (with an"
                    " example) what only this pattern detects",
                )
            )
    return errs


# --- examples are events the sensors can emit ---------------------------------------------


_OPENS = frozenset({"open", "openat", "openat2"})
_WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"})
_ANCESTOR_KEYS = frozenset({"pid", "entity_id", "exe", "comm", "cmdline"})
#: directories every Linux system has (FHS and the places patterns watch): an example that
#: write-opens one of them as a file describes an open(2) that fails with EISDIR
KNOWN_DIRS = frozenset(
    {
        "/", "/etc", "/tmp", "/var", "/var/tmp", "/dev", "/dev/shm", "/run", "/root", "/home", "/usr",
        "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/local/bin", "/bin", "/sbin", "/lib", "/proc", "/sys",
        "/boot", "/opt", "/etc/cron.d", "/etc/cron.daily", "/etc/cron.hourly", "/etc/systemd/system",
        "/etc/init.d", "/etc/profile.d", "/etc/sudoers.d", "/etc/ssh", "/root/.ssh", "/var/spool/cron",
        "/var/spool/cron/crontabs", "/etc/ld.so.conf.d", "/etc/security", "/etc/pam.d", "/var/log",
        "/lib/systemd/system", "/usr/lib/systemd/system", "/etc/udev/rules.d", "/etc/modprobe.d",
        "/etc/apt/apt.conf.d", "/etc/update-motd.d", "/etc/xdg/autostart", "/var/run",
    }
)  # fmt: skip


def _keys(value: Any) -> list[str]:
    return [str(k) for k in value] if isinstance(value, Mapping) else []


def sketch_problems(sketch: Mapping[str, Any]) -> list[str]:
    """Why one example event (as written) is not an event the sensors emit; empty if it is."""
    from patterns.engine import emitted as E

    out: list[str] = []
    syscall = sketch.get("syscall", "execve")
    args = sketch.get("args") or {}
    if not isinstance(args, Mapping):
        return ["args is not a mapping"]
    if syscall == "k8s_audit":
        top, _ = E.k8s_audit_paths()
        out += [f"'{k}' is not a field of an audit event" for k in _keys(sketch) if k not in top]
        ka = sketch.get("ka")
        out += [
            f"'{p}' is not a field the audit normalizer emits"
            for p in sorted(E.dotted_paths(ka, "ka", E.K8S_RAW))
            if not E.k8s_path_known(p)
        ]
        out += [f"args.{k}: an audit event has no args" for k in _keys(args)]
        return out
    emitted = E.syscall_args().get(str(syscall))
    if emitted is None:
        return [f"syscall '{syscall}' is not an event type the sensor emits"]
    out += [f"'{k}' is not a field of a sensor event" for k in _keys(sketch) if k not in E.event_keys()]
    out += [f"args.{k} is not emitted for {syscall}" for k in _keys(args) if k not in emitted]
    proc = sketch.get("process") or {}
    out += [f"process.{k} is not a process field" for k in _keys(proc) if k not in E.process_keys()]
    for anc in proc.get("ancestors") or () if isinstance(proc, Mapping) else ():
        out += [
            f"process.ancestors[].{k} is not an ancestor field" for k in _keys(anc) if k not in _ANCESTOR_KEYS
        ]
    cont = sketch.get("container")
    out += [f"container.{k} is not a container field" for k in _keys(cont) if k not in E.container_keys()]
    trail = args.get("trail")
    out += [f"args.trail.{k} is not a trail-hit field" for k in _keys(trail) if k not in E.trail_keys()]
    ret = sketch.get("ret", 0)
    ok = not isinstance(ret, int) or ret >= 0
    flags = args.get("flags")
    flags = set(flags) if isinstance(flags, list) else set()
    argv, cmdline = args.get("argv"), proc.get("cmdline") if isinstance(proc, Mapping) else None
    joined = " ".join(str(a) for a in argv) if isinstance(argv, list) else None
    if syscall in EXECS and isinstance(cmdline, str) and joined is not None and cmdline != joined:
        out.append("process.cmdline is not the exec's args.argv joined (give one of them)")
    if syscall in EXECS and ok:
        fn = args.get("filename")
        fexecve = syscall == "execveat" and "AT_EMPTY_PATH" in flags
        if not (isinstance(fn, str) and fn) and not (fexecve and fn == ""):
            out.append("a successful exec without a path (args.filename)")
    if syscall in _OPENS and ok and flags & _WRITE_FLAGS:
        path = args.get("path")
        if "O_DIRECTORY" in flags or (
            isinstance(path, str) and (path.endswith("/") or path.rstrip("/") in KNOWN_DIRS or path == "/")
        ):
            out.append(f"a successful write-open of a directory ({path})")
    prot = args.get("prot")
    prot = set(prot) if isinstance(prot, list) else None
    if args.get("wx") and prot is not None and not {"PROT_WRITE", "PROT_EXEC"} <= prot:
        out.append("args.wx without PROT_WRITE|PROT_EXEC in args.prot")
    if args.get("w_to_x") and prot is not None and "PROT_EXEC" not in prot:
        out.append("args.w_to_x without PROT_EXEC in args.prot")
    return out


def invalid_examples(patterns: Iterable[CompiledPattern]) -> list[PatternError]:
    """Every example event passes the event schema and is one the sensors can emit."""
    from pydantic import ValidationError

    from patterns.engine.examples import fill_example
    from schemas.events import Event

    errs: list[PatternError] = []
    for cp in patterns:
        ex = cp.spec.examples
        if ex is None:
            continue
        for which, items in (("match", ex.match), ("no_match", ex.no_match)):
            for i, item in enumerate(items):
                where = f"examples.{which}[{i}]"
                sketches = item if isinstance(item, list) else [item]
                try:
                    events = fill_example(item)
                except (ValueError, TypeError, KeyError) as exc:
                    errs.append(PatternError(cp.info.file, cp.id, where, f"bad example: {exc}"))
                    continue
                for j, (s, e) in enumerate(zip(sketches, events, strict=True)):
                    at = where + (f"[{j}]" if isinstance(item, list) else "")
                    try:
                        Event.model_validate(e)
                    except ValidationError as exc:
                        msg = "; ".join(
                            f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in exc.errors()[:3]
                        )
                        errs.append(PatternError(cp.info.file, cp.id, at, f"not a valid event: {msg}"))
                    errs += [PatternError(cp.info.file, cp.id, at, p) for p in sketch_problems(s)]
    return errs


# --- no_match examples are near misses ------------------------------------------------------

#: raw event fields each computed field is derived from (``patterns.engine.fields.VIRTUAL``)
_VIRTUAL_SOURCES: dict[str, tuple[str, ...]] = {
    "path": ("args.path", "args.filename", "args.exe_path", "args.path_resolved", "process.pid"),
    "path.name": ("args.path", "args.filename", "args.exe_path", "args.path_resolved"),
    "path.typed": ("args.path_typed", "args.path", "args.filename"),
    "env": ("args.ld_preload", "args.ld_library_path", "args.env"),
    "exec.fd": ("args.filename", "args.flags", "args.dirfd"),
    "behavior": ("args.exe_memfd", "args.exe_deleted", "args.wx", "args.w_to_x", "args.ld_preload"),
    "container.id": ("container_id", "container"),
    "container.present": ("container_id", "container"),
    "exe.name": ("process.exe", "process.comm"),
    "parent.exe": ("process.ancestors",),
    "parent.comm": ("process.ancestors",),
    "parent.name": ("process.ancestors",),
    "ancestors.exe": ("process.ancestors",),
    "ancestors.comm": ("process.ancestors",),
    "ancestors.name": ("process.ancestors",),
}
#: what an exec sketch's ``args.filename``/``exe_path``/``argv`` also sets (``examples.fill_event``): a
#: sketch changing them changes those fields too
_DERIVED = {
    "args.filename": ("process.exe", "process.comm", "process.cmdline"),
    "args.exe_path": ("process.exe",),
    "args.argv": ("process.cmdline", "process.comm"),
    "process.exe": ("process.comm", "process.cmdline"),
}
#: one kernel fact the sensor reports as several fields: changing the fact changes them all
#: (``sensors.decoder``: mode_bits from mode, wx from prot, the writable-region facts of a
#: W->X, a resolved path with its truncation flag; an exec's resolved image with its name)
COUPLED: dict[str, tuple[str, ...]] = {
    "args.mode": ("args.mode_bits",),
    "args.mode_bits": ("args.mode",),
    "args.wx": ("args.prot", "args.prev_prot"),
    "args.prot": ("args.wx", "args.w_to_x", "args.prev_prot"),
    "args.w_to_x": (
        "args.region_kind",
        "args.region_start",
        "args.region_len",
        "args.wx_count",
        "args.prev_prot",
    ),
    "args.path": ("args.path_truncated", "args.path_typed", "args.path_resolved"),
    "args.target_pid": ("args.target",),
    "args.filename": ("args.exe_path", "args.exe_path_truncated", "args.exe_file"),
    "args.exe_path": ("args.filename", "args.exe_path_truncated", "args.exe_file"),
    "ka.target.subresource": ("ka.exec",),  # exec facts exist for exec/attach only
    "args.ns_host": ("args.ns_inum",),  # the host's namespace is PID 1's inode
    "args.family": ("args.addr", "args.port"),  # the address's shape follows the family
}
#: objects one enrichment step adds whole (stdio facts and peers, the target process, a
#: trail hit, a pod's session, the executed file): a pattern reading one member reads the object
UNITS = ("args.stdio", "args.stdio_peer_of", "args.target", "args.trail", "k8s_session", "args.exe_file")
_KEY_FIELDS = {
    "process": ("process.pid", "process.entity_id", "process.tid"),
    "tree": ("process.pid", "process.entity_id", "process.ancestors", "process.ppid", "process.tid"),
    "container": ("container_id", "container"),
    "host": ("host",),
    "pod": ("kubernetes", "container", "ka.target"),
}


def canon_fields(canon: Any) -> set[str]:
    """Every field a compiled condition's canonical form reads."""
    out: set[str] = set()
    if not isinstance(canon, tuple) or not canon:
        return out
    head = canon[0]
    if head in ("and", "or"):
        for c in canon[1]:
            out |= canon_fields(c)
    elif head == "not":
        out |= canon_fields(canon[1])
    elif len(canon) >= 2 and isinstance(canon[1], str):
        out.add(canon[1])
        if head in ("eq_field", "ne_field") and len(canon) >= 3 and isinstance(canon[2], str):
            out.add(canon[2])
    return out


def decisive_fields(cp: CompiledPattern, allow_conditions: Iterable[Any] = ()) -> set[str]:
    """Raw event fields the pattern's logic reads: conditions, exceptions (a no_match may show
    the exception that suppresses it), captures, binds, the key, ``distinct``, and ``time``
    for windowed kinds."""
    from patterns.engine.fields import resolve

    read: set[str] = set()
    for s in cp.steps:
        read |= canon_fields(s.cond.canon)
    for c in cp.canon[7]:
        read |= canon_fields(c)
    for c in allow_conditions:
        read |= raw_condition_fields(c)
    raw: set[str] = {"syscall"}
    for f in read:
        f = resolve(f)
        raw |= set(_VIRTUAL_SOURCES.get(f, (f,)))
    spec = cp.spec
    refs: list[Any] = []
    for st in (spec.sequence.steps if spec.sequence else []) + (
        [spec.absence.first, spec.absence.then] if spec.absence else []
    ):
        refs += list(st.capture.values())
        for r in st.bind.values():
            refs += r if isinstance(r, list) else [r]
    for r in refs:
        f = resolve(r if isinstance(r, str) else r.field)
        raw |= set(_VIRTUAL_SOURCES.get(f, (f,)))
    if spec.threshold and spec.threshold.distinct:
        f = resolve(spec.threshold.distinct)
        raw |= set(_VIRTUAL_SOURCES.get(f, (f,)))
    if cp.kind != "condition":
        raw |= {"time", *_KEY_FIELDS.get(cp.key, ())}
    for src, derived in _DERIVED.items():
        if any(_covered(d, raw) for d in derived):
            raw.add(src)
    if "args.filename" in raw:  # another program comes with its own command line
        raw.add("args.argv")
    todo = list(raw)
    while todo:
        for g in COUPLED.get(todo.pop(), ()):
            if g not in raw:
                raw.add(g)
                todo.append(g)
    for u in UNITS:
        if any(f == u or f.startswith(u + ".") for f in raw):
            raw.add(u)
    return raw


def raw_condition_fields(cond: Any) -> set[str]:
    """The fields a condition as written names (macros not expanded: for allow entries)."""
    out: set[str] = set()
    if isinstance(cond, list):
        for c in cond:
            out |= raw_condition_fields(c)
    elif isinstance(cond, Mapping):
        for k, v in cond.items():
            if k in ("all", "any", "not"):
                out |= raw_condition_fields(v)
            elif k != "macro":
                out.add(str(k))
    return out


def _flat(sketch: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sketch.items():
        p = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, p + "."))
        else:
            out[p] = repr(v)
    return out


def _covered(key: str, decisive: set[str]) -> bool:
    return any(key == d or key.startswith(d + ".") or d.startswith(key + ".") for d in decisive)


def _event_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """Dotted keys that differ; a subtree present on one side only counts as its root key."""
    fa, fb = _flat(a), _flat(b)
    fa.pop("id", None), fb.pop("id", None)
    out: set[str] = set()
    for k in fa.keys() | fb.keys():
        if fa.get(k, "<absent>") == fb.get(k, "<absent>"):
            continue
        other = fb if k in fa else fa
        parts = k.split(".")
        for i in range(1, len(parts)):
            pre = ".".join(parts[:i])
            if not any(o == pre or o.startswith(pre + ".") for o in other):
                k = pre
                break
        out.add(k)
    return out


def _near(no: list[Any], match: list[Any], decisive: set[str]) -> bool:
    """``no`` is ``match`` with decisive fields changed, and for a multi-event example with
    events left out (a missing step) or added (the awaited event of an absence)."""
    if len(no) == len(match):
        return all(_diff_ok(n, m, decisive) for n, m in zip(no, match, strict=True))
    short, long = (no, match) if len(no) < len(match) else (match, no)
    j = 0
    for a in short:  # in order, each event of the shorter one pairs with one of the longer
        while j < len(long) and not _diff_ok(a, long[j], decisive):
            j += 1
        if j == len(long):
            return False
        j += 1
    return True


def _diff_ok(n: Mapping[str, Any], m: Mapping[str, Any], decisive: set[str]) -> bool:
    if not isinstance(n, Mapping) or not isinstance(m, Mapping):
        return False
    return not _far_keys(n, m, decisive)


def _far_keys(n: Mapping[str, Any], m: Mapping[str, Any], decisive: set[str]) -> list[str]:
    """The differing fields the pattern does not read. Another syscall (when the pattern reads
    the syscall) is another event: its arguments are its own."""
    diff = _event_diff(n, m)
    if n.get("syscall", "execve") != m.get("syscall", "execve") and "syscall" in decisive:
        diff = {k for k in diff if not k.startswith("args.")}
    return sorted(k for k in diff if not _covered(k, decisive))


def far_no_match(patterns: Iterable[CompiledPattern], allow: Iterable[Any] = ()) -> list[PatternError]:
    """Every ``no_match`` example is a near miss of one of the pattern's ``match`` examples: it
    equals that match example except in fields the pattern's logic reads (a multi-event one may
    also leave events out). A no_match that differs elsewhere tests nothing of the pattern."""
    allow = list(allow)
    errs: list[PatternError] = []
    for cp in patterns:
        ex = cp.spec.examples
        if ex is None:
            continue
        allow_conds = [a.entry.condition for a in allow if a.applies(cp.spec)]
        decisive = decisive_fields(cp, allow_conds)
        matches = [m if isinstance(m, list) else [m] for m in ex.match]
        for i, item in enumerate(ex.no_match):
            no = item if isinstance(item, list) else [item]
            if any(_near(no, m, decisive) for m in matches):
                continue
            pairs = [(n, m) for m in matches for n, m in zip(no, m, strict=False)]
            best = min(
                (
                    _far_keys(n, m, decisive)
                    for n, m in pairs
                    if isinstance(n, Mapping) and isinstance(m, Mapping)
                ),
                key=len,
                default=[],
            )
            errs.append(
                PatternError(
                    cp.info.file,
                    cp.id,
                    f"examples.no_match[{i}]",
                    "not a near miss: differs from every match example in fields the pattern does not read"
                    + (f" ({', '.join(best[:4])})" if best else ""),
                )
            )
    return errs
