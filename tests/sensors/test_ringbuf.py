"""Real eBPF: the mmap ring-buffer reader sees every committed record once, in order, across
wrap-arounds, skipping discarded ones, and honours its budget."""

from __future__ import annotations

import os
import struct

import pytest

from ebpf import ringbuf
from ebpf.ringbuf import RingReader

pytestmark = [
    pytest.mark.ebpf,
    pytest.mark.skipif(not ringbuf.supported(), reason="direct ring reading is x86_64 only"),
]

# One record per getppid() from this process: a sequence number and a variable-length tail
# (so records are not all the same size and the wrap-around point moves); every 5th is discarded.
PROGRAM = r"""
BPF_RINGBUF_OUTPUT(rb, 1);  /* one page: wraps every few dozen records */
BPF_ARRAY(seq, u64, 1);
struct rec { u64 n; u32 len; char tail[60]; };
/* reserve needs a constant size: one call per size (bcc rewrites map calls, not in macros) */
static __always_inline void fill(struct rec *r, u64 n, u32 len) { r->n = n; r->len = len; }
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != TEST_PID) return 0;
    int z = 0;
    u64 *s = seq.lookup(&z);
    if (!s) return 0;
    u64 n = (*s)++;
    u32 len = n % 3 == 0 ? 72 : n % 3 == 1 ? 44 : 12;
    struct rec *r;
    if (len == 72) r = rb.ringbuf_reserve(72);
    else if (len == 44) r = rb.ringbuf_reserve(44);
    else r = rb.ringbuf_reserve(12);
    if (!r) return 0;
    fill(r, n, len);
    if (n % 5 == 4) rb.ringbuf_discard(r, BPF_RB_NO_WAKEUP);
    else rb.ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    return 0;
}
"""


@pytest.fixture(scope="module")
def ring() -> object:
    from bcc import BPF

    b = BPF(text=PROGRAM.encode(), cflags=[f"-DTEST_PID={os.getpid()}", "-w"])
    table = b[b"rb"]
    reader = RingReader(table.map_fd, table.max_entries)
    yield reader
    reader.close()
    b.cleanup()


def test_every_record_in_order_across_wraps(ring: RingReader) -> None:
    got: list[tuple[int, int, int]] = []

    def on(sample: bytes) -> None:
        n, length = struct.unpack_from("<QI", sample)
        got.append((n, length, len(sample)))

    expected: list[int] = []
    n = 0
    for _ in range(40):  # 40 rounds of 30 records through a 4 KiB ring: ~9 laps
        for _ in range(30):
            os.getppid()
            if n % 5 != 4:
                expected.append(n)
            n += 1
        ring.consume(on)
    assert [g[0] for g in got] == expected
    assert all(length == size for _, length, size in got)  # the sample is exactly what was reserved
    assert ring.pending_bytes() == 0


def test_budget_stops_and_resumes(ring: RingReader) -> None:
    seen: list[int] = []
    for _ in range(20):
        os.getppid()
    first = ring.consume(lambda s: seen.append(struct.unpack_from("<Q", s)[0]), budget=5)
    rest = ring.consume(lambda s: seen.append(struct.unpack_from("<Q", s)[0]))
    assert first == 5 and first + rest == len(seen) == 16  # 4 of the 20 were discarded
    assert seen == sorted(seen)


def test_bad_size_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        RingReader(-1, 3000)
