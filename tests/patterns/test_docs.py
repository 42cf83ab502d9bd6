"""The pattern file shown in docs/patterns.md loads and its examples pass (doc examples run in CI)."""

from __future__ import annotations

import re
from pathlib import Path

from patterns.engine.assemble import build_engine
from patterns.engine.examples import check_examples
from tests.paths import REPO

DOC = REPO / "docs" / "patterns.md"


def test_doc_pattern_file_is_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    file_block = next(b for b in blocks if b.startswith("lists:"))
    (tmp_path / "doc.yaml").write_text(file_block)
    eng = build_engine([tmp_path], [])
    assert eng.errors == []
    cp = eng.get("MT-SHM-001")
    assert cp is not None
    assert check_examples(cp, eng.allow, require=True) == []
