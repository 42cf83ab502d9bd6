"""Poison containment (pure: no Kafka, no Faust): one event's failure is that event's failure.

Every agent hands its per-event work to these helpers. What fails on one event comes back
as a ``Failure`` (the event and why) for the dead-letter topic, and the rest of the batch
goes on. Output is encoded under an explicit size limit: an oversized batch is split, an
event that alone cannot be encoded or does not fit is a ``Failure``; an oversized or
unencodable alert is shrunk (deep nesting cut, long strings capped), never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.alerts import Alert
from streams.batches import encode_batch
from streams.correlate import Correlator, PartKey

#: What one failure reason may hold (exception texts can quote megabytes of input).
REASON_MAX = 300
#: An alert or dead-letter record that cannot be encoded as it is keeps this much nesting...
SHRINK_DEPTH = 24
#: ...and strings of at most this many characters.
SHRINK_STR = 4096
TRUNCATED = "…[truncated]"


@dataclass
class Failure:
    """One event (or alert) that could not be handled, and why."""

    reason: str
    value: Any


def reason_of(what: str, exc: BaseException) -> str:
    text = f"{what}: {type(exc).__name__}: {exc}"
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def shrink(value: Any, depth: int = SHRINK_DEPTH, max_str: int = SHRINK_STR) -> Any:
    """A JSON-encodable copy of ``value`` cut at ``depth`` levels, strings capped at ``max_str``.

    Anything orjson cannot encode (a NUL is fine, deep nesting and odd types are not) becomes
    a short text; cut parts say so (``TRUNCATED``)."""
    if isinstance(value, str):
        return value if len(value) <= max_str else value[:max_str] + TRUNCATED
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 63:
            return str(value)  # orjson refuses integers beyond 64 bits
        return value
    if depth <= 0:
        return TRUNCATED
    if isinstance(value, Mapping):
        return {str(k)[:max_str]: shrink(v, depth - 1, max_str) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shrink(v, depth - 1, max_str) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)[:max_str]


def alert_doc(alert: Alert) -> dict[str, Any]:
    """``alert.to_json_dict()``; evidence too deep for pydantic's dump is shrunk first."""
    try:
        return alert.to_json_dict()
    except ValueError:  # "Maximum serialization depth exceeded"
        small = alert.model_copy(update={"evidence": [shrink(e) for e in alert.evidence]})
        return small.to_json_dict()


def alert_bytes(doc: Mapping[str, Any], limit: int) -> bytes | None:
    """The alert as JSON of at most ``limit`` bytes: as it is, else with its evidence shrunk
    (nesting cut, strings capped, then fewer events); None when even that does not fit."""
    try:
        value = orjson.dumps(doc)
        if len(value) <= limit:
            return value
    except (TypeError, orjson.JSONEncodeError):
        pass
    for depth, max_str in ((SHRINK_DEPTH, SHRINK_STR), (8, 512), (4, 128)):
        small = {k: (shrink(v, depth, max_str) if k == "evidence" else v) for k, v in doc.items()}
        try:
            value = orjson.dumps(shrink(small, SHRINK_DEPTH + 4, max(max_str, 1024)))
        except (TypeError, orjson.JSONEncodeError):
            continue
        if len(value) <= limit:
            return value
    return None


def fit_batches(
    key: str,
    host: str | None,
    events: list[dict[str, Any]],
    containers: Mapping[str, Any] | None,
    limit: int,
) -> tuple[list[bytes], list[Failure]]:
    """EventBatch messages of at most ``limit`` bytes holding ``events`` in order.

    One message when it fits (the common case, one encode); else halves, recursively. An
    event that alone cannot be encoded (nesting beyond orjson's limit, an odd type) or is
    larger than ``limit`` is a Failure; nothing else is left out."""
    out: list[bytes] = []
    failures: list[Failure] = []

    def table_for(part: list[dict[str, Any]]) -> Mapping[str, Any] | None:
        if not containers:
            return None
        ids = {e.get("container_id") for e in part}
        return {cid: meta for cid, meta in containers.items() if cid in ids} or None

    def go(part: list[dict[str, Any]], whole: bool) -> None:
        try:
            value = encode_batch(key, host, part, containers if whole else table_for(part))
        except (TypeError, orjson.JSONEncodeError) as exc:
            if len(part) == 1:
                failures.append(Failure(reason_of("event cannot be encoded", exc), part[0]))
                return
            value = b""
        if value and len(value) <= limit:
            out.append(value)
            return
        if len(part) == 1:
            failures.append(Failure(f"event too large: {len(value)} bytes > {limit}", part[0]))
            return
        mid = len(part) // 2
        go(part[:mid], False)
        go(part[mid:], False)

    if events:
        go(events, True)
    return out, failures


def each_contained(
    fn: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], events: list[dict[str, Any]], what: str
) -> tuple[list[dict[str, Any]], list[Failure]]:
    """``fn(events)``; when it raises, ``fn`` on each event alone: the ones it fails on are
    Failures, the others' results are kept in order."""
    try:
        return fn(events), []
    except Exception:
        pass
    kept: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for ev in events:
        try:
            kept.extend(fn([ev]))
        except Exception as exc:
            failures.append(Failure(reason_of(what, exc), ev))
    return kept, failures


class ContainedCorrelator(Correlator):
    """A Correlator on which an event that makes the engine or grouping raise is dead-lettered
    (``take_failures``) while the batch's other events and alerts go on. The loop is the
    engine's own per-event loop with a try around each event: no cost on good input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failures: list[Failure] = []
        #: Failures seen while replaying (state rebuild): counted, not dead-lettered again.
        self.replay_failures = 0
        self._replaying = 0

    def take_failures(self) -> list[Failure]:
        out, self._failures = self._failures, []
        return out

    def _fail(self, failure: Failure) -> None:
        if self._replaying:
            self.replay_failures += 1
        else:
            self._failures.append(failure)

    def process(self, partition: PartKey, events: Iterable[Mapping[str, Any]]) -> list[Alert]:
        self.assign(partition)
        engine = self.engines[partition]
        raw: list[Alert] = []

        def failed(ev: Mapping[str, Any], exc: Exception) -> None:
            self._fail(Failure(reason_of("engine failed on event", exc), ev))

        run = getattr(engine, "run", None)
        if run is not None:  # the engine goes on past a failing event itself
            run(self._fresh(partition, events), raw, failed)
        else:
            for ev in self._fresh(partition, events):
                try:
                    raw.extend(engine.process_batch([ev]))
                except Exception as exc:
                    failed(ev, exc)
        return self._group_contained(partition, raw, None)

    def _group_contained(self, partition: PartKey, alerts: list[Alert], settle: float | None) -> list[Alert]:
        try:
            return self._group(partition, alerts, settle)
        except Exception:
            pass
        out: dict[str, Alert] = {}
        for alert in alerts:
            try:
                grouped = self._group(partition, [alert])
            except Exception as exc:
                self._fail(Failure(reason_of("grouping failed on alert", exc), _alert_doc(alert)))
                continue
            for g in grouped:
                out.pop(g.id, None)
                out[g.id] = g
        if settle is not None:
            try:
                for g in self._group(partition, (), settle):
                    out.pop(g.id, None)
                    out[g.id] = g
            except Exception as exc:
                self._fail(Failure(reason_of("incident release failed", exc), {"partition": str(partition)}))
        return list(out.values())

    def replay(self, partition: PartKey, events: Iterable[Mapping[str, Any]]) -> int:
        self._replaying += 1
        try:
            return super().replay(partition, events)
        finally:
            self._replaying -= 1

    def finish_replay(self, partition: PartKey) -> int:
        self._replaying += 1
        try:
            return super().finish_replay(partition)
        except Exception:
            self.replay_failures += 1
            return 0
        finally:
            self._replaying -= 1

    def flush(self, now: float, skip: Iterable[PartKey] = ()) -> list[Alert]:
        out: list[Alert] = []
        skipped = set(skip)
        for p in list(self.engines):
            if p in skipped:
                continue
            try:
                out.extend(super().flush(now, skip=[q for q in self.engines if q != p]))
            except Exception as exc:
                self._fail(Failure(reason_of("flush failed", exc), {"partition": str(p)}))
        return out

    def release(self, now: float, skip: Iterable[PartKey] = ()) -> list[Alert]:
        out: list[Alert] = []
        skipped = set(skip)
        for p in list(self.mergers):
            if p in skipped:
                continue
            try:
                out.extend(super().release(now, skip=[q for q in self.mergers if q != p]))
            except Exception as exc:
                self._fail(Failure(reason_of("incident release failed", exc), {"partition": str(p)}))
        return out


def _alert_doc(alert: Any) -> Any:
    try:
        return alert.to_json_dict()
    except Exception:
        return repr(alert)[:SHRINK_STR]
