"""Regenerate (or check) the Python modules of the CRI subset in ``api.proto``.

``python -m sensors.cri_api.generate`` rewrites ``api_pb2.py``, ``api_pb2.pyi`` and
``api_pb2_grpc.py`` next to the .proto with grpcio-tools (a dev dependency); ``--check``
only compares and exits 1 when the committed files are stale. The generated files are
committed so the sensor needs only grpcio + protobuf at run time.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # protoc runs from the repo root so imports read `from sensors.cri_api import`
PROTO = HERE / "api.proto"
OUTPUTS = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")
_HEADER = "# ruff: noqa\n# mypy: ignore-errors\n# Generated from api.proto by `python -m sensors.cri_api.generate`; do not edit.\n"


def generate(out_root: Path) -> dict[str, str]:
    """Run protoc into ``out_root``; return {file name: text} of the generated modules."""
    from grpc_tools import protoc  # dev dependency: imported only here

    rel = PROTO.relative_to(ROOT)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(rel),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    gen = out_root / rel.parent
    return {name: _HEADER + (gen / name).read_text() for name in OUTPUTS}


def stale() -> list[str]:
    """Generated files that differ from what api.proto produces now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    return [n for n, text in fresh.items() if not (HERE / n).exists() or (HERE / n).read_text() != text]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for n in bad:
            print(f"sensors/cri_api/{n} is stale: run python -m sensors.cri_api.generate", file=sys.stderr)
        return 1 if bad else 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in generate(Path(tmp)).items():
            (HERE / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
