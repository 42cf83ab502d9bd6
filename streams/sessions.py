"""Interactive sessions into pods (exec, attach, ephemeral containers), for cross-source correlation.

Pure: no I/O. The stream worker feeds every audit event it reads from
``memtrail.k8s.audit`` to ``PodSessions.observe`` (every worker reads all of that small
topic, like the container table, so no co-partitioning with syscall events is needed)
and calls ``annotate_session(event, sessions)`` on each enriched syscall event before the
pattern engine. A syscall event from a container of a pod that had a session opened in
the last ``window_s`` seconds gets::

    k8s_session: {kind: exec|attach|ephemeralcontainers, user, auditid, time, age_s,
                  namespace, pod, container, command}

and the engine's single-event pattern MT-K8S-020 ("fileless exec after an exec into the
pod") raises one higher-severity alert with both sides as context. The pod of a syscall
event comes from the enrichment: ``container.pod_namespace`` / ``container.pod_name``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from sensors.k8s_audit.normalize import actor_process

SESSION_SUBRESOURCES = frozenset({"exec", "attach", "ephemeralcontainers"})
DEFAULT_WINDOW_S = 600.0
MAX_PODS = 20_000  # distinct pods with a live session; the oldest are forgotten first


def _session_of(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The session an audit event opens, or None (not a successful exec/attach/debug)."""
    if event.get("source") != "k8s_audit":
        return None
    ka = event.get("ka")
    if not isinstance(ka, Mapping):
        return None
    target = ka.get("target") or {}
    sub = target.get("subresource")
    if target.get("resource") != "pods" or sub not in SESSION_SUBRESOURCES or not target.get("name"):
        return None
    code = (ka.get("response") or {}).get("code")
    if isinstance(code, int) and code >= 400:
        return None
    if (ka.get("auth") or {}).get("decision") == "forbid":
        return None
    if sub == "ephemeralcontainers" and ka.get("verb") not in ("update", "patch"):
        return None
    exec_facts = ka.get("exec") or {}
    return {
        "kind": sub,
        "user": (ka.get("user") or {}).get("name"),
        "auditid": ka.get("auditid"),
        # session start: the request's arrival, the same in its ResponseStarted and ResponseComplete records
        "time": float(ka.get("request_time") or event.get("time") or 0.0),
        "namespace": target.get("namespace") or "default",
        "pod": target.get("name"),
        "container": exec_facts.get("container"),
        "command": list(exec_facts.get("command") or []),
    }


class PodSessions:
    """The latest session per pod within ``window_s`` (bounded LRU)."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_pods: int = MAX_PODS) -> None:
        self.window_s = window_s
        self.max_pods = max_pods
        self._by_pod: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_pod)

    def observe(self, event: Mapping[str, Any]) -> bool:
        """Record the session an audit event opens; True when it was one."""
        s = _session_of(event)
        if s is None:
            return False
        key = (s["namespace"], s["pod"])
        old = self._by_pod.get(key)
        if old is not None and old["time"] >= s["time"]:
            return True  # a later stage of the same session, or an older session arriving late
        self._by_pod[key] = s
        self._by_pod.move_to_end(key)
        while len(self._by_pod) > self.max_pods:
            self._by_pod.popitem(last=False)
        return True

    def lookup(self, namespace: str | None, pod: str | None, at: float) -> dict[str, Any] | None:
        """The session into that pod opened at most ``window_s`` before ``at`` (and not after it)."""
        if not pod:
            return None
        s = self._by_pod.get((namespace or "default", pod))
        if s is None or not (at - self.window_s <= s["time"] <= at + 1.0):  # 1 s clock skew between sources
            return None
        return s

    def expire(self, now: float) -> None:
        horizon = now - self.window_s
        for key in [k for k, s in self._by_pod.items() if s["time"] < horizon]:
            del self._by_pod[key]


def annotate_session(event: Mapping[str, Any], sessions: PodSessions) -> Mapping[str, Any]:
    """Return the event with ``k8s_session`` set when its pod had a recent session.

    Events outside pods, audit events and events with no session are returned unchanged
    and uncopied; an annotated event is a shallow copy (the caller's dict is not mutated).
    """
    if event.get("source") == "k8s_audit" or not len(sessions):
        return event
    cont = event.get("container")
    if not isinstance(cont, Mapping) or not cont.get("pod_name"):
        return event
    t = event.get("time")
    s = sessions.lookup(
        cont.get("pod_namespace"), cont.get("pod_name"), float(t) if isinstance(t, int | float) else 0.0
    )
    if s is None:
        return event
    out = dict(event)
    out["k8s_session"] = {
        **s,
        "age_s": round(float(t) - s["time"], 3) if isinstance(t, int | float) else None,
    }
    return out


SESSION_SYSCALL = "k8s_session"


def session_event(session: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """The session as an event of the container ``event`` runs in, for engine sequences keyed ``pod``.

    Its id is deterministic (audit id + container id): injected again after a restart it is
    the same event, and the alert it completes has the same id.
    """
    cid = event.get("container_id") or ""
    t = float(session["time"])
    return {
        "v": 1,
        "id": f"k8s-session:{session.get('auditid')}:{cid}",
        "ts_ns": int(t * 1e9),
        "time": t,
        "host": event.get("host") or "",
        "syscall": SESSION_SYSCALL,
        "ret": 0,
        "args": {},
        "process": actor_process(
            "k8s-session",
            f"{session.get('user')}: {session.get('kind')} {' '.join(session.get('command') or [])}".rstrip(),
        ),
        "cgroup_id": event.get("cgroup_id") or 0,
        "container_id": cid or None,
        "container": event.get("container"),
        "source": "k8s_audit",
        "kubernetes": {"namespace": session.get("namespace"), "pod_name": session.get("pod")},
        "k8s_session": {k: v for k, v in session.items() if k != "age_s"},
    }


class SessionStamper:
    """Stamps ``k8s_session`` on a batch's events and puts each session in front of them once.

    For every (container, session) pair the first stamped event is preceded by
    ``session_event(...)``, so the session and the container's syscalls travel in the same
    enriched message and partition and the engine's ``key: pod`` sequences see both. The
    set of pairs already sent is bounded; a pair sent twice (after a restart or eviction)
    repeats the same event id, which the correlator drops.
    """

    def __init__(self, sessions: PodSessions, max_sent: int = 50_000) -> None:
        self.sessions = sessions
        self.max_sent = max_sent
        self._sent: OrderedDict[tuple[str, Any], None] = OrderedDict()

    def stamp(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events, stamped, with session events inserted; the input list is returned
        as is when no event belongs to a pod with a live session."""
        if not len(self.sessions):
            return events
        out: list[dict[str, Any]] | None = None
        for i, ev in enumerate(events):
            stamped = annotate_session(ev, self.sessions)
            if stamped is ev:
                if out is not None:
                    out.append(ev)
                continue
            if out is None:
                out = events[:i]
            s = stamped["k8s_session"]
            pair = (str(ev.get("container_id") or ""), s.get("auditid"))
            if pair not in self._sent:
                self._sent[pair] = None
                if len(self._sent) > self.max_sent:
                    self._sent.popitem(last=False)
                out.append(session_event(s, ev))
            out.append(dict(stamped))
        return events if out is None else out
