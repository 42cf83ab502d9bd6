"""Import the shipped OpenSearch Dashboards saved objects (index pattern, visualizations, dashboard)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import orjson

#: The Dashboards saved objects, shipped as package data.
SAVED_OBJECTS = Path(str(files("sinks.opensearch") / "data" / "dashboards.ndjson"))


def saved_objects(path: Path = SAVED_OBJECTS, index_prefix: str = "memtrail-alerts") -> bytes:
    """The ndjson with the index pattern's title set to ``<index_prefix>-*``."""
    out = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        obj = orjson.loads(line)
        if obj.get("type") == "index-pattern":
            obj["attributes"]["title"] = f"{index_prefix}-*"
        out.append(orjson.dumps(obj))
    return b"\n".join(out) + b"\n"


class ImportFailed(RuntimeError):
    """OpenSearch Dashboards refused the import (or part of it)."""


def import_saved_objects(
    url: str,
    *,
    path: Path = SAVED_OBJECTS,
    user: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    ca_certs: Path | None = None,
    verify_certs: bool = True,
    tenant: str | None = None,
    timeout: float = 30.0,
    index_prefix: str = "memtrail-alerts",
) -> dict[str, Any]:
    """POST the ndjson to ``/api/saved_objects/_import?overwrite=true``; return the server's answer.

    The index pattern is rewritten for ``index_prefix`` (the sink's ``MEMTRAIL_OPENSEARCH_INDEX_PREFIX``),
    so the dashboards read the indices the sink writes."""
    headers = {"osd-xsrf": "true"}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    if tenant:  # security plugin multi-tenancy
        headers["securitytenant"] = tenant
    auth = (user, password or "") if user else None
    verify: bool | str = str(ca_certs) if ca_certs else verify_certs
    body = saved_objects(path, index_prefix)
    files = {"file": (path.name, body, "application/ndjson")}
    with httpx.Client(timeout=timeout, verify=verify, auth=auth) as client:
        try:
            resp = client.post(
                url.rstrip("/") + "/api/saved_objects/_import",
                params={"overwrite": "true"},
                headers=headers,
                files=files,
            )
        except httpx.HTTPError as exc:
            raise ImportFailed(f"cannot reach OpenSearch Dashboards at {url}: {exc}") from exc
    if resp.status_code >= 400:
        raise ImportFailed(f"import refused: HTTP {resp.status_code}: {resp.text[:500]}")
    result: dict[str, Any] = resp.json()
    if not result.get("success", False):
        errors = "; ".join(
            f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type', e.get('error'))}"
            for e in result.get("errors", [])
        )
        raise ImportFailed(f"import partly failed ({result.get('successCount', 0)} imported): {errors}")
    return result
