"""Stream-tier benchmark: the real topology (raw → enrich → enriched → correlate → alerts)
on the local broker, with real ``memtrail worker`` processes and the real pattern library.

    .venv/bin/python -m bench.stream_bench [--events 1000000] [--workers 1 2] [--attacks 300]

Phase 1 (throughput): N synthetic-but-realistic events (opens under /etc and /proc, PROT_EXEC
library mmaps, ordinary execs, process exits, a few memfd attacks) are produced first as
EventBatch messages of ``--batch`` events keyed by 64 containers and the host; then K fresh
workers (one consumer group) start and the clock runs until every event has passed the
correlation agent. Phase 2 (latency): with the workers idle, ``--attacks`` memfd sequences
are sent at ``--rate``/s among background events; latency is each alert's arrival on the
alerts topic minus its last evidence event's wall time (broker → alert: the sensor's own
delay is not included). Prints one table row per worker count.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from memtrail.core.broker import LocalBroker, free_port
from memtrail.core.children import stop_process
from memtrail.core.kafka import consumer_config, ensure_topics, producer_config
from memtrail.core.settings import KafkaSettings, Settings
from schemas import wire
from schemas.containers import ContainerMeta
from schemas.events import synthetic_event

HOST = "benchhost"
# librdkafka's idempotent producer sees 0.5-1 s tail latencies on Tansu (p99 of a paced
# produce→consume round trip: 1.0 s idempotent, 0.055 s not; measured here). The benchmark
# feeds the stream tier, so its stand-in for the sensor produces without idempotence.
FEED = {"enable.idempotence": False, "acks": "all"}
LATENCY_PID0 = 500_000  # attack pids of the latency phase (the load phase's are lower)
CONTAINERS = [f"{i:064x}" for i in range(1, 65)]
LIBS = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/libpython3.11.so",
]
OPENS = ["/etc/passwd", "/etc/hosts", "/etc/resolv.conf", "/proc/self/status", "/proc/meminfo", "/dev/null"]
# Benign servers only: a shell in a container is itself a detection (MT-CONT-SHELL-*).
EXES = ["/usr/bin/python3", "/usr/sbin/nginx", "/usr/bin/node", "/usr/bin/java", "/usr/bin/redis-server"]
# Container i runs IMAGES[i % 5] and execs only its own program, as on a real node. With
# ``--drift`` every container is an nginx image that execs any of EXES: an exec of a
# foreign program in an nginx container is a true detection (MT-CONT-UNAUTH-001), so
# ~8 % of the events then raise an alert update (an alert storm: ~80k per 1M events).
IMAGES = [
    ("docker.io/library/nginx:1.25", "/usr/sbin/nginx"),
    ("docker.io/library/redis:7.2", "/usr/local/bin/redis-server"),
    ("docker.io/library/python:3.11", "/usr/local/bin/python3"),
    ("docker.io/library/node:20", "/usr/local/bin/node"),
    ("docker.io/library/eclipse-temurin:21", "/opt/java/openjdk/bin/java"),
]


def image_of(cid: str, drift: bool = False) -> tuple[str, str]:
    """(image, its program) of a bench container."""
    return IMAGES[0] if drift else IMAGES[int(cid, 16) % len(IMAGES)]


BOOT = "0ba87d1c9d22"


def lineage(key: str) -> list[dict[str, Any]]:
    """The ancestors the sensor gives a process of ``key`` (parent first): a container's
    runtime shim and init, or a host shell under sshd and init."""
    init = {
        "pid": 1,
        "entity_id": f"{BOOT}-1-2",
        "exe": "/usr/lib/systemd/systemd",
        "comm": "systemd",
        "cmdline": "/sbin/init splash",
    }
    if key.startswith("host:"):
        return [
            {
                "pid": 880,
                "entity_id": f"{BOOT}-880-1201",
                "exe": "/usr/bin/bash",
                "comm": "bash",
                "cmdline": "/bin/bash /opt/app/bin/start-workers.sh --env production",
            },
            {
                "pid": 612,
                "entity_id": f"{BOOT}-612-977",
                "exe": "/usr/sbin/sshd",
                "comm": "sshd",
                "cmdline": "sshd: deploy@notty",
            },
            init,
        ]
    shim = 2000 + int(key[-4:], 16)
    return [
        {
            "pid": shim,
            "entity_id": f"{BOOT}-{shim}-30{shim}",
            "exe": "/usr/bin/containerd-shim-runc-v2",
            "comm": "containerd-shim",
            "cmdline": f"/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id {key}"
            " -address /run/containerd/containerd.sock",
        },
        init,
    ]


class Gen:
    def __init__(self, seed: int = 7, drift: bool = True, procs: int = 0) -> None:
        """``drift``: containers exec any of EXES (the mix before images were assigned; what
        ``bench.engine_bench`` replays); otherwise a container execs its image's program.
        ``procs``: each key's events come from that many processes, each with the identity
        and ancestors the sensor gives it (what wire format v2 shares per batch); 0: a random
        pid per event and no lineage (the earlier mix)."""
        self.rnd = random.Random(seed)
        self.seq = 0
        self.drift = drift
        self.procs = procs
        self._lineage: dict[str, list[dict[str, Any]]] = {}

    def _realistic(self, ev: dict[str, Any], key: str) -> dict[str, Any]:
        p = ev["process"]
        anc = self._lineage.get(key)
        if anc is None:
            anc = self._lineage[key] = lineage(key)
        pid = p["pid"]
        p["ppid"] = anc[0]["pid"]
        p["start_boottime_ns"] = pid * 10_000_000_000
        p["entity_id"] = f"{BOOT}-{pid}-{pid * 1000}"
        p["cmdline"] = f"{p['exe']} --serve --config /etc/app/{p['comm']}.conf --workers 4"
        p["start_time_ns"] = None
        p["ancestors"] = anc
        ev["cgroup_id"] = 4000 + (0 if key.startswith("host:") else int(key[-4:], 16))
        return ev

    def event(
        self, key: str, syscall: str, args: dict[str, Any], pid: int, exe: str, ret: int = 0
    ) -> dict[str, Any]:
        self.seq += 1
        cid = None if key.startswith("host:") else key
        ev = synthetic_event(
            syscall,
            host=HOST,
            pid=pid,
            exe=exe,
            time_s=time.time(),
            ts_ns=self.seq,
            args=args,
            ret=ret,
            container_id=cid,
        )
        if not self.procs:
            return ev
        ev["source"] = "syscall"
        del ev["container"]  # raw events carry no container metadata (the join adds it)
        return self._realistic(ev, key)

    def normal(self, key: str) -> dict[str, Any]:
        r = self.rnd.random()
        if self.procs:
            base = 1000 + 97 * (zlib.crc32(key.encode()) % 500)
            pid = base + self.rnd.randrange(self.procs)
        else:
            pid = self.rnd.randrange(1000, 60000)
        exe = self.rnd.choice(EXES)
        if not self.drift and not key.startswith("host:"):
            exe = image_of(key)[1]
        if r < 0.55:
            args = {
                "dirfd": -100,
                "path": self.rnd.choice(OPENS),
                "flags": ["O_RDONLY", "O_CLOEXEC"],
                "mode": 0,
            }
            return self.event(key, "openat", args, pid, exe, ret=3)
        if r < 0.85:
            args = {
                "addr": 0,
                "len": 4096 * 40,
                "prot": ["PROT_READ", "PROT_EXEC"],
                "flags": ["MAP_PRIVATE", "MAP_DENYWRITE"],
                "fd": 3,
                "offset": 0,
            }
            return self.event(key, "mmap", args, pid, exe, ret=0x7F0000000000)
        if r < 0.95:
            args = {"filename": exe, "argv": [exe, "--serve"], "exe_memfd": False, "exe_deleted": False}
            return self.event(key, "execve", args, pid, exe)
        return self.event(key, "process_exit", {"exit_code": 0}, pid, exe)

    def attack(self, key: str, pid: int) -> list[dict[str, Any]]:
        first = self.event(
            key, "memfd_create", {"name": "x", "flags": ["MFD_CLOEXEC"]}, pid, "/usr/bin/python3", ret=3
        )
        args = {"filename": "/proc/self/fd/3", "argv": ["x"], "exe_memfd": True, "exe_deleted": False}
        return [first, self.event(key, "execve", args, pid, f"/memfd:bench{pid} (deleted)")]


#: EventBatch version the benchmark's stand-in sensor publishes (``--wire``)
WIRE = 1


def batch_msg(key: str, events: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    if WIRE == 2:
        return key.encode(), orjson.dumps(wire.encode(HOST, key, events))
    return key.encode(), orjson.dumps({"v": 1, "host": HOST, "key": key, "events": events})


def container_meta(cid: str, drift: bool = False) -> dict[str, Any]:
    """A ContainerMeta as the sensor's watcher publishes it (a pod container: ~600 bytes)."""
    n = int(cid, 16)
    return ContainerMeta(
        id=cid,
        name=f"k8s_web_web-{n}_default_{n:08x}",
        image=image_of(cid, drift)[0],
        image_id="sha256:" + "ab" * 32,
        labels={"app": "web", "io.kubernetes.pod.name": f"web-{n}", "io.kubernetes.pod.namespace": "default"},
        runtime="containerd",
        pod_name=f"web-{n}",
        pod_namespace="default",
        pod_uid=f"{n:08x}-0000-4000-8000-000000000000",
        privileged=False,
        mounts=[{"source": "/var/lib/kubelet/pods/x/volumes/cfg", "destination": "/etc/nginx", "mode": "ro"}],
        host=HOST,
        state="running",
        updated=time.time(),
    ).model_dump(mode="json")


def produce_containers(settings: Settings, drift: bool = False) -> None:
    p = Producer(producer_config(settings.kafka, **FEED))
    for cid in CONTAINERS:
        meta = container_meta(cid, drift)
        p.produce(settings.topics.containers, key=cid.encode(), value=orjson.dumps(meta))
    p.flush(30)


#: processes per key in the generated mix (``--procs``; 0: the earlier random-pid mix)
PROCS = 16
#: (raw bytes, lz4 bytes, events) of the messages the load phase produced
WIRE_STATS = [0, 0, 0]


def lz4_size(value: bytes) -> int:
    """Bytes of ``value`` lz4-compressed in LZ4's fast mode (librdkafka's lz4 codec)."""
    from aiokafka.codec import lz4_encode

    return len(lz4_encode(value, 0))


def produce_load(settings: Settings, n: int, batch: int, attacks_every: int, drift: bool = False) -> int:
    gen = Gen(drift=drift, procs=PROCS)
    WIRE_STATS[:] = [0, 0, 0]
    p = Producer(producer_config(settings.kafka, **FEED))
    keys = [*CONTAINERS, f"host:{HOST}"]
    sent = 0
    attack_pid = 100_000
    while sent < n:
        key = keys[(sent // batch) % len(keys)]
        evs = [gen.normal(key) for _ in range(min(batch, n - sent))]
        if attacks_every and (sent // batch) % attacks_every == 0 and len(evs) >= 2:
            attack_pid += 1
            evs[-2:] = gen.attack(key, attack_pid)
        k, v = batch_msg(key, evs)
        WIRE_STATS[0] += len(v)
        WIRE_STATS[2] += len(evs)
        if (sent // batch) % 10 == 0:  # lz4 of a sample: the ratio
            WIRE_STATS[1] += lz4_size(v) * 10
        while True:
            try:
                p.produce(settings.topics.raw, key=k, value=v)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        sent += len(evs)
    p.flush(60)
    return sent


class Worker:
    def __init__(self, settings: Settings, group: str, log: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "MEMTRAIL_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
            "MEMTRAIL_KAFKA__LOCAL_BROKER": "true",
            "MEMTRAIL_STREAM_GROUP_ID": group,
            "MEMTRAIL_STREAM_WEB_PORT": str(free_port()),
            "MEMTRAIL_STREAM_METRICS_PORT": str(self.port),
            "MEMTRAIL_LOG_LEVEL": "WARNING",
            **{f"MEMTRAIL_TOPICS__{k.upper()}": v for k, v in settings.topics.model_dump().items()},
        }
        self.log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from memtrail.cli import main; main()", "worker"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def correlated(self) -> float:
        for line in self.get("/metrics?name[]=memtrail_stream_events_total").splitlines():
            if line.startswith('memtrail_stream_events_total{agent="correlate",direction="in"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        stop_process(self.proc, 30)
        self.log.close()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(workers: list[Worker], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(w.get("/readyz").startswith("ready") for w in workers):
            return
        if any(w.proc.poll() is not None for w in workers):
            raise SystemExit("a worker exited during start-up (see the log in the bench directory)")
        time.sleep(0.2)
    raise SystemExit("workers not ready in time")


#: events/s the latency phase offered
OFFERED = [0.0]


def latency_messages(
    attacks: int, rate: float, background: int, drift: bool = False
) -> tuple[list[tuple[bytes, bytes]], float]:
    """The latency phase's messages (``background`` normal events, then a memfd attack), and
    the wall time the first is due. They are generated and encoded before the clock starts,
    each event stamped with the time its message is due: generating ~80k events/s in Python
    (~7 µs each) took most of a core, on this 2-CPU machine the worker's. A message sent late
    counts its delay as latency."""
    gen = Gen(seed=11, drift=drift, procs=PROCS)
    keys = [*CONTAINERS, f"host:{HOST}"]
    msgs: list[tuple[bytes, bytes]] = []
    t = time.monotonic()
    start = 0.0
    for i in range(attacks):
        key = keys[i % len(keys)]
        evs = [gen.normal(key) for _ in range(background)] + gen.attack(key, LATENCY_PID0 + i)
        if i == 0:  # the first one tells how long all take: start after that, with a margin
            start = time.time() + 1.0 + 1.5 * attacks * (time.monotonic() - t)
        for e in evs:
            e["time"] = start + i / rate
        msgs.append(batch_msg(key, evs))
    return msgs, start


def measure_latency(
    settings: Settings, attacks: int, rate: float, background: int, drift: bool = False
) -> list[float]:
    """Send paced memfd attacks; return alert arrival − last evidence time (seconds)."""
    got: dict[int, float] = {}
    stop = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        c = Consumer(
            consumer_config(settings.kafka, f"bench-lat-{time.monotonic_ns()}", **{"fetch.wait.max.ms": 5})
        )
        meta = c.list_topics(settings.topics.alerts, timeout=10).topics[settings.topics.alerts]
        c.assign([TopicPartition(settings.topics.alerts, p, OFFSET_END) for p in meta.partitions])
        c.consume(1, timeout=1.0)
        ready.set()
        while not stop.is_set():
            # poll returns as soon as a message is there (consume(n) waits for n or the timeout)
            m = c.poll(0.05)
            if m is None or m.error() is not None:
                continue
            now = time.time()
            doc = orjson.loads(m.value() or b"{}")
            ev = doc.get("evidence") or []
            if not ev or doc.get("count") != 1 or ev[0]["syscall"] != "memfd_create":
                continue
            pid = ev[-1]["process"]["pid"]
            if pid >= LATENCY_PID0:
                got.setdefault(pid, now - ev[-1]["time"])
        c.close()

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    ready.wait(15)
    msgs, start = latency_messages(attacks, rate, background, drift)
    p = Producer(producer_config(settings.kafka, **FEED, **{"linger.ms": 1}))
    time.sleep(max(0.0, start - time.time()))
    t0 = time.monotonic()
    for i, (k, v) in enumerate(msgs):
        p.produce(settings.topics.raw, key=k, value=v)
        p.poll(0)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))  # paced by the clock
    OFFERED[0] = attacks * (background + 2) / (time.monotonic() - t0)
    p.flush(30)
    deadline = time.monotonic() + 15
    while len(got) < attacks and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    t.join(5)
    return sorted(got.values())


def topic_bytes(settings: Settings, topic: str) -> tuple[int, int]:
    """(value bytes, events) of every message on ``topic`` (EventBatch messages)."""
    c = Consumer(consumer_config(settings.kafka, f"bench-bytes-{time.monotonic_ns()}"))
    meta = c.list_topics(topic, timeout=10).topics[topic]
    c.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    size = events = 0
    idle = time.monotonic() + 5
    while time.monotonic() < idle:
        msgs = c.consume(1000, timeout=0.5)
        for m in msgs:
            value = m.value()
            if m.error() is None and value:
                size += len(value)
                events += value.count(b'"ts_ns":')
        if msgs:
            idle = time.monotonic() + 2
    c.close()
    return size, events


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def run(n_workers: int, args: argparse.Namespace, broker: LocalBroker, workdir: Path) -> dict[str, Any]:
    tag = f"bench{n_workers}-{int(time.time())}"
    s = Settings(
        kafka=KafkaSettings(bootstrap=broker.bootstrap, partitions=args.partitions, local_broker=True)
    )
    for name, value in s.topics.model_dump().items():
        setattr(s.topics, name, f"{value}.{tag}")
    ensure_topics(s)
    if args.containers:
        produce_containers(s, args.drift)
    t0 = time.perf_counter()
    n = produce_load(s, args.events, args.batch, args.attacks_every, args.drift)
    produce_s = time.perf_counter() - t0
    workers = [Worker(s, f"g-{tag}", workdir / f"worker-{tag}-{i}.log") for i in range(n_workers)]
    try:
        wait_ready(workers)
        broker_pid = broker._proc.pid if broker._proc else None
        cpu0 = [cpu_seconds(w.proc.pid) for w in workers], cpu_seconds(broker_pid)
        start = time.perf_counter()
        done = 0.0
        while done < n:
            time.sleep(0.25)
            done = sum(w.correlated() for w in workers)
            if time.perf_counter() - start > args.timeout:
                break
        elapsed = time.perf_counter() - start
        worker_cpu = sum(cpu_seconds(w.proc.pid) - c for w, c in zip(workers, cpu0[0], strict=True))
        broker_cpu = cpu_seconds(broker_pid) - cpu0[1]
        per_core = done / worker_cpu if worker_cpu else 0.0
        background = args.background
        if args.latency_load:
            # Offered load = this share of the workers' capacity: what they processed per second
            # of the throughput phase (on a shared machine less than events per CPU-second).
            capacity = min(per_core * n_workers, done / elapsed if elapsed else 0.0)
            background = max(1, int(args.latency_load * capacity / args.rate) - 2)
        lat = measure_latency(s, args.attacks, args.rate, background, args.drift)
    finally:
        for w in workers:
            w.stop()
    enriched_bytes, enriched_events = topic_bytes(s, s.topics.enriched)
    total_rate = done / elapsed if elapsed else 0.0
    return {
        "workers": n_workers,
        "events": int(done),
        "produce_s": produce_s,
        "seconds": elapsed,
        "total": total_rate,
        "per_worker": total_rate / n_workers,
        # CPU of the throughput phase: % of one core per worker, and events per worker CPU-second
        # (what a worker does with a core of its own; the 2-core bench shares them with the broker).
        "worker_cpu": 100 * worker_cpu / elapsed / n_workers if elapsed else 0.0,
        "per_core": done / worker_cpu if worker_cpu else 0.0,
        "broker_cpu": 100 * broker_cpu / elapsed if elapsed else 0.0,
        "p50_ms": pct(lat, 0.50) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "alerts": len(lat),
        "attacks": args.attacks,
        "offered": OFFERED[0],
        "raw_b": WIRE_STATS[0] / max(WIRE_STATS[2], 1),
        "raw_lz4_b": WIRE_STATS[1] / max(WIRE_STATS[2], 1),
        "enriched_b": enriched_bytes / max(enriched_events, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=500, help="events per EventBatch message")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--attacks-every", type=int, default=50, help="one memfd attack per this many batches")
    ap.add_argument("--attacks", type=int, default=300, help="paced attacks in the latency phase")
    ap.add_argument("--rate", type=float, default=50.0, help="latency phase: attacks per second")
    ap.add_argument("--background", type=int, default=50, help="latency phase: normal events per attack")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument(
        "--containers",
        action="store_true",
        help="publish ContainerMeta for the 64 containers first, so the enrichment joins every "
        "container event (without it nothing is joined and batches are forwarded as they came)",
    )
    ap.add_argument(
        "--drift",
        action="store_true",
        help="the earlier mix: containers exec foreign programs (with --containers an alert "
        "storm: MT-CONT-UNAUTH-001 on ~8 %% of the events); default: each its image's program",
    )
    ap.add_argument(
        "--wire", type=int, choices=(1, 2), default=2, help="EventBatch version fed to the workers"
    )
    ap.add_argument(
        "--procs",
        type=int,
        default=16,
        help="processes per key, each with the entity id and ancestors the sensor gives it "
        "(0: the earlier mix, a random pid per event, no lineage)",
    )
    ap.add_argument(
        "--latency-load",
        type=float,
        default=0.8,
        help="latency phase offers this share of the measured capacity (background events per "
        "attack from it); 0: --background events per attack",
    )
    args = ap.parse_args(argv)
    global WIRE, PROCS
    WIRE, PROCS = args.wire, args.procs
    workdir = Path(tempfile.mkdtemp(prefix="memtrail-bench-"))
    rows = []
    with LocalBroker(log_path=workdir / "tansu.log") as broker:
        for k in args.workers:
            print(f"running {k} worker(s) on {args.events:,} events ...", file=sys.stderr, flush=True)
            rows.append(run(k, args, broker, workdir))
    head = (
        f"{'workers':>7} {'events':>10} {'seconds':>8} {'events/s':>10} {'ev/s/worker':>12} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'alerts':>9} {'cpu/worker':>10} {'ev/worker-core-s':>16} "
        f"{'broker cpu':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['workers']:>7} {r['events']:>10,} {r['seconds']:>8.1f} {r['total']:>10,.0f} "
            f"{r['per_worker']:>12,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['alerts']:>4}/{r['attacks']:<4}"
            f" {r['worker_cpu']:>9.0f}% {r['per_core']:>16,.0f} {r['broker_cpu']:>9.0f}%"
        )
    print()
    cost = (
        f"{'raw B/ev':>8} {'raw lz4':>8} {'enr B/ev':>8} {'lat load/s':>10} "
        f"{'cores/10k ev/s':>14} {'Kafka MB/s in':>13} {'MB/s out':>8} {'lz4 in':>7}"
    )
    print(cost)
    print("-" * len(cost))
    for r in rows:
        # Per 10k events/s of node load: worker cores; Kafka in = raw + enriched written,
        # out = both read once by the workers (alerts are negligible); lz4: raw at its ratio.
        mb_in = 10_000 * (r["raw_b"] + r["enriched_b"]) / 1e6
        ratio = r["raw_lz4_b"] / r["raw_b"] if r["raw_b"] else 0.0
        print(
            f"{r['raw_b']:>8,.0f} {r['raw_lz4_b']:>8,.0f} {r['enriched_b']:>8,.0f} {r['offered']:>10,.0f} "
            f"{10_000 / r['per_core'] if r['per_core'] else float('nan'):>14.2f} {mb_in:>13.1f} "
            f"{mb_in:>8.1f} {mb_in * ratio:>7.2f}"
        )
    print(
        f"(wire v{args.wire}, {args.procs or 'random'} processes per key, latency at "
        f"{f'{args.latency_load:.0%} of capacity' if args.latency_load else f'{args.background} events per attack'}, "
        f"partitions {args.partitions}, {args.batch} events/message, "
        f"container metadata {'joined' if args.containers else 'absent'}"
        f"{', drift mix' if args.drift else ''}, {os.cpu_count()} CPUs; logs in {workdir})"
    )


if __name__ == "__main__":
    main()
