"""``memtrail broker``: run the embedded local Kafka-compatible broker (Tansu) in the foreground."""

from __future__ import annotations

import signal
import threading

import typer

from memtrail.core.broker import BrokerError, LocalBroker


def register(app: typer.Typer) -> None:
    @app.command("broker")
    def broker(port: int = typer.Option(9092, help="Port on 127.0.0.1")) -> None:
        """Run the local broker (memory storage: data is lost when it stops)."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before start: no window to die in
        try:
            b = LocalBroker(port=port).start()
        except BrokerError as exc:
            typer.secho(f"memtrail broker: error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"local broker on {b.bootstrap}; Ctrl-C to stop")
        try:
            while not stop.wait(1) and b.running:
                pass
        except KeyboardInterrupt:
            pass
        finally:
            b.stop()
