"""The trigger index: which of the library's triggers an event can possibly meet.

Built from the enabled compiled patterns: per syscall, each trigger is placed under its most
selective required fact (an exact value, a prefix, a regex, a flag); an event probes one
plan and gets its candidates. Pure; no state about events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patterns.engine.compile import CompiledPattern, Trigger
from patterns.engine.conditions import Hints
from patterns.engine.fields import VIRTUAL, compile_getter, resolve
from patterns.engine.plancode import Candidates, compile_candidates, gates_of
from patterns.engine.regex import Regex, RegexError

#: fields an event is indexed on beyond ``syscall``, most selective first
INDEX_FIELDS = ("exe.name", "path", "path.name", "process.comm", "args.request", "parent.name")


#: fields read to gate candidates found by another key (see ``plancode.gates_of``)
GATE_FIELDS = ("exe.name",)

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
    #: the field names of ``fields``, in order
    names: list[str] = field(default_factory=list)
    #: ``fields`` and ``rest`` compiled into functions (see ``plancode``)
    fn: Candidates | None = None
    unique: Candidates | None = None


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


class TriggerIndex:
    """The candidates of an event among the triggers of ``patterns`` (enabled ones only)."""

    def __init__(self, patterns: Iterable[CompiledPattern]) -> None:
        self._build(patterns)

    def _build(self, patterns: Iterable[CompiledPattern]) -> None:
        by_sc: dict[Any, _Bucket] = {}
        getters: dict[str, Any] = {}
        self.longest_window_s = 0.0
        for cp in patterns:
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
        self._plan: dict[Any, _Plan] = {s: self._make_plan(b, getters, s) for s, b in by_sc.items()}
        self._plan_any = self._plan.get(None) or self._make_plan(_Bucket(), getters, None)

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
    def _make_plan(b: _Bucket, getters: dict[str, Any], syscall: Any) -> _Plan:
        names = list(dict.fromkeys([*b.exact, *b.flags, *b.prefix, *b.regex]))
        # Triggers reached without a selective key (tried on every event of the syscall, or
        # found by a broad prefix or regex) are gated on the fields they need (LD_PRELOAD
        # set, an exec of a descriptor): those fields are read for that alone, and only
        # whether they are there enters the memo key. Computed fields are read for the
        # triggers without any key only: most are there on every event (``exe.name``).
        broad = [(t, True) for t in b.rest]
        broad += [(t, False) for items in (*b.prefix.values(), *b.regex.values()) for _, t in items]
        for t, any_field in broad:
            for o in t.hints.presence_options():
                for f in sorted(o - LOW_SELECTIVITY - {"syscall"}):
                    if f not in names and (any_field or resolve(f) not in VIRTUAL):
                        names.append(f)
                        getters.setdefault(f, compile_getter(f))
        # The acting program's name gates every trigger that names it (a shell reading a
        # file nginx reads all the time): few distinct values, so the memo stays small.
        for t in TriggerIndex._triggers_of(b):
            for f in GATE_FIELDS:
                if f in t.hints.exact and f not in names:
                    names.append(f)
                    getters.setdefault(f, compile_getter(f))
        plan = _Plan(
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
            names=names,
        )
        gates = gates_of(names, TriggerIndex._triggers_of(b))
        plan.fn, plan.unique, _ = compile_candidates(plan.names, plan.fields, plan.rest, gates, syscall)
        return plan

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
        group = cls._narrower_group(h, key)
        if group is not None:
            for a in group:
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
    def _exact_width(cls, h: Hints) -> int | None:
        """How many values the exact key of a condition admits (None: not an exact key)."""
        key = cls._key_for(h)
        if key is None or key[0] != "exact" or key[1] in LOW_SELECTIVITY:
            return None
        return len(h.exact[key[1]])

    @classmethod
    def _narrower_group(cls, h: Hints, key: tuple[str, str] | None) -> tuple[Hints, ...] | None:
        """An ``any`` of the conjunction whose branches all have exact keys admitting fewer
        values together than the conjunction's own exact key (a shell started by one named
        service: the service's name, in exe or comm, beats the list of shells)."""
        if key is None or key[0] != "exact" or len(h.any_groups) < 2:
            return None
        best, width = None, len(h.exact[key[1]])
        for group in h.any_groups:
            widths = [cls._exact_width(a) for a in group]
            known = [w for w in widths if w is not None]
            if len(known) == len(widths) and sum(known) < width:
                best, width = group, sum(known)
        return best

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
        return plan.fn(event)  # type: ignore[misc]

    def unique_candidates(self, event: Mapping[str, Any]) -> tuple[Trigger, ...]:
        """``candidates`` without duplicates (first occurrences, in order) and without the
        triggers whose required flags cannot hold: the engine's form, remembered per
        combination of the probed values (see ``plancode``)."""
        try:
            plan = self._plan.get(event.get("syscall")) or self._plan_any
        except TypeError:  # an unhashable syscall value
            plan = self._plan_any
        return plan.unique(event)  # type: ignore[misc]

    def unique_by_syscall(self) -> tuple[dict[Any, Candidates], Candidates]:
        """``unique_candidates`` per syscall, and for any other: the engine calls these
        directly (one call less per event)."""
        by_sc = {s: p.unique for s, p in self._plan.items() if s is not None and p.unique is not None}
        assert self._plan_any.unique is not None
        return by_sc, self._plan_any.unique

    def candidates_generic(self, event: Mapping[str, Any]) -> list[Trigger]:
        """``candidates`` by walking the plan's description: the reference the generated
        functions are tested against."""
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
                    elif tbl is not None and isinstance(x, (int, float)):
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
