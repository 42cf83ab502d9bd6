"""Match state of the multi-event patterns: sequences, thresholds and absences.

Per pattern and key (process entity, process tree, container, pod, host) in LRU maps with
caps, expiring on event time; absences wait on a deadline heap. Pure; alerts are built by
the ``emit`` callable the engine gives (it applies exceptions).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from patterns.engine.compile import CompiledPattern
from schemas.alerts import Alert

MAX_KEYS_PER_PATTERN = 4096  # distinct keys (processes, containers) with live state, per pattern
MAX_PARTIALS_PER_KEY = 16  # open sequence matches per key
MAX_EVIDENCE = 20  # events kept as evidence of one threshold alert


@dataclass(slots=True)
class _Partial:
    step: int
    start: float
    vars: dict[str, Any]
    events: list[Mapping[str, Any]]


@dataclass(slots=True)
class _Window:
    """A threshold's events within its window, and how often each distinct value (its
    ``repr``) occurs among them: counted as events come and go, not recounted per event."""

    q: deque[tuple[float, Mapping[str, Any], str | None]]
    seen: dict[str | None, int]

    def drop_first(self) -> None:
        dv = self.q.popleft()[2]
        n = self.seen.get(dv, 0) - 1
        if n > 0:
            self.seen[dv] = n
        else:
            self.seen.pop(dv, None)


@dataclass(slots=True)
class _Pending:
    deadline: float
    vars: dict[str, Any]
    event: Mapping[str, Any]
    done: bool = False


def host_of(e: Mapping[str, Any]) -> str:
    h = e.get("host")
    return h if h.__class__ is str else str(h or "")


def pod_of(e: Mapping[str, Any]) -> tuple[str | None, str | None]:
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
        return (host_of(e), p.get("entity_id") or p.get("pid"))
    if kind == "container":
        return (host_of(e), e.get("container_id") or (e.get("container") or {}).get("id") or "")
    if kind == "pod":
        # Not host-scoped: the API server's audit events and a node's syscalls meet here.
        ns, pod = pod_of(e)
        if pod:
            return ("pod", ns, pod)
        # Outside a pod: per container (or host), so unrelated events never share a key.
        return ("nopod", host_of(e), e.get("container_id") or "")
    return (host_of(e),)


def lookup_keys(kind: str, e: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Keys under which earlier steps of the same process tree may be stored: self, then
    ancestors (entity ids; pids for an event or ancestor without one)."""
    if kind != "tree":
        return [store_key(kind, e)]
    h = host_of(e)
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


Emit = Callable[[CompiledPattern, list[Mapping[str, Any]]], list[Alert]]
Lookup = Callable[[str], CompiledPattern | None]


class MatchState:
    """Open sequence matches, threshold windows and pending absences of one engine."""

    def __init__(self, emit: Emit, lookup: Lookup) -> None:
        self._emit = emit
        self._lookup = lookup
        self._state: dict[str, OrderedDict[tuple[Any, ...], Any]] = {}
        #: pending absences as a heap on their deadline (the engine peeks at the first)
        self.deadlines: list[tuple[float, int, str, tuple[Any, ...], _Pending]] = []
        self._seq = 0

    def drop(self, pattern_id: str) -> None:
        self._state.pop(pattern_id, None)

    def keep_only(self, keep: dict[str, OrderedDict[tuple[Any, ...], Any]]) -> None:
        self._state = keep

    def tables(self) -> dict[str, OrderedDict[tuple[Any, ...], Any]]:
        """Per pattern id its state table (empty or absent: nothing open)."""
        return self._state

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

    @staticmethod
    def _put_new(table: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], val: Any) -> None:
        """``_bounded_put`` of a key not in the table (it goes last as it is)."""
        table[key] = val
        if len(table) > MAX_KEYS_PER_PATTERN:
            table.popitem(last=False)

    def sequence(self, cp: CompiledPattern, step: int, e: Mapping[str, Any], t: float) -> list[Alert]:
        if step and not self._state.get(cp.id):
            return []  # no open match of this pattern anywhere: a later step has nothing to advance
        table = self._table(cp)
        s = cp.steps[step]
        if step == 0:
            key = store_key(cp.key, e)
            p = _Partial(1, t, s.captures(e) if s.capture else {}, [e])
            parts = table.get(key)
            if parts is None:
                self._put_new(table, key, [p])
            else:
                parts.append(p)
                if len(parts) > MAX_PARTIALS_PER_KEY:
                    del parts[0]
                table.move_to_end(key)
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

    def threshold(self, cp: CompiledPattern, e: Mapping[str, Any], t: float) -> list[Alert]:
        table = self._table(cp)
        key = store_key(cp.key, e)
        w = table.get(key)
        if w is None:
            w = _Window(deque(), {})
            self._put_new(table, key, w)
        else:
            table.move_to_end(key)
        q, seen = w.q, w.seen
        dv = repr(cp.distinct(e)) if cp.distinct else None
        q.append((t, e, dv))
        seen[dv] = seen.get(dv, 0) + 1
        horizon = t - cp.window
        while q and q[0][0] < horizon:
            w.drop_first()
        cap = max(cp.count, MAX_EVIDENCE) * 4
        while len(q) > cap:
            w.drop_first()
        n = len(seen) if cp.distinct else len(q)
        if n < cp.count:
            return []
        evidence = [x[1] for x in q][-MAX_EVIDENCE:]
        q.clear()
        seen.clear()
        return self._emit(cp, evidence)

    def absence(self, cp: CompiledPattern, step: int, e: Mapping[str, Any], t: float) -> list[Alert]:
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
            heapq.heappush(self.deadlines, (p.deadline, self._seq, cp.id, key, p))
            return []
        then = cp.steps[1]
        for key in lookup_keys(cp.key, e):
            for p in table.get(key) or ():
                if not p.done and p.event is not e and t <= p.deadline and then.binds(e, p.vars):
                    p.done = True
        return []

    def fire_deadlines(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        while self.deadlines and self.deadlines[0][0] < now:
            _, _, pid, key, p = heapq.heappop(self.deadlines)
            if p.done:
                continue
            p.done = True
            cp = self._lookup(pid)
            table = self._state.get(pid)
            if table is not None and key in table:
                table[key] = [x for x in table[key] if not x.done]
                if not table[key]:
                    del table[key]
            if cp is not None and cp.spec.enabled:
                out.extend(self._emit(cp, [p.event]))
        return out

    def expire(self, now: float) -> None:
        """Drop state older than its window (call ``fire_deadlines`` first)."""
        for pid, table in self._state.items():
            cp = self._lookup(pid)
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
                    while val.q and val.q[0][0] < horizon:
                        val.drop_first()
                    if not val.q:
                        del table[key]
                elif cp.kind == "absence":
                    val[:] = [p for p in val if not p.done and p.deadline >= now]
                    if not val:
                        del table[key]

    def state_size(self) -> int:
        """Live state entries (keys) across patterns: for memory tests and metrics."""
        return sum(len(t) for t in self._state.values()) + len(self.deadlines)
