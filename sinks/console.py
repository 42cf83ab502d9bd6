"""One readable line per alert (pure formatting; ``memtrail up`` prints it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.alerts import pattern_ids

_COLORS = {"critical": "\033[1;31m", "error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}


def _short(text: str | None, limit: int) -> str:
    if not text:
        return "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rule_label(alert: Mapping[str, Any]) -> str:
    """Every pattern id of an incident, the primary first; ids of the primary's family are
    shortened to their number: ``MT-FILELESS-001+2+MT-FILELESS-MEMFD-001``."""
    ids = pattern_ids(alert)
    family, _, _ = ids[0].rpartition("-")
    parts = [ids[0]]
    for pid in ids[1:]:
        fam, _, num = pid.rpartition("-")
        parts.append(num.lstrip("0") or "0" if fam == family and family and num.isdigit() else pid)
    return "+".join(parts)


def format_alert(alert: Mapping[str, Any], color: bool = False) -> str:
    """``CRITICAL MT-X-001+2 Name [T1055.008,T1055] container=web(0123abcd4567) pid=1 exe=/x cmd="..." count=2``.

    An incident shows all its pattern ids (``rule_label``), the primary's name and the
    union of the techniques."""
    rule = alert.get("rule") or {}
    sev = str(rule.get("severity", "?"))
    techs = ",".join((alert.get("threat") or {}).get("technique", {}).get("id") or []) or "-"
    cont = alert.get("container") or {}
    if cont.get("id"):
        where = f"container={cont.get('name') or '?'}({str(cont['id'])[:12]})"
        if cont.get("image"):
            where += f" image={cont['image']}"
    else:
        where = f"host={(alert.get('host') or {}).get('name', '?')}"
    proc = alert.get("process") or {}
    line = (
        f"{sev.upper():8} {rule_label(alert)} {rule.get('name', '')} [{techs}] {where} "
        f"pid={proc.get('pid', '-')} exe={_short(proc.get('executable'), 80)} "
        f'cmd="{_short(proc.get("command_line"), 120)}" count={alert.get("count", 1)}'
    )
    if color and sev in _COLORS:
        return f"{_COLORS[sev]}{line}\033[0m"
    return line
