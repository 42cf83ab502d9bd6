"""The package layout's rules hold: import contracts (pyproject `[tool.importlinter]`) and no
runtime module reading from the repository tree (runtime data is package data)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO

ROOT = REPO
RUNTIME = ("memtrail", "sensors", "streams", "sinks", "schemas", "patterns", "ebpf")
# A path into the checkout: "deploy/...", Path(...) / "deploy", or climbing out of the package.
REPO_PATH = re.compile(r"""["'](deploy|docs|tests|bench)(/|["'])|\.parents\[\d\]|\.parent\.parent\.parent""")


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_contracts_fail_when_broken(tmp_path: Path) -> None:
    """The checker is live: a contract that the code breaks on purpose is reported."""
    cfg = tmp_path / "contracts.toml"
    cfg.write_text(
        '[tool.importlinter]\nroot_packages = ["memtrail", "sinks"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "probe"\ntype = "forbidden"\nsource_modules = ["memtrail.commands"]\n'
        'forbidden_modules = ["sinks"]\n'
    )
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--no-cache", "--config", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and "BROKEN" in proc.stdout


def test_runtime_code_never_reads_the_repository_tree() -> None:
    offenders = []
    for pkg in RUNTIME:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "_pb2" in path.name:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if REPO_PATH.search(code):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "runtime code reads the checkout (ship it as package data):\n" + "\n".join(
        offenders
    )


def test_settings_are_declared_once() -> None:
    """No command-line option names an environment variable: the settings models read the
    environment, the CLI only overrides what was given (no second list of MEMTRAIL_* names)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "memtrail").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "envvar=" in line.split("#", 1)[0]
    ]
    assert not offenders, offenders


def test_tests_mirror_the_packages() -> None:
    """tests/<name> is a runtime package (``core`` for memtrail/core) or one of the cross-cutting
    suites; shared helpers are imported as ``tests.<dir>.<module>`` (every test dir is a package)."""
    cross_cutting = {"e2e", "corpus", "deploy"}
    packages = {"core", *(p for p in RUNTIME if p != "memtrail")}
    dirs = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert dirs <= packages | cross_cutting, dirs - packages - cross_cutting
    for d in (ROOT / "tests").rglob("*"):
        if d.is_dir() and "__pycache__" not in d.parts and list(d.glob("*.py")):
            assert (d / "__init__.py").exists(), f"{d.relative_to(ROOT)} is not a package"
    bare = re.compile(
        r"^from (?!tests\.|__future__)[a-z_]+(support|helpers|kit|fakes|fields|endpoint) import", re.M
    )
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py") if bare.search(p.read_text())
    ]
    assert not offenders, offenders
