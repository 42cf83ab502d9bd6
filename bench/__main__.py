"""``python -m bench [NAME ...] [-- OPTIONS]``: list the benchmarks, or run the named ones (each prints a table).

Arguments from the first one starting with ``-`` on are passed to each named benchmark,
e.g. ``python -m bench noise --only nginx``.
"""

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
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    argv, rest = argv[:split], [a for a in argv[split:] if a != "--"]
    unknown = [a for a in argv if a not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    for name in argv:
        module = importlib.import_module(f"bench.{name}_bench")
        sys.argv = [f"bench.{name}_bench", *rest]
        rc = module.main() if hasattr(module, "main") else 0
        if rc:
            return int(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
