"""Build the C triggers under tests/sensor/c/ with gcc (once per test session)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

C_DIR = Path(__file__).with_name("c")


@cache
def _out_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="memtrail-ctrig-"))


def build(name: str) -> Path:
    """Compile ``c/<name>.c`` and return the executable (skips the test without gcc)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    exe = _out_dir() / name
    if not exe.exists():
        subprocess.run(["gcc", "-O1", "-Wall", "-o", str(exe), str(C_DIR / f"{name}.c")], check=True)
    return exe
