"""Network threat trails: lists of bad IPs, networks and domains matched against connect events.

``format`` parses list files, ``matcher`` matches and annotates events (pure), ``loader``
reads directories and reloads on change. See docs/sources.md.
"""

from streams.trails.format import TrailEntry, TrailFormatError, TrailList, parse_trail_list
from streams.trails.loader import SHIPPED_LISTS_DIR, TrailSettings, TrailStore
from streams.trails.matcher import TrailHit, TrailMatcher, annotate

__all__ = [
    "SHIPPED_LISTS_DIR",
    "TrailEntry",
    "TrailFormatError",
    "TrailHit",
    "TrailList",
    "TrailMatcher",
    "TrailSettings",
    "TrailStore",
    "annotate",
    "parse_trail_list",
]
