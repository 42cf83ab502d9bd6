"""The trail list format: one file per list, one indicator per line.

A list file looks like::

    # name: cloud-metadata
    # source: AWS, GCP, Azure and Alibaba Cloud documentation of their instance metadata services
    # category: suspicious
    # severity: warning
    169.254.169.254        # AWS/GCP/Azure/OpenStack instance metadata service (IMDS)
    203.0.113.0/24         # RFC 5737 TEST-NET-3
    pool.example-miner.org # a domain matches itself and every subdomain

Header lines (``# key: value`` before the first indicator) name the list, record where it
came from (required, habit 8: a missing source is reported as an error, and the list
still loads with source ``unknown`` so detection does not stop) and optionally set
``category`` and ``severity`` for every entry. An indicator is an IPv4/IPv6 address, a
CIDR network or a domain name; the text after ``#`` on its line is the entry's info.
Bad lines are reported with their line number and skipped; the rest of the list loads.

Pure: parsing takes text, not paths.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

IndicatorKind = Literal["ip", "cidr", "domain"]
SEVERITIES = ("info", "warning", "error", "critical")
HEADER_KEYS = ("name", "source", "category", "severity", "url", "license", "updated")

# RFC 1123 labels; a leading "*." is accepted and means the same as the bare domain.
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
_HEADER = re.compile(r"^#\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class TrailEntry:
    indicator: str  # normalised: compressed IP, network with prefix, lower-case domain
    kind: IndicatorKind
    info: str
    list_name: str
    line: int


@dataclass
class TrailList:
    name: str
    source: str
    origin: str  # file path or other label, for messages
    category: str = "malicious"
    severity: str = "error"
    headers: dict[str, str] = field(default_factory=dict)
    entries: list[TrailEntry] = field(default_factory=list)


@dataclass(frozen=True)
class TrailFormatError:
    origin: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.origin}:{self.line}: {self.message}"


def classify(indicator: str) -> tuple[IndicatorKind, str] | None:
    """Return (kind, normalised indicator) or None when it is none of IP, CIDR, domain."""
    text = indicator.strip().lower()
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        if net.num_addresses == 1:
            return "ip", str(net.network_address)
        return "cidr", str(net)
    try:
        return "ip", str(ipaddress.ip_address(text))
    except ValueError:
        pass
    text = text.removeprefix("*.").rstrip(".")
    if _DOMAIN.match(text):
        return "domain", text
    return None


def parse_trail_list(
    text: str, origin: str, default_name: str | None = None
) -> tuple[TrailList, list[TrailFormatError]]:
    """Parse one list file's text. ``default_name`` (usually the file stem) applies without a name header."""
    headers: dict[str, str] = {}
    errors: list[TrailFormatError] = []
    raw_entries: list[tuple[int, str, str]] = []
    in_header = True
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _HEADER.match(line)
            if in_header and m and m.group(1).lower() in HEADER_KEYS:
                headers[m.group(1).lower()] = m.group(2)
            continue  # any other comment line
        in_header = False
        indicator, _, info = line.partition("#")
        raw_entries.append((lineno, indicator.strip(), info.strip()))

    name = headers.get("name") or default_name or origin
    tl = TrailList(name=name, source=headers.get("source") or "unknown", origin=origin, headers=headers)
    if not headers.get("source"):
        errors.append(
            TrailFormatError(
                origin, 1, "missing '# source: ...' header: every list must say where it came from"
            )
        )
    if "category" in headers:
        tl.category = headers["category"].lower()
    if "severity" in headers:
        sev = headers["severity"].lower()
        if sev in SEVERITIES:
            tl.severity = sev
        else:
            errors.append(
                TrailFormatError(origin, 1, f"severity {sev!r} is not one of {', '.join(SEVERITIES)}")
            )

    seen: set[str] = set()
    for lineno, indicator, info in raw_entries:
        if " " in indicator or "\t" in indicator:
            errors.append(TrailFormatError(origin, lineno, f"one indicator per line, got {indicator!r}"))
            continue
        c = classify(indicator)
        if c is None:
            errors.append(
                TrailFormatError(
                    origin, lineno, f"{indicator!r} is not an IP address, CIDR network or domain"
                )
            )
            continue
        kind, norm = c
        if norm in seen:
            continue  # duplicates inside one list are harmless; keep the first info
        seen.add(norm)
        tl.entries.append(TrailEntry(norm, kind, info, name, lineno))
    return tl, errors
