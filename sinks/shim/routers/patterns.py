"""``/api/v1/patterns``: the library's patterns and custom ones; adding one publishes it to workers."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from fastapi import APIRouter, Body, HTTPException, status

from sinks.shim.context import Ctx
from sinks.shim.models import PatternCreated, PatternList
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
    library_ids = {p["id"] for p in patterns}
    for spec in ctx.store.custom_patterns():
        if spec.get("id") in library_ids:
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
    spec: dict[str, Any] = Body(..., description="One pattern spec, as in the YAML library (JSON here)"),
) -> dict[str, Any]:
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
    pattern_id = spec.get("id")
    if not isinstance(pattern_id, str) or not pattern_id:
        raise HTTPException(422, detail=[{"loc": ["body", "id"], "msg": "id is required"}])
    if ctx.publisher is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no Kafka broker configured")
    try:
        ctx.publisher.publish_pattern(pattern_id, spec)
    except PublishError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    ctx.store.save_pattern(pattern_id, spec)
    return {"id": pattern_id, "published": True, "topic": ctx.settings.topics.patterns}
