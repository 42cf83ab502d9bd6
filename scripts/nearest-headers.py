#!/usr/bin/env python3
"""Pick, from package names on stdin, the linux-headers-*-cloud-amd64 nearest to a kernel version.

Nearest means: the highest version not above the running one if such exists, else the lowest above.
"""

import re
import sys


def vtuple(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", s)[:4])


def main() -> int:
    running = vtuple(sys.argv[1].split("-")[0])
    names = [n.strip() for n in sys.stdin if re.match(r"^linux-headers-\d", n.strip())]
    if not names:
        return 1
    versions = sorted(names, key=lambda n: vtuple(n[len("linux-headers-") :]))
    below = [n for n in versions if vtuple(n[len("linux-headers-") :])[:2] <= running[:2]]
    print(below[-1] if below else versions[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
