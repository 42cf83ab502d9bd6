"""``memtrail worker`` process: preflight, metrics server, then the Faust worker."""

from __future__ import annotations

import importlib
import logging

from memtrail.core.heap import settle_heap
from memtrail.core.kafka import check_reachable, ensure_topics
from memtrail.core.metrics import serve_metrics
from memtrail.core.settings import Settings
from streams.config import StreamOptions
from streams.correlate import EngineFactory, default_engine_factory
from streams.guard import ContainedCorrelator

log = logging.getLogger(__name__)


def run_worker(settings: Settings, opts: StreamOptions, engine_factory: EngineFactory | None = None) -> None:
    """Blocks until SIGINT/SIGTERM. Raises BrokerUnreachable before starting when Kafka is down."""
    import faust  # imported late: `memtrail --help` stays fast

    from streams.app import build_app

    check_reachable(settings.kafka)
    ensure_topics(settings)
    if engine_factory is None and opts.engine_factory:
        module, _, func = opts.engine_factory.partition(":")
        engine_factory = getattr(importlib.import_module(module), func)(settings)
    factory = engine_factory or default_engine_factory(settings.patterns_dirs)
    correlator = ContainedCorrelator(
        factory, opts.grouping_window_s, opts.incident_window_s, opts.incident_hold_s
    )
    app, pipe = build_app(settings, opts, correlator)
    if opts.metrics_port:
        serve_metrics(opts.metrics_port, ready=pipe.is_ready)
    log.info(
        "worker %s: %d-partition topics on %s, longest pattern window %.0fs",
        opts.group_id,
        settings.kafka.partitions,
        settings.kafka.bootstrap,
        correlator.longest_window_s,
    )
    # Faust's own INFO output is a page per rebalance: keep it at WARNING unless DEBUG is asked.
    faust_level = settings.log_level if settings.log_level.upper() == "DEBUG" else "WARNING"
    worker = faust.Worker(app, loglevel=faust_level, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner sets the root logger to DEBUG so that it spins on every record:
    # each produced message then builds a debug LogRecord (~44k per 200k events measured).
    worker.spinner = None
    settle_heap()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        for r in pipe.readers:
            r.stop()
        if pipe.watch is not None:
            pipe.watch.stop()
