"""An alert from a pattern and the events that matched it (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from patterns.engine.compile import CompiledPattern
from patterns.engine.fields import compile_getter
from patterns.engine.state import host_of, pod_of
from schemas.alerts import (
    Alert,
    ContainerRef,
    HostRef,
    KubernetesRef,
    ProcessRef,
    Rule,
    Tactic,
    Technique,
    Threat,
    stable_id,
)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


def _ts(t: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(t), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.fromtimestamp(0, tz=UTC)


def _render(template: str, e: Mapping[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        v = compile_getter(m.group(1))(e)
        return "" if v is None else str(v)

    return _PLACEHOLDER.sub(sub, template)


def build_alert(cp: CompiledPattern, evidence: list[Mapping[str, Any]]) -> Alert:
    """The shared alert context (process, container, host, MITRE names) around one match."""
    first, last = evidence[0], evidence[-1]
    proc = last.get("process") or {}
    cont = last.get("container") or {}
    cid = last.get("container_id") or cont.get("id")
    spec = cp.spec
    who = proc.get("exe") or proc.get("comm") or "?"
    where = f"container {cont.get('name') or (cid or '')[:12]}" if cid else f"host {host_of(last)}"
    if spec.output:
        message = _render(spec.output, last)
    else:
        message = f"{spec.name}: {who} (pid {proc.get('pid')}) in {where}"
    kube = None
    for ev in (last, first):  # the syscall side names the container; either side names the pod
        ns, pod = pod_of(ev)
        if pod:
            kube = KubernetesRef(pod_name=pod, namespace=ns)
            break
    alert_id = cp.spec.id, *[str(e.get("id")) for e in evidence]
    return Alert(  # type: ignore[call-arg]  # populate_by_name: "timestamp" is "@timestamp"
        id=stable_id(*alert_id),
        timestamp=_ts(first.get("time")),
        rule=Rule(
            id=spec.id,
            name=spec.name,
            description=spec.description,
            severity=spec.severity,
            version=spec.version,
            category=spec.category,
            tags=list(spec.tags),
        ),
        threat=Threat(
            technique=Technique(
                id=list(cp.technique_ids), name=list(cp.technique_names), reference=list(cp.technique_refs)
            ),
            tactic=Tactic(id=list(cp.tactic_ids), name=list(cp.tactic_names)),
        ),
        container=ContainerRef(
            id=cid,
            name=cont.get("name"),
            image=cont.get("image"),
            labels=dict(cont.get("labels") or {}),
        ),
        kubernetes=kube,
        process=ProcessRef(
            pid=proc.get("pid"),
            entity_id=proc.get("entity_id"),
            ppid=proc.get("ppid"),
            executable=proc.get("exe"),
            command_line=proc.get("cmdline"),
            name=proc.get("comm"),
            uid=proc.get("uid"),
            ancestors=list(proc.get("ancestors") or []),
        ),
        host=HostRef(name=host_of(last)),
        message=message,
        evidence=[dict(e) for e in evidence],
        count=1,
        first_seen=_ts(first.get("time")),
        last_seen=_ts(last.get("time")),
        source=str(first.get("source") or spec.source),
    )
