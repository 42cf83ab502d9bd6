"""The set-up script's header choice: nearest Debian cloud headers for a custom kernel."""

from __future__ import annotations

import subprocess

from tests.paths import REPO

SCRIPT = REPO / "scripts" / "nearest-headers.py"
CANDIDATES = (
    "\n".join(
        [
            "linux-headers-6.1.0-47-cloud-amd64",
            "linux-headers-6.12.99+deb12-cloud-amd64",
            "linux-headers-6.12.117+deb12-cloud-amd64",
        ]
    )
    + "\n"
)


def pick(kernel: str) -> str:
    return subprocess.run(
        [str(SCRIPT), kernel], input=CANDIDATES, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_newest_not_above_running_kernel() -> None:
    assert pick("6.18.44-fc-v595") == "linux-headers-6.12.117+deb12-cloud-amd64"
    assert pick("6.1.0-47-cloud-amd64") == "linux-headers-6.1.0-47-cloud-amd64"


def test_older_kernel_takes_lowest() -> None:
    assert pick("5.10.0-1-amd64") == "linux-headers-6.1.0-47-cloud-amd64"


def test_no_candidates_fails() -> None:
    r = subprocess.run([str(SCRIPT), "6.18"], input="", capture_output=True, text=True)
    assert r.returncode == 1
