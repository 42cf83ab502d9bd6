"""Join events with container metadata (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def enrich_events(events: list[dict[str, Any]], containers: Mapping[str, Mapping[str, Any]]) -> int:
    """Fill ``event["container"]`` in place from ``containers`` (id → ContainerMeta dict).

    Returns how many events were filled. Events already carrying a container (e.g. a
    replay of the enriched topic) and host events (``container_id`` null) are left alone.
    """
    filled = 0
    for ev in events:
        cid = ev.get("container_id")
        if not cid or ev.get("container"):
            continue
        meta = containers.get(cid)
        if meta is not None:
            ev["container"] = meta
            filled += 1
    return filled
