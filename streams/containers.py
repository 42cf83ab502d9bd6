"""The container table as the enrichment reads it (pure: no Faust, no Kafka).

The compacted ``memtrail.containers`` topic holds one ContainerMeta JSON per container id
(a tombstone deletes it). ``ContainerView`` turns a mapping of those raw records (the
worker's Faust GlobalTable, whose changelog *is* that topic) into the ``id -> dict``
mapping ``enrich.join_containers`` looks up: a record is decoded on its first lookup and
kept while the record stays the same object, so a message costs one dict lookup per
container, not a decode. A record that is not a JSON object reads as unknown (logged once
per record) instead of stopping the table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

log = logging.getLogger(__name__)


class ContainerView(Mapping[str, Mapping[str, Any]]):
    def __init__(self, records: Mapping[bytes, bytes]) -> None:
        self.records = records
        self._decoded: dict[str, tuple[bytes, Mapping[str, Any] | None]] = {}

    def get(self, cid: str, default: Any = None) -> Any:
        raw = self.records.get(cid.encode())
        if raw is None:
            self._decoded.pop(cid, None)
            return default
        hit = self._decoded.get(cid)
        if hit is not None and hit[0] is raw:
            return default if hit[1] is None else hit[1]
        meta: Mapping[str, Any] | None = None
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            log.warning("container %s: record is not JSON (%s): not joined", cid, exc)
        else:
            if isinstance(doc, dict):
                meta = doc
            else:
                log.warning("container %s: record is %s, not an object: not joined", cid, type(doc).__name__)
        self._decoded[cid] = (raw, meta)
        return default if meta is None else meta

    def __getitem__(self, cid: str) -> Mapping[str, Any]:
        meta = self.get(cid)
        if meta is None:
            raise KeyError(cid)
        return meta

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str) and self.get(cid) is not None

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in list(self.records))

    def __len__(self) -> int:
        return len(self.records)
