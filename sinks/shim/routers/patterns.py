"""``/api/v1/patterns``: the library's patterns and custom ones; changes are published to workers.

Built-in (library) pattern ids cannot be replaced or deleted through the API: a POST of a
built-in id is a 409. A built-in can only be switched off and on again, explicitly
(``POST /{id}/disable``, ``/{id}/enable``), which is audited and shown in the list
(``disabled: true``). Every change needs the admin credential and is rate-limited.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, status
from fastapi import Path as PathParam

from sinks.shim import audit
from sinks.shim.auth import Admin, Principal
from sinks.shim.context import Ctx, ShimContext
from sinks.shim.models import PatternChanged, PatternCreated, PatternList
from sinks.shim.publisher import PublishError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/patterns", tags=["patterns"])


def _engine_api() -> Any:
    """The engine contract, or None while its implementation (patterns.engine.core) is absent."""
    try:
        import patterns.engine.core  # noqa: F401
        from patterns.engine import api
    except ImportError as exc:
        log.warning("pattern engine unavailable: %s", exc)
        return None
    return api


@router.get("", summary="Library and custom patterns", response_model=PatternList)
def list_patterns(ctx: Ctx) -> dict[str, Any]:
    api = _engine_api()
    patterns: list[dict[str, Any]] = []
    errors: list[str] = []
    if api is not None:
        infos, errs = api.list_patterns(ctx.settings.patterns_dirs)
        patterns = [dataclasses.asdict(i) for i in infos]
        errors = [str(e) for e in errs]
    by_id = {p["id"]: p for p in patterns}
    for p in patterns:
        p["disabled"] = False
    for spec in ctx.store.custom_patterns():
        if spec.get("id") in by_id:
            # A built-in switched off through the API (the only change a built-in takes), or
            # replaced by an older shim that allowed it: POST /{id}/enable restores the library's.
            builtin = by_id[spec["id"]]
            builtin["disabled"] = spec.get("enabled") is False
            builtin["overridden"] = set(spec) - {"id", "enabled"} != set()
            continue
        patterns.append(
            {
                "id": spec.get("id"),
                "name": spec.get("name", spec.get("id")),
                "description": spec.get("description", ""),
                "severity": spec.get("severity"),
                "techniques": _techniques(spec),
                "tags": spec.get("tags", []),
                "category": spec.get("category"),
                "source": spec.get("source", "syscall"),
                "file": "custom",
                "custom": True,
                "disabled": spec.get("enabled") is False,
            }
        )
    return {
        "engine_available": api is not None,
        "total": len(patterns),
        "patterns": patterns,
        "errors": errors,
    }


def _techniques(spec: dict[str, Any]) -> list[str]:
    mitre = spec.get("mitre") or spec.get("techniques") or spec.get("mitreTechniques") or []
    if isinstance(mitre, dict):
        mitre = mitre.get("techniques") or mitre.get("technique") or []
    return [m if isinstance(m, str) else str(m.get("id")) for m in mitre] if isinstance(mitre, list) else []


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a custom pattern (validated, then published)",
    response_model=PatternCreated,
)
def add_pattern(
    ctx: Ctx,
    who: Admin,
    request: Request,
    spec: dict[str, Any] = Body(..., description="One pattern spec, as in the YAML library (JSON here)"),
) -> dict[str, Any]:
    ctx.change_limit.check(who.credential, "pattern changes")
    pattern_id = spec.get("id")
    if isinstance(pattern_id, str) and pattern_id in _library(ctx):
        audit.record(ctx.store, request, who, "pattern.upsert", pattern_id, "denied", reason="built-in id")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"{pattern_id} is a built-in pattern: it cannot be replaced through the API; "
            f"use a custom id, or POST /api/v1/patterns/{pattern_id}/disable to switch it off",
        )
    api = _engine_api()
    if api is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="pattern engine not installed: cannot validate"
        )
    errors = api.validate_spec(spec)
    if errors:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body", *(e.field.split(".") if e.field else [])],
                    "pattern_id": e.pattern_id,
                    "msg": e.message,
                }
                for e in errors
            ],
        )
    if not isinstance(pattern_id, str) or not pattern_id:
        raise HTTPException(422, detail=[{"loc": ["body", "id"], "msg": "id is required"}])
    _publish(ctx, request, who, "pattern.upsert", pattern_id, spec)
    ctx.store.save_pattern(pattern_id, spec)
    return {"id": pattern_id, "published": True, "topic": ctx.settings.topics.patterns}


PatternId = Annotated[str, PathParam(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


@router.delete("/{pattern_id}", summary="Delete a custom pattern", response_model=PatternChanged)
def delete_pattern(ctx: Ctx, who: Admin, request: Request, pattern_id: PatternId) -> dict[str, Any]:
    ctx.change_limit.check(who.credential, "pattern changes")
    if pattern_id in _library(ctx):
        audit.record(ctx.store, request, who, "pattern.delete", pattern_id, "denied", reason="built-in id")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"{pattern_id} is a built-in pattern: it cannot be deleted; "
            f"POST /api/v1/patterns/{pattern_id}/disable switches it off (audited)",
        )
    if pattern_id not in {s.get("id") for s in ctx.store.custom_patterns()}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no custom pattern {pattern_id!r}")
    _publish(ctx, request, who, "pattern.delete", pattern_id, {"id": pattern_id}, op="delete")
    ctx.store.delete_pattern(pattern_id)
    return {"id": pattern_id, "action": "deleted", "published": True}


@router.post(
    "/{pattern_id}/disable", summary="Switch a built-in pattern off (audited)", response_model=PatternChanged
)
def disable_pattern(ctx: Ctx, who: Admin, request: Request, pattern_id: PatternId) -> dict[str, Any]:
    return _switch(ctx, who, request, pattern_id, enabled=False)


@router.post(
    "/{pattern_id}/enable",
    summary="Switch a built-in pattern back on (audited)",
    response_model=PatternChanged,
)
def enable_pattern(ctx: Ctx, who: Admin, request: Request, pattern_id: PatternId) -> dict[str, Any]:
    return _switch(ctx, who, request, pattern_id, enabled=True)


def _switch(
    ctx: ShimContext, who: Principal, request: Request, pattern_id: str, enabled: bool
) -> dict[str, Any]:
    """Publish the library's own spec with ``enabled`` set: the workers' copy of the built-in is
    switched, nothing else about it can change this way."""
    ctx.change_limit.check(who.credential, "pattern changes")
    library = _library(ctx)
    if pattern_id not in library:
        custom = pattern_id in {s.get("id") for s in ctx.store.custom_patterns()}
        raise HTTPException(
            status.HTTP_409_CONFLICT if custom else status.HTTP_404_NOT_FOUND,
            detail=f"{pattern_id} is a custom pattern: delete it instead"
            if custom
            else f"no built-in pattern {pattern_id!r}",
        )
    # Its examples are checked at load; a switched-off pattern cannot "match" them.
    spec = {k: v for k, v in library[pattern_id].items() if k != "examples"}
    spec["enabled"] = enabled
    action = "pattern.enable" if enabled else "pattern.disable"
    _publish(ctx, request, who, action, pattern_id, spec)
    if enabled:
        ctx.store.delete_pattern(pattern_id)
    else:
        ctx.store.save_pattern(pattern_id, {"id": pattern_id, "enabled": False})
    return {"id": pattern_id, "action": "enabled" if enabled else "disabled", "published": True}


def _publish(
    ctx: ShimContext,
    request: Request,
    who: Principal,
    action: str,
    pattern_id: str,
    spec: dict[str, Any],
    op: str = "upsert",
) -> None:
    if ctx.publisher is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no Kafka broker configured")
    try:
        ctx.publisher.publish_pattern(pattern_id, spec, op=op)
    except PublishError as exc:
        audit.record(ctx.store, request, who, action, pattern_id, "failed", error=str(exc))
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    audit.record(ctx.store, request, who, action, pattern_id, topic=ctx.settings.topics.patterns)


def _library(ctx: ShimContext) -> dict[str, dict[str, Any]]:
    """The built-in patterns' raw specs by id (from the library directories the shim is given)."""
    return _load_library(tuple(ctx.settings.patterns_dirs))


@functools.lru_cache(maxsize=4)
def _load_library(dirs: tuple[Path, ...]) -> dict[str, dict[str, Any]]:
    from patterns.engine.loader import load_dirs

    return {
        str(raw.data["id"]): raw.data
        for raw in load_dirs(dirs).patterns
        if isinstance(raw.data.get("id"), str)
    }
