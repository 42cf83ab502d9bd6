"""Lookup of Enterprise ATT&CK techniques: ``load_catalog().get("T1055.008")``.

The data is ``enterprise.json`` beside this file, generated from MITRE's STIX data by
``scripts/mitre_catalog.py`` (see its header for the source). Tactic ids are the STIX
phase names (``defense-evasion``); ``tactic_name`` gives the display name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "enterprise.json"

#: ATT&CK Enterprise tactic ids (TA....) by STIX phase name.
TACTIC_IDS: dict[str, str] = {
    "reconnaissance": "TA0043",
    "resource-development": "TA0042",
    "initial-access": "TA0001",
    "execution": "TA0002",
    "persistence": "TA0003",
    "privilege-escalation": "TA0004",
    "defense-evasion": "TA0005",
    "credential-access": "TA0006",
    "discovery": "TA0007",
    "lateral-movement": "TA0008",
    "collection": "TA0009",
    "command-and-control": "TA0011",
    "exfiltration": "TA0010",
    "impact": "TA0040",
}


def tactic_name(phase: str) -> str:
    return " ".join(w.capitalize() if w != "and" else w for w in phase.split("-"))


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    tactics: tuple[str, ...]
    url: str
    #: When MITRE created the technique (YYYY-MM-DD): which ATT&CK releases have it.
    created: str | None = None

    @property
    def parent(self) -> str | None:
        return self.id.split(".")[0] if "." in self.id else None


class Catalog:
    def __init__(self, techniques: dict[str, Technique], version: str | None) -> None:
        self._t = techniques
        self.version = version

    def get(self, tid: str) -> Technique | None:
        return self._t.get(tid)

    def __contains__(self, tid: object) -> bool:
        return tid in self._t

    def __len__(self) -> int:
        return len(self._t)

    def ids(self) -> list[str]:
        return sorted(self._t)

    def display_name(self, tid: str) -> str:
        """``Process Injection: Ptrace System Calls`` for a sub-technique, as ATT&CK writes it."""
        t = self._t.get(tid)
        if t is None:
            return tid
        if t.parent and t.parent in self._t:
            return f"{self._t[t.parent].name}: {t.name}"
        return t.name


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    techniques = {
        tid: Technique(tid, v["name"], tuple(v["tactics"]), v["url"], v.get("created"))
        for tid, v in doc["techniques"].items()
    }
    return Catalog(techniques, doc.get("attack_version"))
