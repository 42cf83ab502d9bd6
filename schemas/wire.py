"""Wire format v2 of ``memtrail.events.raw``: an EventBatch with a process table.

A v1 batch repeats each event's whole process (exe, command line, up to five ancestors
with theirs) in every event: ~1,200 bytes of JSON per event. A v2 batch carries each
process once and each ancestor once; events reference them. ``expand`` turns a v2 batch
back into the self-contained v1 events (``schemas.events.Event``) that patterns, alerts
and sinks read: nothing is lost, and fields the encoder does not know (added by a newer
sensor) are carried through unchanged, on events, processes and ancestors alike.

The batch (``EventBatchV2``)::

    {"v": 2, "n": N, "host": H, "key": K, "clock": C,
     "procs":   {REF: {pid, ppid, uid, gid, comm, exe, cmdline, entity_id, start_*,
                       ..., "ancestors": [EID | {inline ancestor}, ...]}},
     "lineage": {EID: {pid, exe, comm, cmdline, ...}},
     "events":  [{ts_ns, time, syscall, ret, args, cgroup_id, ..., "p": REF, "P": {...}}]}

- ``REF`` is the process's ``entity_id``; a process without one gets a batch-local
  ``#N``, and one that lacks a field of its entity's entry its own ``<entity_id>#N``
  (``"#notid": true`` in an entry: that process had no ``tid``). A process whose fields change within the batch (an exec keeps its entity id
  but changes exe and cmdline; setuid changes uid) keeps its table entry; the event
  carries the fields that differ in ``P`` (``process = {**procs[REF], **P}``).
- ``tid`` is the event's: it is in ``P`` when it differs from the pid, else equals it.
- ``lineage`` holds each ancestor once by entity id (the ancestor dict without it); an
  ancestor without an entity id, or whose fields differ from the lineage entry, stays
  inline in the ``ancestors`` list.
- ``n`` (optional, written second): how many events the batch holds, so that the stream
  tier counts what it forwards unread without scanning it (metrics only).
- ``clock`` (optional): the sensor's wall − monotonic clock offset; an event without
  ``time`` has ``time = ts_ns / 1e9 + clock`` (bit for bit what the sensor computed).
- Event fields left out when they are what ``expand`` restores: ``v`` (1), ``host``
  (the batch's), ``id`` (``<host>:<ts_ns>:<tid>``), ``container_id`` (the key, or null
  for a ``host:`` key), ``source`` ("syscall"). Container metadata is never in raw
  events (the stream tier's join adds it, as a ``containers`` table per message).

An event without a process object (not a valid Event) is carried unchanged, without
``p``, so that the stream tier's check rejects it with its reason.

Third-party consumers: ``events_of(orjson.loads(message))`` gives v1 events for both
versions. ``expand`` shares one process dict between the events of one process that
need no ``P`` (treat the dicts as read-only, or ``copy.deepcopy`` them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WIRE_VERSION: Literal[2] = 2
_MISSING = object()


class ProcessEntry(BaseModel):
    """One process of a v2 batch (``procs``): ``ProcessInfo`` without ``tid``, ancestors by reference."""

    model_config = ConfigDict(extra="allow")

    pid: int
    ppid: int
    uid: int | None = None
    gid: int | None = None
    comm: str | None = None
    exe: str | None = None
    cmdline: str | None = None
    entity_id: str | None = None
    ancestors: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="Parent first: an entity id (a key of the batch's lineage) or an inline ancestor dict",
    )


class WireEvent(BaseModel):
    """One event of a v2 batch: an ``Event`` without its process (``p``: a key of ``procs``)."""

    model_config = ConfigDict(extra="allow")

    ts_ns: int
    time: float | None = Field(default=None, description="Absent when it is ts_ns / 1e9 + the batch's clock")
    syscall: str
    p: str = Field(description="Key of the batch's procs table (the process's entity id, or '#N')")
    P: dict[str, Any] | None = Field(
        default=None, description="Process fields of this event that differ from procs[p] (tid when != pid)"
    )
    id: str | None = Field(default=None, description="Absent when it is '<host>:<ts_ns>:<tid>'")
    host: str | None = Field(default=None, description="Absent when it is the batch's")
    container_id: str | None = Field(
        default=None, description="Absent when it is the key (or null for a host: key)"
    )
    source: str | None = Field(default=None, description="Absent when 'syscall'")
    ret: int | None = None
    args: dict[str, Any] = Field(default_factory=dict)


class EventBatchV2(BaseModel):
    """What one Kafka message on memtrail.events.raw carries (schema version 2)."""

    v: Literal[2] = WIRE_VERSION
    n: int | None = Field(
        default=None,
        ge=0,
        description="How many events: a consumer that forwards the batch unread counts them from here",
    )
    host: str
    key: str = Field(description="Partition key: container id, or host:<name>")
    procs: dict[str, ProcessEntry] = Field(description="The batch's processes by reference")
    lineage: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Ancestors by entity id (the ancestor dict without entity_id)"
    )
    clock: float | None = Field(
        default=None, description="Wall - monotonic seconds: an event without time has ts_ns / 1e9 + clock"
    )
    events: list[WireEvent]


class WireError(ValueError):
    """A v2 batch whose tables do not resolve (an unknown reference, a malformed table)."""


def _container_default(key: str) -> str | None:
    return None if key.startswith("host:") else key


class _Encoder:
    """The tables of one batch being encoded."""

    __slots__ = ("anc_refs", "by_obj", "lineage", "n", "procs", "seen")

    def __init__(self) -> None:
        self.procs: dict[str, dict[str, Any]] = {}
        self.lineage: dict[str, dict[str, Any]] = {}
        #: id(ancestors list) -> its encoded form: events of one process share the list
        self.anc_refs: dict[int, tuple[Any, list[Any]]] = {}
        #: id(process dict) -> (the dict, its result): events may share one process dict
        self.by_obj: dict[int, tuple[Mapping[str, Any], tuple[str, dict[str, Any] | None]]] = {}
        self.n = 0
        #: entity id -> (keys, values, result) of the last process dict encoded for it: the
        #: events of one process mostly repeat it (tuple compares are identity-first, in C)
        self.seen: dict[Any, tuple[tuple[Any, ...], tuple[Any, ...], tuple[str, dict[str, Any] | None]]] = {}

    def ancestors(self, ancestors: Any) -> list[Any]:
        hit = self.anc_refs.get(id(ancestors))
        if hit is not None and hit[0] is ancestors:
            return hit[1]
        out: list[Any] = []
        lineage = self.lineage
        for a in ancestors or ():
            eid = a.get("entity_id") if type(a) is dict else None
            if type(eid) is not str or eid.startswith("#"):
                out.append(a)
                continue
            rest = {k: v for k, v in a.items() if k != "entity_id"}
            known = lineage.setdefault(eid, rest)
            out.append(eid if known == rest else a)
        self.anc_refs[id(ancestors)] = (ancestors, out)
        return out

    def process(self, proc: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """(reference, overrides) of one event's process."""
        same = self.by_obj.get(id(proc))
        if same is not None and same[0] is proc:  # a process dict shared by events (the sensor's)
            return same[1]
        out = self._process_of(proc)
        self.by_obj[id(proc)] = (proc, out)
        return out

    def _process_of(self, proc: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
        eid = proc.get("entity_id")
        vals = tuple(proc.values())
        hit = self.seen.get(eid if type(eid) is str else None)
        if hit is not None and hit[1] == vals and hit[0] == tuple(proc):
            return hit[2]
        out = self._process(proc, eid)
        self.seen[eid if type(eid) is str else None] = (tuple(proc), vals, out)
        return out

    def _process(self, proc: Mapping[str, Any], eid: Any) -> tuple[str, dict[str, Any] | None]:
        tid = proc.get("tid", _MISSING)
        usable = type(eid) is str and eid != "" and "#" not in eid and tid is not _MISSING
        if usable:
            entry = self.procs.get(eid)
            if entry is None:
                self.procs[eid] = self._entry(proc)
                return eid, ({"tid": tid} if tid != proc.get("pid") else None)
            over: dict[str, Any] = {}
            in_entry = 0
            for k, v in proc.items():
                if k == "tid":
                    continue
                if k == "ancestors":
                    v = self.ancestors(v)
                old = entry.get(k, _MISSING)
                if old is not _MISSING:
                    in_entry += 1
                if old is not v and old != v:
                    over[k] = v
            if in_entry == len(entry):  # no entry field this process lacks: overrides say it all
                if tid != proc.get("pid"):
                    over["tid"] = tid
                return eid, over or None
        self.n += 1
        ref = f"{eid}#{self.n}" if type(eid) is str and eid else f"#{self.n}"
        entry = self._entry(proc)
        if tid is _MISSING:
            entry["#notid"] = True
        self.procs[ref] = entry
        return ref, ({"tid": tid} if tid is not _MISSING and tid != proc.get("pid") else None)

    def _entry(self, proc: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (self.ancestors(v) if k == "ancestors" else v) for k, v in proc.items() if k != "tid"}


def encode(
    host: str, key: str, events: Sequence[Mapping[str, Any]], clock: float | None = None
) -> dict[str, Any]:
    """The v2 batch (a dict for ``orjson.dumps``) of self-contained v1 ``events``.

    ``clock``: the sensor's wall − monotonic offset; an event whose ``time`` is exactly
    ``ts_ns / 1e9 + clock`` (what the decoder computes) is sent without it."""
    enc = _Encoder()
    out: list[dict[str, Any]] = []
    cdefault = _container_default(key)
    process = enc.process
    for ev in events:
        if type(ev.get("process")) is not dict:
            out.append(dict(ev))  # not an Event (no process): carried as it is, for the worker's check
            continue
        e = dict(ev)
        proc = e.pop("process")
        ref, over = process(proc)
        v = e.pop("v", 1)
        ev_host = e.pop("host", _MISSING)
        eid = e.pop("id", _MISSING)
        cid = e.pop("container_id", _MISSING)
        src = e.pop("source", _MISSING)
        if clock is not None:
            ts = e.get("ts_ns")
            if type(ts) is int and e.get("time") == ts / 1e9 + clock:
                del e["time"]
        e["p"] = ref
        if over:
            e["P"] = over
        if ev_host is not _MISSING and ev_host != host:
            e["host"] = ev_host
        if eid is not _MISSING and eid != f"{e.get('host', host)}:{e.get('ts_ns')}:{proc.get('tid')}":
            e["id"] = eid
        if cid != cdefault:
            e["container_id"] = cid
        if src is not _MISSING and src != "syscall":
            e["source"] = src
        if v != 1:
            e["v"] = v
        out.append(e)
    doc: dict[str, Any] = {"v": WIRE_VERSION, "n": len(out), "host": host, "key": key, "procs": enc.procs}
    if clock is not None:
        doc["clock"] = clock
    if enc.lineage:
        doc["lineage"] = enc.lineage
    doc["events"] = out
    return doc


class _Lineage:
    """Resolves ancestor references of one batch (each ancestor dict built once)."""

    __slots__ = ("cache", "table")

    def __init__(self, table: Any) -> None:
        if not isinstance(table, dict):
            raise WireError("v2 batch lineage is not an object")
        self.table = table
        self.cache: dict[str, dict[str, Any]] = {}

    def expand(self, ref: str, ancestors: Any) -> list[Any]:
        if type(ancestors) is not list:
            raise WireError(f"process {ref!r}: ancestors is not a list")
        out: list[Any] = []
        for a in ancestors:
            if type(a) is str:
                anc = self.cache.get(a)
                if anc is None:
                    base = self.table.get(a)
                    if type(base) is not dict:
                        raise WireError(f"ancestor {a!r} not in the batch's lineage")
                    anc = self.cache[a] = {"entity_id": a, **base}
                out.append(anc)
            else:
                out.append(a)
        return out


def _full_processes(doc: Mapping[str, Any], lineage: _Lineage) -> dict[str, dict[str, Any]]:
    procs = doc.get("procs")
    if not isinstance(procs, dict):
        raise WireError("v2 batch without a procs table")
    full: dict[str, dict[str, Any]] = {}
    for ref, entry in procs.items():
        if type(entry) is not dict:
            raise WireError(f"process {ref!r} is not an object")
        p = dict(entry)
        ancestors = entry.get("ancestors")
        if ancestors is not None:
            p["ancestors"] = lineage.expand(ref, ancestors)
        if p.pop("#notid", None) is None:
            p["tid"] = p.get("pid")
        full[ref] = p
    return full


def expand(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The self-contained v1 events of a v2 batch (decoded JSON); the event dicts of
    ``doc`` are completed in place. Raises ``WireError`` on a reference that does not
    resolve; an event that is not an object is returned as it is (the caller's check
    rejects it)."""
    lineage = _Lineage(doc.get("lineage") or {})
    full = _full_processes(doc, lineage)
    host = doc.get("host")
    key = doc.get("key")
    cdefault = _container_default(key) if isinstance(key, str) else None
    clock = doc.get("clock")
    if clock is not None and type(clock) not in (float, int):
        raise WireError("batch clock is not a number")
    events = doc.get("events")
    if not isinstance(events, list):
        raise WireError("batch has no 'events' list")
    for e in events:
        if type(e) is not dict or "p" not in e:
            continue  # not an encoded event (see ``encode``): left as it is
        ref = e.pop("p")
        proc = full.get(ref) if type(ref) is str else None
        if proc is None:
            raise WireError(f"event process {ref!r} not in the batch's procs")
        over = e.pop("P", None)
        if over:
            if type(over) is not dict:
                raise WireError("event field 'P' is not an object")
            proc = {**proc, **over}
            if "ancestors" in over:
                proc["ancestors"] = lineage.expand(ref, over["ancestors"])
        e["process"] = proc
        if "v" not in e:
            e["v"] = 1
        if "host" not in e:
            e["host"] = host
        if "id" not in e:
            e["id"] = f"{e['host']}:{e.get('ts_ns')}:{proc.get('tid')}"
        if "container_id" not in e:
            e["container_id"] = cdefault
        if "source" not in e:
            e["source"] = "syscall"
        if "time" not in e and clock is not None:
            ts = e.get("ts_ns")
            if type(ts) is not int:
                raise WireError("event without time has no integer ts_ns")
            e["time"] = ts / 1e9 + clock
    return events


def events_of(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The self-contained events of a decoded EventBatch, v1 or v2 (third-party consumers)."""
    if doc.get("v") == WIRE_VERSION:
        return expand(doc)
    events = doc.get("events")
    if not isinstance(events, list):
        raise WireError("batch has no 'events' list")
    return events
