"""Match destinations against trail lists, and annotate connect events with the hit.

Pure: built from parsed ``TrailList`` objects, no file or network access. The stream
worker calls ``annotate(event, matcher)`` on every event before the pattern engine; a
connect event whose destination is listed gets ``args.trail`` and the engine's
``network_trails`` patterns alert on it with the shared alert context.

Lookup cost: one dict probe for exact IPs, one per distinct CIDR prefix length present
(masked integer as key), one per label for domains (a domain matches itself and its
subdomains). Domains are matched only when the event carries a name (``args.domain`` or
``args.hostname``): the sensor has no DNS visibility yet, so today connect events match by
IP and CIDR only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.trails.format import TrailEntry, TrailList

#: syscalls whose ``args.addr`` is a destination address.
CONNECT_SYSCALLS = frozenset({"connect"})


@dataclass(frozen=True)
class TrailHit:
    """One match: what was looked up, which entry matched, and the list it came from."""

    value: str
    entry: TrailEntry
    list_name: str
    source: str
    category: str
    severity: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "indicator": self.entry.indicator,
            "type": self.entry.kind,
            "value": self.value,
            "list": self.list_name,
            "source": self.source,
            "info": self.entry.info,
            "category": self.category,
            "severity": self.severity,
        }


class TrailMatcher:
    """Immutable once built; rebuild (cheap) when the lists change."""

    def __init__(self, lists: Iterable[TrailList]) -> None:
        self.lists: dict[str, TrailList] = {}
        self._ips: dict[tuple[int, int], TrailEntry] = {}  # (version, int) -> entry
        self._nets: dict[
            tuple[int, int], dict[int, TrailEntry]
        ] = {}  # (version, prefixlen) -> {net int: entry}
        self._domains: dict[str, TrailEntry] = {}
        for tl in lists:
            # Later lists do not override earlier entries: list order is precedence order.
            self.lists.setdefault(tl.name, tl)
            for e in tl.entries:
                if e.kind == "ip":
                    ip = ipaddress.ip_address(e.indicator)
                    self._ips.setdefault((ip.version, int(ip)), e)
                elif e.kind == "cidr":
                    net = ipaddress.ip_network(e.indicator)
                    bucket = self._nets.setdefault((net.version, net.prefixlen), {})
                    bucket.setdefault(int(net.network_address), e)
                else:
                    self._domains.setdefault(e.indicator, e)
        # Longest prefix first, so the most specific network wins.
        self._net_order = sorted(self._nets, key=lambda k: (k[0], -k[1]))

    def __len__(self) -> int:
        return len(self._ips) + sum(len(b) for b in self._nets.values()) + len(self._domains)

    def _hit(self, value: str, e: TrailEntry) -> TrailHit:
        tl = self.lists[e.list_name]
        return TrailHit(value, e, tl.name, tl.source, tl.category, tl.severity)

    def match_ip(self, addr: str) -> TrailHit | None:
        try:  # inet_pton is ~10x faster than ipaddress for the common IPv4 case
            n, v, text = int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big"), 4, addr
        except (OSError, ValueError):  # ValueError: an embedded NUL is no address
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                return None
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # ::ffff:a.b.c.d from dual-stack sockets
            n, v, text = int(ip), ip.version, str(ip)
        e = self._ips.get((v, n))
        if e is not None:
            return self._hit(text, e)
        bits = 32 if v == 4 else 128
        for version, plen in self._net_order:
            if version != v:
                continue
            key = (n >> (bits - plen)) << (bits - plen) if plen else 0
            e = self._nets[(version, plen)].get(key)
            if e is not None:
                return self._hit(text, e)
        return None

    def match_domain(self, name: str) -> TrailHit | None:
        labels = name.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):  # never match a bare TLD
            e = self._domains.get(".".join(labels[i:]))
            if e is not None:
                return self._hit(name.lower().rstrip("."), e)
        return None


def annotate(event: Mapping[str, Any], matcher: TrailMatcher) -> Mapping[str, Any]:
    """Return the event with ``args.trail`` set when its destination is on a trail list.

    Unmatched (and non-connect) events are returned as they are, unchanged and uncopied;
    a matched event is a shallow copy with a copied ``args``, so the caller's dict is
    never mutated.
    """
    if event.get("syscall") not in CONNECT_SYSCALLS:
        return event
    args = event.get("args")
    if not isinstance(args, Mapping):
        return event
    hit: TrailHit | None = None
    addr = args.get("addr")
    if isinstance(addr, str) and addr:
        hit = matcher.match_ip(addr)
    if hit is None:
        for key in ("domain", "hostname"):
            name = args.get(key)
            if isinstance(name, str) and name:
                hit = matcher.match_domain(name)
                if hit is not None:
                    break
    if hit is None:
        return event
    out = dict(event)
    out["args"] = {**args, "trail": hit.as_dict()}
    return out
