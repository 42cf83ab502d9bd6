"""A faster engine detects exactly what the recorded one did: same alerts, same order, same
content, on a realistic stream plus every library example (see ``differential.py``)."""

from __future__ import annotations

import gzip
import json

from tests.patterns.differential import corpus, fixture_for, run


def test_alerts_identical_to_the_recorded_engine() -> None:
    events = corpus()
    fixture = fixture_for(events)
    assert fixture.exists(), (
        f"no recorded alerts for this library and corpus ({fixture.name}): record them with an "
        "engine known to be right (python tests/patterns/differential.py, see its docstring)"
    )
    with gzip.open(fixture, "rt") as fh:
        want = json.load(fh)
    assert len(events) == want["events"], "the corpus changed: regenerate the fixture on purpose"
    got = run(events)
    assert len(got) == len(want["alerts"])
    for g, w in zip(got, want["alerts"], strict=True):
        assert g == w
