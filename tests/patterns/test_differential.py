"""A faster engine detects exactly what the recorded one did: same alerts, same order, same
content, on a realistic stream plus every library example (see ``differential.py``)."""

from __future__ import annotations

import gzip
import json

from tests.patterns.differential import FIXTURE, corpus, run


def test_alerts_identical_to_the_recorded_engine() -> None:
    with gzip.open(FIXTURE, "rt") as fh:
        want = json.load(fh)
    events = corpus()
    assert len(events) == want["events"], "the corpus changed: regenerate the fixture on purpose"
    got = run(events)
    assert len(got) == len(want["alerts"])
    for g, w in zip(got, want["alerts"], strict=True):
        assert g == w
