"""Compile the C triggers in ``tests/sensor/c/`` with gcc, once per source content."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

C_DIR = Path(__file__).with_name("c")
_OUT = Path(tempfile.gettempdir()) / "memtrail-ctriggers"


def build(name: str, *, static: bool = False) -> Path:
    """Path of the executable built from ``c/<name>.c`` (skips the test when gcc is missing).

    ``static``: linked statically, to run inside a container image that has no libc.
    """
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the C triggers")
    src = C_DIR / f"{name}.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    exe = _OUT / f"{name}-{digest}{'-static' if static else ''}"
    if not exe.exists():
        _OUT.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["gcc", "-O1", *(["-static"] if static else []), "-o", str(tmp), str(src)], check=True)
        tmp.rename(exe)
    return exe
