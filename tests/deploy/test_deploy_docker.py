"""The Dockerfiles, checked without a Docker engine (none runs here): instructions parse,
base images are the intended ones, every COPY source exists and survives the
.dockerignore, apt packages exist in Debian, and the project builds into a wheel from
exactly the files the images copy."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.deploy_support import DOCKER_DIR, REPO

DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
KNOWN = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


@dataclass
class Instr:
    line: int
    op: str
    args: str


def parse(path: Path) -> list[Instr]:
    out: list[Instr] = []
    buf, start = "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        op, _, args = buf.partition(" ")
        out.append(Instr(start, op.upper(), args.strip()))
        buf = ""
    assert not buf, f"{path.name}: dangling line continuation"
    return out


def ignore_rules(dockerfile: Path) -> list[tuple[bool, str]]:
    """(negated, pattern) rules of the BuildKit per-Dockerfile ignore file, in order."""
    f = dockerfile.with_name(dockerfile.name + ".dockerignore")
    rules = []
    for line in f.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            neg = line.startswith("!")
            rules.append((neg, line.lstrip("!").rstrip("/")))
    return rules


def included(rel: str, rules: list[tuple[bool, str]]) -> bool:
    keep = True
    parts = rel.split("/")
    for neg, pat in rules:
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, pat) or pat == "**" for p in prefixes)
        if pat.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(p, pat[3:]) for p in parts)
        if hit:
            keep = neg
    return keep


def copy_sources(instrs: list[Instr]) -> list[str]:
    srcs = []
    for i in instrs:
        if i.op == "COPY" and "--from=" not in i.args:
            words = [w for w in i.args.split() if not w.startswith("--")]
            srcs += words[:-1]
    return srcs


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_uses_known_instructions(dockerfile: Path) -> None:
    instrs = parse(dockerfile)
    assert instrs, dockerfile
    assert instrs[0].op in {"FROM", "ARG"}
    for i in instrs:
        assert i.op in KNOWN, f"{dockerfile.name}:{i.line}: unknown instruction {i.op}"
        if i.op in {"CMD", "ENTRYPOINT"}:
            assert isinstance(json.loads(i.args), list), (
                f"{dockerfile.name}:{i.line}: use the exec (JSON) form"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_pass_the_dockerignore(dockerfile: Path) -> None:
    rules = ignore_rules(dockerfile)
    srcs = copy_sources(parse(dockerfile))
    assert srcs
    for src in srcs:
        assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src} does not exist in the repository"
        assert included(src, rules), f"{dockerfile.name}: COPY {src} is excluded by its .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_copy_every_python_package(dockerfile: Path) -> None:
    """A package added to pyproject's find-include must reach the image too."""
    includes = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    tops = {p.rstrip("*") for p in includes}
    copied = {s.split("/")[0] for s in copy_sources(parse(dockerfile))}
    assert tops <= copied, f"{dockerfile.name} does not copy {sorted(tops - copied)}"


def test_base_images() -> None:
    sensor = parse(DOCKER_DIR / "sensor.Dockerfile")
    app = parse(DOCKER_DIR / "app.Dockerfile")
    assert [i.args for i in sensor if i.op == "FROM"] == ["debian:bookworm-slim"]
    # python3-bpfcc only imports in Debian's python3: the venv must see system site-packages.
    runs = " ".join(i.args for i in sensor if i.op == "RUN")
    assert "python3-bpfcc" in runs and "--system-site-packages" in runs and "import bcc" in runs
    arg = next(i.args for i in app if i.op == "ARG" and i.args.startswith("PYTHON_IMAGE="))
    assert arg.split("=", 1)[1].startswith("python:3.11-slim")
    assert any(i.op == "USER" and not i.args.startswith("0") for i in app), "the app image runs as non-root"


def _apt_lists_present() -> bool:
    return any(Path("/var/lib/apt/lists").glob("*_Packages*"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_apt_packages_exist_in_debian(dockerfile: Path) -> None:
    if not shutil.which("apt-cache") or not _apt_lists_present():
        pytest.skip("no Debian package lists here (apt-get update has not run)")
    runs = " ".join(i.args for i in parse(dockerfile) if i.op == "RUN")
    pkgs: list[str] = []
    for segment in runs.split("apt-get install")[1:]:
        for word in segment.split("&&")[0].split():
            if not word.startswith("-") and word != "\\":
                pkgs.append(word)
    assert pkgs, dockerfile.name

    def known(*names: str) -> bool:
        return (
            subprocess.run(["apt-cache", "show", "--no-all-versions", *names], capture_output=True).returncode
            == 0
        )

    missing = [] if known(*pkgs) else [p for p in pkgs if not known(p)]
    assert not missing, f"{dockerfile.name}: not in Debian: {missing}"


@pytest.mark.slow
def test_project_builds_from_the_image_build_context(tmp_path: Path) -> None:
    """`pip install /src` in the images: build a wheel from only the files the Dockerfile copies."""
    dockerfile = DOCKER_DIR / "app.Dockerfile"
    rules = ignore_rules(dockerfile)
    ctx = tmp_path / "src"
    for src in copy_sources(parse(dockerfile)):
        if src.startswith("patterns/library"):
            continue  # copied to /opt/memtrail, not into the build
        s = REPO / src
        if s.is_dir():
            shutil.copytree(
                s,
                ctx / src,
                ignore=lambda d, names: [n for n in names if n in {"__pycache__"} or n.endswith(".pyc")],
            )
        else:
            (ctx / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, ctx / src)
    for f in ctx.rglob("*"):
        assert included(str(f.relative_to(ctx)), rules), f
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ctx),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("memtrail-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "memtrail/cli.py" in names
    # Non-Python files the components load at run time travel in the wheel too.
    assert any(n.startswith("ebpf/") and n.endswith(".c") for n in names), "the sensor's eBPF C source"
    assert any(n.startswith("sinks/shim/") and n.endswith(".html") for n in names), "the shim's page"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "memtrail = memtrail.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
