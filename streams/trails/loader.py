"""Load trail lists from directories and rebuild the matcher when a file changes.

The I/O half of trails (the matcher itself is pure): ``TrailStore`` reads every ``*.txt``
under its directories in order (shipped lists first, then custom directories), keeps the
format errors for ``memtrail`` to report, and ``reload_if_changed()`` compares each
file's (mtime, size) so a worker can call it on a timer at no cost when nothing changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.trails.format import TrailFormatError, TrailList, parse_trail_list
from streams.trails.matcher import TrailMatcher

log = logging.getLogger(__name__)

SHIPPED_LISTS_DIR = Path(__file__).resolve().parent / "lists"
LIST_SUFFIX = ".txt"


class TrailSettings(BaseSettings):
    """``MEMTRAIL_TRAILS_DIRS`` / ``MEMTRAIL_TRAILS_CUSTOM_DIRS`` (JSON lists), ``..._RELOAD_INTERVAL_S``."""

    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_TRAILS_", extra="ignore")

    dirs: list[Path] = Field(default_factory=lambda: [SHIPPED_LISTS_DIR])
    custom_dirs: list[Path] = Field(default_factory=list)
    reload_interval_s: float = Field(default=30.0, gt=0)

    def all_dirs(self) -> list[Path]:
        return [*self.dirs, *self.custom_dirs]


Snapshot = dict[Path, tuple[int, int]]


def list_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(p for p in d.rglob(f"*{LIST_SUFFIX}") if p.is_file()))
    return files


def _snapshot(dirs: Iterable[Path]) -> Snapshot:
    snap: Snapshot = {}
    for p in list_files(dirs):
        try:
            st = p.stat()
        except OSError:
            continue
        snap[p] = (st.st_mtime_ns, st.st_size)
    return snap


class TrailStore:
    """The current matcher for a set of directories, reloadable."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.errors: list[TrailFormatError] = []
        self.lists: list[TrailList] = []
        self.matcher = TrailMatcher(())
        self._snap: Snapshot = {}
        self.generation = 0
        self.load()

    @classmethod
    def from_settings(cls, settings: TrailSettings | None = None) -> TrailStore:
        return cls((settings or TrailSettings()).all_dirs())

    def load(self) -> None:
        missing = [d for d in self.dirs if not d.exists()]
        errors = [TrailFormatError(str(d), 0, "trail directory does not exist") for d in missing]
        snap = _snapshot(self.dirs)
        lists: list[TrailList] = []
        for path in snap:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(TrailFormatError(str(path), 0, f"cannot read: {exc}"))
                continue
            tl, errs = parse_trail_list(text, str(path), default_name=path.stem)
            errors.extend(errs)
            lists.append(tl)
        self.lists, self.errors, self._snap = lists, errors, snap
        self.matcher = TrailMatcher(lists)
        self.generation += 1
        for e in errors:
            log.warning("trail list: %s", e)
        log.info("trails: %d lists, %d indicators", len(lists), len(self.matcher))

    def reload_if_changed(self) -> bool:
        """Reload when a file was added, removed or modified; True when it did."""
        if _snapshot(self.dirs) == self._snap:
            return False
        self.load()
        return True
