"""Sensor overhead benchmark: ``python -m bench.sensor_bench [--seconds 3] [--loads mix,openat,...]``.

For each load (a small C program compiled here with gcc) it measures, in one run:
syscalls/s with no tracing, with a count-only eBPF program on the same tracepoints
(the floor), with the sensor at default filters and with the sensor's filters wide
open; plus events/s the sensor delivered to Kafka (a local Tansu broker), lost
events, and the sensor's CPU and RSS. Prints a table. Needs root.
"""

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
    if (!p) p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* RW <-> R: no PROT_EXEC, filtered; every 16th goes RX (a reported W->X) */
    mprotect(p, 4096, (i & 15) ? PROT_READ : PROT_READ | PROT_EXEC);
    mprotect(p, 4096, PROT_READ | PROT_WRITE);
    return 2;
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

int main(int argc, char **argv) {
    const char *mode = argv[1];
    double secs = atof(argv[2]);
    long calls = 0, i = 0;
    double t0 = now(), t;
    do {
        for (int k = 0; k < 64; k++, i++) {
            if (!strcmp(mode, "openat")) calls += op_openat(i);
            else if (!strcmp(mode, "mprotect")) calls += op_mprotect(i);
            else if (!strcmp(mode, "mmap")) calls += op_mmap(i);
            else if (!strcmp(mode, "forkexec")) { calls += op_forkexec(i); k += 15; }
            else { /* mix */
                calls += op_openat(i) + op_mprotect(i) + op_mmap(i);
                if ((i & 255) == 0) calls += op_forkexec(i);
            }
        }
        t = now();
    } while (t - t0 < secs);
    printf("%.1f\n", calls / (t - t0));
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
    return float(out.strip())


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
    def __init__(self, bootstrap: str, port: int, spool: Path, wide: bool) -> None:
        memtrail = Path(sys.executable).parent / "memtrail"
        cmd = [
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
        env = {**os.environ, "MEMTRAIL_LOG_LEVEL": "WARNING"}
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
            "t": time.monotonic(),
        }

    def close(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def userspace_rate(bootstrap: str, spool: Path, n: int = 200_000) -> tuple[float, int]:
    """Events per CPU-second through decode → context → batch → orjson → Kafka, fed with
    synthetic ring-buffer records (openat, mmap, mprotect, execve): the sensor's per-core
    ceiling, independent of how much CPU the machine leaves it."""
    import socket

    from memtrail.settings import KafkaSettings, Settings
    from sensors import decoder as D
    from sensors.cgroups import CgroupResolver
    from sensors.context import Context
    from sensors.proctable import ProcTable
    from sensors.publisher import Publisher

    pid = os.getpid()
    cg = os.stat("/sys/fs/cgroup/unified").st_ino if Path("/sys/fs/cgroup/unified").exists() else 0

    def hdr(t: int, a: tuple[int, ...], ret: int, flags: int = 0, aux: int = 0) -> tuple[object, ...]:
        return (time.monotonic_ns(), cg, ret, *a, t, pid, pid, os.getppid(), 0, 0, flags, aux, b"loadgen")

    argv = b"/usr/bin/true\0--flag\0value\0"
    records = [
        D.EVENT.pack(*hdr(10, (2**64 - 100, 0, 0o2000000, 0, 0, 0), 3), b"/etc/hostname"),
        D.EVENT.pack(*hdr(8, (0, 8192, 5, 0x802, 3, 0), 0x7F0000000000), b""),
        D.EVENT.pack(*hdr(7, (0x7F0000000000, 4096, 5, 0, 0, 0), 0, D.F_W_TO_X | D.F_PREV_KNOWN, 3), b""),
        D.EXEC.pack(
            *hdr(1, (0, 2**64 - 100, 0, 0, 0, 0), 0, 0, len(argv)),
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
        ),
    ]
    settings = Settings(kafka=KafkaSettings(bootstrap=bootstrap, local_broker=True))
    pub = Publisher(settings, spool)
    dec = D.Decoder(socket.gethostname(), time.time() - time.monotonic())
    procs = ProcTable()
    procs.scan()
    ctx = Context(procs, CgroupResolver())
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
    return n / cpu, published


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per load and configuration")
    ap.add_argument("--loads", default=",".join(LOADS))
    ap.add_argument("--userspace-only", action="store_true", help="only the per-core userspace ceiling")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (eBPF)")
    loads = [x for x in args.loads.split(",") if x]
    from bcc import BPF

    from memtrail.broker import LocalBroker, free_port

    rows: list[list[str]] = []
    if args.userspace_only:
        with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
            ups, published = userspace_rate(broker.bootstrap, Path(tmp) / "spool")
            print(
                f"userspace pipeline: {ups:,.0f} events per CPU-second; {published:,} of 200,000 acknowledged"
            )
        return
    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        d = Path(tmp)
        exe = compile_loadgen(d)
        base = {ld: run_load(exe, ld, args.seconds) for ld in loads}
        floor_prog = BPF(text=count_only_program().encode(), cflags=["-w"])
        floor = {ld: run_load(exe, ld, args.seconds) for ld in loads}
        floor_prog.cleanup()
        results: dict[str, dict[str, dict[str, float]]] = {}
        for mode in ("default", "wide"):
            s = SensorProc(broker.bootstrap, free_port(), d / f"spool-{mode}", wide=(mode == "wide"))
            try:
                results[mode] = {}
                for ld in loads:
                    a = s.snapshot()
                    rate = run_load(exe, ld, args.seconds)
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
        ups, published = userspace_rate(broker.bootstrap, d / "spool-userspace")
    print(
        f"userspace pipeline (decode → context → orjson → Kafka, synthetic records): "
        f"{ups:,.0f} events per CPU-second; {published:,} of 200,000 acknowledged by Kafka\n"
    )
    head = [
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
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
