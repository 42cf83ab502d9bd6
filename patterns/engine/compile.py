"""Turning a validated PatternSpec into a CompiledPattern: predicates, triggers, exceptions.

Compiled patterns are immutable; the engine keeps all match state, so one compiled
library can back many engines (the example runner builds one engine per pattern).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patterns.engine.api import PatternError, PatternInfo
from patterns.engine.conditions import (
    Compiled,
    ConditionError,
    Context,
    Hints,
    compile_condition,
    fast_parts,
)
from patterns.engine.fields import compile_getter
from patterns.engine.predcode import compile_conjunction
from patterns.engine.regex import Regex
from patterns.engine.spec import AllowEntry, FieldRef, PatternSpec, Step
from patterns.mitre.catalog import load_catalog

Getter = Callable[[Mapping[str, Any]], Any]


def norm(v: Any) -> Any:
    """Compare bound values across steps: ``3`` (fd) and ``"3"`` (from a path) are equal."""
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return v


def compile_ref(ref: str | FieldRef) -> Getter:
    if isinstance(ref, str):
        return compile_getter(ref)
    get = compile_getter(ref.field)
    if ref.regex is None:
        return get
    rx = Regex(ref.regex)

    def take(e: Mapping[str, Any]) -> Any:
        v = get(e)
        return rx.group1(v) if isinstance(v, str) else None

    return take


@dataclass(frozen=True)
class CompiledStep:
    index: int
    name: str
    cond: Compiled
    capture: tuple[tuple[str, Getter], ...]
    bind: tuple[tuple[str, tuple[Getter, ...]], ...]

    def captures(self, e: Mapping[str, Any]) -> dict[str, Any]:
        return {k: norm(g(e)) for k, g in self.capture}

    def binds(self, e: Mapping[str, Any], vars: Mapping[str, Any]) -> bool:
        for var, getters in self.bind:
            want = vars.get(var)
            if want is None:
                return False
            ok = False
            for g in getters:
                v = g(e)
                ok = any(norm(x) == want for x in v) if isinstance(v, list) else norm(v) == want
                if ok:
                    break
            if not ok:
                return False
        return True


@dataclass(frozen=True, eq=False)
class Trigger:
    """One thing an event can advance: a single-event pattern, or one step of a multi-event one."""

    pattern: CompiledPattern
    step: int  # 0 for single events; step index for sequences; 0 = first / 1 = then for absence
    pred: Callable[[Mapping[str, Any]], bool]
    hints: Hints
    #: ``pred`` for events the index routed here (``conditions.fast_predicate`` as generated
    #: code, see ``predcode``)
    fast: Callable[[Mapping[str, Any]], bool]
    #: the pattern id when the trigger only advances open matches (a later step of a
    #: sequence, an absence's "then"): with none open it cannot do anything, so the engine
    #: skips its predicate
    waits_on: str | None = None


@dataclass(frozen=True, eq=False)
class CompiledPattern:
    spec: PatternSpec
    info: PatternInfo
    kind: str  # condition | sequence | threshold | absence
    steps: tuple[CompiledStep, ...]
    window: float
    key: str
    count: int
    distinct: Getter | None
    exceptions: tuple[Callable[[Mapping[str, Any]], bool], ...]
    canon: Any
    technique_ids: tuple[str, ...]
    technique_names: tuple[str, ...]
    technique_refs: tuple[str, ...]
    tactic_ids: tuple[str, ...]
    tactic_names: tuple[str, ...]
    triggers: list[Trigger] = field(default_factory=list, compare=False)

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class CompiledAllow:
    entry: AllowEntry
    file: str
    pred: Callable[[Mapping[str, Any]], bool]

    def applies(self, p: PatternSpec) -> bool:
        e = self.entry
        if not (e.patterns or e.tags or e.categories):
            return True
        return p.id in e.patterns or bool(set(e.tags) & set(p.tags)) or (p.category in e.categories)


def _step(i: int, s: Step, ctx: Context, where: str) -> CompiledStep:
    cond = compile_condition(s.condition, ctx, f"{where}.condition")
    cap = tuple((k, compile_ref(r)) for k, r in s.capture.items())
    bind = tuple(
        (k, tuple(compile_ref(x) for x in (r if isinstance(r, list) else [r]))) for k, r in s.bind.items()
    )
    return CompiledStep(i, s.name or f"step{i + 1}", cond, cap, bind)


def _check_binds(steps: list[CompiledStep], where: str) -> None:
    known: set[str] = set()
    for s in steps:
        for var, _ in s.bind:
            if var not in known:
                raise ConditionError(f"{where}[{s.index}].bind.{var}", "not captured by an earlier step")
        known.update(k for k, _ in s.capture)


def _threat(techniques: list[str]) -> tuple[tuple[str, ...], ...]:
    cat = load_catalog()
    ids: list[str] = []
    for t in techniques:
        if t not in ids:
            ids.append(t)
        parent = t.split(".")[0]
        if "." in t and parent not in ids and parent not in techniques:
            ids.append(parent)
    names, refs, tac_ids, tac_names = [], [], [], []
    for t in ids:
        tech = cat.get(t)
        names.append(tech.name if tech else t)
        refs.append(tech.url if tech else "")
        for phase in tech.tactics if tech else ():
            from patterns.mitre.catalog import TACTIC_IDS, tactic_name

            tid = TACTIC_IDS.get(phase, phase)
            if tid not in tac_ids:
                tac_ids.append(tid)
                tac_names.append(tactic_name(phase))
    return tuple(ids), tuple(names), tuple(refs), tuple(tac_ids), tuple(tac_names)


def compile_pattern(
    spec: PatternSpec, file: str, ctx: Context, allow: list[CompiledAllow], custom: bool = False
) -> CompiledPattern:
    """Raises ConditionError / ValueError with the place that is wrong."""
    cat = load_catalog()
    for i, t in enumerate(spec.techniques):
        if t not in cat:
            raise ConditionError(f"techniques[{i}]", f"'{t}' is not in the ATT&CK Enterprise catalog")
    steps: list[CompiledStep]
    window, key, count, distinct = 0.0, "process", 1, None
    if spec.sequence is not None:
        sq = spec.sequence
        steps = [_step(i, s, ctx, f"sequence.steps[{i}]") for i, s in enumerate(sq.steps)]
        _check_binds(steps, "sequence.steps")
        window, key = sq.window, sq.key
    elif spec.threshold is not None:
        th = spec.threshold
        cond = compile_condition(th.condition, ctx, "threshold.condition")
        steps = [CompiledStep(0, "event", cond, (), ())]
        window, key, count = th.window, th.key, th.count
        distinct = compile_getter(th.distinct) if th.distinct else None
    elif spec.absence is not None:
        ab = spec.absence
        steps = [_step(0, ab.first, ctx, "absence.first"), _step(1, ab.then, ctx, "absence.then")]
        _check_binds(steps, "absence")
        window, key = ab.window, ab.key
    else:
        steps = [CompiledStep(0, "event", compile_condition(spec.condition, ctx), (), ())]
    exc = [compile_condition(c, ctx, f"exceptions[{i}]") for i, c in enumerate(spec.exceptions)]
    exc_preds = tuple(c.fn for c in exc) + tuple(a.pred for a in allow if a.applies(spec))
    canon = (
        spec.kind,
        spec.source,
        key if spec.kind != "condition" else None,
        window,
        count,
        spec.threshold.distinct if spec.threshold else None,
        tuple(
            (s.cond.canon, tuple(sorted(k for k, _ in s.capture)), tuple(sorted(k for k, _ in s.bind)))
            for s in steps
        ),
        tuple(sorted((c.canon for c in exc), key=repr)),
    )
    info = PatternInfo(
        id=spec.id,
        name=spec.name,
        description=spec.description,
        severity=spec.severity,
        techniques=tuple(spec.techniques),
        tags=tuple(spec.tags),
        category=spec.category,
        source=spec.source,
        file=file,
        custom=custom,
    )
    t_ids, t_names, t_refs, ta_ids, ta_names = _threat(spec.techniques)
    cp = CompiledPattern(
        spec=spec,
        info=info,
        kind=spec.kind,
        steps=tuple(steps),
        window=window,
        key=key,
        count=count,
        distinct=distinct,
        exceptions=exc_preds,
        canon=canon,
        technique_ids=t_ids,
        technique_names=t_names,
        technique_refs=t_refs,
        tactic_ids=ta_ids,
        tactic_names=ta_names,
    )
    for s in steps:
        # the index reaches a trigger with a syscall hint only through events of those syscalls
        parts = fast_parts(s.cond, drop_syscall=bool(s.cond.hints.exact.get("syscall")))
        waits = cp.id if s.index and cp.kind in ("sequence", "absence") else None
        trig = Trigger(cp, s.index, s.cond.fn, s.cond.hints, s.cond.fn, waits)
        object.__setattr__(trig, "fast", _compile_on_first_use(trig, parts))
        cp.triggers.append(trig)
    return cp


def _compile_on_first_use(trig: Trigger, parts: list[Any]) -> Callable[[Mapping[str, Any]], bool]:
    """``Trigger.fast`` until its first call, which generates the real one (``predcode``) and
    puts it in its place: most triggers never meet an event of a given workload, and
    generating all of them up front nearly doubles the library's load time."""

    def first(e: Mapping[str, Any]) -> bool:
        fn, _ = compile_conjunction(parts, trig.hints.exact.get("syscall"))
        object.__setattr__(trig, "fast", fn)
        return fn(e)

    return first


def compile_allow(entry: AllowEntry, file: str, ctx: Context) -> CompiledAllow:
    return CompiledAllow(entry, file, compile_condition(entry.condition, ctx, "allow.condition").fn)


def error_for(exc: Exception, file: str, pid: str | None) -> PatternError:
    if isinstance(exc, ConditionError):
        return PatternError(file, pid, exc.where, exc.message)
    return PatternError(file, pid, None, str(exc))
