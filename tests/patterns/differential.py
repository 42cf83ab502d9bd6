"""A recorded realistic event stream and the alerts the engine raised on it, for the
differential test: a faster engine must raise exactly the same alerts, in the same order.

The stream: ``bench.engine_bench``'s realistic mix and its stream-bench mix, then every
``match`` and ``no_match`` example of the shipped library (each example after a gap longer
than the longest window, so no state carries over). An alert is recorded as the index of
the event that raised it (or ``-1`` for the final flush), its pattern id and a digest of
its JSON form.

Each fixture is named by a digest of the library and the corpus. When either changes,
record a new one with an engine known to be right (the merge base's, or the previous
commit's when detections change on purpose): ``python tests/patterns/differential.py``.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
ENGINE_MIX, STREAM_MIX = 30_000, 10_000


def fixture_for(events: list[dict[str, Any]]) -> Path:
    """The fixture of this corpus and library: a changed library or corpus needs its own,
    recorded by an engine known to be right (e.g. the merge base's)."""
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR

    h = hashlib.sha256()
    for f in sorted(Path(DEFAULT_PATTERNS_DIR).rglob("*.y*ml")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(json.dumps(events, sort_keys=True, default=str).encode())
    return DATA / f"differential_alerts.{h.hexdigest()[:16]}.json.gz"


def corpus() -> list[dict[str, Any]]:
    from bench.engine_bench import make_events, make_stream_events
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.assemble import build_engine
    from patterns.engine.examples import fill_example

    events = make_events(ENGINE_MIX) + make_stream_events(STREAM_MIX)
    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    gap = eng.longest_window_s + 100.0
    t = max(float(e["time"]) for e in events) + gap
    for cp in sorted(eng.compiled(), key=lambda c: c.id):
        ex = cp.spec.examples
        if ex is None:
            continue
        for item in [*ex.match, *ex.no_match]:
            try:
                evs = fill_example(copy.deepcopy(item))
            except (ValueError, TypeError, KeyError):
                continue
            t0 = min(float(e["time"]) for e in evs)
            for e in evs:
                e["time"] = t + (float(e["time"]) - t0)
            t = max(float(e["time"]) for e in evs) + gap
            events.extend(evs)
    return events


def digest(alert: Any) -> str:
    return hashlib.sha256(alert.model_dump_json().encode()).hexdigest()[:20]


def run(events: list[dict[str, Any]]) -> list[list[Any]]:
    """The alerts of a full-library engine on ``events`` as ``[event index, rule id, digest]``."""
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.assemble import build_engine

    eng = build_engine([DEFAULT_PATTERNS_DIR], [])
    out: list[list[Any]] = []
    for i, e in enumerate(events):
        for a in eng.process(e):
            out.append([i, a.rule.id, digest(a)])
    last = max(float(e["time"]) for e in events)
    for a in eng.flush(last + eng.longest_window_s + 10.0):
        out.append([-1, a.rule.id, digest(a)])
    return out


def main() -> None:
    events = corpus()
    fixture = fixture_for(events)
    rows = run(events)
    DATA.mkdir(exist_ok=True)
    with gzip.open(fixture, "wt") as fh:
        json.dump({"events": len(events), "alerts": rows}, fh, separators=(",", ":"))
    print(f"{len(events)} events, {len(rows)} alerts -> {fixture}")


if __name__ == "__main__":
    main()
