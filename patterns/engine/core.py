"""The engine: compiled patterns, an index by syscall and cheap keys, bounded match state.

Pure logic: events in, ``schemas.alerts.Alert`` out; no I/O beyond reading pattern files
at load, no Faust, no Kafka. Multi-event state (sequences, thresholds, absences) is kept
per pattern and key in LRU maps with caps, and expires on event ``time``.
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patterns.engine.api import PatternError, PatternInfo
from patterns.engine.compile import (
    CompiledAllow,
    CompiledPattern,
    Trigger,
    compile_allow,
    compile_pattern,
    error_for,
)
from patterns.engine.conditions import Context, Hints
from patterns.engine.fields import compile_getter
from patterns.engine.loader import Loaded, RawPattern, load_dirs, parse_spec, snapshot
from patterns.engine.regex import Regex, RegexError
from schemas.alerts import (
    Alert,
    ContainerRef,
    HostRef,
    KubernetesRef,
    ProcessRef,
    Rule,
    Tactic,
    Technique,
    Threat,
    stable_id,
)

MAX_KEYS_PER_PATTERN = 4096  # distinct keys (processes, containers) with live state, per pattern
MAX_PARTIALS_PER_KEY = 16  # open sequence matches per key
MAX_EVIDENCE = 20  # events kept as evidence of one threshold alert
#: fields an event is indexed on beyond ``syscall``, most selective first
INDEX_FIELDS = ("exe.name", "path", "path.name", "process.comm", "args.request", "parent.name")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


#: fields with few distinct values: a poor index key, used only when nothing better exists
LOW_SELECTIVITY = frozenset({"args.family", "ret", "process.uid", "uid", "container.present", "source"})


@dataclass
class _Bucket:
    exact: dict[str, dict[Any, list[Trigger]]] = field(default_factory=dict)
    prefix: dict[str, list[tuple[tuple[str, ...], Trigger]]] = field(default_factory=dict)
    regex: dict[str, list[tuple[tuple[str, ...], Trigger]]] = field(default_factory=dict)
    flags: dict[str, dict[str, list[Trigger]]] = field(default_factory=dict)
    rest: list[Trigger] = field(default_factory=list)


@dataclass
class _Plan:
    """What to probe per event of one syscall: per field (its getter called once) an exact
    table, a flag table, a prefix index and a regex group, each optional; and the triggers
    that are always tried."""

    fields: list[
        tuple[
            Any,
            dict[Any, list[Trigger]] | None,
            dict[str, list[Trigger]] | None,
            _PrefixIndex | None,
            _RegexGroup | None,
        ]
    ]
    rest: list[Trigger]


#: distinct field values whose index result is remembered, per prefix or regex index, and
#: the longest value remembered (longer ones, e.g. huge command lines, are computed each time)
MEMO_SIZE = 4096
MEMO_MAX_LEN = 512
_NONE: tuple[Trigger, ...] = ()


class _MemoizedLookup:
    """Per-value result cache for a string index: values (paths, command lines) repeat, so a
    bounded dict of results beats recomputing; long values are not remembered."""

    memo: dict[str, tuple[Trigger, ...]]

    def _compute(self, v: str) -> tuple[Trigger, ...]:
        raise NotImplementedError

    def _one(self, v: str) -> tuple[Trigger, ...]:
        hit = self.memo.get(v)
        if hit is None:
            hit = self._compute(v)
            if len(v) <= MEMO_MAX_LEN:
                if len(self.memo) >= MEMO_SIZE:
                    self.memo.clear()
                self.memo[v] = hit
        return hit


class _PrefixIndex(_MemoizedLookup):
    """Which prefixes a string starts with, by one dict probe per distinct prefix length;
    results are remembered per value (paths and names repeat)."""

    def __init__(self, items: list[tuple[tuple[str, ...], Trigger]]) -> None:
        self.by_len: dict[int, dict[str, list[Trigger]]] = {}
        for prefixes, trig in items:
            for pre in set(prefixes):
                lst = self.by_len.setdefault(len(pre), {}).setdefault(pre, [])
                if trig not in lst:
                    lst.append(trig)
        self.lengths = sorted(self.by_len)
        self.memo: dict[str, tuple[Trigger, ...]] = {}

    def _compute(self, v: str) -> tuple[Trigger, ...]:
        found: list[Trigger] = []
        n = len(v)
        for length in self.lengths:
            if length > n:
                break
            hit = self.by_len[length].get(v[:length])
            if hit:
                found.extend(hit)
        return tuple(found) if found else _NONE

    def lookup(self, v: str, out: list[Trigger]) -> None:
        hit = self._one(v)
        if hit:
            out.extend(hit)


def _regex_source(src: str) -> str:
    """A regex made embeddable in an alternation: a leading global ``(?i)`` becomes scoped."""
    m = re.match(r"^\(\?([aiLmsux]+)\)", src)
    return f"(?{m.group(1)}:{src[m.end() :]})" if m else f"(?:{src})"


class _RegexGroup(_MemoizedLookup):
    """Triggers that each require a regex on one field. One combined search rejects most
    values (benign command lines); a value it accepts is tested against each trigger's own
    regexes, and the result is remembered per value."""

    def __init__(self, items: list[tuple[tuple[str, ...], Trigger]]) -> None:
        self.triggers = [t for _, t in items]
        sources = [_regex_source(r) for rxs, _ in items for r in rxs]
        try:
            self.rx: Regex | None = Regex("|".join(sources))
        except RegexError:
            self.rx = None  # e.g. clashing group names: fall back to testing each
        self.each: list[tuple[Trigger, tuple[Regex, ...] | None]] = []
        for rxs, trig in items:
            try:
                self.each.append((trig, tuple(Regex(r) for r in rxs)))
            except RegexError:
                self.each.append((trig, None))  # always a candidate
        self.memo: dict[str, tuple[Trigger, ...]] = {}

    def _compute(self, v: str) -> tuple[Trigger, ...]:
        if self.rx is not None and not self.rx.search(v):
            return _NONE
        found = [t for t, rxs in self.each if rxs is None or any(r.search(v) for r in rxs)]
        return tuple(found) if found else _NONE

    def lookup(self, v: Any, out: list[Trigger]) -> None:
        if isinstance(v, str):
            hit = self._one(v)
            if hit:
                out.extend(hit)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, str):
                    hit = self._one(x)
                    if hit:
                        out.extend(hit)
        elif self.rx is None:
            out.extend(self.triggers)


@dataclass
class _Partial:
    step: int
    start: float
    vars: dict[str, Any]
    events: list[Mapping[str, Any]]


@dataclass
class _Pending:
    deadline: float
    vars: dict[str, Any]
    event: Mapping[str, Any]
    done: bool = False


def _host(e: Mapping[str, Any]) -> str:
    return str(e.get("host") or "")


def _pod(e: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(namespace, pod name): an audit event's ``kubernetes``, else its container's pod."""
    k = e.get("kubernetes") or {}
    if k.get("pod_name"):
        return k.get("namespace") or "default", k.get("pod_name")
    c = e.get("container") or {}
    if c.get("pod_name"):
        return c.get("pod_namespace") or "default", c.get("pod_name")
    return None, None


def store_key(kind: str, e: Mapping[str, Any]) -> tuple[Any, ...]:
    if kind in ("process", "tree"):
        # The process's entity id (unique across pid reuse); the pid only for events
        # without one (tests, foreign sources).
        p = e.get("process") or {}
        return (_host(e), p.get("entity_id") or p.get("pid"))
    if kind == "container":
        return (_host(e), e.get("container_id") or (e.get("container") or {}).get("id") or "")
    if kind == "pod":
        # Not host-scoped: the API server's audit events and a node's syscalls meet here.
        ns, pod = _pod(e)
        if pod:
            return ("pod", ns, pod)
        # Outside a pod: per container (or host), so unrelated events never share a key.
        return ("nopod", _host(e), e.get("container_id") or "")
    return (_host(e),)


def lookup_keys(kind: str, e: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Keys under which earlier steps of the same process tree may be stored: self, then
    ancestors (entity ids; pids for an event or ancestor without one)."""
    if kind != "tree":
        return [store_key(kind, e)]
    h = _host(e)
    p = e.get("process") or {}
    keys = [(h, p.get("entity_id") or p.get("pid"))]
    anc = p.get("ancestors") or ()
    if p.get("ppid") is not None and not (anc and anc[0].get("entity_id")):
        keys.append((h, p.get("ppid")))
    for a in anc:
        k = (h, a.get("entity_id") or a.get("pid"))
        if k[1] is not None and k not in keys:
            keys.append(k)
    return keys


def _ts(t: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(t), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.fromtimestamp(0, tz=UTC)


def _render(template: str, e: Mapping[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        v = compile_getter(m.group(1))(e)
        return "" if v is None else str(v)

    return _PLACEHOLDER.sub(sub, template)


def build_alert(cp: CompiledPattern, evidence: list[Mapping[str, Any]]) -> Alert:
    """The shared alert context (process, container, host, MITRE names) around one match."""
    first, last = evidence[0], evidence[-1]
    proc = last.get("process") or {}
    cont = last.get("container") or {}
    cid = last.get("container_id") or cont.get("id")
    spec = cp.spec
    who = proc.get("exe") or proc.get("comm") or "?"
    where = f"container {cont.get('name') or (cid or '')[:12]}" if cid else f"host {_host(last)}"
    if spec.output:
        message = _render(spec.output, last)
    else:
        message = f"{spec.name}: {who} (pid {proc.get('pid')}) in {where}"
    kube = None
    for ev in (last, first):  # the syscall side names the container; either side names the pod
        ns, pod = _pod(ev)
        if pod:
            kube = KubernetesRef(pod_name=pod, namespace=ns)
            break
    alert_id = cp.spec.id, *[str(e.get("id")) for e in evidence]
    return Alert(  # type: ignore[call-arg]  # populate_by_name: "timestamp" is "@timestamp"
        id=stable_id(*alert_id),
        timestamp=_ts(first.get("time")),
        rule=Rule(
            id=spec.id,
            name=spec.name,
            description=spec.description,
            severity=spec.severity,
            version=spec.version,
            category=spec.category,
            tags=list(spec.tags),
        ),
        threat=Threat(
            technique=Technique(
                id=list(cp.technique_ids), name=list(cp.technique_names), reference=list(cp.technique_refs)
            ),
            tactic=Tactic(id=list(cp.tactic_ids), name=list(cp.tactic_names)),
        ),
        container=ContainerRef(
            id=cid,
            name=cont.get("name"),
            image=cont.get("image"),
            labels=dict(cont.get("labels") or {}),
        ),
        kubernetes=kube,
        process=ProcessRef(
            pid=proc.get("pid"),
            entity_id=proc.get("entity_id"),
            ppid=proc.get("ppid"),
            executable=proc.get("exe"),
            command_line=proc.get("cmdline"),
            name=proc.get("comm"),
            uid=proc.get("uid"),
            ancestors=list(proc.get("ancestors") or []),
        ),
        host=HostRef(name=_host(last)),
        message=message,
        evidence=[dict(e) for e in evidence],
        count=1,
        first_seen=_ts(first.get("time")),
        last_seen=_ts(last.get("time")),
        source=str(first.get("source") or spec.source),
    )


class PatternEngine:
    """Implements ``patterns.engine.api.Engine``."""

    def __init__(
        self,
        patterns: Iterable[CompiledPattern] = (),
        allow: Iterable[CompiledAllow] = (),
        ctx: Context | None = None,
        errors: Iterable[PatternError] = (),
        dirs: Iterable[Path] = (),
    ) -> None:
        self.errors: list[PatternError] = list(errors)
        self.ctx = ctx or Context({}, {})
        self.allow = list(allow)
        self.dirs = [Path(d) for d in dirs]
        self._snapshot = snapshot(self.dirs) if self.dirs else {}
        self._patterns: dict[str, CompiledPattern] = {}
        for cp in patterns:
            self._patterns[cp.id] = cp
        self._state: dict[str, OrderedDict[tuple[Any, ...], Any]] = {}
        self._deadlines: list[tuple[float, int, str, tuple[Any, ...], _Pending]] = []
        self._seq = 0
        self._ready: list[Alert] = []
        self._clock = 0.0
        self.suppressed = 0  # matches dropped by exceptions/allow-lists
        self._reindex()

    # -- index ---------------------------------------------------------------------------
    def _reindex(self) -> None:
        by_sc: dict[Any, _Bucket] = {}
        getters: dict[str, Any] = {}
        self.longest_window_s = 0.0
        for cp in self._patterns.values():
            if not cp.spec.enabled:
                continue
            self.longest_window_s = max(self.longest_window_s, cp.window)
            for trig in cp.triggers:
                sc = trig.hints.exact.get("syscall")
                for s in sorted(sc, key=str) if sc else [None]:
                    b = by_sc.setdefault(s, _Bucket())
                    self._place(b, trig, getters)
        self._getters = getters
        self._index = by_sc
        self._any = by_sc.get(None, _Bucket())
        # Triggers without a syscall are placed in every syscall's bucket too, so an event
        # probes exactly one plan.
        anysc = [t for t in self._triggers_of(self._any)]
        for s, b in by_sc.items():
            if s is not None:
                for trig in anysc:
                    self._place(b, trig, getters)
        self._plan: dict[Any, _Plan] = {s: self._make_plan(b, getters) for s, b in by_sc.items()}
        self._plan_any = self._plan.get(None) or self._make_plan(_Bucket(), getters)

    @staticmethod
    def _triggers_of(b: _Bucket) -> list[Trigger]:
        out: list[Trigger] = []
        for tbl in (*b.exact.values(), *b.flags.values()):
            for lst in tbl.values():
                out.extend(lst)
        for items in (*b.prefix.values(), *b.regex.values()):
            out.extend(t for _, t in items)
        out.extend(b.rest)
        return list(dict.fromkeys(out))

    @staticmethod
    def _make_plan(b: _Bucket, getters: dict[str, Any]) -> _Plan:
        names = list(dict.fromkeys([*b.exact, *b.flags, *b.prefix, *b.regex]))
        return _Plan(
            fields=[
                (
                    getters[f],
                    b.exact.get(f),
                    b.flags.get(f),
                    _PrefixIndex(b.prefix[f]) if f in b.prefix else None,
                    _RegexGroup(b.regex[f]) if f in b.regex else None,
                )
                for f in names
            ],
            rest=list(b.rest),
        )

    @staticmethod
    def _key_for(h: Hints) -> tuple[str, str] | None:
        """The most selective required fact of a condition: an exact value, a prefix, a
        regex, a flag, a ``true`` boolean, else a low-selectivity exact value; None when
        nothing is required (the trigger is then tried on every event of its syscall)."""
        exact = [
            f
            for f in (*INDEX_FIELDS, *sorted(h.exact))
            if f != "syscall" and f in h.exact and all(not isinstance(v, bool) for v in h.exact[f])
        ]
        good = sorted((f for f in exact if f not in LOW_SELECTIVITY), key=lambda f: len(h.exact[f]))
        if good:
            return "exact", good[0]
        for kind, table in (("prefix", h.prefix), ("regex", h.regex)):
            for f in (*INDEX_FIELDS, *sorted(table)):
                if f in table:
                    return kind, f
        if h.flags:
            return "flags", sorted(h.flags, key=lambda f: (len(h.flags[f]), f))[0]
        for f in sorted(h.exact):
            if f not in LOW_SELECTIVITY and all(v is True for v in h.exact[f]):
                return "exact", f
        if exact:
            return "exact", exact[0]
        return None

    @classmethod
    def _place(cls, b: _Bucket, trig: Trigger, getters: dict[str, Any], h: Hints | None = None) -> None:
        """Index a trigger under its most selective required fact (see ``_key_for``); an
        ``any`` whose branches share no fact is indexed under one fact of each branch."""
        h = trig.hints if h is None else h
        key = cls._key_for(h)
        weak = key is None or (key[0] == "exact" and key[1] in LOW_SELECTIVITY)
        if weak and h.alts and all(cls._indexable(a) for a in h.alts):
            for a in h.alts:
                cls._place(b, trig, getters, a)
            return
        if key is None:
            if trig not in b.rest:
                b.rest.append(trig)
            return
        kind, f = key
        getters.setdefault(f, compile_getter(f))
        if kind == "exact":
            tbl = b.exact.setdefault(f, {})
            for v in h.exact[f]:
                tbl.setdefault(v, []).append(trig)
        elif kind == "flags":
            ftbl = b.flags.setdefault(f, {})
            for v in h.flags[f]:
                ftbl.setdefault(v, []).append(trig)
        elif kind == "prefix":
            b.prefix.setdefault(f, []).append((h.prefix[f], trig))
        else:
            b.regex.setdefault(f, []).append((h.regex[f], trig))

    @classmethod
    def _indexable(cls, h: Hints) -> bool:
        """Whether a branch has a selective key of its own (or its branches all do)."""
        key = cls._key_for(h)
        if key is not None and not (key[0] == "exact" and key[1] in LOW_SELECTIVITY):
            return True
        return bool(h.alts) and all(cls._indexable(a) for a in h.alts)

    def candidates(self, event: Mapping[str, Any]) -> list[Trigger]:
        """Triggers whose cheap keys an event meets (every other trigger cannot match it).
        A trigger may appear more than once."""
        try:
            plan = self._plan.get(event.get("syscall")) or self._plan_any
        except TypeError:  # an unhashable syscall value
            plan = self._plan_any
        out = plan.rest.copy()
        for get, tbl, ftbl, pidx, rgroup in plan.fields:
            v = get(event)
            if isinstance(v, str):
                if tbl is not None:
                    hit = tbl.get(v)
                    if hit:
                        out.extend(hit)
                if ftbl is not None:  # a flag test reads "A|B" as the flags A and B
                    for x in v.split("|") if "|" in v else (v,):
                        hit = ftbl.get(x)
                        if hit:
                            out.extend(hit)
                if pidx is not None:
                    pidx.lookup(v, out)
                if rgroup is not None:
                    rgroup.lookup(v, out)
            elif isinstance(v, list):
                for x in v:
                    if isinstance(x, str):
                        if tbl is not None:
                            hit = tbl.get(x)
                            if hit:
                                out.extend(hit)
                        if ftbl is not None:
                            hit = ftbl.get(x)
                            if hit:
                                out.extend(hit)
                        if pidx is not None:
                            pidx.lookup(x, out)
                    elif tbl is not None and isinstance(x, int):
                        hit = tbl.get(x)
                        if hit:
                            out.extend(hit)
                if rgroup is not None:
                    rgroup.lookup(v, out)
            elif tbl is not None:
                try:
                    hit = tbl.get(v)
                except TypeError:  # unhashable: no exact value can equal it
                    hit = None
                if hit:
                    out.extend(hit)
        return out

    # -- Engine protocol -------------------------------------------------------------------
    def process(self, event: Mapping[str, Any]) -> list[Alert]:
        alerts: list[Alert] = []
        self._process_into(event, alerts)
        return alerts

    def process_batch(self, events: Iterable[Mapping[str, Any]]) -> list[Alert]:
        out: list[Alert] = []
        run = self._process_into
        for e in events:
            run(e, out)
        return out

    def _process_into(self, event: Mapping[str, Any], alerts: list[Alert]) -> None:
        """One event: due absence alerts first, then what the event raises, appended to ``alerts``."""
        if self._ready:
            alerts.extend(self._ready)
            self._ready.clear()
        t = event.get("time")
        if isinstance(t, int | float):
            if t > self._clock:
                self._clock = float(t)
            if self._deadlines and self._deadlines[0][0] < self._clock:
                alerts.extend(self._fire_deadlines(self._clock))
        cands = self.candidates(event)
        if not cands:
            return
        # One event never both starts and completes a sequence (partials remember their last
        # event), so the order of candidates does not matter; duplicates are dropped.
        for trig in dict.fromkeys(cands) if len(cands) > 1 else cands:
            try:
                hit = trig.fast(event)
            except Exception:  # a condition must never take the worker down
                hit = False
            if hit:
                alerts.extend(self._advance(trig, event))

    def expire(self, now: float) -> None:
        """Drop state older than its window; absences whose window ran out become alerts
        (returned by the next ``process`` call, or by ``flush``)."""
        self._ready.extend(self._fire_deadlines(now))
        for pid, table in self._state.items():
            cp = self._patterns.get(pid)
            if cp is None:
                continue
            horizon = now - cp.window
            for key in list(table):
                val = table[key]
                if cp.kind == "sequence":
                    val[:] = [p for p in val if p.start >= horizon]
                    if not val:
                        del table[key]
                elif cp.kind == "threshold":
                    while val and val[0][0] < horizon:
                        val.popleft()
                    if not val:
                        del table[key]
                elif cp.kind == "absence":
                    val[:] = [p for p in val if not p.done and p.deadline >= now]
                    if not val:
                        del table[key]

    def flush(self, now: float | None = None) -> list[Alert]:
        """Alerts that became due without a new event (absences); ``now`` advances the clock."""
        if now is not None:
            self.expire(now)
        out, self._ready = self._ready, []
        return out

    def fork(self) -> PatternEngine:
        """A new engine on the same compiled patterns with empty state (cheap: no re-load),
        e.g. one per Kafka partition."""
        eng = PatternEngine(self._patterns.values(), self.allow, self.ctx, self.errors, self.dirs)
        return eng

    def pattern_count(self) -> int:
        return sum(1 for p in self._patterns.values() if p.spec.enabled)

    def patterns(self) -> list[PatternInfo]:
        return [p.info for p in self._patterns.values()]

    def compiled(self) -> list[CompiledPattern]:
        return list(self._patterns.values())

    def get(self, pattern_id: str) -> CompiledPattern | None:
        return self._patterns.get(pattern_id)

    def upsert_pattern(self, spec: Mapping[str, Any]) -> list[PatternError]:
        """Add or replace one pattern (YAML form as a dict, or one item of the seed's JSON form)."""
        from patterns.engine.loader import from_seed

        try:
            data = from_seed(spec) if "indicators" in spec else dict(spec)
        except ValueError as exc:
            pid = str(spec.get("id") or spec.get("name") or "") or None
            return [PatternError("<custom>", pid, None, str(exc))]
        cp, errs = compile_raw(RawPattern(data, "<custom>", custom=True), self.ctx, self.allow)
        if cp is None:
            return errs
        from patterns.engine.examples import check_examples

        errs = check_examples(cp, self.allow)
        if errs:
            return errs
        self._patterns[cp.id] = cp
        self._state.pop(cp.id, None)
        self._reindex()
        return []

    def set_enabled(self, pattern_id: str, enabled: bool) -> bool:
        cp = self._patterns.get(pattern_id)
        if cp is None:
            return False
        if cp.spec.enabled != enabled:
            self._patterns[pattern_id] = dataclasses.replace(
                cp, spec=cp.spec.model_copy(update={"enabled": enabled})
            )
            self._state.pop(pattern_id, None)
            self._reindex()
        return True

    def delete_pattern(self, pattern_id: str) -> bool:
        if self._patterns.pop(pattern_id, None) is None:
            return False
        self._state.pop(pattern_id, None)
        self._reindex()
        return True

    def reload(self, dirs: Iterable[Path] | None = None) -> list[PatternError]:
        """Re-read the pattern directories; unchanged patterns keep their match state,
        custom (upserted) patterns stay."""
        fresh = build_engine(list(dirs) if dirs is not None else self.dirs, [])
        custom = {k: v for k, v in self._patterns.items() if v.info.custom and k not in fresh._patterns}
        keep: dict[str, Any] = {}
        for pid, cp in fresh._patterns.items():
            old = self._patterns.get(pid)
            if old is not None and old.canon == cp.canon and pid in self._state:
                keep[pid] = self._state[pid]
        self._patterns = {**fresh._patterns, **custom}
        self.ctx, self.allow, self.errors = fresh.ctx, fresh.allow, fresh.errors
        self._state = keep
        self._snapshot = fresh._snapshot
        self._reindex()
        return list(self.errors)

    def reload_if_changed(self) -> list[PatternError] | None:
        """Hot reload: re-read the directories if a pattern file was added, removed or
        modified since the last load; None when nothing changed."""
        if not self.dirs or snapshot(self.dirs) == self._snapshot:
            return None
        errors = self.reload()
        return errors

    # -- matching state --------------------------------------------------------------------
    def _table(self, cp: CompiledPattern) -> OrderedDict[tuple[Any, ...], Any]:
        t = self._state.get(cp.id)
        if t is None:
            t = self._state[cp.id] = OrderedDict()
        return t

    @staticmethod
    def _bounded_put(table: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], val: Any) -> None:
        table[key] = val
        table.move_to_end(key)
        while len(table) > MAX_KEYS_PER_PATTERN:
            table.popitem(last=False)

    def _emit(self, cp: CompiledPattern, evidence: list[Mapping[str, Any]]) -> list[Alert]:
        for exc in cp.exceptions:
            for e in evidence:
                try:
                    if exc(e):
                        self.suppressed += 1
                        return []
                except Exception:
                    continue
        return [build_alert(cp, evidence)]

    def _advance(self, trig: Trigger, e: Mapping[str, Any]) -> list[Alert]:
        cp = trig.pattern
        kind = cp.kind
        if kind == "condition":
            return self._emit(cp, [e])
        t = float(e.get("time") or 0.0)
        if kind == "threshold":
            return self._threshold(cp, e, t)
        if kind == "sequence":
            return self._sequence(cp, trig.step, e, t)
        return self._absence(cp, trig.step, e, t)

    def _sequence(self, cp: CompiledPattern, step: int, e: Mapping[str, Any], t: float) -> list[Alert]:
        if step and not self._state.get(cp.id):
            return []  # no open match of this pattern anywhere: a later step has nothing to advance
        table = self._table(cp)
        s = cp.steps[step]
        if step == 0:
            key = store_key(cp.key, e)
            parts = table.get(key)
            if parts is None:
                parts = []
            parts.append(_Partial(1, t, s.captures(e), [e]))
            if len(parts) > MAX_PARTIALS_PER_KEY:
                del parts[0]
            self._bounded_put(table, key, parts)
            return []
        out: list[Alert] = []
        for key in lookup_keys(cp.key, e):
            parts = table.get(key)
            if not parts:
                continue
            horizon = t - cp.window
            live = [p for p in parts if p.start >= horizon]
            for p in live:
                if p.step != step or p.events[-1] is e or not s.binds(e, p.vars):
                    continue
                p.vars.update(s.captures(e))
                p.events.append(e)
                p.step += 1
                if p.step == len(cp.steps):
                    out.extend(self._emit(cp, p.events))
            live = [p for p in live if p.step < len(cp.steps)]
            if live:
                table[key] = live
            else:
                del table[key]
            if out:
                break
        return out

    def _threshold(self, cp: CompiledPattern, e: Mapping[str, Any], t: float) -> list[Alert]:
        table = self._table(cp)
        key = store_key(cp.key, e)
        q = table.get(key)
        if q is None:
            q = deque()
        dv = cp.distinct(e) if cp.distinct else None
        q.append((t, e, repr(dv)))
        horizon = t - cp.window
        while q and q[0][0] < horizon:
            q.popleft()
        while len(q) > max(cp.count, MAX_EVIDENCE) * 4:
            q.popleft()
        self._bounded_put(table, key, q)
        n = len({x[2] for x in q}) if cp.distinct else len(q)
        if n < cp.count:
            return []
        evidence = [x[1] for x in q][-MAX_EVIDENCE:]
        q.clear()
        return self._emit(cp, evidence)

    def _absence(self, cp: CompiledPattern, step: int, e: Mapping[str, Any], t: float) -> list[Alert]:
        if step and not self._state.get(cp.id):
            return []  # nothing pending
        table = self._table(cp)
        if step == 0:
            key = store_key(cp.key, e)
            lst = table.get(key)
            if lst is None:
                lst = []
            p = _Pending(t + cp.window, cp.steps[0].captures(e), e)
            lst.append(p)
            if len(lst) > MAX_PARTIALS_PER_KEY:
                lst[0].done = True
                del lst[0]
            self._bounded_put(table, key, lst)
            self._seq += 1
            heapq.heappush(self._deadlines, (p.deadline, self._seq, cp.id, key, p))
            return []
        then = cp.steps[1]
        for key in lookup_keys(cp.key, e):
            for p in table.get(key) or ():
                if not p.done and p.event is not e and t <= p.deadline and then.binds(e, p.vars):
                    p.done = True
        return []

    def _fire_deadlines(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        while self._deadlines and self._deadlines[0][0] < now:
            _, _, pid, key, p = heapq.heappop(self._deadlines)
            if p.done:
                continue
            p.done = True
            cp = self._patterns.get(pid)
            table = self._state.get(pid)
            if table is not None and key in table:
                table[key] = [x for x in table[key] if not x.done]
                if not table[key]:
                    del table[key]
            if cp is not None and cp.spec.enabled:
                out.extend(self._emit(cp, [p.event]))
        return out

    def state_size(self) -> int:
        """Live state entries (keys) across patterns: for memory tests and metrics."""
        return sum(len(t) for t in self._state.values()) + len(self._deadlines)


def compile_raw(
    raw: RawPattern, ctx: Context, allow: list[CompiledAllow]
) -> tuple[CompiledPattern | None, list[PatternError]]:
    spec, errs = parse_spec(raw)
    if spec is None:
        return None, errs
    try:
        return compile_pattern(spec, raw.file, ctx, allow, custom=raw.custom), []
    except ValueError as exc:
        return None, [error_for(exc, raw.file, spec.id)]


def assemble(
    loaded: Loaded, extra_specs: Iterable[Mapping[str, Any]] = (), dirs: Iterable[Path] = ()
) -> PatternEngine:
    errors = list(loaded.errors)
    ctx = Context(loaded.lists, loaded.macros)
    allow: list[CompiledAllow] = []
    for entry, f in loaded.allow:
        try:
            allow.append(compile_allow(entry, f, ctx))
        except ValueError as exc:
            errors.append(error_for(exc, f, entry.id))
    compiled: dict[str, CompiledPattern] = {}
    raws = list(loaded.patterns) + [RawPattern(dict(s), "<extra>", custom=True) for s in extra_specs]
    for raw in raws:
        cp, errs = compile_raw(raw, ctx, allow)
        if cp is None:
            errors.extend(errs)
            continue
        if cp.id in compiled and not raw.custom:
            errors.append(
                PatternError(
                    raw.file, cp.id, "id", f"duplicate id (first defined in {compiled[cp.id].info.file})"
                )
            )
            continue
        compiled[cp.id] = cp
    return PatternEngine(compiled.values(), allow, ctx, errors, dirs)


def build_engine(dirs: list[Path], extra_specs: list[Mapping[str, Any]]) -> PatternEngine:
    """Compile every pattern under ``dirs`` plus ``extra_specs`` (custom patterns, seed JSON items)."""
    from patterns.engine.loader import from_seed

    specs = [from_seed(s) if "indicators" in s else s for s in extra_specs]
    return assemble(load_dirs(dirs), specs, dirs)


_DEFAULT_CTX: tuple[dict[str, float], Context, list[CompiledAllow]] | None = None


def _default_ctx() -> tuple[Context, list[CompiledAllow]]:
    """The shipped library's lists, macros and allow-lists, re-read only when a file changed."""
    global _DEFAULT_CTX
    from memtrail.settings import DEFAULT_PATTERNS_DIR

    snap = snapshot([DEFAULT_PATTERNS_DIR])
    if _DEFAULT_CTX is not None and _DEFAULT_CTX[0] == snap:
        return _DEFAULT_CTX[1], _DEFAULT_CTX[2]
    loaded = load_dirs([DEFAULT_PATTERNS_DIR])
    ctx = Context(loaded.lists, loaded.macros)
    allow = []
    for entry, f in loaded.allow:
        try:
            allow.append(compile_allow(entry, f, ctx))
        except ValueError:
            continue
    _DEFAULT_CTX = (snap, ctx, allow)
    return ctx, allow


def validate_one(spec: Mapping[str, Any]) -> list[PatternError]:
    """Schema, condition, technique ids and (when given) examples of one pattern, with the
    library's lists and macros in scope. No engine is touched."""
    from patterns.engine.examples import check_examples
    from patterns.engine.loader import from_seed

    try:
        data = from_seed(spec) if "indicators" in spec else dict(spec)
    except ValueError as exc:
        return [PatternError("<spec>", str(spec.get("id") or spec.get("name") or "") or None, None, str(exc))]
    ctx, allow = _default_ctx()
    cp, errs = compile_raw(RawPattern(data, "<spec>", custom=True), ctx, allow)
    if cp is None:
        return errs
    return check_examples(cp, allow)
