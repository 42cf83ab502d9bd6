"""Write the generated Wazuh rules, decoder and the stable rule-id map to a directory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import orjson

from patterns.engine.api import PatternInfo
from sinks.wazuh.rules import assign_ids, render_decoders, render_rules

#: The shipped rules, decoder and rule-id map (package data; `memtrail wazuh rules` rewrites
#: them in a checkout, or writes them to --out).
DATA_DIR = Path(str(files("sinks.wazuh") / "data"))
RULES_FILE = "memtrail_rules.xml"
DECODERS_FILE = "memtrail_decoders.xml"
IDS_FILE = "rule_ids.json"


@dataclass(frozen=True)
class Generated:
    rules: str
    decoders: str
    ids: dict[str, int]


def read_ids(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object of pattern id -> rule id")
    return data


def generate(patterns: Iterable[PatternInfo], ids_path: Path = DATA_DIR / IDS_FILE) -> Generated:
    pats = list({p.id: p for p in patterns}.values())  # one rule per pattern id, whatever the input
    ids = assign_ids((p.id for p in pats), read_ids(ids_path))
    return Generated(render_rules(pats, ids), render_decoders(), ids)


def write(gen: Generated, out_dir: Path, ids_path: Path = DATA_DIR / IDS_FILE) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / RULES_FILE, out_dir / DECODERS_FILE]
    files[0].write_text(gen.rules)
    files[1].write_text(gen.decoders)
    ids_path.write_bytes(orjson.dumps(gen.ids, option=orjson.OPT_INDENT_2) + b"\n")
    return [*files, ids_path]
