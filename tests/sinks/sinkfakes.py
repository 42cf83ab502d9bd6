"""Stand-ins for OpenSearch, OpenSearch Dashboards and the Wazuh manager API.

None of these servers can run on this machine (no OpenSearch, no Wazuh, no Docker
engine), so the contract tests talk to a real local HTTP server that records every
request byte for byte and answers like the real API does for the calls the sinks make.
The real servers are covered by tests/sinks/test_sink_integration.py when their URLs
are given.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from schemas.alerts import Alert
from sinks.base import Incoming


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    time: float

    def json(self) -> Any:
        return orjson.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[Request], Reply]


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, orjson.dumps(body)


@dataclass
class Recorder:
    """A real HTTP server on 127.0.0.1 that records requests and answers through ``handler``."""

    handler: Handler = field(default=lambda r: json_reply(200, {}))
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Recorder:
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = urlsplit(self.path)
                req = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                rec.requests.append(req)
                if rec.delay:
                    time.sleep(rec.delay)
                status, headers, out = rec.handler(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client timed out
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


class OpenSearchStandIn:
    """Answers template, ISM and ``_bulk`` like OpenSearch, with external versioning per ``_id``.

    ``fail`` lets a test inject replies: a callable getting (request, per-request item
    index or None) and returning a Reply for the whole request or an item status.
    """

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.writes: list[str] = []  # ids in the order they were (re)written
        self.policy: dict[str, Any] | None = None
        self.seq = itertools.count(1)
        self.request_error: Callable[[Request], Reply | None] = lambda r: None
        self.item_error: Callable[[dict[str, Any], dict[str, Any]], tuple[int, dict[str, Any]] | None] = (
            lambda action, doc: None
        )
        self.lock = threading.Lock()

    def __call__(self, req: Request) -> Reply:
        forced = self.request_error(req)
        if forced is not None:
            return forced
        if req.path.startswith("/_index_template/"):
            return json_reply(200, {"acknowledged": True})
        if req.path.startswith("/_plugins/_ism/policies/"):
            if req.method == "GET":
                if self.policy is None:
                    return json_reply(404, {"error": {"type": "status_exception"}, "status": 404})
                return json_reply(200, {"_id": "p", "_seq_no": 7, "_primary_term": 1, "policy": self.policy})
            self.policy = req.json()["policy"]
            return json_reply(201 if req.method == "PUT" else 200, {"_id": "p"})
        if req.path.endswith("/_bulk"):
            return json_reply(200, self._bulk(req.body))
        return json_reply(404, {"error": "no handler", "status": 404})

    def _bulk(self, body: bytes) -> dict[str, Any]:
        lines = [ln for ln in body.split(b"\n") if ln]
        items = []
        errors = False
        with self.lock:
            for action_line, doc_line in zip(lines[::2], lines[1::2], strict=True):
                (op, meta) = orjson.loads(action_line).popitem()
                doc = orjson.loads(doc_line)
                key = (meta["_index"], meta["_id"])
                forced = self.item_error(meta, doc)
                if forced is not None:
                    status, err = forced
                    items.append({op: {"_index": key[0], "_id": key[1], "status": status, "error": err}})
                    errors = True
                    continue
                version = int(meta.get("version", 1))
                old = self.docs.get(key)
                if old is not None and old[0] >= version:
                    errors = True
                    err = {"type": "version_conflict_engine_exception", "reason": "current version is higher"}
                    items.append({op: {"_index": key[0], "_id": key[1], "status": 409, "error": err}})
                    continue
                self.docs[key] = (version, doc)
                self.writes.append(key[1])
                items.append({op: {"_index": key[0], "_id": key[1], "_version": version, "status": 201}})
        return {"took": 1, "errors": errors, "items": items}


class WazuhStandIn:
    """Answers ``/security/user/authenticate`` and ``POST /events`` like the Wazuh manager API."""

    def __init__(self, user: str = "wazuh-wui", password: str = "secret") -> None:
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tokens: list[str] = []
        self.events: list[str] = []
        self.expire_next = False
        self.fail_event: Callable[[str], str | None] = lambda ev: None
        self.request_error: Callable[[Request], Reply | None] = lambda r: None

    def __call__(self, req: Request) -> Reply:
        if req.path == "/security/user/authenticate":
            if req.headers.get("authorization") != self.basic:
                return json_reply(401, {"title": "Unauthorized", "detail": "Invalid credentials"})
            token = f"jwt-{len(self.tokens) + 1}"
            self.tokens.append(token)
            return json_reply(200, {"data": {"token": token}, "error": 0})
        if req.path == "/events":
            if req.headers.get("authorization") != f"Bearer {self.tokens[-1] if self.tokens else ''}":
                return json_reply(401, {"title": "Unauthorized", "detail": "Invalid token"})
            if self.expire_next:
                self.expire_next = False
                self.tokens.append("expired")
                return json_reply(401, {"title": "Unauthorized", "detail": "Token expired"})
            forced = self.request_error(req)
            if forced is not None:
                return forced
            events = req.json()["events"]
            if len(events) > 100:
                return json_reply(400, {"title": "Bad Request", "detail": "Maximum 100 events"})
            ok, failed = [], []
            for ev in events:
                why = self.fail_event(ev)
                if why:
                    failed.append({"error": {"code": 1000, "message": why}, "id": [ev]})
                else:
                    ok.append(ev)
                    self.events.append(ev)
            data = {
                "affected_items": ok,
                "total_affected_items": len(ok),
                "failed_items": failed,
                "total_failed_items": len(failed),
            }
            return json_reply(200, {"data": data, "message": "events forwarded", "error": 2 if failed else 0})
        return json_reply(404, {"title": "Not Found"})


BASE_TIME = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def make_alert(i: int, count: int = 1, day_offset: int = 0, **extra: Any) -> dict[str, Any]:
    """A valid alert (by alias) numbered ``i``; ``count`` > 1 is a grouped update of the same id."""
    ts = BASE_TIME + timedelta(days=day_offset, seconds=i)
    alert = Alert.model_validate(
        {
            "id": f"alert-{i:05d}",
            "@timestamp": ts,
            "rule": {"id": "MT-FILELESS-001", "name": "memfd exec", "severity": "critical"},
            "threat": {"technique": {"id": ["T1620"], "name": ["Reflective Code Loading"]}},
            "container": {"id": "c" * 64, "name": "web", "image": "nginx:1"},
            "process": {"pid": 100 + i, "executable": "/proc/self/fd/3", "name": "x"},
            "host": {"name": "node-1"},
            "message": f"alert {i}",
            "evidence": [{"syscall": "memfd_create", "i": i}],
            "count": count,
            "first_seen": ts,
            "last_seen": ts + timedelta(seconds=count - 1),
            **extra,
        }
    )
    return alert.to_json_dict()


def incoming(alerts: list[dict[str, Any]], topic: str = "memtrail.alerts") -> list[Incoming]:
    """Alerts as the loop hands them to a sink (partition 0, offsets from 0)."""
    return [Incoming(a, a["id"].encode(), topic, 0, off, orjson.dumps(a)) for off, a in enumerate(alerts)]
