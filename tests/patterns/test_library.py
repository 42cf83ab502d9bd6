"""The shipped library: loads clean, every example behaves, ids unique, no duplicates, coverage."""

from __future__ import annotations

from collections import Counter

import pytest

from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.engine.assemble import build_engine
from patterns.engine.core import PatternEngine
from patterns.engine.examples import check_examples
from patterns.engine.lint import (
    duplicate_conditions,
    far_no_match,
    invalid_examples,
    library_stats,
    replaced_ids,
    subsumed_patterns,
)
from patterns.engine.loader import load_dirs
from patterns.mitre.catalog import load_catalog

_ENGINE = build_engine([DEFAULT_PATTERNS_DIR], [])
_IDS = sorted(p.id for p in _ENGINE.patterns())


@pytest.fixture(scope="module")
def engine() -> PatternEngine:
    return _ENGINE


def test_library_loads_without_errors(engine: PatternEngine) -> None:
    assert engine.errors == []


@pytest.mark.parametrize("pattern_id", _IDS)
def test_examples(engine: PatternEngine, pattern_id: str) -> None:
    cp = engine.get(pattern_id)
    assert cp is not None
    errs = check_examples(cp, engine.allow, require=True)
    assert errs == [], "\n".join(map(str, errs))


def test_ids_unique_across_files() -> None:
    loaded = load_dirs([DEFAULT_PATTERNS_DIR])
    counts = Counter(r.data.get("id") for r in loaded.patterns)
    assert [i for i, n in counts.items() if n > 1] == []


def test_no_two_patterns_share_a_condition(engine: PatternEngine) -> None:
    assert duplicate_conditions(engine.compiled()) == []


def test_no_pattern_is_subsumed_by_another(engine: PatternEngine) -> None:
    assert [str(e) for e in subsumed_patterns(engine)] == []


def test_examples_are_events_the_sensors_emit(engine: PatternEngine) -> None:
    assert [str(e) for e in invalid_examples(engine.compiled())] == []


def test_no_match_examples_are_near_misses(engine: PatternEngine) -> None:
    assert [str(e) for e in far_no_match(engine.compiled(), engine.allow)] == []


def test_merged_ids_are_gone(engine: PatternEngine) -> None:
    assert [str(e) for e in replaced_ids(engine.compiled())] == []


def test_every_technique_exists_in_catalog(engine: PatternEngine) -> None:
    cat = load_catalog()
    missing = {(p.id, t) for p in engine.patterns() for t in p.techniques if t not in cat}
    assert missing == set()


def test_core_ids_are_stable(engine: PatternEngine) -> None:
    """Other components and the end-to-end tests rely on these ids and techniques."""
    expected = {
        "MT-FILELESS-001": "T1620",
        "MT-FILELESS-002": "T1620",
        "MT-SHM-001": "T1059.004",
        "MT-INJECT-001": "T1055.008",
        "MT-INJECT-002": "T1055.008",
        "MT-INJECT-003": "T1055",
        "MT-INJECT-004": "T1055.009",
        "MT-MEM-001": "T1620",
        "MT-MEM-002": "T1620",
        "MT-PRELOAD-001": "T1574.006",
    }
    for pid, tech in expected.items():
        cp = engine.get(pid)
        assert cp is not None, pid
        assert tech in cp.spec.techniques


def test_library_size_and_coverage(engine: PatternEngine) -> None:
    stats = library_stats(engine.compiled())
    assert stats["patterns"] >= MIN_PATTERNS
    assert len(stats["by_technique"]) >= MIN_TECHNIQUES


MIN_PATTERNS = 720
MIN_TECHNIQUES = 60


def test_every_detection_area_is_covered(engine: PatternEngine) -> None:
    """Each detection area the product promises has patterns (by category or tag)."""
    by_cat = Counter(p.category for p in engine.patterns())
    tags = Counter(t for p in engine.patterns() for t in p.tags)
    for category in (
        "process-injection",
        "fileless",
        "reflective-loading",
        "drop-and-exec",
        "preload",
        "kernel-memory",
        "namespace-escape",
        "container-escape",
        "credential-access",
        "reverse-shell",
        "download-execute",
        "interpreter",
        "persistence",
        "privilege-escalation",
        "defense-evasion",
        "discovery",
        "container",
    ):
        assert by_cat[category] >= 1, category
    # the four scenarios of the Falco tutorial seed
    scenarios = {p.id.rsplit("-", 1)[0] for p in engine.patterns() if "falco-scenario" in p.tags}
    assert scenarios == {"MT-CONT-SHELL", "MT-CONT-UNAUTH", "MT-CONT-WRITE", "MT-CONT-MOUNT"}
    assert tags["anti-forensics"] and tags["logs"]


def test_runc_self_clone_is_allowed_but_the_same_exec_by_others_is_not(engine: PatternEngine) -> None:
    """The real shape of runc's CVE-2019-5736 self-clone (as the sensor reports it) raises nothing."""
    from patterns.engine.examples import fill_example

    runc = fill_example(
        [
            {
                "syscall": "memfd_create",
                "ret": 5,
                "args": {"name": "runc_cloned:/proc/self/exe"},
                "process": {"pid": 77, "exe": "/usr/sbin/runc"},
            },
            {
                "syscall": "execveat",
                "args": {
                    "filename": "",
                    "dirfd": 5,
                    "flags": ["AT_EMPTY_PATH"],
                    "exe_memfd": True,
                    "argv": ["runc", "init"],
                    "exe_name": "memfd:runc_cloned:/proc/self/exe",
                },
                "process": {
                    "pid": 77,
                    "exe": "memfd:runc_cloned:/proc/self/exe",
                    "ancestors": [{"pid": 70, "exe": "/usr/bin/podman"}],
                },
            },
        ]
    )
    fileless = lambda alerts: [a.rule.id for a in alerts if a.rule.category == "fileless"]  # noqa: E731
    assert fileless(engine.fork().process_batch(runc)) == []
    impostor = [
        dict(
            e,
            process={
                **e["process"],
                "exe": "/tmp/x" if i == 0 else "memfd:x",
                "ancestors": [{"pid": 70, "exe": "/bin/bash"}],
            },
        )
        for i, e in enumerate(runc)
    ]
    assert {"MT-FILELESS-001", "MT-FILELESS-002"} <= set(fileless(engine.fork().process_batch(impostor)))


def test_runc_init_container_setup_raises_nothing(engine: PatternEngine) -> None:
    """Seen on this host with podman+runc: runc init mounts, unshares and re-executes itself
    inside the new container's cgroup before the container's program starts."""
    from patterns.engine.examples import fill_example

    # runc 1.1 re-executes /proc/self/exe bind-mounted on a detached file: the kernel cannot
    # name it, so exe is the typed /proc/self/exe (exe_source typed) and the parent is runc
    runc_init = {
        "exe": "/proc/self/exe",
        "exe_source": "typed",
        "cmdline": "/usr/sbin/runc init",
        "comm": "runc:[2:INIT]",
        "ancestors": [{"pid": 4000, "exe": "/usr/sbin/runc", "comm": "runc", "cmdline": "runc create"}],
    }
    cont = {"name": "c", "image": "localhost/busybox:1"}
    events = fill_example(
        [
            {
                "syscall": "unshare",
                "args": {"flags": ["CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWNET"]},
                "process": runc_init,
                "container": cont,
            },
            {
                "syscall": "mount",
                "ret": 0,
                "args": {"source": "proc", "target": "/proc", "fstype": "proc"},
                "process": runc_init,
                "container": cont,
            },
            {
                "syscall": "openat",
                "args": {"path": "/proc/sys/net/ipv4/ip_unprivileged_port_start", "flags": ["O_WRONLY"]},
                "process": runc_init,
                "container": cont,
            },
            {
                "syscall": "execve",
                "args": {"filename": "/proc/self/exe", "argv": ["runc", "init"]},
                "process": runc_init,
                "container": cont,
            },
        ]
    )
    assert [a.rule.id for a in engine.fork().process_batch(events)] == []
    # the same mount by anything else in the container does alert
    other = {
        **events[1],
        "process": {**events[1]["process"], "exe": "/bin/busybox", "cmdline": "mount -t proc proc /proc"},
    }
    assert "MT-ESCAPE-MOUNT-001" in [a.rule.id for a in engine.fork().process(other)]
    # and so does the same typed exe and command line under a parent that is not the packaged runtime
    forged = {
        **events[1],
        "process": {**events[1]["process"], "ancestors": [{"pid": 9, "exe": "/tmp/runc", "comm": "runc"}]},
    }
    assert "MT-ESCAPE-MOUNT-001" in [a.rule.id for a in engine.fork().process(forged)]
