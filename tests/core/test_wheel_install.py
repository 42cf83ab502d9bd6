"""The wheel works outside the repository: every runtime file is package data.

The test builds the wheel, installs it (without its dependencies) into a fresh venv in a
temporary directory, and runs each component's smoke command from there with the checkout
out of reach: the dependencies come from the project's venv through a path entry, and no
path of the checkout may appear in what the installed code reads.
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memtrail.core.broker import free_port
from memtrail.core.children import stop_process
from tests.paths import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(work),
            str(REPO),
        ],
        check=True,
        timeout=300,
        cwd=work,
    )
    (wheel,) = work.glob("memtrail-*.whl")
    venv = work / "venv"
    # Debian's python3 with system site-packages, as the sensor image has it (bcc)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEMTRAIL_", "PYTHON"))}
    subprocess.run(  # no PYTHONPATH: pip must not take a checkout for the installed package
        [str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        timeout=300,
        env=clean,
    )
    # third-party dependencies from the project's venv (this machine reaches PyPI, but the
    # wheel's own files are what is under test); its editable hook is not run from a path entry
    purelib = next(
        p for p in site.getsitepackages() if p.startswith(sys.prefix) and p.endswith("site-packages")
    )
    (next((venv / "lib").glob("python3*/site-packages")) / "deps.pth").write_text(purelib + "\n")
    env = {**clean, "HOME": str(work)}
    yield venv, env


def _run(venv: Path, env: dict[str, str], *args: str, cwd: Path) -> str:
    p = subprocess.run(
        [str(venv / "bin" / "memtrail"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, f"memtrail {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


def test_the_installed_code_is_the_wheel_not_the_checkout(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    code = (
        "import memtrail, patterns, sinks, ebpf, sensors, streams, schemas;"
        "print('\\n'.join(m.__file__ for m in (memtrail, patterns, sinks, ebpf, sensors, streams, schemas)))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for line in out.stdout.split():
        assert line.startswith(str(venv)), line


def test_every_runtime_file_is_read_from_the_installed_package(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    code = """
import json
from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.mitre.catalog import load_catalog
from sinks.opensearch.sink import index_template, ism_policy
from sinks.opensearch.dashboards import SAVED_OBJECTS
from sinks.wazuh.content import DATA_DIR, RULES_FILE, DECODERS_FILE, IDS_FILE
import ebpf.loader as loader, sinks.shim.app as shim
from pathlib import Path
files = [DEFAULT_PATTERNS_DIR, SAVED_OBJECTS, DATA_DIR / RULES_FILE, DATA_DIR / DECODERS_FILE, DATA_DIR / IDS_FILE,
         Path(loader.__file__).with_name("sensor.bpf.c"), Path(loader.__file__).with_name("sensor.h"),
         Path(shim.__file__).with_name("static") / "index.html"]
assert len(list(DEFAULT_PATTERNS_DIR.glob("*.yaml"))) > 10
assert index_template()["index_patterns"] and ism_policy(30)["policy"]
assert load_catalog().get("T1620").name
for f in files:
    assert f.exists(), f
    print(f)
"""
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for line in out.stdout.split():
        assert line.startswith(str(venv)) and not line.startswith(str(REPO)), line


def test_pattern_commands_run_from_the_wheel(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    venv, env = installed
    assert re.search(r"\b[1-9]\d* passed, 0 failed", _run(venv, env, "patterns", "test", cwd=tmp_path))
    m = re.search(r"(\d+) patterns", _run(venv, env, "patterns", "stats", cwd=tmp_path))
    assert m and int(m.group(1)) > 700


@pytest.mark.ebpf
def test_the_sensor_program_compiles_from_the_wheel(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    out = _run(venv, env, "sensor", "--print-bpf", cwd=tmp_path)
    assert "TRACEPOINT_PROBE(sched, sched_process_exec)" in out and "struct mt_hdr" in out


def test_the_shim_serves_its_page_from_the_wheel(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin" / "memtrail"), "shim", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "MEMTRAIL_SHIM_DB": str(tmp_path / "shim.sqlite3")},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        page = None
        while time.monotonic() < deadline and page is None:
            try:
                page = httpx.get(base + "/", timeout=1)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200, "the shim did not serve its page"
        assert '<script type="module" src="/static/js/app.js">' in page.text
        assert httpx.get(base + "/static/js/app.js", timeout=5).status_code == 200
        assert httpx.get(base + "/static/css/app.css", timeout=5).status_code == 200
    finally:
        stop_process(proc)
