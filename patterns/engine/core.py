"""The engine: compiled patterns, their trigger index and their match state.

Pure logic: events in, ``schemas.alerts.Alert`` out; no I/O beyond reading pattern files
at (re)load, no Faust, no Kafka. The parts: ``index.TriggerIndex`` (which triggers an event
can meet), ``state.MatchState`` (sequences, thresholds, absences, bounded and expiring on
event time), ``alerts.build_alert`` and ``assemble`` (building and reloading engines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from patterns.engine.alerts import build_alert
from patterns.engine.api import PatternError, PatternInfo
from patterns.engine.compile import CompiledAllow, CompiledPattern, Trigger
from patterns.engine.conditions import Context
from patterns.engine.index import TriggerIndex
from patterns.engine.loader import snapshot
from patterns.engine.state import MatchState
from schemas.alerts import Alert

_NUMBER = (int, float)


class PatternEngine:
    """Implements ``patterns.engine.api.Engine``."""

    def __init__(
        self,
        patterns: Iterable[CompiledPattern] = (),
        allow: Iterable[CompiledAllow] = (),
        ctx: Context | None = None,
        errors: Iterable[PatternError] = (),
        dirs: Iterable[Path] = (),
        index: TriggerIndex | None = None,
        snap: dict[Any, Any] | None = None,
    ) -> None:
        self.errors: list[PatternError] = list(errors)
        self.ctx = ctx or Context({}, {})
        self.allow = list(allow)
        self.dirs = [Path(d) for d in dirs]
        self._snapshot = snap if snap is not None else snapshot(self.dirs) if self.dirs else {}
        self._patterns: dict[str, CompiledPattern] = {}
        for cp in patterns:
            self._patterns[cp.id] = cp
        self._match = MatchState(self._emit, self._patterns.get)
        self._ready: list[Alert] = []
        self._clock = 0.0
        self.suppressed = 0  # matches dropped by exceptions/allow-lists
        if index is None:
            self._reindex()
        else:
            self._use_index(index)

    # -- index ---------------------------------------------------------------------------
    def _reindex(self) -> None:
        self._use_index(TriggerIndex(self._patterns.values()))

    def _use_index(self, index: TriggerIndex) -> None:
        self._index = index
        self._unique_by_sc, self._unique_other = index.unique_by_syscall()
        self.longest_window_s = index.longest_window_s

    def candidates(self, event: Mapping[str, Any]) -> list[Trigger]:
        """Triggers whose cheap keys an event meets (see ``TriggerIndex``)."""
        return self._index.candidates(event)

    # -- Engine protocol -------------------------------------------------------------------
    def process(self, event: Mapping[str, Any]) -> list[Alert]:
        alerts: list[Alert] = []
        self.run((event,), alerts)
        return alerts

    def process_batch(self, events: Iterable[Mapping[str, Any]]) -> list[Alert]:
        out: list[Alert] = []
        self.run(events, out)
        return out

    def run(
        self,
        events: Iterable[Mapping[str, Any]],
        alerts: list[Alert],
        failed: Callable[[Mapping[str, Any], Exception], None] | None = None,
    ) -> None:
        """The events in order, their alerts appended to ``alerts`` (absences that came due
        first). An event the engine fails on (a shape its index cannot read) goes to
        ``failed`` and the rest go on; without ``failed`` the error propagates. Alerts
        appended before a failure are complete and kept."""
        if self._ready:
            alerts.extend(self._ready)
            self._ready.clear()
        match = self._match
        open_matches = match.tables()
        deadlines = match.deadlines
        by_sc, other = self._unique_by_sc, self._unique_other
        advance = self._advance
        clock = self._clock
        try:
            for event in events:
                try:
                    t = event.get("time")
                    if t.__class__ is float or isinstance(t, _NUMBER):
                        if t > clock:
                            clock = float(t)
                        if deadlines and deadlines[0][0] < clock:
                            alerts.extend(match.fire_deadlines(clock))
                    try:
                        unique = by_sc.get(event.get("syscall"), other)
                    except TypeError:  # an unhashable syscall value
                        unique = other
                    # One event never both starts and completes a sequence (partials remember
                    # their last event), so the order of candidates does not matter.
                    for trig in unique(event):
                        waits = trig.waits_on
                        if waits is not None and not open_matches.get(waits):
                            continue  # a later step with no open match of its pattern anywhere
                        try:
                            hit = trig.fast(event)
                        except Exception:  # a condition must never take the worker down
                            hit = False
                        if hit:
                            alerts.extend(advance(trig, event))
                except Exception as exc:
                    if failed is None:
                        raise
                    failed(event, exc)
        finally:
            self._clock = clock

    def expire(self, now: float) -> None:
        """Drop state older than its window; absences whose window ran out become alerts
        (returned by the next ``process`` call, or by ``flush``)."""
        self._ready.extend(self._match.fire_deadlines(now))
        self._match.expire(now)

    def flush(self, now: float | None = None) -> list[Alert]:
        """Alerts that became due without a new event (absences); ``now`` advances the clock."""
        if now is not None:
            self.expire(now)
        out, self._ready = self._ready, []
        return out

    def fork(self) -> PatternEngine:
        """A new engine on the same compiled patterns with empty state (cheap: no re-load),
        e.g. one per Kafka partition."""
        # The index holds no match state (what it remembers is pure lookups), so forks share
        # it; a fork whose patterns change builds its own.
        eng = PatternEngine(
            self._patterns.values(), self.allow, self.ctx, self.errors, self.dirs, self._index, self._snapshot
        )
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
        from patterns.engine.assemble import compile_raw
        from patterns.engine.loader import RawPattern

        cp, errs = compile_raw(RawPattern(data, "<custom>", custom=True), self.ctx, self.allow)
        if cp is None:
            return errs
        from patterns.engine.examples import check_examples

        errs = check_examples(cp, self.allow)
        if errs:
            return errs
        self._patterns[cp.id] = cp
        self._match.drop(cp.id)
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
            self._match.drop(pattern_id)
            self._reindex()
        return True

    def delete_pattern(self, pattern_id: str) -> bool:
        if self._patterns.pop(pattern_id, None) is None:
            return False
        self._match.drop(pattern_id)
        self._reindex()
        return True

    def reload(self, dirs: Iterable[Path] | None = None) -> list[PatternError]:
        """Re-read the pattern directories; unchanged patterns keep their match state,
        custom (upserted) patterns stay."""
        from patterns.engine.assemble import build_engine

        fresh = build_engine(list(dirs) if dirs is not None else self.dirs, [])
        custom = {k: v for k, v in self._patterns.items() if v.info.custom and k not in fresh._patterns}
        keep: dict[str, Any] = {}
        for pid, cp in fresh._patterns.items():
            old = self._patterns.get(pid)
            if old is not None and old.canon == cp.canon and pid in self._match.tables():
                keep[pid] = self._match.tables()[pid]
        self._patterns = {**fresh._patterns, **custom}
        self.ctx, self.allow, self.errors = fresh.ctx, fresh.allow, fresh.errors
        self._match.keep_only(keep)
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
        t = e.get("time")
        if t.__class__ is not float:
            t = float(t or 0.0)
        if kind == "threshold":
            return self._match.threshold(cp, e, t)
        if kind == "sequence":
            return self._match.sequence(cp, trig.step, e, t)
        return self._match.absence(cp, trig.step, e, t)

    def state_size(self) -> int:
        """Live state entries (keys) across patterns: for memory tests and metrics."""
        return self._match.state_size()
