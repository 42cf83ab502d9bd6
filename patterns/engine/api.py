"""The engine's public contract, used by the stream tier, the shim and the CLI.

Implementations live beside this file; callers import only these names.

Events are plain dicts shaped like ``schemas.events.Event`` as JSON (``syscall``,
``time``, ``ts_ns``, ``args``, ``process``, ``container_id``, ``container``...).
Windows are measured on the event's ``time`` (wall seconds, same clock on every source).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from schemas.alerts import Alert


@dataclass(frozen=True)
class PatternError:
    """One rejected pattern or file: where and why, precisely."""

    file: str
    pattern_id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f" [{self.pattern_id}]" if self.pattern_id else "")
        return f"{where}{' ' + self.field if self.field else ''}: {self.message}"


@dataclass(frozen=True)
class PatternInfo:
    """What sinks (Wazuh rules), the shim (pattern list) and the CLI need to know of a pattern."""

    id: str
    name: str
    description: str
    severity: str  # info | warning | error | critical
    techniques: tuple[str, ...]  # ATT&CK ids as written in the pattern
    tags: tuple[str, ...]
    category: str | None
    source: str  # syscall | k8s_audit | network
    file: str
    custom: bool = False


class Engine(Protocol):
    errors: list[PatternError]  # patterns rejected at load (the rest still run)
    longest_window_s: float  # for state rebuild on partition takeover

    def process(self, event: Mapping[str, Any]) -> list[Alert]: ...
    def process_batch(self, events: Iterable[Mapping[str, Any]]) -> list[Alert]: ...
    def expire(self, now: float) -> None: ...
    def pattern_count(self) -> int: ...
    def patterns(self) -> list[PatternInfo]: ...
    def upsert_pattern(self, spec: Mapping[str, Any]) -> list[PatternError]:
        """Add or replace one (custom) pattern at run time; errors mean it was not applied."""
        ...

    # Run-time changes (additive to the protocol above):
    def delete_pattern(self, pattern_id: str) -> bool:
        """Remove one pattern and its state at run time; False if there was none."""
        ...

    def set_enabled(self, pattern_id: str, enabled: bool) -> bool:
        """Switch one pattern off or on, nothing else about it; False if there is none."""
        ...

    def flush(self, now: float | None = None) -> list[Alert]:
        """Alerts that became due without a new event ("A not followed by B" windows that
        ran out); ``now`` (event-time seconds) advances the clock first."""
        ...


def load_engine(dirs: Iterable[Path], extra_specs: Iterable[Mapping[str, Any]] = ()) -> Engine:
    """Compile every pattern under ``dirs`` (YAML, and the seed's JSON form) plus ``extra_specs``."""
    from patterns.engine.assemble import build_engine  # implemented by the engine module

    return build_engine(list(dirs), list(extra_specs))


def validate_spec(spec: Mapping[str, Any]) -> list[PatternError]:
    """Check one pattern spec (as parsed from YAML/JSON) without loading it anywhere."""
    from patterns.engine.assemble import validate_one

    return validate_one(spec)


def list_patterns(dirs: Iterable[Path]) -> tuple[list[PatternInfo], list[PatternError]]:
    """Metadata of every valid pattern under ``dirs`` and the errors of the rest."""
    engine = load_engine(dirs)
    return engine.patterns(), list(engine.errors)
