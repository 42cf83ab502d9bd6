"""MITRE ATT&CK details for one alert: from the shared catalog when it is there, else the alert itself."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
ATTACK_URL = "https://attack.mitre.org/techniques/"


def safe_url(url: object) -> str | None:
    """``url`` when it is an absolute http(s) URL, else None: links shown in the page come from
    alerts and configuration, and must never carry ``javascript:``, ``data:`` or another scheme."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def technique_url(tid: str) -> str:
    """T1055.008 → https://attack.mitre.org/techniques/T1055/008/"""
    return ATTACK_URL + tid.replace(".", "/") + "/"


def _catalog() -> Any:
    """The shared ATT&CK catalog (patterns.mitre), or None if it is missing or unreadable."""
    try:
        from patterns.mitre.catalog import load_catalog
    except ImportError:
        return None
    try:
        return load_catalog()
    except Exception as exc:  # a broken catalog must not break the detail view
        log.warning("MITRE catalog unavailable: %s", exc)
        return None


def details(threat: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per technique id: id, name, url, tactics — from the catalog, else from the alert."""
    tech = threat.get("technique") or {}
    ids: list[str] = list(tech.get("id") or [])
    names: list[str] = list(tech.get("name") or [])
    refs: list[str] = list(tech.get("reference") or [])
    tactic = threat.get("tactic") or {}
    tactic_names: list[str] = list(tactic.get("name") or tactic.get("id") or [])
    catalog = _catalog()
    out = []
    for i, tid in enumerate(ids):
        entry: dict[str, Any] = {
            "id": tid,
            "name": names[i] if i < len(names) else None,
            "url": (safe_url(refs[i]) if i < len(refs) else None) or technique_url(tid),
            "tactics": tactic_names,
            "source": "alert",
        }
        known = catalog.get(tid) if catalog is not None else None
        if known is not None:
            from patterns.mitre.catalog import tactic_name

            entry.update(
                name=catalog.display_name(tid),
                url=known.url,
                tactics=[tactic_name(t) for t in known.tactics],
                source="catalog",
            )
        out.append(entry)
    return out


def process_tree(process: dict[str, Any]) -> list[dict[str, Any]]:
    """Root first, the alerting process last: ``process.ancestors`` is parent first."""
    chain = [dict(a) for a in reversed(process.get("ancestors") or [])]
    chain.append(
        {
            "pid": process.get("pid"),
            "exe": process.get("executable"),
            "comm": process.get("name"),
            "cmdline": process.get("command_line"),
            "current": True,
        }
    )
    return chain
