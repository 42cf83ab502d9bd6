"""The pattern schema (pydantic, unknown keys rejected) — documented field by field in docs/patterns.md."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from patterns.engine.regex import Regex, RegexError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(v: Any) -> float:
    """Seconds from a number or a string like ``500ms``, ``10s``, ``5m``, ``1h``."""
    if isinstance(v, bool):
        raise ValueError("a duration is a number of seconds or a string like '10s'")
    if isinstance(v, int | float):
        if v <= 0:
            raise ValueError("a duration must be positive")
        return float(v)
    if isinstance(v, str):
        m = _DURATION.match(v)
        if m:
            secs = float(m.group(1)) * _UNITS[m.group(2)]
            if secs > 0:
                return secs
    raise ValueError(f"bad duration {v!r} (use seconds or '500ms', '10s', '5m', '1h')")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


#: ``pod``: Kubernetes namespace + pod name (from ``kubernetes.*`` or ``container.pod_*``), any host.
Key = Literal["process", "tree", "container", "host", "pod"]


class FieldRef(_Strict):
    """A value taken from an event: a field, optionally narrowed by a regex's first group."""

    field: str
    regex: str | None = None

    @field_validator("regex")
    @classmethod
    def _rx(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                rx = Regex(v)
            except RegexError as exc:
                raise ValueError(f"bad regex: {exc}") from None
            if rx.groups < 1:
                raise ValueError("the regex needs one capturing group: the value to take")
        return v


Ref = str | FieldRef


class _Windowed(_Strict):
    key: Key = "process"
    window: float

    @field_validator("window", mode="before")
    @classmethod
    def _w(cls, v: Any) -> float:
        return parse_duration(v)


class Step(_Strict):
    name: str | None = None
    condition: Any
    #: variable -> where to take it from in this step's event (e.g. ``fd: ret``)
    capture: dict[str, Ref] = Field(default_factory=dict)
    #: variable (captured by an earlier step) -> where this event must carry the same value;
    #: a list means any of these places.
    bind: dict[str, Ref | list[Ref]] = Field(default_factory=dict)


class Sequence(_Windowed):
    steps: list[Step] = Field(min_length=2, max_length=8)


class Threshold(_Windowed):
    count: int = Field(ge=2, le=10000)
    condition: Any
    #: count distinct values of this field instead of events
    distinct: str | None = None


class Absence(_Windowed):
    """``first`` not followed by ``then`` (same key, bindings hold) within ``window``."""

    first: Step
    then: Step


class Examples(_Strict):
    #: each item is one event, or a list of events fed in order
    match: list[Any] = Field(min_length=1)
    no_match: list[Any] = Field(min_length=1)


TECHNIQUE_RX = re.compile(r"^T\d{4}(\.\d{3})?$")


class PatternSpec(_Strict):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
    name: str = Field(min_length=3)
    description: str = Field(min_length=10)
    severity: Literal["info", "warning", "error", "critical"]
    techniques: list[str] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    category: str | None = None
    maturity: Literal["stable", "incubating", "sandbox", "deprecated"] = "stable"
    version: str = "1"
    source: str = "syscall"
    enabled: bool = True
    condition: Any = None
    sequence: Sequence | None = None
    threshold: Threshold | None = None
    absence: Absence | None = None
    exceptions: list[Any] = Field(default_factory=list)
    #: readable line; ``{field.path}`` placeholders are filled from the (last) evidence event
    output: str | None = None
    #: required for the shipped library (tests and lint check it); optional for custom patterns
    examples: Examples | None = None
    #: ids of patterns merged into this one (they no longer exist; tuning keyed on them moves here)
    replaces: list[str] = Field(default_factory=list)

    @field_validator("techniques")
    @classmethod
    def _tech(cls, v: list[str]) -> list[str]:
        for t in v:
            if not TECHNIQUE_RX.match(t):
                raise ValueError(f"'{t}' is not an ATT&CK technique id like T1055 or T1055.008")
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _ver(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) else v

    @model_validator(mode="after")
    def _one_kind(self) -> PatternSpec:
        kinds = [k for k in ("condition", "sequence", "threshold", "absence") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "exactly one of condition, sequence, threshold, absence is required"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self

    @property
    def kind(self) -> str:
        for k in ("sequence", "threshold", "absence"):
            if getattr(self, k) is not None:
                return k
        return "condition"


class AllowEntry(_Strict):
    """A global exception: events matching ``condition`` raise no alert from the selected patterns."""

    id: str
    description: str
    source: str = Field(description="Where this known-good behaviour was observed or documented")
    condition: Any
    patterns: list[str] = Field(default_factory=list, description="ids; empty = every pattern")
    tags: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)


class Family(_Strict):
    """Related patterns from one template: each ``vars`` row fills ``{name}`` placeholders.

    A string that is exactly ``{name}`` takes the variable's value with its type (a list
    stays a list), so rows can carry lists and conditions, not only words.
    """

    family: str
    vars: list[dict[str, Any]] = Field(min_length=1)
    template: dict[str, Any]


class PatternFile(_Strict):
    lists: dict[str, list[Any]] = Field(default_factory=dict)
    macros: dict[str, Any] = Field(default_factory=dict)
    allow: list[AllowEntry] = Field(default_factory=list)
    patterns: list[dict[str, Any]] = Field(default_factory=list)
    families: list[dict[str, Any]] = Field(default_factory=list)
