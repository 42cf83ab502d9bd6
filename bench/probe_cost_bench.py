"""Per-probe cost of the sensor: ``python -m bench.probe_cost_bench [--loads mprotect,mmap] [--seconds 3] [--runs 3]``.

The overhead table of :mod:`bench.sensor_bench` compares syscall rates, which on a shared VM
swing by ±50 % from one second to the next. This bench asks the kernel instead: with
``kernel.bpf_stats_enabled`` (set for the run, restored after) every program counts its runs
and the nanoseconds spent in them. For each load (the sensor bench's load generator) it prints,
per tracepoint program, ns per run, and the eBPF ns per load-generator call for the sensor
(default filters) and for the count-only floor on the same tracepoints. Nothing is published:
the ring buffer is drained and dropped. Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.sensor_bench import compile_loadgen, count_only_program

STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
#: the syscalls each load makes: only their programs are summed per call (the VM is shared,
#: and other processes' opens and execs run the sensor's other programs meanwhile)
LOAD_SYSCALLS = {
    "mprotect": ("mmap", "mprotect", "munmap"),
    "mmap": ("mmap", "munmap"),
    "openat": ("openat",),
    "forkexec": ("clone", "execve", "sched_process", "exit_group", "wait4"),
}


def prog_stats(bpf: Any) -> dict[str, tuple[int, int]]:
    """(run_time_ns, run_cnt) per loaded program, from its fdinfo."""
    out: dict[str, tuple[int, int]] = {}
    for name, fn in bpf.funcs.items():
        kv = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/self/fdinfo/{fn.fd}").read_text().splitlines()
            if ":\t" in line
        )
        key = (name.decode() if isinstance(name, bytes) else name).replace("tracepoint__", "")
        out[key] = (int(kv.get("run_time_ns", 0)), int(kv.get("run_cnt", 0)))
    return out


def _of_load(prog: str, load: str) -> bool:
    return any(f"_{sc}" in prog for sc in LOAD_SYSCALLS.get(load, (load,)))


def measure(
    bpf: Any, exe: Path, load: str, seconds: float, poll: Any = None
) -> tuple[dict[str, float], float]:
    """ns per run of the load's programs, and their total eBPF ns per load-generator call."""
    before = prog_stats(bpf)
    out = subprocess.run([str(exe), load, str(seconds)], capture_output=True, text=True, check=True).stdout
    if poll:
        poll()
    calls = int(out.split()[1])
    after = prog_stats(bpf)
    per_run: dict[str, float] = {}
    total = 0
    for k, (t, c) in after.items():
        dt, dc = t - before[k][0], c - before[k][1]
        if dc and _of_load(k, load):
            total += dt
            per_run[k] = dt / dc
    return per_run, total / max(calls, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", default="mprotect,mmap")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from bcc import BPF

    from ebpf.loader import SensorProgram

    loads = args.loads.split(",")
    per_call: dict[str, dict[str, list[float]]] = {ld: {"sensor": [], "floor": []} for ld in loads}
    probes: dict[str, dict[str, list[float]]] = {ld: {} for ld in loads}
    old = STATS.read_text().strip()
    with tempfile.TemporaryDirectory() as d:
        exe = compile_loadgen(Path(d))
        try:
            STATS.write_text("1")
            sensor = SensorProgram(lambda raw: None)
            floor = BPF(text=count_only_program())
            for _ in range(args.runs):
                for ld in loads:
                    # both are attached: each program's own run time is counted separately
                    fb = prog_stats(floor)
                    pr, ns = measure(sensor.bpf, exe, ld, args.seconds, sensor.poll)
                    fa = prog_stats(floor)
                    mine = [k for k in fa if _of_load(k, ld)]
                    runs = max(sum(fa[k][1] - fb[k][1] for k in mine), 1)
                    per_call[ld]["sensor"].append(ns)
                    per_call[ld]["floor"].append(sum(fa[k][0] - fb[k][0] for k in mine) / runs)
                    for k, v in pr.items():
                        probes[ld].setdefault(k, []).append(v)
            sensor.close()
            floor.cleanup()
        finally:
            STATS.write_text(old)
    for ld in loads:
        print(
            f"{ld}: eBPF ns per load-generator call (sensor, default filters): {_spread(per_call[ld]['sensor'])}"
        )
        print(f"  count-only program, ns per tracepoint hit: {_spread(per_call[ld]['floor'])}")
        for name, samples in sorted(probes[ld].items()):
            print(f"  {name:36s} {_spread(samples)} ns/run")


def _spread(v: list[float]) -> str:
    return f"{statistics.median(v):7.1f} (min {min(v):.1f}, max {max(v):.1f}, n={len(v)})"


if __name__ == "__main__":
    main()
