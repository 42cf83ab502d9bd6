"""Issue 8's sources through a real ``memtrail worker`` on the real local broker.

* Kubernetes audit: an exec EventList through the real HTTPS webhook, then a fileless exec
  in a container whose ContainerMeta names that pod → exactly one MT-K8S-020 (the engine's
  ``key: pod`` sequence); the same exec in a pod without a session → none.
* Network trails: a connect to an address on a custom list (added while the worker runs,
  picked up by the reload timer) alerts with the trail.
* Absence: "A not followed by B" alerts from the flush timer without any further event.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from memtrail.core.broker import LocalBroker
from memtrail.core.settings import Settings
from tests.streams.conftest import module_settings
from tests.streams.helpers import (
    ARTIFACTS,
    REPO,
    WorkerProc,
    alert_docs,
    batch,
    consume,
    event,
    has_pattern,
    memfd_pair,
    metric,
    produce,
)
from tests.webhook_support import AUTH, running_webhook

pytestmark = pytest.mark.broker

AUDIT_EXEC = REPO / "tests" / "sensors" / "k8s_audit" / "fixtures" / "audit_exec.json"
NS, POD, OTHER_POD = "shop", "web-7d9f8-abcde", "api-5c4b3-zzzzz"
CID, OTHER_CID = "a1" * 32, "b2" * 32


@pytest.fixture(scope="module")
def src_settings(local_broker: LocalBroker) -> Settings:
    return module_settings(local_broker, "test_sources")


@pytest.fixture(scope="module")
def trails_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trails")


@pytest.fixture(scope="module")
def src_worker(src_settings: Settings, trails_dir: Path) -> Iterator[WorkerProc]:
    ARTIFACTS.mkdir(exist_ok=True)
    with WorkerProc(
        src_settings,
        ARTIFACTS / "worker-test_sources.log",
        "g-test_sources",
        MEMTRAIL_TRAILS_CUSTOM_DIRS=orjson.dumps([str(trails_dir)]).decode(),
        MEMTRAIL_TRAILS_RELOAD_INTERVAL_S="1",
    ) as w:
        w.wait_ready()
        yield w


@pytest.fixture(scope="module")
def webhook_url(
    src_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The real webhook (uvicorn + TLS) in a thread, publishing to this module's topics."""
    with running_webhook(src_settings, tmp_path_factory.mktemp("tls")) as (base, path, cert):
        yield base + path, cert


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _alerts(settings: Settings, want: Any, timeout: float = 30.0, idle: float = 0.0) -> list[dict[str, Any]]:
    """Alerts for which ``want(doc)`` holds, waiting until there is one (then ``idle`` seconds more)."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [
            d
            for d in alert_docs(consume(settings, settings.topics.alerts, 1, timeout=2, idle=0.3))
            if want(d)
        ]
        if found:
            break
        time.sleep(0.3)
    if found and idle:
        time.sleep(idle)
        found = [
            d
            for d in alert_docs(consume(settings, settings.topics.alerts, 1, timeout=2, idle=0.5))
            if want(d)
        ]
    return found


def _published_at(settings: Settings, want: Any) -> float:
    """Broker timestamp (s) of the first alert message for which ``want(doc)`` holds."""
    msgs = consume(settings, settings.topics.alerts, 1, timeout=2, idle=0.3)
    return min(m.timestamp()[1] for m in msgs if want(orjson.loads(m.value()))) / 1000


def _container(cid: str, pod: str) -> tuple[bytes, bytes]:
    meta = {
        "v": 1,
        "id": cid,
        "name": "web",
        "image": "ghcr.io/acme/web:1.4.2",
        "pod_name": pod,
        "pod_namespace": NS,
        "runtime": "containerd",
        "state": "running",
        "updated": time.time(),
    }
    return cid.encode(), orjson.dumps(meta)


def _fileless(pid: int, cid: str) -> list[dict[str, Any]]:
    evs = memfd_pair(pid=pid, container_id=cid)
    for e in evs:
        e["host"] = "node-1"
    return evs


def test_exec_into_pod_then_fileless_exec_alerts_once(
    src_worker: WorkerProc, src_settings: Settings, webhook_url: tuple[str, Path]
) -> None:
    url, ca = webhook_url
    produce(
        src_settings, src_settings.topics.containers, [_container(CID, POD), _container(OTHER_CID, OTHER_POD)]
    )
    now = time.time()
    body = orjson.loads(AUDIT_EXEC.read_bytes())
    item = body["items"][0]
    item["requestReceivedTimestamp"], item["stageTimestamp"] = _iso(now - 2), _iso(now - 1.9)
    body["items"] = [item, {**item, "stage": "ResponseComplete", "stageTimestamp": _iso(now - 1)}]
    r = httpx.post(
        url, json=body, verify=ssl.create_default_context(cafile=str(ca)), headers=AUTH, timeout=30
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    # The audit agent evaluated the exec on its own (single-event pattern)...
    assert _alerts(src_settings, lambda d: d["rule"]["id"] == "MT-K8S-008")
    time.sleep(1.5)  # ...and the workers' session readers (polling every 0.2 s) have it too.

    t0 = time.time()
    produce(src_settings, src_settings.topics.raw, [batch(_fileless(31001, CID))])
    cross = _alerts(src_settings, lambda d: has_pattern(d, "MT-K8S-020"), idle=0.5)
    latency = _published_at(src_settings, lambda d: has_pattern(d, "MT-K8S-020")) - t0
    # A second fileless exec in the same session and container: the sequence already fired.
    produce(src_settings, src_settings.topics.raw, [batch(_fileless(31002, CID))])
    assert _alerts(
        src_settings, lambda d: d["process"]["pid"] == 31002 and "T1620" in d["threat"]["technique"]["id"]
    )
    cross = _alerts(src_settings, lambda d: has_pattern(d, "MT-K8S-020"), idle=1.0)
    assert len(cross) == 1, [(d["id"], d["count"], d["process"]["pid"]) for d in cross]
    a = cross[0]
    # One incident with the exec's fileless patterns; the cross-source one is primary (the
    # longest story: it began with the session).
    assert a["rule"]["id"] == "MT-K8S-020" and {"MT-FILELESS-001", "MT-FILELESS-002"} <= {
        p["id"] for p in a["patterns"]
    }
    assert a["rule"]["severity"] == "critical" and a["threat"]["technique"]["id"][:2] == ["T1609", "T1620"]
    assert a["kubernetes"] == {"pod_name": POD, "namespace": NS}
    assert a["container"]["id"] == CID and a["process"]["pid"] == 31001 and a["count"] == 1
    assert [e["syscall"] for e in a["evidence"]] == ["k8s_session", "memfd_create", "execve"]
    session = a["evidence"][-1]["k8s_session"]
    assert (session["user"], session["kind"], session["pod"]) == ("dev-alice", "exec", POD)
    assert "dev-alice opened a exec session" in a["message"]
    print(f"\nMT-K8S-020 published {latency:.3f}s after the syscall batch was produced")


def test_same_fileless_exec_without_session_is_not_cross_source(
    src_worker: WorkerProc, src_settings: Settings
) -> None:
    produce(src_settings, src_settings.topics.containers, [_container(OTHER_CID, OTHER_POD)])
    produce(src_settings, src_settings.topics.raw, [batch(_fileless(32001, OTHER_CID))])
    mine = _alerts(src_settings, lambda d: d["process"]["pid"] == 32001, idle=1.5)
    assert mine and any("T1620" in d["threat"]["technique"]["id"] for d in mine)  # processed, single-source
    assert all(d["kubernetes"] == {"pod_name": OTHER_POD, "namespace": NS} for d in mine)
    assert not [d for d in mine if has_pattern(d, "MT-K8S-020")]


def test_connect_to_listed_address_alerts_with_trail(
    src_worker: WorkerProc, src_settings: Settings, trails_dir: Path
) -> None:
    # Written after the worker started: the reload timer (1 s here) picks it up.
    (trails_dir / "acme-c2.txt").write_text(
        "# name: acme-c2\n# source: ACME incident 2026-041 (internal)\n# severity: critical\n"
        "100.64.23.0/24   # C2 fleet\n"
    )
    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    pid = 33001
    while not found and time.monotonic() < deadline:
        conn = event(
            "connect",
            pid=pid,
            args={"fd": 3, "family": "AF_INET", "addr": "100.64.23.7", "port": 443},
            exe="/usr/bin/curl",
        )
        produce(src_settings, src_settings.topics.raw, [batch([conn])])
        found = _alerts(
            src_settings,
            lambda d, p=pid: d["rule"]["id"] == "MT-TRAIL-001" and d["process"]["pid"] == p,
            timeout=3,
        )
        pid += 1
    assert found, "connect to a listed address did not alert"
    trail = found[0]["evidence"][-1]["args"]["trail"]
    assert (trail["list"], trail["indicator"], trail["info"]) == ("acme-c2", "100.64.23.0/24", "C2 fleet")
    assert trail["source"] == "ACME incident 2026-041 (internal)"
    assert "acme-c2" in found[0]["message"]
    # an address on no list: no trail alert
    produce(
        src_settings,
        src_settings.topics.raw,
        [
            batch(
                [
                    event(
                        "connect",
                        pid=33900,
                        args={"fd": 3, "family": "AF_INET", "addr": "100.65.0.1", "port": 443},
                        exe="/usr/bin/curl",
                    )
                ]
            )
        ],
    )
    time.sleep(1.5)
    assert not _alerts(
        src_settings,
        lambda d: d["process"]["pid"] == 33900 and d["rule"]["id"].startswith("MT-TRAIL"),
        timeout=2,
    )


def test_absence_alert_is_emitted_by_the_flush_timer(src_worker: WorkerProc, src_settings: Settings) -> None:
    spec: dict[str, Any] = {
        "id": "MT-CUSTOM-ABS-1",
        "name": "Custom: unshare not followed by exec",
        "description": "A namespace unshare with no exec by the same process within 2 s",
        "severity": "warning",
        "techniques": ["T1611"],
        "absence": {
            "key": "process",
            "window": "2s",
            "first": {"condition": {"syscall": "unshare"}},
            "then": {"condition": {"syscall": "execve"}},
        },
    }
    produce(
        src_settings,
        src_settings.topics.patterns,
        [(spec["id"].encode(), orjson.dumps({"op": "upsert", "spec": spec}))],
    )
    time.sleep(2.0)  # the patterns reader applies it before the next batch
    produce(
        src_settings,
        src_settings.topics.raw,
        [batch([event("unshare", pid=34001, args={"flags": ["CLONE_NEWNS"]})])],
    )
    # followed by exec: no alert for this one
    ok = [
        event("unshare", pid=34002, args={"flags": ["CLONE_NEWNS"]}),
        event("execve", pid=34002, args={"filename": "/bin/true", "argv": ["true"]}),
    ]
    produce(src_settings, src_settings.topics.raw, [batch(ok)])
    t0 = time.time()
    # No further event is sent: only the worker's timer can bring the alert.
    found = _alerts(src_settings, lambda d: d["rule"]["id"] == spec["id"], timeout=20, idle=2.0)
    assert [d["process"]["pid"] for d in found] == [34001], found
    at = _published_at(src_settings, lambda d: d["rule"]["id"] == spec["id"])
    print(f"\nabsence alert published {at - t0:.2f}s after the events (window 2 s, no further event)")


def test_two_workers_cross_source_exactly_once(
    src_worker: WorkerProc, src_settings: Settings, webhook_url: tuple[str, Path], trails_dir: Path
) -> None:
    """Pods' audit partitions and containers' partitions end up on different workers: still one alert each."""
    url, ca = webhook_url
    with WorkerProc(
        src_settings,
        ARTIFACTS / "worker-test_sources-2.log",
        "g-test_sources",
        MEMTRAIL_TRAILS_CUSTOM_DIRS=orjson.dumps([str(trails_dir)]).decode(),
    ) as w2:
        w2.wait_ready()
        deadline = time.monotonic() + 60
        owned: list[float] = []
        while time.monotonic() < deadline:  # the rebalance settled: 4 enriched partitions split
            owned = [metric(w.metrics(), "memtrail_stream_assigned_partitions") for w in (src_worker, w2)]
            if sum(owned) == src_settings.kafka.partitions and min(owned) > 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"partitions not shared: {owned}\n{w2.tail()}")
        pods = {f"shop-{i}": f"{0xC0 + i:02x}" * 32 for i in range(12)}
        produce(
            src_settings, src_settings.topics.containers, [_container(cid, pod) for pod, cid in pods.items()]
        )
        now = time.time()
        template = orjson.loads(AUDIT_EXEC.read_bytes())["items"][0]
        items = []
        for i, pod in enumerate(pods):
            item = orjson.loads(orjson.dumps(template))
            item["auditID"] = f"00000000-0000-4000-8000-{i:012d}"
            item["objectRef"]["name"] = pod
            item["requestURI"] = item["requestURI"].replace(POD, pod)
            item["requestReceivedTimestamp"], item["stageTimestamp"] = _iso(now - 2), _iso(now - 1.9)
            items.append(item)
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
        r = httpx.post(
            url, json=body, verify=ssl.create_default_context(cafile=str(ca)), headers=AUTH, timeout=30
        )
        assert r.status_code == 200 and r.json()["accepted"] == len(pods), r.text
        want_pods = set(pods)
        deadline = time.monotonic() + 30
        execs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:  # each exec alerts on its own (audit alerts group per pod)
            execs = _alerts(
                src_settings,
                lambda d: d["rule"]["id"] == "MT-K8S-008" and d["kubernetes"]["pod_name"] in want_pods,
                timeout=3,
            )
            if len({d["kubernetes"]["pod_name"] for d in execs}) == len(pods):
                break
            time.sleep(0.3)
        assert len({d["kubernetes"]["pod_name"] for d in execs}) == len(pods)
        assert all(d["count"] == 1 for d in execs)
        time.sleep(1.0)  # every worker's session reader (0.2 s polls) has them too
        produce(
            src_settings,
            src_settings.topics.raw,
            [batch(_fileless(35000 + i, cid)) for i, cid in enumerate(pods.values())],
        )
        deadline = time.monotonic() + 40
        cross: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            cross = _alerts(
                src_settings,
                lambda d: has_pattern(d, "MT-K8S-020") and d["kubernetes"]["pod_name"] in want_pods,
                timeout=3,
            )
            if len({d["kubernetes"]["pod_name"] for d in cross}) == len(pods):
                break
            time.sleep(0.5)
        time.sleep(2.0)  # a duplicate would arrive now
        cross = _alerts(
            src_settings,
            lambda d: has_pattern(d, "MT-K8S-020") and d["kubernetes"]["pod_name"] in want_pods,
        )
        per_pod = {
            pod: [d["container"]["id"] for d in cross if d["kubernetes"]["pod_name"] == pod] for pod in pods
        }
        assert per_pod == {pod: [cid] for pod, cid in pods.items()}
        work = [metric(w.metrics(), "memtrail_stream_events_total") for w in (src_worker, w2)]
        assert min(work) > 0, f"one worker did nothing: {work}"


def test_malformed_audit_messages_go_to_the_dead_letter_topic(
    src_worker: WorkerProc, src_settings: Settings
) -> None:
    topic = src_settings.topics.k8s_audit
    produce(
        src_settings,
        topic,
        [
            (b"shop/bad-1", b"{not json"),
            (b"shop/bad-2", orjson.dumps({"syscall": "k8s_audit", "source": "k8s_audit"})),
        ],
    )
    deadline = time.monotonic() + 30
    mine: list[dict[str, Any]] = []
    while len(mine) < 2 and time.monotonic() < deadline:
        docs = alert_docs(consume(src_settings, src_settings.topics.deadletter, 1, timeout=2, idle=0.3))
        mine = [d for d in docs if d.get("source_topic") == topic]
        time.sleep(0.3)
    reasons = sorted(d["reason"] for d in mine)
    assert len(reasons) == 2 and reasons[0].startswith("event field") and reasons[1].startswith("not JSON"), (
        reasons
    )
    assert {d["key"] for d in mine} == {"shop/bad-1", "shop/bad-2"}
