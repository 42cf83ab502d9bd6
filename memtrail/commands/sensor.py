"""``memtrail sensor``: the eBPF sensor (one per node)."""

from __future__ import annotations

import logging
import re
import signal
import threading
from pathlib import Path
from typing import NoReturn

import typer

from memtrail.commands.common import fail, settings_with_broker

log = logging.getLogger("memtrail.sensor")


class _OncePerInterval(logging.Filter):
    """Lets one record per message kind through every ``interval`` seconds: a broker
    outage must be visible, not a log flood (librdkafka repeats each reconnect failure)."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        import time

        kind = re.sub(r"\d+", "#", record.getMessage().split(":", 1)[0][:60])  # client numbers vary
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < self.interval:
            return False
        self._last[kind] = now
        return True


def register(app: typer.Typer) -> None:
    @app.command("sensor")
    def sensor(
        bootstrap: str | None = typer.Option(
            None, help="Kafka bootstrap HOST:PORT (else MEMTRAIL_KAFKA__BOOTSTRAP)"
        ),
        metrics_port: int | None = typer.Option(
            None, help="Prometheus /metrics, /healthz, /readyz port (9101)"
        ),
        print_bpf: bool = typer.Option(False, "--print-bpf", help="Print the eBPF C program and exit"),
        spool_dir: Path | None = typer.Option(None, help="Disk spool used while Kafka is unreachable"),
        docker_socket: Path | None = typer.Option(None, help="Docker Engine API socket (podman's works)"),
        cri_socket: Path | None = typer.Option(
            None, help="CRI socket (containerd, CRI-O); default: the first well-known one that answers"
        ),
        no_cri: bool = typer.Option(False, "--no-cri", help="No container metadata from a CRI socket"),
        path_prefix: list[str] | None = typer.Option(
            None,
            "--path-prefix",
            help="Report opens (reads and writes) only under these prefixes (repeat; '/' = all)",
        ),
        no_open_filter: bool = typer.Option(
            False, "--no-open-filter", help="Report every open (busy: for tests and benchmarks)"
        ),
        no_mmap_filter: bool = typer.Option(
            False, "--no-mmap-filter", help="Report every mmap/mprotect, not only PROT_EXEC ones"
        ),
        duration: float | None = typer.Option(None, help="Stop after this many seconds"),
    ) -> None:
        """Attach the syscall tracepoints and publish events to Kafka (needs root)."""
        from sensors.config import SensorSettings

        if print_bpf:
            from ebpf.loader import build_cflags, source_text

            try:
                flags = " ".join(build_cflags())
            except Exception as exc:
                flags = f"(kernel offsets unavailable: {exc})"
            typer.echo(f"// cflags: {flags}\n{source_text()}")
            return
        from ebpf.btf import BTFError
        from ebpf.loader import LoadError
        from sensors.preflight import PreflightError, preflight
        from sensors.runner import Sensor, serve

        def die(msg: str) -> NoReturn:
            fail("sensor", msg)

        logging.getLogger("librdkafka").addFilter(_OncePerInterval())
        settings = settings_with_broker("sensor", bootstrap)
        cfg = SensorSettings()
        if metrics_port is not None:
            cfg.metrics_port = metrics_port
        if spool_dir is not None:
            cfg.spool_dir = spool_dir
        if docker_socket is not None:
            cfg.docker_socket = docker_socket
        if cri_socket is not None:
            cfg.cri_socket = cri_socket
        if no_cri:
            cfg.cri = False
        if path_prefix:
            cfg.open_prefixes = list(path_prefix)
            cfg.write_prefixes = list(path_prefix)
        if no_open_filter:
            cfg.open_filter = False
        if no_mmap_filter:
            cfg.mmap_filter = False
        try:
            preflight()
        except PreflightError as exc:
            die(str(exc))
        try:
            cfg.spool_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            die(f"spool directory {cfg.spool_dir}: {exc.strerror}")
        from sensors.container_publisher import ContainerPublisher
        from sensors.cri import CriError, CriWatcher

        containers_out = ContainerPublisher(settings)  # one producer for every watcher
        try:
            cri = CriWatcher.from_settings(
                settings, cfg, containers_out
            )  # a configured socket that does not answer: refuse
        except CriError as exc:
            die(str(exc))
        s = Sensor(settings, cfg)
        try:
            server = serve(s, cfg.metrics_port, cfg.metrics_host)
        except OSError as exc:
            die(f"metrics port {cfg.metrics_port}: {exc.strerror}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if duration:
            threading.Timer(duration, stop.set).start()
        try:
            s.start()
        except (LoadError, BTFError) as exc:
            die(str(exc))
        from sensors.containers import ContainerWatcher
        from sensors.k8s import PodWatcher

        watchers: list[ContainerWatcher | PodWatcher | CriWatcher] = []
        for w in (
            ContainerWatcher.from_settings(settings, cfg, containers_out),
            cri,
            PodWatcher.in_cluster(settings, containers_out),
        ):
            if w is not None:
                w.start()
                watchers.append(w)
        typer.echo(
            f"memtrail sensor: attached; publishing to {settings.kafka.bootstrap} topic {settings.topics.raw}",
            err=True,
        )
        try:
            s.run(stop)
        finally:
            for w in watchers:
                w.stop()
            server.shutdown()
        log.info(
            "sensor stopped: %d events, %d published, %d spooled",
            s.events_total,
            s.publisher.published_events if s.publisher else 0,
            s.publisher.spool.depth if s.publisher else 0,
        )
