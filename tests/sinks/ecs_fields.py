"""The official ECS field definitions, from Elastic's own npm package ``@elastic/ecs``.

The package ships one TypeScript interface per field set (``generated/<set>.ts``); this reads
them into ``{"container.image.name": "string", ...}``. Fetched with ``npm pack`` from the npm
registry (which CI reaches) into a cache directory, so nothing of Elastic's is vendored here.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

ECS_PACKAGE = "@elastic/ecs@9.4.0"
_FIELD = re.compile(r"^\s*'?([@\w]+)'?\??:\s*(.*?);?\s*$")


def fetch(cache: Path) -> Path:
    """The unpacked package directory (``npm pack`` once per cache)."""
    root = cache / "package"
    if not (root / "generated").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            ["npm", "pack", ECS_PACKAGE, "--silent"], cwd=cache, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"npm pack {ECS_PACKAGE} failed: {out.stderr.strip()[-500:]}")
        with tarfile.open(cache / out.stdout.strip().splitlines()[-1]) as t:
            members = [
                m
                for m in t.getmembers()
                if m.isfile() and m.name.startswith("package/") and ".." not in m.name
            ]
            t.extractall(cache, members=members)
    return root


def fields(package: Path) -> dict[str, str]:
    """Dotted ECS field path → its TypeScript type, for every field set."""
    out: dict[str, str] = {}
    for ts in sorted((package / "generated").glob("*.ts")):
        if ts.name == "index.ts":
            continue
        text = re.sub(r"/\*.*?\*/", "", ts.read_text(), flags=re.S)
        prefix = "" if ts.stem == "base" else ts.stem
        stack: list[str] = [prefix] if prefix else []
        inside = False
        for line in text.splitlines():
            if line.startswith("export interface"):
                inside = True
                continue
            if not inside or not line.strip():
                continue
            if line.strip() in ("};", "}"):
                if len(stack) > (1 if prefix else 0):
                    stack.pop()
                else:
                    inside = False
                continue
            m = _FIELD.match(line)
            if not m:
                continue
            name, typ = m.groups()
            if typ == "{":
                stack.append(name)
            else:
                out[".".join([*stack, name])] = typ
    return out
