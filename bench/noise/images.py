"""Corpus images built locally from Debian packages: debootstrap minbase + ``podman import``.

No registry pulls. Each :class:`Recipe` (Debian packages, files to add, a shell step run in
the chroot) is hashed; the image is tagged ``localhost/memtrail-corpus-<name>:<hash>`` and
its rootfs tarball kept under the cache dir, so a rerun finds the image (or re-imports the
tarball) in seconds. The Debian mirror and suite come from this machine's apt sources.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"]
CACHE = Path(os.environ.get("MEMTRAIL_CORPUS_CACHE", "/var/cache/memtrail-corpus"))
BUILDER_VERSION = "1"  # bump when the build steps below change what an image holds
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"


@dataclass(frozen=True)
class Recipe:
    """One image: Debian packages on minbase, extra files (path → bytes), a chroot step."""

    name: str
    packages: tuple[str, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)
    script: str = ""

    def digest(self, mirror: str, suite: str) -> str:
        h = hashlib.sha256()
        for part in (BUILDER_VERSION, mirror, suite, self.name, *sorted(self.packages), self.script):
            h.update(part.encode() + b"\0")
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        return h.hexdigest()[:16]


def apt_source() -> tuple[str, str]:
    """(mirror URL, suite) of this machine's Debian main archive, from /etc/apt/sources.list*."""
    texts: list[str] = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.is_file():
            texts.append(p.read_text(errors="replace"))
    for text in texts:
        # deb822: a stanza with URIs and Suites naming a plain "debian" archive.
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(\S+)", stanza, re.M)
            if uris and suites and uris.group(1).rstrip("/").endswith("/debian"):
                return uris.group(1), suites.group(1)
        for line in text.splitlines():
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+(\S+)\s", line)
            if m and "-" not in m.group(2):
                return m.group(1), m.group(2)
    return DEFAULT_MIRROR, DEFAULT_SUITE


def tag_for(recipe: Recipe, mirror: str, suite: str) -> str:
    return f"localhost/memtrail-corpus-{recipe.name}:{recipe.digest(mirror, suite)}"


def image_exists(tag: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", tag]).returncode == 0


def ensure(recipe: Recipe, log: bool = True) -> str:
    """The tag of ``recipe``'s image, building (or re-importing the cached tarball) when missing."""
    mirror, suite = apt_source()
    tag = tag_for(recipe, mirror, suite)
    if image_exists(tag):
        return tag
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{recipe.name}-{recipe.digest(mirror, suite)}.tar"
    if not tarball.exists():
        if log:
            print(f"noise: building image {tag} ({len(recipe.packages)} packages)", flush=True)
        _build_tarball(recipe, mirror, suite, tarball)
        for old in CACHE.glob(f"{recipe.name}-*.tar"):
            if old != tarball:
                old.unlink()
    subprocess.run(
        [*PODMAN, "import", "--change", "CMD=/bin/bash", str(tarball), tag],
        check=True,
        capture_output=True,
    )
    return tag


def _build_tarball(recipe: Recipe, mirror: str, suite: str, out: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError(
            "debootstrap is not installed (apt-get install debootstrap, or scripts/bootstrap.sh test)"
        )
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"memtrail-corpus-{recipe.name}-", dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        cmd = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}"]
        if recipe.packages:
            cmd.append("--include=" + ",".join(recipe.packages))
        cmd += [suite, str(root), mirror]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"debootstrap failed for {recipe.name}:\n{p.stdout[-3000:]}{p.stderr[-2000:]}")
        for path, data in recipe.files.items():
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            if path.endswith(".sh") or "/bin/" in path:
                dest.chmod(0o755)
        if recipe.script:
            p = subprocess.run(
                ["chroot", str(root), "/bin/sh", "-ec", recipe.script], capture_output=True, text=True
            )
            if p.returncode != 0:
                raise RuntimeError(
                    f"chroot step failed for {recipe.name}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}"
                )
        # What an image does not carry: apt lists and caches, and this host's resolv/hostname.
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for child in (root / junk).glob("*"):
                if child.is_file():
                    child.unlink()
        partial = out.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(out)
