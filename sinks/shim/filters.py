"""Query parameters of the events API as one value object, turned into SQL by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ContainerMode = Literal["with", "without", "all"]
SORT_KEYS = ("last_seen", "first_seen", "timestamp", "severity", "count", "rule")


@dataclass(frozen=True)
class EventFilter:
    """Every list/stats/delete filter; empty fields do not filter."""

    severity: tuple[str, ...] = ()
    rule: tuple[str, ...] = ()
    technique: tuple[str, ...] = ()
    tactic: tuple[str, ...] = ()
    container: str | None = None  # id prefix or part of the name
    container_mode: ContainerMode = "with"
    host: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None  # free text over message, rule, process, container, host
    ids: tuple[str, ...] = field(default=())

    def is_empty(self) -> bool:
        """True when nothing narrows the selection (container mode ``all`` included)."""
        return not (
            self.severity
            or self.rule
            or self.technique
            or self.tactic
            or self.container
            or self.container_mode != "all"
            or self.host
            or self.since
            or self.until
            or self.q
            or self.ids
        )


@dataclass(frozen=True)
class Page:
    limit: int = 50
    offset: int = 0
    sort: str = "last_seen"
    order: Literal["asc", "desc"] = "desc"
