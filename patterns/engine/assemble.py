"""Building engines: compile the library's files (and custom specs) into a PatternEngine,
and validate one spec against the shipped lists, macros and allow entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from patterns.engine.api import PatternError
from patterns.engine.compile import CompiledAllow, CompiledPattern, compile_allow, compile_pattern, error_for
from patterns.engine.conditions import Context
from patterns.engine.core import PatternEngine
from patterns.engine.loader import Loaded, RawPattern, load_dirs, parse_spec, snapshot


def compile_raw(
    raw: RawPattern, ctx: Context, allow: list[CompiledAllow]
) -> tuple[CompiledPattern | None, list[PatternError]]:
    spec, errs = parse_spec(raw)
    if spec is None:
        return None, errs
    try:
        return compile_pattern(spec, raw.file, ctx, allow, custom=raw.custom), []
    except ValueError as exc:
        return None, [error_for(exc, raw.file, spec.id)]


def assemble(
    loaded: Loaded, extra_specs: Iterable[Mapping[str, Any]] = (), dirs: Iterable[Path] = ()
) -> PatternEngine:
    errors = list(loaded.errors)
    ctx = Context(loaded.lists, loaded.macros)
    allow: list[CompiledAllow] = []
    for entry, f in loaded.allow:
        try:
            allow.append(compile_allow(entry, f, ctx))
        except ValueError as exc:
            errors.append(error_for(exc, f, entry.id))
    compiled: dict[str, CompiledPattern] = {}
    raws = list(loaded.patterns) + [RawPattern(dict(s), "<extra>", custom=True) for s in extra_specs]
    for raw in raws:
        cp, errs = compile_raw(raw, ctx, allow)
        if cp is None:
            errors.extend(errs)
            continue
        if cp.id in compiled and not raw.custom:
            errors.append(
                PatternError(
                    raw.file, cp.id, "id", f"duplicate id (first defined in {compiled[cp.id].info.file})"
                )
            )
            continue
        compiled[cp.id] = cp
    return PatternEngine(compiled.values(), allow, ctx, errors, dirs)


def build_engine(dirs: list[Path], extra_specs: list[Mapping[str, Any]]) -> PatternEngine:
    """Compile every pattern under ``dirs`` plus ``extra_specs`` (custom patterns, seed JSON items)."""
    from patterns.engine.loader import from_seed

    specs = [from_seed(s) if "indicators" in s else s for s in extra_specs]
    return assemble(load_dirs(dirs), specs, dirs)


_DEFAULT_CTX: tuple[dict[str, float], Context, list[CompiledAllow]] | None = None


def _default_ctx() -> tuple[Context, list[CompiledAllow]]:
    """The shipped library's lists, macros and allow-lists, re-read only when a file changed."""
    global _DEFAULT_CTX
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR

    snap = snapshot([DEFAULT_PATTERNS_DIR])
    if _DEFAULT_CTX is not None and _DEFAULT_CTX[0] == snap:
        return _DEFAULT_CTX[1], _DEFAULT_CTX[2]
    loaded = load_dirs([DEFAULT_PATTERNS_DIR])
    ctx = Context(loaded.lists, loaded.macros)
    allow = []
    for entry, f in loaded.allow:
        try:
            allow.append(compile_allow(entry, f, ctx))
        except ValueError:
            continue
    _DEFAULT_CTX = (snap, ctx, allow)
    return ctx, allow


def validate_one(spec: Mapping[str, Any]) -> list[PatternError]:
    """Schema, condition, technique ids and (when given) examples of one pattern, with the
    library's lists and macros in scope. No engine is touched."""
    from patterns.engine.examples import check_examples
    from patterns.engine.loader import from_seed

    try:
        data = from_seed(spec) if "indicators" in spec else dict(spec)
    except ValueError as exc:
        return [PatternError("<spec>", str(spec.get("id") or spec.get("name") or "") or None, None, str(exc))]
    ctx, allow = _default_ctx()
    cp, errs = compile_raw(RawPattern(data, "<spec>", custom=True), ctx, allow)
    if cp is None:
        return errs
    return check_examples(cp, allow)
