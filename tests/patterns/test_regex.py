"""Pattern regexes run in RE2: linear in the input whatever the pattern, refused with a reason when
they need backtracking. The values they test (command lines, paths) are chosen by whoever runs a
process, so a backtracking engine would let one command line freeze a worker."""

from __future__ import annotations

import pytest
import re2

from patterns.engine import regex
from patterns.engine.api import load_engine, validate_spec
from patterns.engine.examples import fill_event

#: Classic catastrophic-backtracking shapes and an input that makes Python's `re` take minutes.
REDOS = [r"^(a+)+$", r"^(a|aa)+$", r"^(a|a?)+$", r"^(\w+\s?)*$", r"(.*a){12}"]
HOSTILE = "a" * 40_000 + "!"


def _spec(rx: str, op: str = "regex") -> dict[str, object]:
    return {
        "id": "MT-CUSTOM-RX-001",
        "name": "custom",
        "description": "custom pattern",
        "severity": "warning",
        "techniques": ["T1059"],
        "condition": {"syscall": "execve", "cmdline": {op: rx}},
    }


@pytest.mark.timeout(20)  # a hang guard, not a speed goal: with backtracking this never returns
@pytest.mark.parametrize("rx", REDOS)
def test_catastrophic_patterns_stay_linear_on_hostile_command_lines(rx: str) -> None:
    assert not validate_spec(_spec(rx))
    engine = load_engine([], extra_specs=[_spec(rx)])
    ev = fill_event({"syscall": "execve", "args": {"filename": "/bin/x", "argv": [HOSTILE]}}, 0, None)
    engine.process_batch([ev] * 3)  # returns: linear time per value
    assert regex.Regex(rx).search("a" * 10) is (rx != r"(.*a){12}")


@pytest.mark.parametrize(
    ("rx", "why"),
    [
        (r"(a)\1", "invalid escape sequence"),
        (r"foo(?=bar)", "invalid perl operator"),
        (r"(?<=x)y", "invalid"),
    ],
)
def test_backtracking_features_are_refused_with_the_reason(rx: str, why: str) -> None:
    errors = validate_spec(_spec(rx))
    assert errors and why in str(errors[0]) and "RE2" in str(errors[0]), errors


def test_not_regex_holds_when_some_element_misses_the_allowed_set() -> None:
    allowed = r"^(?:docker\.io|ghcr\.io)$"
    spec = {
        **_spec(allowed, "not_regex"),
        "condition": {"syscall": "k8s_audit", "ka.regs": {"not_regex": allowed}},
    }
    assert not validate_spec(spec)
    engine = load_engine([], extra_specs=[spec])
    hit = {"syscall": "k8s_audit", "ka": {"regs": ["docker.io", "evil.example.net"]}}
    miss = {"syscall": "k8s_audit", "ka": {"regs": ["docker.io", "ghcr.io"]}}
    assert [a.rule.id for a in engine.process_batch([fill_event(hit, 0, None)])] == ["MT-CUSTOM-RX-001"]
    assert not engine.process_batch([fill_event(miss, 0, None)])


def test_globs_and_captures_keep_their_meaning() -> None:
    g = regex.glob(["/proc/*/mem", "/etc/*shadow"])
    assert g.search("/proc/12/task/12/mem") and g.search("/etc/gshadow") and not g.search("x/proc/1/mem")
    assert regex.Regex(r"/proc/(\d+)/").group1("/proc/4242/mem") == "4242"
    assert regex.Regex("(?i)CURL").search("curl") and regex.Regex("é").search("café")


def test_the_private_google_re2_names_we_use_are_still_there() -> None:
    """regex.Regex.search calls google-re2's Match directly: this fails first if an upgrade moves it."""
    assert hasattr(re2, "_Anchor") and hasattr(re2._Anchor, "UNANCHORED")
    rx = re2.compile("b+", re2.Options())
    assert rx._regexp.Match(re2._Anchor.UNANCHORED, b"abbc", 0, 4)[0] == (1, 3)


def test_remembered_search_results_are_right_and_bounded() -> None:
    """Searches are remembered per (regex, text) for short texts, bounded in entries; a long
    text is searched each time and not kept."""
    rx, other = regex.Regex(r"^/tmp/"), regex.Regex(r"\.so$")
    for _ in range(2):
        assert rx.search("/tmp/x") and not rx.search("/usr/lib/x.so")
        assert other.search("/usr/lib/x.so") and not other.search("/tmp/x")
    for i in range(regex.MEMO_SIZE + 10):
        assert rx.search(f"/tmp/{i}")
    assert 0 < len(regex._memo) <= regex.MEMO_SIZE
    long_text = "/tmp/" + "a" * regex.MEMO_MAX_LEN
    assert rx.search(long_text)
    assert (rx, long_text) not in regex._memo
