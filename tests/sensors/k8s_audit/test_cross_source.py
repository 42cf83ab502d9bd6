"""Exec into a pod (audit, through the real webhook and broker) then a fileless exec in that pod: one alert."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from memtrail.core.settings import DEFAULT_PATTERNS_DIR, Settings
from patterns.engine.api import load_engine
from streams.sessions import PodSessions, SessionStamper, annotate_session
from tests.sensors.k8s_audit.sources_helpers import consume, load_fixture
from tests.webhook_support import AUTH

pytestmark = pytest.mark.broker

EXEC_AT = 1795341900.0  # requestReceivedTimestamp of the fixture's exec: 2026-11-22T10:05:00Z
CID = "d1" * 32


def syscall(n: int, t: float, syscall: str, pod: str = "web-7d9f8-abcde", **fields: Any) -> dict[str, Any]:
    """A syscall event as the worker sees it after enrichment (container metadata joined)."""
    ev: dict[str, Any] = {
        "v": 1,
        "id": f"node-1:{n}:4242",
        "ts_ns": n,
        "time": t,
        "host": "node-1",
        "syscall": syscall,
        "ret": 0,
        "args": {},
        "process": {
            "pid": 4242,
            "tid": 4242,
            "ppid": 4200,
            "uid": 0,
            "gid": 0,
            "comm": "python3",
            "exe": "/usr/bin/python3",
        },
        "cgroup_id": 7,
        "container_id": CID,
        "container": {
            "id": CID,
            "name": "web",
            "image": "ghcr.io/acme/web:1.4.2",
            "pod_name": pod,
            "pod_namespace": "shop",
        },
        "source": "syscall",
    }
    ev.update(fields)
    return ev


def fileless(t: float, n: int, pod: str = "web-7d9f8-abcde") -> list[dict[str, Any]]:
    return [
        syscall(n, t, "memfd_create", pod, ret=3, args={"name": "", "flags": ["MFD_CLOEXEC"]}),
        syscall(
            n + 1,
            t + 0.2,
            "execve",
            pod,
            args={"filename": "/proc/self/fd/3", "argv": ["[kworker/u8:2]"], "exe_memfd": True},
            process={
                "pid": 4242,
                "tid": 4242,
                "ppid": 4200,
                "uid": 0,
                "gid": 0,
                "comm": "3",
                "exe": "/memfd: (deleted)",
            },
        ),
    ]


def test_exec_then_fileless_exec_in_that_pod_fires_once(webhook, settings: Settings) -> None:
    body = load_fixture("audit_exec.json")
    started = body["items"][0]
    body["items"] = [
        started,
        {**started, "stage": "ResponseComplete", "stageTimestamp": "2026-11-22T10:06:00Z"},
    ]
    r = httpx.post(webhook.url, json=body, verify=webhook.verify, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    audit = [v for _, v in consume(settings, settings.topics.k8s_audit, 2)]

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    sessions = PodSessions()
    alerts = []
    for ev in audit:  # what the worker does with memtrail.k8s.audit
        sessions.observe(ev)
        alerts += engine.process(ev)
    syscalls = [
        *fileless(EXEC_AT - 120, 10),  # before the exec: not correlated
        *fileless(EXEC_AT + 40, 20),  # 40 s after it, in that pod: the one
        *fileless(EXEC_AT + 45, 30, pod="other-pod"),  # another pod
        *fileless(EXEC_AT + 3600, 40),  # an hour later: window passed
    ]
    stamper = SessionStamper(sessions)
    for ev in syscalls:  # what the worker's enrichment + correlation do with syscall events
        alerts += engine.process_batch(stamper.stamp([ev]))
    # the session is put in front of the container's events once, whatever the batching
    assert stamper.stamp(fileless(EXEC_AT + 50, 50)) == [
        annotate_session(e, sessions) for e in fileless(EXEC_AT + 50, 50)
    ]

    cross = [a for a in alerts if a.rule.id == "MT-K8S-020"]
    assert len(cross) == 1
    a = cross[0]
    assert a.rule.severity == "critical" and a.threat.technique.id == ["T1609", "T1620"]
    assert a.kubernetes is not None and (a.kubernetes.namespace, a.kubernetes.pod_name) == (
        "shop",
        "web-7d9f8-abcde",
    )
    assert [e["syscall"] for e in a.evidence] == ["k8s_session", "execve"]
    session = a.evidence[-1]["k8s_session"]
    assert (session["user"], session["kind"], session["age_s"]) == ("dev-alice", "exec", pytest.approx(40.2))
    assert session["auditid"] == "0c7e8d9a-5f4b-4a3c-9d2e-1f0a9b8c7d01"
    assert "dev-alice opened a exec session" in a.message
    # the single-source alerts still fire on their own
    assert [x.rule.id for x in alerts if x.rule.id == "MT-K8S-008"] == ["MT-K8S-008"]
    assert sum(1 for x in alerts if x.rule.id == "MT-FILELESS-002") == 4


def test_forbidden_exec_opens_no_session() -> None:
    sessions = PodSessions()
    ev: dict[str, Any] = {
        "source": "k8s_audit",
        "time": EXEC_AT,
        "ka": {
            "auditid": "x",
            "request_time": EXEC_AT,
            "verb": "create",
            "target": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "web-1"},
            "response": {"code": 403},
            "auth": {"decision": "forbid"},
            "user": {"name": "mallory"},
        },
    }
    assert sessions.observe(ev) is False
    ok = {**ev, "ka": {**ev["ka"], "response": {"code": 101}, "auth": {"decision": "allow"}}}
    assert sessions.observe(ok) is True
    probe = syscall(1, EXEC_AT + 5, "execve", pod="web-1")
    assert annotate_session(probe, sessions)["k8s_session"]["user"] == "mallory"
    sessions.expire(EXEC_AT + 601)
    assert len(sessions) == 0 and annotate_session(probe, sessions) is probe


def test_stamper_puts_the_session_once_in_front_of_each_container() -> None:
    sessions = PodSessions()
    stamper = SessionStamper(sessions)
    plain = [syscall(1, EXEC_AT + 5, "execve")]
    assert stamper.stamp(plain) is plain  # no session at all: the list itself, untouched
    sessions.observe(
        {
            "source": "k8s_audit",
            "time": EXEC_AT,
            "ka": {
                "auditid": "s-1",
                "request_time": EXEC_AT,
                "verb": "create",
                "target": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "web-1"},
                "response": {"code": 101},
                "user": {"name": "alice"},
                "exec": {"command": ["sh"], "container": "web"},
            },
        }
    )
    other = syscall(2, EXEC_AT + 6, "execve", pod="web-1")
    other["container_id"] = other["container"]["id"] = "e7" * 32
    host = {**syscall(3, EXEC_AT + 6, "execve"), "container_id": None, "container": None}
    batch1 = [
        syscall(4, EXEC_AT + 5, "openat", pod="web-1"),
        host,
        syscall(5, EXEC_AT + 6, "execve", pod="web-1"),
    ]
    out = stamper.stamp(batch1)
    assert [e["syscall"] for e in out] == ["k8s_session", "openat", "execve", "execve"]
    assert out[0]["id"] == f"k8s-session:s-1:{CID}" and out[0]["time"] == EXEC_AT
    assert (
        out[0]["kubernetes"] == {"namespace": "shop", "pod_name": "web-1"} and out[0]["container_id"] == CID
    )
    assert out[2] is host and "k8s_session" not in batch1[0]  # inputs are not mutated
    assert [e["syscall"] for e in stamper.stamp([syscall(6, EXEC_AT + 7, "execve", pod="web-1")])] == [
        "execve"
    ]
    out2 = stamper.stamp([other])  # the pod's other container gets its own session event
    assert [e["syscall"] for e in out2] == ["k8s_session", "execve"] and out2[0]["container_id"] == "e7" * 32
