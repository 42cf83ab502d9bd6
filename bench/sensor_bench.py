"""Sensor benchmark: ``python -m bench.sensor_bench [--seconds 3] [--loads ...] [--rates ...]``.

Overhead table: for each load (a small C program compiled here with gcc) it measures,
in one run, syscalls/s with no tracing, with a count-only eBPF program on the same
tracepoints (the floor), with the sensor at default filters and with the sensor's
filters wide open; plus events/s the sensor delivered to Kafka (a local Tansu broker),
lost events, and the sensor's CPU and RSS.

Paced sweep (the throughput goal: >= 120k events/s per sensor core, 0 lost): filters
wide, the load generator held at each ``--rates`` value; the events are read back from
the broker and the generator's own are matched one for one against the calls it made.
Prints both tables. Needs root."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from memtrail.core.children import stop_process

LOADGEN_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* one unit of work; returns the number of traced syscalls it made */
static long op_openat(long i) {
    /* 1 in 8 opens is under a reported prefix (/etc/), the rest are filtered (/usr/) */
    int fd = open((i & 7) ? "/usr/lib/os-release" : "/etc/hostname", O_RDONLY);
    if (fd >= 0) close(fd);
    return 1;
}
static long op_mprotect(long i) {
    static void *p;
    long first = 0;
    if (!p) { p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); first = 1; }
    /* RW <-> R: no PROT_EXEC, filtered; every 16th goes RX (a reported W->X) */
    mprotect(p, 4096, (i & 15) ? PROT_READ : PROT_READ | PROT_EXEC);
    mprotect(p, 4096, PROT_READ | PROT_WRITE);
    return 2 + first;
}
static long op_mmap(long i) {
    (void)i;
    void *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p, 8192);
    return 1;
}
static long op_forkexec(long i) {
    (void)i;
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
    waitpid(pid, 0, 0);
    return 1;
}

/* argv: mode seconds [rate]. rate > 0 paces the traced calls to that many per second,
 * sleeping in slices of at most 1 ms whenever the loop runs ahead of the schedule.
 * Prints: calls/s, calls, the monotonic ns at which the timed loop started. */
int main(int argc, char **argv) {
    const char *mode = argv[1];
    double secs = atof(argv[2]);
    double rate = argc > 3 ? atof(argv[3]) : 0;
    long calls = 0, i = 0;
    struct timespec ts0; clock_gettime(CLOCK_MONOTONIC, &ts0);
    double t0 = ts0.tv_sec + ts0.tv_nsec / 1e9, t;
    do {
        for (int k = 0; k < 16; k++, i++) {
            if (!strcmp(mode, "openat")) calls += op_openat(i);
            else if (!strcmp(mode, "mprotect")) calls += op_mprotect(i);
            else if (!strcmp(mode, "mmap")) calls += op_mmap(i);
            else if (!strcmp(mode, "forkexec")) { calls += op_forkexec(i); k += 3; }
            else if (!strcmp(mode, "mix-nofork")) calls += op_openat(i) + op_mprotect(i) + op_mmap(i);
            else { /* mix */
                calls += op_openat(i) + op_mprotect(i) + op_mmap(i);
                if ((i & 255) == 0) calls += op_forkexec(i);
            }
        }
        t = now();
        if (rate > 0) {
            double ahead = calls / rate - (t - t0);
            if (ahead > 0) {
                if (ahead > 1e-3) ahead = 1e-3;
                struct timespec s = {0, (long)(ahead * 1e9)};
                nanosleep(&s, 0);
                t = now();
            }
        }
    } while (t - t0 < secs);
    printf("%.1f %ld %lld\n", calls / (t - t0), calls, (long long)ts0.tv_sec * 1000000000LL + ts0.tv_nsec);
    return 0;
}
"""

LOADS = ("openat", "mprotect", "mmap", "forkexec", "mix")


def count_only_program() -> str:
    """A per-CPU counter on every tracepoint the sensor attaches: the floor."""
    from ebpf.loader import TRACEPOINTS

    lines = [
        "BPF_PERCPU_ARRAY(hits, u64, 1);",
        "static __always_inline int hit(void) { int z = 0; u64 *v = hits.lookup(&z); if (v) (*v)++; return 0; }",
    ]
    for tp in TRACEPOINTS:
        cat, name = tp.split(":")
        lines.append(f"TRACEPOINT_PROBE({cat}, {name}) {{ return hit(); }}")
    return "\n".join(lines)


def compile_loadgen(d: Path) -> Path:
    if not shutil.which("gcc"):
        sys.exit("gcc is needed to build the load generator")
    (d / "loadgen.c").write_text(LOADGEN_C)
    exe = d / "loadgen"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(d / "loadgen.c")], check=True)
    return exe


def run_load(exe: Path, load: str, seconds: float) -> float:
    out = subprocess.run([str(exe), load, str(seconds)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss * 1024


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M):
        total += float(m.group(1))
    return total


class SensorProc:
    def __init__(self, bootstrap: str, port: int, spool: Path, wide: bool, cpus: str | None = None) -> None:
        memtrail = Path(sys.executable).parent / "memtrail"
        cmd = [
            *(["taskset", "-c", cpus] if cpus else []),
            str(memtrail),
            "sensor",
            "--bootstrap",
            bootstrap,
            "--metrics-port",
            str(port),
            "--spool-dir",
            str(spool),
        ]
        if wide:
            cmd += ["--no-open-filter", "--no-mmap-filter"]
        env = {**os.environ, "MEMTRAIL_LOG_LEVEL": "WARNING", "MEMTRAIL_SENSOR_WIRE_VERSION": str(WIRE)}
        self.port = port
        self.p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("sensor did not become ready")

    def snapshot(self) -> dict[str, float]:
        cpu, rss = proc_cpu_rss(self.p.pid)
        return {
            "cpu": cpu,
            "rss": rss,
            "events": metric(self.port, "memtrail_sensor_events_total"),
            "published": metric(self.port, "memtrail_sensor_events_published_total"),
            "lost": metric(self.port, "memtrail_sensor_events_lost_total"),
            "spool_dropped": metric(self.port, "memtrail_sensor_spool_dropped_events_total"),
            "producer_errors": metric(self.port, "memtrail_sensor_producer_errors_total"),
            "spool_depth": metric(self.port, "memtrail_sensor_spool_depth_messages"),
            "t": time.monotonic(),
        }

    def close(self) -> None:
        stop_process(self.p, 30)


def lz4_size(value: bytes) -> int:
    """Bytes of ``value`` lz4-compressed in LZ4's fast mode (librdkafka's lz4 codec)."""
    from aiokafka.codec import lz4_encode

    return len(lz4_encode(value, 0))


def userspace_rate(
    bootstrap: str, spool: Path, n: int = 200_000, wire_version: int = 2
) -> tuple[float, int, float, float]:
    """Events per CPU-second through decode → context → batch → orjson → Kafka, fed with
    synthetic ring-buffer records (openat, mmap, mprotect, execve): the sensor's per-core
    ceiling, independent of how much CPU the machine leaves it. Returns (events per CPU-second,
    events acknowledged, bytes per event at Kafka raw, and lz4-compressed)."""
    import socket

    from memtrail.core.settings import KafkaSettings, Settings
    from sensors import decoder as D
    from sensors.cgroups import CgroupResolver
    from sensors.context import Context
    from sensors.proctable import ProcTable
    from sensors.publisher import Publisher

    pid = os.getpid()
    cg = os.stat("/sys/fs/cgroup/unified").st_ino if Path("/sys/fs/cgroup/unified").exists() else 0

    def hdr(t: int, a: tuple[int, ...], ret: int, flags: int = 0, aux: int = 0) -> tuple[object, ...]:
        return (time.monotonic_ns(), cg, ret, *a, t, pid, pid, os.getppid(), 0, 0, flags, aux, 1, b"loadgen")

    argv = b"/usr/bin/true\0--flag\0value\0"
    records = [
        # opens: the kernel-resolved path and the typed one
        D.EVENT2.pack(
            *hdr(10, (2**64 - 100, 0, 0o2000000, 0, 0, 0), 3, D.F_PATH_RESOLVED),
            b"/etc/hostname",
            b"/etc/hostname",
        ),
        D.EVENT.pack(
            *hdr(8, (0, 8192, 5, 0x802, 3, 0), 0x7F0000000000, D.F_PATH_RESOLVED),
            b"/usr/lib/x86_64-linux-gnu/libc.so.6",
        ),
        D.EVENT.pack(*hdr(7, (0x7F0000000000, 4096, 5, 0, 0, 0), 0, D.F_W_TO_X | D.F_PREV_KNOWN, 3), b""),
        D.EXEC.pack(
            *hdr(1, (0, 2**64 - 100, 0, 0, 0, 0), 0, D.F_PATH_RESOLVED, len(argv)),
            b"/usr/bin/true",
            argv,
            b"",
            b"",
            b"true",
            b"session-1.scope",
            b"user-0.slice",
            # stdio facts: fd_rdev, fd_family, fd_type (pipe, pipe, tty), fd_open
            0,
            0,
            136 << 20,
            0,
            0,
            0,
            0,
            0,
            1,
            1,
            2,
            0,
            1,
            1,
            1,
            0,
            b"/usr/bin/true",  # exe_path
            *(1234, 0xEF53, 8 << 20, 0, 1, 0o100755, 0),  # file facts: ino, ext4, dev, uid, nlink, mode, pad
            *(5001, 5002, 3, 0),  # fd_ino
            b"",  # ld_audit
            b"",  # glibc_tunables
            *(0, 0, 0, 0),  # env_vlen: none of the loader variables
            *(2048, 2048, 24, 0),  # env_size, env_scanned, env_count, pad
        ),
    ]
    settings = Settings(kafka=KafkaSettings(bootstrap=bootstrap, local_broker=True))
    dec = D.Decoder(socket.gethostname(), time.time() - time.monotonic(), lean=wire_version == 2)
    pub = Publisher(settings, spool, wire_version=wire_version, clock_offset=dec.clock_offset)
    sample: list[bytes] = []
    send = pub._send

    def keep(key: bytes, value: bytes, k: int) -> None:
        if len(sample) < 100:
            sample.append(value)
        send(key, value, k)

    pub._send = keep  # type: ignore[method-assign,assignment]
    procs = ProcTable()
    procs.scan()
    ctx = Context(procs, CgroupResolver(), wire_lineage=wire_version == 1)
    weights = [records[0]] * 6 + [records[1]] * 2 + [records[2]] + [records[3]]
    c0 = time.process_time()
    for i in range(n):
        pub.add(ctx.apply(dec.decode(weights[i % len(weights)])))
        if i % 1000 == 0:
            pub.tick()
    pub.flush()
    pub._producer.flush(30)
    cpu = time.process_time() - c0
    published = pub.published_events
    pub.close()
    raw = pub.bytes_out / max(pub.events_out, 1)
    ratio = sum(lz4_size(v) for v in sample) / max(sum(len(v) for v in sample), 1)
    return n / cpu, published, raw, raw * ratio


def print_userspace(bootstrap: str, spool: Path) -> None:
    """The userspace ceiling and bytes per event at Kafka, wire format v1 and v2."""
    for version in (1, 2):
        ups, published, raw, lz4 = userspace_rate(bootstrap, spool / f"v{version}", wire_version=version)
        print(
            f"userspace pipeline, wire v{version} (decode → context → encode → Kafka, synthetic records): "
            f"{ups:,.0f} events per CPU-second; {published:,} of 200,000 acknowledged; "
            f"{raw:,.0f} B/event at Kafka raw, {lz4:,.0f} B/event lz4"
        )


#: The paced load: openat + 2 mprotect + mmap, no fork. With wide filters each call is one
#: event from the load generator's own pid, so the broker-side count can be matched exactly.
PACED_LOAD = "mix-nofork"
PACED_SYSCALLS = frozenset({"openat", "mmap", "mprotect"})
DEFAULT_RATES = "80000,100000,120000,140000"
GOAL_PER_CORE = 120_000
#: EventBatch version the benchmarked sensor publishes (``--wire``)
WIRE = 2


class BrokerCounter:
    """Counts the events that reached the broker, reading ``memtrail.events.raw`` from the start.

    Called once per step after the sensor has drained, so reading costs no sensor CPU
    inside a measured window.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "memtrail-sensor-bench",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        self.c.assign(self.tps)
        self._pending: list[Any] = []

    def _targets(self, deadline: float) -> dict[int, int]:
        """Each partition's end offset now, from fetch responses (Tansu's ListOffsets is off)."""
        while True:
            ends = {tp.partition: self.c.get_watermark_offsets(tp, cached=True)[1] for tp in self.tps}
            if all(v >= 0 for v in ends.values()) or time.monotonic() > deadline:
                return ends
            self._pending.extend(self.c.consume(500, 0.1))

    def read(self, pid: int, loop_ns: int, w0: int, w1: int, timeout: float = 60.0) -> dict[str, int]:
        """Every message written before this call (the sensor has acknowledged its events by
        then; with wide filters it keeps publishing, so "until idle" would never come):
        events with ``ts_ns`` in [w0, w1], and those of the load generator (``pid``, one of
        PACED_SYSCALLS, from its timed loop on)."""
        import orjson

        from schemas.wire import events_of

        out = {"window": 0, "loadgen": 0, "bytes": 0, "lz4_bytes": 0, "events": 0}
        deadline = time.monotonic() + timeout
        self._pending = list(self.c.consume(500, 0.3))
        targets = self._targets(time.monotonic() + 5)
        while time.monotonic() < deadline:
            pos = {tp.partition: tp.offset for tp in self.c.position(self.tps)}
            if not self._pending and all(pos[p] >= end for p, end in targets.items() if end > 0):
                break
            msgs, self._pending = self._pending or self.c.consume(500, 0.3), []
            for m in msgs:
                value = m.value()
                if m.error() or value is None:
                    continue
                events = events_of(orjson.loads(value))
                out["bytes"] += len(value)
                out["lz4_bytes"] += lz4_size(value)
                out["events"] += len(events)
                for ev in events:
                    ts = ev["ts_ns"]
                    if w0 <= ts <= w1:
                        out["window"] += 1
                        if ev["process"]["pid"] == pid and ts >= loop_ns and ev["syscall"] in PACED_SYSCALLS:
                            out["loadgen"] += 1
        return out

    def close(self) -> None:
        self.c.close()


def _child_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def paced_sweep(
    exe: Path,
    broker: object,
    spool: Path,
    rates: list[int],
    seconds: float,
    sensor_cpus: str | None,
    load_cpus: str | None,
) -> list[dict[str, float]]:
    """Wide filters, the load generator paced at each rate in turn; one sensor for all rates."""
    from memtrail.core.broker import free_port

    bootstrap: str = broker.bootstrap  # type: ignore[attr-defined]
    broker_pid: int = broker._proc.pid  # type: ignore[attr-defined]
    s = SensorProc(bootstrap, free_port(), spool, wide=True, cpus=sensor_cpus)
    counter = None
    rows = []
    try:
        counter = BrokerCounter(bootstrap, "memtrail.events.raw")
        time.sleep(1.0)  # start-up /proc scan and first flushes out of the way
        counter.read(0, 0, 0, 0)
        for rate in rates:
            a = s.snapshot()
            ba, _ = proc_cpu_rss(broker_pid)
            la = _child_cpu()
            w0 = time.monotonic_ns()
            cmd = [str(exe), PACED_LOAD, str(seconds), str(rate)]
            if load_cpus:
                cmd = ["taskset", "-c", load_cpus, *cmd]
            lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)  # taskset execs: same pid
            out, _ = lg.communicate()
            w1 = time.monotonic_ns()
            lb = _child_cpu()
            if lg.returncode:
                raise RuntimeError(f"load generator failed ({lg.returncode})")
            offered, calls, loop_ns = out.split()
            time.sleep(1.2)  # the sensor folds its decoded count into the metric once a second
            decoded_at_end = metric(s.port, "memtrail_sensor_events_total")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # drain: everything decoded so far is acknowledged
                if metric(s.port, "memtrail_sensor_events_published_total") >= decoded_at_end:
                    break
                time.sleep(0.1)
            b = s.snapshot()
            bb, _ = proc_cpu_rss(broker_pid)
            got = counter.read(lg.pid, int(loop_ns), w0, w1)
            for _ in range(5):  # a late batch still counts; what is still missing then is lost
                if got["loadgen"] >= int(calls):
                    break
                time.sleep(1.0)
                more = counter.read(lg.pid, int(loop_ns), w0, w1)
                got = {k: got[k] + more[k] for k in got}
            cpu = b["cpu"] - a["cpu"]
            dur = (w1 - w0) / 1e9
            lost_ring = b["lost"] - a["lost"]
            dropped = b["spool_dropped"] - a["spool_dropped"]
            perr = b["producer_errors"] - a["producer_errors"]
            rows.append(
                {
                    "target": rate,
                    "offered": float(offered),
                    "calls": int(calls),
                    "loadgen_cpu": (lb - la) / dur,
                    "published_s": (b["published"] - a["published"]) / dur,
                    "kafka_s": got["window"] / dur,
                    "loadgen_at_kafka": got["loadgen"],
                    "missing": int(calls) - got["loadgen"],
                    "lost_ring": lost_ring,
                    "spool_dropped": dropped,
                    "producer_errors": perr,
                    "spool_depth": b["spool_depth"],
                    "cpu": cpu / dur,  # CPU seconds (load + drain) per second of load
                    "per_core": got["window"] / cpu if cpu > 0 else 0.0,
                    "broker_cpu": (bb - ba) / dur,
                    "rss": b["rss"],
                    "bytes_per_event": got["bytes"] / max(got["events"], 1),
                    "lz4_per_event": got["lz4_bytes"] / max(got["events"], 1),
                }
            )
    finally:
        if counter is not None:
            counter.close()
        s.close()
    return rows


def print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def meets_goal(r: dict[str, float]) -> bool:
    """A paced row shows the goal: >= 120k events/s offered, all delivered (counted at the
    broker), nothing lost anywhere, >= 120k events per CPU-second of the sensor."""
    lost = r["lost_ring"] + r["spool_dropped"] + r["producer_errors"] + r["spool_depth"]
    return (
        r["offered"] >= 0.99 * GOAL_PER_CORE
        and lost == 0
        and r["missing"] == 0
        and r["per_core"] >= GOAL_PER_CORE
    )


def print_sweep(rows: list[dict[str, float]], seconds: float) -> None:
    table = []
    for r in rows:
        table.append(
            [
                f"{r['target']:,.0f}",
                f"{r['offered']:,.0f}",
                f"{100 * r['loadgen_cpu']:.0f}%",
                f"{r['kafka_s']:,.0f}",
                f"{r['loadgen_at_kafka']:,}/{r['calls']:,}",
                f"{r['lost_ring']:.0f}/{r['spool_dropped']:.0f}/{r['producer_errors']:.0f}/{r['spool_depth']:.0f}",
                f"{100 * r['cpu']:.0f}%",
                f"{r['per_core']:,.0f}",
                f"{100 * r['broker_cpu']:.0f}%",
                f"{r['rss'] / 2**20:.0f}",
                f"{r['bytes_per_event']:,.0f}",
                f"{r['lz4_per_event']:,.0f}",
                "-" if r["target"] < GOAL_PER_CORE else "yes" if meets_goal(r) else "NO",
            ]
        )
    print(
        f"\nwide filters (every open/mmap/mprotect emitted), load generator paced at each rate for "
        f"{seconds:g} s ({PACED_LOAD}: every call is one event from its pid), wire format v{WIRE}"
    )
    print_table(
        [
            "target/s",
            "offered/s",
            "load CPU",
            "at Kafka/s",
            "load events at Kafka/made",
            "lost ring/spool/prod/queued",
            "sensor CPU",
            "events/sensor-core-s",
            "broker CPU",
            "RSS MiB",
            "B/event",
            "lz4 B/event",
            "goal",
        ],
        table,
    )
    print(
        "at Kafka/s: events (all processes) read back from the broker with ts in the window; load events:"
        " the generator's own, matched by pid; lost: ring buffer full / spool full / producer errors /"
        " still spooled; sensor and broker CPU: CPU-seconds (load + drain) per second of load;"
        " events/sensor-core-s = events at Kafka / sensor CPU-seconds; B/event: EventBatch JSON at Kafka"
        " before compression, lz4 B/event: each message lz4-compressed (fast mode) as the producer does."
    )
    met = [r for r in rows if meets_goal(r)]
    if met:
        best = max(met, key=lambda r: r["offered"])
        print(
            f"goal >= {GOAL_PER_CORE:,} events/s per sensor core with 0 lost: MET up to "
            f"{best['offered']:,.0f} events/s offered ({best['per_core']:,.0f} events per sensor CPU-second)"
        )
    else:
        print(f"goal >= {GOAL_PER_CORE:,} events/s per sensor core with 0 lost: NOT MET in this run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per load and configuration")
    ap.add_argument("--loads", default=",".join(LOADS))
    ap.add_argument("--userspace-only", action="store_true", help="only the per-core userspace ceiling")
    ap.add_argument(
        "--rates",
        default=DEFAULT_RATES,
        help="paced sweep with wide filters: calls (= events) per second, comma-separated",
    )
    ap.add_argument("--rate", type=int, help="one paced rate instead of --rates")
    ap.add_argument("--sweep-only", action="store_true", help="only the paced wide-filter sweep")
    ap.add_argument("--no-sweep", action="store_true", help="only the overhead table")
    ap.add_argument("--sensor-cpus", help="taskset CPU list for the sensor in the sweep (e.g. 1)")
    ap.add_argument("--load-cpus", help="taskset CPU list for the paced load generator (e.g. 0)")
    ap.add_argument(
        "--wire", type=int, choices=(1, 2), default=2, help="EventBatch version the sensor publishes"
    )
    args = ap.parse_args()
    global WIRE
    WIRE = args.wire
    if os.geteuid() != 0:
        sys.exit("run as root (eBPF)")
    loads = [x for x in args.loads.split(",") if x]
    rates = [args.rate] if args.rate else [int(float(x)) for x in args.rates.split(",") if x]

    from memtrail.core.broker import LocalBroker

    if args.userspace_only:
        with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
            print_userspace(broker.bootstrap, Path(tmp) / "spool")
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        exe = compile_loadgen(d)
        if not args.sweep_only:
            overhead_table(exe, d, loads, args.seconds)
        if not args.no_sweep and rates:
            with LocalBroker() as broker:  # its own broker: the counter reads the topic from the start
                rows = paced_sweep(
                    exe, broker, d / "spool-sweep", rates, args.seconds, args.sensor_cpus, args.load_cpus
                )
            print_sweep(rows, args.seconds)


def overhead_table(exe: Path, d: Path, loads: list[str], seconds: float) -> None:
    """No tracing vs count-only floor vs the sensor (default and wide filters), unpaced."""
    from bcc import BPF

    from memtrail.core.broker import LocalBroker, free_port

    rows: list[list[str]] = []
    with LocalBroker() as broker:
        base = {ld: run_load(exe, ld, seconds) for ld in loads}
        floor_prog = BPF(text=count_only_program().encode(), cflags=["-w"])
        floor = {ld: run_load(exe, ld, seconds) for ld in loads}
        floor_prog.cleanup()
        results: dict[str, dict[str, dict[str, float]]] = {}
        for mode in ("default", "wide"):
            s = SensorProc(broker.bootstrap, free_port(), d / f"spool-{mode}", wide=(mode == "wide"))
            try:
                results[mode] = {}
                for ld in loads:
                    a = s.snapshot()
                    rate = run_load(exe, ld, seconds)
                    time.sleep(0.5)  # let the sensor drain and publish the tail
                    b = s.snapshot()
                    dt = b["t"] - a["t"]
                    results[mode][ld] = {
                        "rate": rate,
                        "ev_s": (b["events"] - a["events"]) / dt,
                        "pub_s": (b["published"] - a["published"]) / dt,
                        "lost": b["lost"] - a["lost"],
                        "cpu": (b["cpu"] - a["cpu"]) / dt,
                        "rss": b["rss"],
                    }
            finally:
                s.close()
        for ld in loads:
            for mode in ("default", "wide"):
                r = results[mode][ld]
                rows.append(
                    [
                        ld,
                        mode,
                        f"{base[ld]:,.0f}",
                        f"{floor[ld]:,.0f}",
                        f"{r['rate']:,.0f}",
                        f"{floor[ld] / r['rate']:.2f}x",
                        f"{r['ev_s']:,.0f}",
                        f"{r['pub_s']:,.0f}",
                        f"{r['lost']:.0f}",
                        f"{100 * r['cpu']:.0f}%",
                        f"{r['rss'] / 2**20:.0f}",
                    ]
                )
        print_userspace(broker.bootstrap, d / "spool-userspace")
    print()
    print("unpaced loads (the load generator runs flat out)")
    print_table(
        [
            "load",
            "filters",
            "no trace/s",
            "count-only/s",
            "sensor/s",
            "vs floor",
            "events/s",
            "to Kafka/s",
            "lost",
            "sensor CPU",
            "RSS MiB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
