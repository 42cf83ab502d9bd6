"""``python -m bench [NAME ...]``: list the benchmarks, or run the named ones (each prints a table)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name.removesuffix("_bench") for m in pkgutil.iter_modules([str(here)]) if m.name.endswith("_bench")
    )


def main(argv: list[str]) -> int:
    names = available()
    if not argv:
        print("benchmarks (python -m bench NAME, or python -m bench.NAME_bench --help):")
        for n in names:
            print(f"  {n}")
        return 0
    unknown = [a for a in argv if a not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    for name in argv:
        module = importlib.import_module(f"bench.{name}_bench")
        sys.argv = [f"bench.{name}_bench"]
        rc = module.main() if hasattr(module, "main") else 0
        if rc:
            return int(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
