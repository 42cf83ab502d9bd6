"""``python -m bench noise``: run the benign corpus under ``memtrail up`` and count alerts.

Builds (or finds cached) the images, starts the real pipeline with ``--alerts-jsonl``,
runs each workload in turn in its own cgroup2 directory, waits for the stream to settle,
stops the pipeline, then attributes every alert (bench.noise.attribution) and prints
workload × pattern with severity; the same table is written as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.noise import assets, images
from bench.noise.attribution import WARN, Identity, Row, table, warn_or_above
from bench.noise.workloads import WORKLOADS, Workload, by_name, recipe
from memtrail.core.broker import free_port
from memtrail.core.children import stop_process
from schemas.alerts import SEVERITY_ORDER
from sensors.cgroups import cgroup2_root

REPO = Path(__file__).resolve().parents[2]
OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
READY = "memtrail up: ready"


@dataclass
class Outcome:
    workload: str
    where: str
    exit_code: int | None
    seconds: float
    log_tail: str = ""
    identity: Identity = field(default_factory=lambda: Identity(""))


class Cgroup:
    """A cgroup2 directory for one workload: its inode is the sensor's ``cgroup_id``."""

    def __init__(self, name: str) -> None:
        root = cgroup2_root()
        if root is None:
            raise RuntimeError("no cgroup2 mount found (needed to attribute host workloads)")
        self.path = root / f"memtrail-noise-{name}-{uuid.uuid4().hex[:6]}"
        self.path.mkdir()
        self.id = os.stat(self.path).st_ino

    def join(self) -> None:
        """preexec_fn: move the child (before exec) into this cgroup."""
        (self.path / "cgroup.procs").write_text("0")

    def close(self) -> None:
        for _ in range(50):
            pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            if not pids:
                break
            for pid in pids:  # leftovers of this workload only
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            self.path.rmdir()


class PodmanService:
    """``podman system service`` on a private socket: the sensor's container metadata (image,
    name, mounts) as a node's Docker-compatible API would give it, so image- and mount-aware
    patterns see what they would in production."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="memtrail-noise-sock-", dir="/tmp"))
        self.socket = self.dir / "podman.sock"
        self.proc = subprocess.Popen(
            [*images.PODMAN, "system", "service", "--time=0", f"unix://{self.socket}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self.socket.exists():
            self.close()
            raise RuntimeError("podman system service did not create its socket")

    def close(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Pipeline:
    """``memtrail up --alerts-jsonl FILE --no-shim`` as a subprocess."""

    def __init__(self, out: Path, extra_env: dict[str, str] | None = None) -> None:
        self.jsonl = out / "alerts.jsonl"
        self.log = out / "memtrail-up.stderr.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        # One alert line per detection: grouping would fold a workload's alert into an
        # unrelated process's group with the same rule and executable.
        env["MEMTRAIL_STREAM_GROUPING_WINDOW_S"] = "0.001"
        env.update(extra_env or {})
        ports: list[str] = []
        for flag in ("--worker-metrics-port", "--worker-web-port", "--sensor-metrics-port"):
            ports += [flag, str(free_port())]
        self._err = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from memtrail.cli import main; main()",
                "up",
                "--no-shim",
                "--alerts-jsonl",
                str(self.jsonl),
                *ports,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"memtrail up not ready:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        return self.proc.returncode

    def alerts(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [orjson.loads(x) for x in self.jsonl.read_bytes().splitlines() if x.strip()]


def _tail(text: str, n: int = 12) -> str:
    return "\n".join(text.splitlines()[-n:])


def sa_token_dir(base: Path) -> Path:
    """A service-account volume as the kubelet projects it: token, namespace, ca.crt."""
    d = base / "serviceaccount"
    d.mkdir(parents=True, exist_ok=True)
    (d / "token").write_text(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImNvcnB1cyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpjb250cm9sbGVyIn0.c2ln\n"
    )
    (d / "namespace").write_text("default")
    (d / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return d


def run_container(w: Workload, image: str, work: Path) -> Outcome:
    cg = Cgroup(w.name)
    ident = Identity(w.name, cgroup_ids={cg.id}, start=time.time())
    name = f"memtrail-noise-{w.name}-{uuid.uuid4().hex[:6]}"
    opts = [o.format(sa_dir=sa_token_dir(work)) if "{sa_dir}" in o else o for o in w.run_opts]
    if w.health_cmd:
        opts += ["--health-cmd", w.health_cmd, "--health-interval", "disable"]
    t0 = time.monotonic()
    code: int | None = None
    log = ""
    try:
        p = subprocess.run(
            [*images.PODMAN, "run", "-d", "--name", name, *OPTS, *opts, image, "/bin/bash", "-ec", w.script],
            capture_output=True,
            text=True,
            preexec_fn=cg.join,
            timeout=120,
        )
        if p.returncode != 0:
            return Outcome(w.name, w.where, p.returncode, time.monotonic() - t0, _tail(p.stderr), ident)
        cid = p.stdout.strip().splitlines()[-1]
        ident.container_ids.add(cid)
        while time.monotonic() - t0 < w.timeout:
            state = subprocess.run(
                [
                    *images.PODMAN,
                    "container",
                    "inspect",
                    "--format",
                    "{{.State.Running}} {{.State.ExitCode}}",
                    cid,
                ],
                capture_output=True,
                text=True,
            ).stdout.split()
            if not state or state[0] != "true":
                code = int(state[1]) if len(state) > 1 else None
                break
            for cmd in ([[*images.PODMAN, "healthcheck", "run", cid]] if w.health_cmd else []) + [
                [*images.PODMAN, "exec", cid, "/bin/sh", "-c", e] for e in w.execs
            ]:
                subprocess.run(cmd, capture_output=True, preexec_fn=cg.join, timeout=30)
            time.sleep(1.0)
        else:
            code = None  # timed out
        logs = subprocess.run([*images.PODMAN, "logs", cid], capture_output=True, text=True)
        log = _tail(logs.stdout + logs.stderr)
    finally:
        subprocess.run([*images.PODMAN, "rm", "-f", "-t", "2", name], capture_output=True, preexec_fn=cg.join)
        ident.end = time.time()
        cg.close()
    return Outcome(w.name, w.where, code, time.monotonic() - t0, log, ident)


def run_host(w: Workload, work: Path) -> Outcome:
    cg = Cgroup(w.name)
    ident = Identity(w.name, cgroup_ids={cg.id}, start=time.time())
    env = dict(os.environ)
    env.update(WORK=str(work), WHEELHOUSE=str(assets.wheelhouse()), HOME=str(work))
    debsrc = work / "debsrc"
    debsrc.mkdir(exist_ok=True)
    for k, v in assets.deb_sources().items():
        (debsrc / k).write_bytes(v)
    env["DEBSRC"] = str(debsrc)
    t0 = time.monotonic()
    logf = work / "workload.log"
    with logf.open("w") as out:
        proc = subprocess.Popen(
            ["/bin/bash", "-ec", w.script],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=cg.join,
            start_new_session=True,
        )
        ident.root_pids.add(proc.pid)
        try:
            code: int | None = proc.wait(w.timeout)
        except subprocess.TimeoutExpired:
            code = None
    ident.end = time.time()
    cg.close()
    return Outcome(
        w.name, w.where, code, time.monotonic() - t0, _tail(logf.read_text(errors="replace")), ident
    )


def run_corpus(
    selected: Sequence[Workload], out: Path, settle: float = 10.0, metadata: bool = True
) -> dict[str, Any]:
    """Build images, run the workloads under the pipeline; the report as a JSON-able dict."""
    out.mkdir(parents=True, exist_ok=True)
    t_build = time.monotonic()
    tags = {r: images.ensure(recipe(r)) for r in sorted({w.image for w in selected if w.image})}
    build_s = time.monotonic() - t_build
    service = PodmanService() if metadata else None
    env = {"MEMTRAIL_SENSOR_DOCKER_SOCKET": str(service.socket)} if service else {}
    pipe = Pipeline(out, env)
    outcomes: list[Outcome] = []
    base = Path(tempfile.mkdtemp(prefix="memtrail-noise-", dir="/tmp"))
    base.chmod(0o755)  # a workload may drop to an unprivileged user (chromium as nobody)
    try:
        pipe.wait_ready()
        for w in selected:
            work = base / w.name
            work.mkdir()
            print(f"noise: {w.name} ({w.where}) ...", end="", flush=True)
            o = run_container(w, tags[w.image], work) if w.image else run_host(w, work)
            print(f" exit={o.exit_code} {o.seconds:.1f}s", flush=True)
            if o.exit_code != 0:
                print("  " + o.log_tail.replace("\n", "\n  "), flush=True)
            outcomes.append(o)
        time.sleep(settle)
    finally:
        code = pipe.stop()
        if service is not None:
            service.close()
        shutil.rmtree(base, ignore_errors=True)
    alerts = pipe.alerts()
    per, other = table(alerts, [o.identity for o in outcomes])
    return {
        "build_seconds": round(build_s, 1),
        "pipeline_exit": code,
        "alert_lines": len(alerts),
        "workloads": {
            o.workload: {
                "where": o.where,
                "exit_code": o.exit_code,
                "seconds": round(o.seconds, 1),
                "log_tail": o.log_tail,
                "warn_or_above": warn_or_above(per[o.workload]),
                "alerts": [asdict(r) for r in _sorted(per[o.workload])],
            }
            for o in outcomes
        },
        "warn_or_above": sum(warn_or_above(per[o.workload]) for o in outcomes),
        "unattributed": [asdict(r) for r in _sorted(other)],
    }


def _sorted(rows: dict[str, Row]) -> list[Row]:
    return sorted(rows.values(), key=lambda r: (-SEVERITY_ORDER.get(r.severity, 0), r.rule))


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{'workload':<12} {'where':<15} {'exit':>4} {'secs':>5}  {'pattern':<28} {'severity':<8} {'alerts':>6}"
    ]
    for name, w in report["workloads"].items():
        head = f"{name:<12} {w['where']:<15} {w['exit_code']!s:>4} {w['seconds']:>5.0f}"
        if not w["alerts"]:
            lines.append(f"{head}  {'-':<28} {'':<8} {0:>6}")
        for i, r in enumerate(w["alerts"]):
            lead = head if i == 0 else " " * len(head)
            mark = " *" if SEVERITY_ORDER.get(r["severity"], 0) >= WARN else ""
            lines.append(f"{lead}  {r['rule']:<28} {r['severity']:<8} {r['alerts']:>6}{mark}")
    lines.append(f"warning-or-above (attributed): {report['warn_or_above']}")
    info = sum(
        r["alerts"] for w in report["workloads"].values() for r in w["alerts"] if r["severity"] == "info"
    )
    lines.append(f"info (attributed): {info}")
    if report["unattributed"]:
        lines.append("unattributed (other processes on this machine, not counted):")
        for r in report["unattributed"]:
            lines.append(f"  {r['rule']:<28} {r['severity']:<8} {r['alerts']:>6}  {r['example'][:70]}")
    return "\n".join(lines)


def select(only: Sequence[str] | None, ci: bool = False) -> list[Workload]:
    if ci:
        return [w for w in WORKLOADS if w.ci]
    if not only:
        return list(WORKLOADS)
    known = by_name()
    unknown = [n for n in only if n not in known]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in only]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench noise", description=__doc__)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these workloads")
    ap.add_argument("--ci", action="store_true", help="the CI subset only (tests/corpus)")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--out", type=Path, default=REPO / "test-artifacts" / "noise", help="alerts, logs, JSON")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds to wait for late alerts")
    ap.add_argument(
        "--no-metadata", action="store_true", help="no podman API socket: containers without image/mounts"
    )
    ap.add_argument("--build-only", action="store_true", help="build (or find cached) images and exit")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:<12} {w.where:<15} {'ci ' if w.ci else '   '}{w.what}")
        return 0
    selected = select(args.only, args.ci)
    if args.build_only:
        for r in sorted({w.image for w in selected if w.image}):
            print(images.ensure(recipe(r)))
        return 0
    report = run_corpus(selected, args.out, args.settle, metadata=not args.no_metadata)
    print(render(report))
    (args.out / "noise.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"written: {args.out / 'noise.json'}")
    failed = [n for n, w in report["workloads"].items() if w["exit_code"] != 0]
    if failed:
        print(f"workloads that did not finish cleanly: {', '.join(failed)}", file=sys.stderr)
    return 0
