"""Pattern engine benchmark: events/s with the full library, and memory under a key flood.

USAGE
    python -m bench.engine_bench [--events 200000] [--flood 200000]

Two event mixes are measured. The "engine" mix imitates what the sensor ships after its in-kernel filters (see
/work/shared/perf-notes.md): mostly opens under /proc, /dev and /etc, executable mmaps and
mprotects, execs of ordinary programs, connects, forks and exits, with a small share of
events that raise alerts. The "stream" mix is the one ``bench.stream_bench`` feeds
through the Faust topology (its ``Gen``: opens, PROT_EXEC mmaps, execs of five servers,
exits, one memfd attack per 50 batches of 500 events), so the engine's share of the
stream figures can be read here without a broker. One core, no I/O: events are prebuilt dicts. The flood phase
sends sequence-starting events from ever new processes and containers and reports the
live state size and traced memory, which must stay bounded by the engine's caps.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from typing import Any

from memtrail.core.heap import settle_heap
from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.engine import state
from patterns.engine.assemble import build_engine

HOSTS = ["node-a", "node-b"]
CONTAINERS = [f"{i:064x}" for i in range(1, 41)]
#: image -> the programs its containers run (what a healthy service container looks like)
IMAGES: dict[str, list[str]] = {
    "nginx:1.25": ["/usr/sbin/nginx"],
    "redis:7": ["/usr/local/bin/redis-server"],
    "postgres:16": ["/usr/lib/postgresql/16/bin/postgres"],
    "python:3.12": ["/usr/local/bin/python3", "/usr/local/bin/gunicorn"],
    "app/api:3": ["/usr/local/bin/app"],
}
BENIGN_OPEN = [
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/proc/self/stat",
    "/proc/self/status",
    "/proc/meminfo",
    "/proc/loadavg",
    "/dev/null",
    "/dev/urandom",
    "/etc/ssl/certs/ca-certificates.crt",
    "/proc/self/maps",
    "/etc/passwd",
    "/dev/pts/0",
]
BENIGN_WRITE = ["/dev/null", "/dev/pts/0", "/tmp/app.sock.lock", "/var/log/app/app.log", "/proc/self/fd/1"]
HOST_EXEC = ["/usr/bin/ls", "/usr/bin/cat", "/usr/bin/git", "/usr/bin/date", "/bin/sh", "/usr/bin/sleep"]
ATTACKS: list[dict[str, Any]] = [
    {"syscall": "memfd_create", "ret": 3, "args": {"name": "x", "flags": ["MFD_CLOEXEC"]}},
    {
        "syscall": "execve",
        "ret": 0,
        "args": {"filename": "/proc/self/fd/3", "argv": ["x"], "exe_memfd": True},
    },
    {"syscall": "openat", "ret": 3, "args": {"path": "/etc/shadow", "flags": ["O_RDONLY"]}},
    {"syscall": "ptrace", "ret": 0, "args": {"request": "PTRACE_POKETEXT", "target_pid": 1}},
    {"syscall": "execve", "ret": 0, "args": {"filename": "/dev/shm/k", "argv": ["k"]}},
]


def _proc(rng: random.Random, exe: str) -> dict[str, Any]:
    pid = rng.randint(100, 60000)
    return {
        "pid": pid,
        "tid": pid,
        "ppid": pid - 1,
        "uid": rng.choice((0, 33, 1000)),
        "gid": 0,
        "comm": exe.rsplit("/", 1)[-1][:15],
        "exe": exe,
        "cmdline": exe + " --serve",
        "entity_id": f"0123456789ab-{pid}-{pid * 7}",
        "ancestors": [
            {
                "pid": pid - 1,
                "entity_id": f"0123456789ab-{pid - 1}-{pid * 7 - 7}",
                "exe": "/bin/sh",
                "comm": "sh",
            },
            {"pid": 1, "entity_id": "0123456789ab-1-1", "exe": "/sbin/init"},
        ],
    }


def make_events(n: int, attack_share: float = 0.002, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    t = 1_700_000_000.0
    for i in range(n):
        t += 0.0001
        host = rng.choice(HOSTS)
        cid = rng.choice(CONTAINERS) if rng.random() < 0.8 else None
        if cid:
            image = list(IMAGES)[int(cid, 16) % len(IMAGES)]
            container = {"id": cid, "name": f"c{cid[-3:]}", "image": image}
            programs = IMAGES[image]
        else:
            container, programs = None, HOST_EXEC
        exe = rng.choice(programs)
        r = rng.random()
        if r < attack_share:
            base = dict(rng.choice(ATTACKS))
        elif r < 0.45:
            if rng.random() < 0.9:
                flags, path = ["O_RDONLY", "O_CLOEXEC"], rng.choice(BENIGN_OPEN)
            else:
                flags, path = ["O_WRONLY", "O_APPEND"], rng.choice(BENIGN_WRITE)
            base = {"syscall": "openat", "ret": 3, "args": {"dirfd": -100, "path": path, "flags": flags}}
        elif r < 0.65:
            base = {
                "syscall": "mmap",
                "ret": 140000000,
                "args": {
                    "addr": 0,
                    "len": 8192,
                    "prot": ["PROT_READ", "PROT_EXEC"],
                    "flags": ["MAP_PRIVATE"],
                    "fd": 3,
                },
            }
        elif r < 0.75:
            base = {
                "syscall": "mprotect",
                "ret": 0,
                "args": {
                    "prot": ["PROT_READ"],
                    "prev_prot": ["PROT_READ", "PROT_WRITE"],
                    "wx": False,
                    "w_to_x": False,
                },
            }
        elif r < 0.87:
            exe = rng.choice(programs)
            base = {
                "syscall": "execve",
                "ret": 0,
                "args": {"filename": exe, "argv": [exe, "-v"], "flags": []},
            }
        elif r < 0.93:
            base = {
                "syscall": "connect",
                "ret": 0,
                "args": {
                    "fd": 4,
                    "family": "AF_INET",
                    "addr": f"10.0.{rng.randint(0, 9)}.{rng.randint(1, 200)}",
                    "port": 5432,
                },
            }
        elif r < 0.97:
            base = {"syscall": "process_fork", "ret": 0, "args": {"child_pid": rng.randint(100, 60000)}}
        else:
            base = {"syscall": "process_exit", "ret": 0, "args": {"exit_code": 0}}
        p = _proc(rng, exe)
        out.append(
            {
                "v": 1,
                "id": f"{host}:{i}:{p['tid']}",
                "ts_ns": i * 100_000,
                "time": t,
                "host": host,
                "process": p,
                "cgroup_id": 0,
                "container_id": cid,
                "container": container,
                "source": "syscall",
                **base,
            }
        )
    return out


def make_stream_events(n: int, batch: int = 500, attacks_every: int = 50) -> list[dict[str, Any]]:
    """The event sequence ``bench.stream_bench.produce_load`` sends, in order (times on a
    0.1 ms grid instead of the wall clock, so runs are comparable)."""
    from bench.stream_bench import CONTAINERS as STREAM_CONTAINERS
    from bench.stream_bench import HOST, Gen

    gen = Gen()
    keys = [*STREAM_CONTAINERS, f"host:{HOST}"]
    out: list[dict[str, Any]] = []
    attack_pid = 100_000
    while len(out) < n:
        sent = len(out)
        key = keys[(sent // batch) % len(keys)]
        evs = [gen.normal(key) for _ in range(min(batch, n - sent))]
        if attacks_every and (sent // batch) % attacks_every == 0 and len(evs) >= 2:
            attack_pid += 1
            evs[-2:] = gen.attack(key, attack_pid)
        out.extend(evs)
    for i, e in enumerate(out):
        e["time"] = 1_700_000_000.0 + i * 0.0001
    return out


MIXES = {"engine": make_events, "stream": make_stream_events}
#: the engine alone, per core, on its realistic mix with the full library
GOAL_EVENTS_PER_S = 300_000
#: events per ``process_batch`` call (one sensor message's worth)
BATCH = 500


def bench_throughput(n: int, mix: str = "engine") -> tuple[float, float, int, float, int]:
    t0 = time.perf_counter()
    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    load_s = time.perf_counter() - t0
    events = MIXES[mix](n)
    eng.process_batch(events[:2000])  # warm up
    gc.collect()
    # the collector as the worker sets it (memtrail.core.heap): the library and the prebuilt
    # events are out of its sight, as a worker's events come and go per batch
    thresholds = gc.get_threshold()
    settle_heap()
    c0, w0 = time.process_time(), time.perf_counter()
    alerts = 0
    for i in range(0, len(events), BATCH):  # the worker hands the engine batches, not events
        alerts += len(eng.process_batch(events[i : i + BATCH]))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    return n / cpu, n / wall, alerts, load_s, eng.pattern_count()


def bench_flood(n: int) -> list[tuple[str, int, int, float]]:
    """Sequence starters (memfd_create, writes under /tmp) from n distinct processes/containers."""
    rows = []
    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = 1_700_000_000.0
    for i in range(n):
        t += 0.0001
        cid = f"{i:064x}"
        ev = {
            "id": f"h:{i}",
            "time": t,
            "host": "h",
            "syscall": "memfd_create" if i % 2 else "openat",
            "ret": 3,
            "args": {"name": "x"} if i % 2 else {"path": f"/tmp/f{i}", "flags": ["O_WRONLY", "O_CREAT"]},
            "process": {"pid": 1000 + i, "ppid": 1, "uid": 0, "exe": "/usr/bin/python3", "comm": "python3"},
            "container_id": cid,
            "container": {"id": cid},
        }
        eng.process(ev)
        if (i + 1) in (n // 10, n // 2, n):
            mem = tracemalloc.get_traced_memory()[0] - base
            rows.append((f"after {i + 1} distinct keys", eng.state_size(), mem // 1024, t))
    eng.expire(t + 3600)
    mem = tracemalloc.get_traced_memory()[0] - base
    rows.append(("after expire(+1h)", eng.state_size(), mem // 1024, t))
    tracemalloc.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--flood", type=int, default=200_000)
    args = ap.parse_args(argv)
    results = {mix: bench_throughput(args.events, mix) for mix in MIXES}
    count, load_s = results["engine"][4], results["engine"][3]
    print(f"{count} patterns, library load + compile {load_s:.2f} s, {args.events} events per mix")
    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    t0 = time.perf_counter()
    for _ in range(10):
        eng.fork()
    print(f"fork (one engine per partition): {(time.perf_counter() - t0) * 100:.1f} ms")
    print()
    print(
        "| mix | events/s, one core (CPU time) | µs/event | events/s, wall clock | alerts | goal >= 300,000/s |"
    )
    print("|---|---|---|---|---|---|")
    labels = {"engine": "engine (realistic, 0.2 % attacks)", "stream": "stream (bench.stream_bench's events)"}
    for mix, (rate, wall_rate, alerts, _, _) in results.items():
        print(
            f"| {labels[mix]} | {rate:,.0f} | {1e6 / rate:.1f} | {wall_rate:,.0f} | {alerts} "
            f"| {'met' if rate >= GOAL_EVENTS_PER_S else 'NOT met'} |"
        )
    print()
    print(f"State under a flood of distinct keys (cap {state.MAX_KEYS_PER_PATTERN} keys per pattern):")
    print("| point | live state entries | traced memory (KiB) |")
    print("|---|---|---|")
    for label, size, kib, _ in bench_flood(args.flood):
        print(f"| {label} | {size} | {kib} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
