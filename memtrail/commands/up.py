"""``memtrail up``: the whole pipeline in one command.

Starts the local broker (unless ``--bootstrap``/MEMTRAIL_KAFKA__BOOTSTRAP names one),
creates the topics, runs ``memtrail sensor``, ``memtrail worker`` and (when installed)
``memtrail shim`` as child processes, and runs the local sinks itself: one console line
per alert and, with ``--alerts-jsonl PATH``, one JSON object per line. Ctrl-C/SIGTERM
stops every child; a child that dies is named with its exit code and last stderr lines,
and everything stops. Preflight problems are one-line errors, never tracebacks.

The shim listens on 127.0.0.1 unless ``--shim-host`` says otherwise. The local broker is
watched: if it dies it is restarted on the same port (``--broker-restarts``, 3 by default),
else everything stops with exit code 4. A sensor spool holding undelivered batches is never
deleted (its path is printed).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import typer
from pydantic import ValidationError

from memtrail.core.children import detach_and_die_with_parent, stop_process
from memtrail.core.podman_api import PodmanApiService
from memtrail.core.settings import Settings, SettingsError, load_settings
from sinks.jsonl import JsonlSink

EXIT_PREFLIGHT = 2
EXIT_CHILD_DIED = 3
EXIT_BROKER_LOST = 4
#: The sensor flushes for up to its delivery timeout (10 s) + 2 s at exit, spooling what fails.
SENSOR_STOP_S = 25.0


class UpError(Exception):
    """A problem to report as one line before exiting."""


def preflight(need_sensor: bool) -> None:
    """Raise UpError with a clear reason when the sensor cannot run on this machine."""
    if not need_sensor:
        return
    if importlib.util.find_spec("memtrail.commands.sensor") is None:
        raise UpError(
            "the `memtrail sensor` command is not installed (memtrail/commands/sensor.py); use --no-sensor"
        )
    from sensors.preflight import PreflightError
    from sensors.preflight import preflight as sensor_preflight

    try:
        sensor_preflight()
    except PreflightError as exc:
        raise UpError(f"{exc} (or run with --no-sensor)") from None


def _memtrail_cmd() -> list[str]:
    script = Path(sys.executable).with_name("memtrail")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from memtrail.cli import main; main()"]


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=15))

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdout=sys.stderr.fileno(),
            stderr=subprocess.PIPE,
            preexec_fn=detach_and_die_with_parent,
        )
        threading.Thread(target=self._pump, args=(self.proc.stderr,), daemon=True).start()

    def _pump(self, stream: IO[bytes] | None) -> None:
        # Child logs go to our stderr, prefixed; the tail is kept to explain a death.
        if stream is None:
            return
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_tail.append(line)
            sys.stderr.write(f"[{self.name}] {line}\n")
            sys.stderr.flush()

    def ready(self) -> bool:
        if self.ready_url is None:
            return True
        with contextlib.suppress(OSError), urllib.request.urlopen(self.ready_url, timeout=1) as r:
            return bool(r.status == 200)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)


class AlertSinks(threading.Thread):
    """The local sinks (console, JSONL) in the one sink loop, on a thread of ``up``."""

    def __init__(self, settings: Settings, sink: JsonlSink | None, color: bool, from_start: bool) -> None:
        super().__init__(name="alert-sinks", daemon=True)
        from sinks.base import SinkRunner
        from sinks.local import LocalSink

        self.runner = SinkRunner(
            LocalSink(sink, color),
            settings,
            group_id=f"memtrail-up-sinks-{settings.host_name}",
            batch_size=100,
            batch_timeout=0.2,
            consumer_overrides={"auto.offset.reset": "earliest" if from_start else "latest"},
        )
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.runner.run(self.stopping)
        except Exception as exc:  # reported by the supervisor loop
            self.error = f"alert sinks stopped: {exc}"


def _say(msg: str, err: bool = True) -> None:
    typer.echo(f"memtrail up: {msg}", err=err)


def run_up(
    settings: Settings,
    alerts_jsonl: Path | None,
    sensor: bool,
    shim: bool,
    worker_metrics_port: int,
    worker_web_port: int,
    sensor_metrics_port: int,
    ready_timeout: float,
    shim_port: int = 8080,
    shim_host: str = "127.0.0.1",
    broker_restarts: int = 3,
) -> int:
    from memtrail.core.broker import BrokerError, LocalBroker
    from memtrail.core.kafka import BrokerUnreachable, check_reachable, ensure_topics
    from memtrail.upwatch import BrokerWatch, leftover_spools, release_spool

    try:
        preflight(sensor)
    except UpError as exc:
        _say(f"error: {exc}")
        return EXIT_PREFLIGHT
    broker: LocalBroker | None = None
    watch: BrokerWatch | None = None
    stop = threading.Event()
    stop_reason: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_reason.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children: list[Child] = []
    podman_api: PodmanApiService | None = None
    run_spool: str | None = None
    sinks: AlertSinks | None = None
    jsonl_sink: JsonlSink | None = None
    try:
        if alerts_jsonl is not None:
            try:
                jsonl_sink = JsonlSink(alerts_jsonl)
            except OSError as exc:
                raise UpError(f"cannot append alerts to {alerts_jsonl}: {exc.strerror}") from None
        if settings.kafka.bootstrap:
            try:
                check_reachable(settings.kafka, timeout=5.0)
            except BrokerUnreachable as exc:
                raise UpError(str(exc)) from None
        else:
            state = Path(tempfile.gettempdir()) / "memtrail"
            state.mkdir(exist_ok=True)
            try:
                broker = LocalBroker(log_path=state / "tansu.log").start()
            except BrokerError as exc:
                raise UpError(str(exc)) from None
            settings.kafka.bootstrap = broker.bootstrap
            settings.kafka.local_broker = True
            watch = BrokerWatch(broker, settings, broker_restarts, _say)
            _say(f"local broker (Tansu, memory storage) on {broker.bootstrap}")
        try:
            ensure_topics(settings)
        except BrokerUnreachable as exc:
            raise UpError(str(exc)) from None

        env = {
            **os.environ,
            "MEMTRAIL_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
            "MEMTRAIL_KAFKA__LOCAL_BROKER": "true" if settings.kafka.local_broker else "false",
            "MEMTRAIL_STREAM_METRICS_PORT": str(worker_metrics_port),
            "MEMTRAIL_STREAM_WEB_PORT": str(worker_web_port),
            "MEMTRAIL_SENSOR_METRICS_PORT": str(sensor_metrics_port),
            "MEMTRAIL_SHIM_PORT": str(shim_port),
            "MEMTRAIL_SHIM_HOST": shim_host,
        }
        if broker is not None and "MEMTRAIL_SENSOR_SPOOL_DIR" not in os.environ:
            # The local broker keeps nothing across runs, so neither may the spool: batches a
            # previous run left would be replayed into this broker as stale alerts.
            spool_base = Path(tempfile.gettempdir()) / "memtrail"
            for old, depth in leftover_spools(spool_base):
                _say(
                    f"warning: {old} holds {depth} undelivered batches from an earlier (or another running) up, not "
                    f"replayed here: deliver them with MEMTRAIL_SENSOR_SPOOL_DIR={old}, or remove the directory"
                )
            run_spool = tempfile.mkdtemp(prefix="spool-", dir=spool_base)
            env["MEMTRAIL_SENSOR_SPOOL_DIR"] = run_spool
        if sensor and PodmanApiService.needed(os.environ.get("MEMTRAIL_SENSOR_DOCKER_SOCKET")):
            # container names and images: podman's Docker API for this run (and only this run)
            state = Path(tempfile.gettempdir()) / "memtrail"
            state.mkdir(exist_ok=True)
            try:
                podman_api = PodmanApiService(state / f"podman-{os.getpid()}.sock").start()
                env["MEMTRAIL_SENSOR_DOCKER_SOCKET"] = str(podman_api.sock)
                _say(f"podman API service on {podman_api.sock} (container names and images)")
            except RuntimeError as exc:
                _say(f"warning: {exc}: container events carry ids only")
        base = _memtrail_cmd()
        children.append(Child("worker", [*base, "worker"], f"http://127.0.0.1:{worker_metrics_port}/readyz"))
        if sensor:
            children.append(
                Child("sensor", [*base, "sensor"], f"http://127.0.0.1:{sensor_metrics_port}/readyz")
            )
        if shim and importlib.util.find_spec("memtrail.commands.shim") is not None:
            children.append(Child("shim", [*base, "shim"], f"http://127.0.0.1:{shim_port}/readyz"))
        sinks = AlertSinks(settings, jsonl_sink, sys.stdout.isatty(), from_start=settings.kafka.local_broker)
        sinks.start()
        for child in children:
            child.start(env)

        announced = False
        deadline = time.monotonic() + ready_timeout
        while not stop.wait(0.3):
            for child in children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None:
                    time.sleep(0.3)  # let the pump read the last lines
                    tail = "\n".join(f"    {line}" for line in list(child.stderr_tail)[-10:])
                    _say(
                        f"error: {child.name} exited with code {code}; stopping everything. Last output:\n{tail}"
                    )
                    return EXIT_CHILD_DIED
            if sinks.error:
                _say(f"error: {sinks.error}")
                return EXIT_CHILD_DIED
            if watch is not None:
                lost = watch.check()
                if lost is not None:
                    _say(f"error: {lost}")
                    return EXIT_BROKER_LOST
            if not announced:
                waiting = [c.name for c in children if not c.ready()]
                if not waiting:
                    announced = True
                    jsonl = f", alerts appended to {alerts_jsonl}" if alerts_jsonl else ""
                    _say(f"ready: {', '.join(c.name for c in children)} running{jsonl}; Ctrl-C stops")
                elif time.monotonic() > deadline:
                    _say(f"error: not ready after {ready_timeout:.0f}s: {', '.join(waiting)}; stopping")
                    return EXIT_CHILD_DIED
        _say(f"{stop_reason[0] if stop_reason else 'stop'} received: stopping")
        return 0
    except UpError as exc:
        _say(f"error: {exc}")
        return EXIT_PREFLIGHT
    finally:
        # Sensor first (no new events), then worker, shim; then the sinks and the broker.
        for child in sorted(children, key=lambda c: c.name != "sensor"):
            child.stop(SENSOR_STOP_S if child.name == "sensor" else 10.0)
        if sinks is not None:
            sinks.stopping.set()
            sinks.join(timeout=5)
        elif jsonl_sink is not None:
            jsonl_sink.close()
        if podman_api is not None:
            podman_api.stop()
        if watch is not None:
            broker = watch.broker  # the one running now, after any restart
        if broker is not None:
            broker.stop()
        if run_spool is not None:
            release_spool(Path(run_spool), _say)


def _child_ports(
    worker_metrics: int | None,
    worker_web: int | None,
    sensor_metrics: int | None,
    shim_port: int | None,
    shim_host: str | None,
) -> tuple[int, int, int, int, str]:
    """The children's ports: the option when given, else the child's own setting (its settings
    model reads the environment); the shim listens on loopback unless told otherwise."""
    from pydantic_settings import EnvSettingsSource

    from sensors.config import SensorSettings
    from sinks.shim.config import ShimSettings
    from streams.config import StreamOptions

    stream, sensor = StreamOptions(), SensorSettings()
    shim_env = EnvSettingsSource(ShimSettings)()  # no validation: the shim checks its own secrets
    return (
        stream.metrics_port if worker_metrics is None else worker_metrics,
        stream.web_port if worker_web is None else worker_web,
        sensor.metrics_port if sensor_metrics is None else sensor_metrics,
        int(shim_env.get("port", 8080)) if shim_port is None else shim_port,
        str(shim_env.get("host", "127.0.0.1")) if shim_host is None else shim_host,
    )


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        bootstrap: str = typer.Option(
            None,
            "--bootstrap",
            help="Use this Kafka instead of a local broker (env MEMTRAIL_KAFKA__BOOTSTRAP)",
        ),
        alerts_jsonl: Path = typer.Option(
            None, "--alerts-jsonl", help="Append every alert as one JSON line here"
        ),
        sensor: bool = typer.Option(True, "--sensor/--no-sensor", help="Run the eBPF sensor (root)"),
        shim: bool = typer.Option(True, "--shim/--no-shim", help="Run the Portainer API shim when installed"),
        worker_metrics_port: int | None = typer.Option(
            None, "--worker-metrics-port", help="(env MEMTRAIL_STREAM_METRICS_PORT, default 9102)"
        ),
        worker_web_port: int | None = typer.Option(
            None, "--worker-web-port", help="(env MEMTRAIL_STREAM_WEB_PORT, default 6066)"
        ),
        sensor_metrics_port: int | None = typer.Option(
            None, "--sensor-metrics-port", help="(env MEMTRAIL_SENSOR_METRICS_PORT, default 9101)"
        ),
        shim_port: int | None = typer.Option(
            None, "--shim-port", help="Security-events API and page (env MEMTRAIL_SHIM_PORT, default 8080)"
        ),
        shim_host: str | None = typer.Option(
            None,
            "--shim-host",
            help="Listen address of the shim (env MEMTRAIL_SHIM_HOST, default 127.0.0.1; "
            "0.0.0.0 exposes the API to the network)",
        ),
        broker_restarts: int = typer.Option(
            3,
            "--broker-restarts",
            min=0,
            help="Restarts of the local broker if it dies, before everything stops (exit code 4)",
        ),
        ready_timeout: float = typer.Option(120.0, "--ready-timeout", help="Seconds to wait for every child"),
    ) -> None:
        """Run everything: broker (unless given), sensor, worker, shim, and print each alert as one line."""
        try:
            settings = load_settings()
        except SettingsError as exc:
            _say(f"error: invalid settings: {exc}")
            raise typer.Exit(EXIT_PREFLIGHT) from None
        if bootstrap:
            settings.kafka.bootstrap = bootstrap
        try:
            ports = _child_ports(
                worker_metrics_port, worker_web_port, sensor_metrics_port, shim_port, shim_host
            )
        except ValidationError as exc:
            _say(f"error: invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
            raise typer.Exit(EXIT_PREFLIGHT) from None
        worker_metrics_port, worker_web_port, sensor_metrics_port, shim_port, shim_host = ports
        code = run_up(
            settings,
            alerts_jsonl,
            sensor,
            shim,
            worker_metrics_port,
            worker_web_port,
            sensor_metrics_port,
            ready_timeout,
            shim_port,
            shim_host,
            broker_restarts,
        )
        raise typer.Exit(code)
