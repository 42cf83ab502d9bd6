"""The CI subset of the benign corpus: real software under ``memtrail up``, no alert at warning+.

Runs the workloads marked ``ci`` in bench/noise/workloads.py (nginx, a gunicorn app, and
apt/dpkg in a user-namespaced container whose root is a high host uid, in the small ``web``
image built with debootstrap; pip/venv and ssh-keygen on the host),
attributes each alert to its workload by container id or cgroup (other tests' triggers
on this machine stay unattributed) and fails on any attributed alert at warning or
above. The image is cached by recipe hash (/var/cache/memtrail-corpus), so only the
first run pays for debootstrap (about a minute).
"""

from __future__ import annotations

import os
import shutil

import orjson
import pytest

from bench.noise.runner import render, run_corpus, select
from tests.e2e.helpers import ARTIFACTS

pytestmark = [pytest.mark.ebpf, pytest.mark.broker, pytest.mark.podman, pytest.mark.slow]


def test_ci_subset_raises_nothing_at_warning_or_above() -> None:
    if shutil.which("debootstrap") is None and os.environ.get("CI") != "true":
        pytest.skip("debootstrap not installed (scripts/bootstrap.sh test installs it)")
    out = ARTIFACTS / "noise-ci"
    report = run_corpus(select(None, ci=True), out, settle=8.0)
    (out / "noise.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    table = render(report)
    print(table)
    assert report["pipeline_exit"] == 0, table
    failed = {n: w["log_tail"] for n, w in report["workloads"].items() if w["exit_code"] != 0}
    assert not failed, f"workloads did not finish cleanly: {failed}"
    noisy = {
        n: [
            (r["rule"], r["severity"], r["alerts"], r["example"])
            for r in w["alerts"]
            if r["severity"] != "info"
        ]
        for n, w in report["workloads"].items()
        if w["warn_or_above"]
    }
    assert report["warn_or_above"] == 0, f"benign software raised alerts at warning+:\n{table}\n{noisy}"
