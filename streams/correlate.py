"""Correlation state of one worker (pure: the engine, grouping, no Faust or Kafka).

One engine and one grouper per assigned partition of the enriched topic: every event of
a container (or of one host's non-container processes) is in one partition, so a
partition's sequence state is complete on the worker that owns it, and dropping a
revoked partition drops exactly its state. ``replay`` rebuilds a partition's state from
already-processed events with output discarded (see ``streams.recovery``). Audit events
(``memtrail.k8s.audit``) get their own engines, keyed ``("k8s_audit", partition)``.
Partition engines are forks of one template engine (compiled once, custom patterns
included); ``flush`` is called on a timer so absence alerts need no further event.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from patterns.engine.api import Engine, PatternError, load_engine
from schemas.alerts import Alert
from streams.grouping import Grouper
from streams.incidents import IncidentMerger

log = logging.getLogger(__name__)

EngineFactory = Callable[[list[Mapping[str, Any]]], Engine]


def default_engine_factory(dirs: list[Path]) -> EngineFactory:
    reported: set[str] = set()

    def build(extra: list[Mapping[str, Any]]) -> Engine:
        engine = load_engine(dirs, extra)
        for err in engine.errors:  # once per worker, not once per partition engine
            if str(err) not in reported:
                reported.add(str(err))
                log.warning("pattern rejected: %s", err)
        return engine

    return build


#: An engine state: an enriched-topic partition (int), or ("k8s_audit", partition).
PartKey = Hashable

#: Session events (streams.sessions.session_event) already fed, per partition.
_SESSION_SYSCALL = "k8s_session"
_MAX_SESSION_IDS = 20_000


class Correlator:
    def __init__(
        self,
        engine_factory: EngineFactory,
        grouping_window_s: float = 60.0,
        incident_window_s: float = 5.0,
        incident_hold_s: float = 1.0,
    ) -> None:
        self._factory = engine_factory
        self.grouping_window_s = grouping_window_s
        self.incident_window_s = incident_window_s
        self.incident_hold_s = incident_hold_s
        self.mergers: dict[PartKey, IncidentMerger] = {}
        self.custom_specs: dict[str, Mapping[str, Any]] = {}
        self.engines: dict[PartKey, Engine] = {}
        self.groupers: dict[PartKey, Grouper] = {}
        self._sessions_seen: dict[PartKey, OrderedDict[str, None]] = {}
        self._replay_clock: dict[PartKey, float] = {}
        # One engine built at start-up: fails fast on a broken library, gives longest_window_s,
        # and is forked (same compiled patterns, empty state) for every partition.
        self._template = engine_factory([])
        #: Library (built-in) ids: the patterns topic may switch them off and on, never replace
        #: or delete them (whoever can write the topic must not be able to blind detection quietly).
        self.builtin_ids = frozenset(p.id for p in self._template.patterns())

    @property
    def longest_window_s(self) -> float:
        return float(self._template.longest_window_s)

    def partitions(self) -> set[PartKey]:
        return set(self.engines)

    def _new_engine(self) -> Engine:
        fork = getattr(self._template, "fork", None)
        if fork is not None:  # ~1 ms instead of re-loading the library (0.4-0.8 s) per partition
            engine: Engine = fork()
            return engine
        return self._factory(list(self.custom_specs.values()))

    def assign(self, partition: PartKey) -> None:
        if partition not in self.engines:
            self.groupers[partition] = Grouper(self.grouping_window_s)
            self.mergers[partition] = IncidentMerger(self.incident_window_s, self.incident_hold_s)
            self._sessions_seen[partition] = OrderedDict()
            self.engines[partition] = self._new_engine()

    def drop(self, partition: PartKey) -> None:
        self.engines.pop(partition, None)
        self.groupers.pop(partition, None)
        self.mergers.pop(partition, None)
        self._sessions_seen.pop(partition, None)
        self._replay_clock.pop(partition, None)

    def _fresh(self, partition: PartKey, events: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
        """Drop a session event this partition already had (re-injected after an enrichment restart)."""
        seen = self._sessions_seen[partition]
        for e in events:
            if e.get("syscall") == _SESSION_SYSCALL:
                eid = str(e.get("id"))
                if eid in seen:
                    continue
                seen[eid] = None
                if len(seen) > _MAX_SESSION_IDS:
                    seen.popitem(last=False)
            yield e

    def _group(self, partition: PartKey, alerts: Iterable[Alert], settle: float | None = None) -> list[Alert]:
        """Incidents, grouped, to publish: one per alert id, its latest update. The engine's
        alerts are merged into incidents (one per attack: ``streams.incidents``), then
        repeats grouped; ``settle`` (event-time seconds) also releases incidents held until
        then. A group or incident that grows several times within one batch is published
        once in its final state (sinks upsert by id, so the intermediate states would be
        overwritten anyway): the patterns one event matches go out as one message."""
        grouper = self.groupers[partition]
        merger = self.mergers[partition]
        out: dict[str, Alert] = {}

        def publish(incidents: Iterable[Alert]) -> None:
            for incident in incidents:
                grouped = grouper.offer(incident)
                if grouped is not None:
                    out.pop(grouped.id, None)  # keep publication order = order of latest update
                    out[grouped.id] = grouped

        for alert in alerts:
            publish(merger.offer(alert))
        if settle is not None:
            publish(merger.settle_due(settle))
        return list(out.values())

    def process(self, partition: PartKey, events: Iterable[Mapping[str, Any]]) -> list[Alert]:
        """Run the engine on one partition's events; return the (grouped) alerts to publish."""
        self.assign(partition)
        return self._group(partition, self.engines[partition].process_batch(self._fresh(partition, events)))

    def replay(self, partition: PartKey, events: Iterable[Mapping[str, Any]]) -> int:
        """Feed already-processed events to rebuild state; their alerts were emitted before: discard."""
        evs = list(events)
        clock = self._replay_clock.get(partition, 0.0)
        for e in evs:
            t = e.get("time")
            if isinstance(t, int | float) and t > clock:
                clock = float(t)
        self._replay_clock[partition] = clock
        return len(self.process(partition, evs))

    def finish_replay(self, partition: PartKey) -> int:
        """Absences that came due before the last replayed event were emitted by the previous
        owner (it flushed on its timer): fire and discard them so they are not repeated."""
        clock = self._replay_clock.pop(partition, None)
        engine = self.engines.get(partition)
        if clock is None or engine is None:
            return 0
        # Likewise incidents whose hold ran out before the last replayed event.
        return len(self._group(partition, engine.flush(clock), settle=clock))

    def flush(self, now: float, skip: Iterable[PartKey] = ()) -> list[Alert]:
        """Expire old state and return the alerts that came due without a new event (absences).

        Called on a timer; ``skip`` names partitions whose state is being replayed.
        """
        stamp = datetime.fromtimestamp(now).astimezone()
        skipped = set(skip)
        out: list[Alert] = []
        for p, engine in list(self.engines.items()):
            if p in skipped:
                continue
            grouper = self.groupers.get(p)
            if grouper is None:
                continue
            out.extend(self._group(p, engine.flush(now), settle=now))
            grouper.expire(stamp)
            self.mergers[p].expire()
        return out

    def release(self, now: float, skip: Iterable[PartKey] = ()) -> list[Alert]:
        """Incidents whose hold ran out by ``now``, grouped, to publish (a timer, more often
        than ``flush``: it only looks at the held incidents)."""
        skipped = set(skip)
        out: list[Alert] = []
        for p, merger in list(self.mergers.items()):
            if p not in skipped and merger.held:
                out.extend(self._group(p, (), settle=now))
        return out

    def expire(self, now: float) -> None:
        stamp = datetime.fromtimestamp(now).astimezone()
        for p, engine in list(self.engines.items()):
            engine.expire(now)
            self.groupers[p].expire(stamp)
            self.mergers[p].expire()

    def _switch_builtin(self, op: str, pid: str, spec: Mapping[str, Any]) -> list[PatternError] | None:
        """A built-in takes only ``enabled`` from the patterns topic: the rest of the message (the
        shim sends the library's own spec) is never compiled, and a delete is refused."""
        if op == "delete":
            log.warning("patterns topic: delete of built-in %s refused (disable it instead)", pid)
            return [PatternError("<patterns topic>", pid, "id", "built-in patterns cannot be deleted")]
        enabled = spec.get("enabled", True) is not False
        for engine in (self._template, *self.engines.values()):
            engine.set_enabled(pid, enabled)
        log.warning("built-in pattern %s %s (patterns topic)", pid, "enabled" if enabled else "DISABLED")
        return None

    def apply_pattern_op(self, op: str, spec: Mapping[str, Any]) -> list[PatternError] | None:
        """Apply one message of the patterns topic to every engine, now and for later partitions."""
        pid = str(spec.get("id", ""))
        if pid in self.builtin_ids:
            return self._switch_builtin(op, pid, spec)
        if op == "delete":
            if self.custom_specs.pop(pid, None) is None:
                return None
            delete = getattr(self._template, "delete_pattern", None)
            if delete is not None:
                delete(pid)
                for engine in self.engines.values():
                    engine.delete_pattern(pid)
            else:  # an engine without delete: rebuild without it (window state restarts)
                self._template = self._factory(list(self.custom_specs.values()))
                for p in list(self.engines):
                    self.engines[p] = self._factory(list(self.custom_specs.values()))
            log.info("custom pattern %s deleted", pid)
            return None
        errors = self._template.upsert_pattern(spec)
        if errors:
            return errors
        self.custom_specs[pid] = spec
        for engine in self.engines.values():
            engine.upsert_pattern(spec)
        log.info("custom pattern %s applied", pid)
        return None
