"""Benchmark: ``attest reference`` over a 2 MiB firmware, against its floor.

Run: uv run python benchmarks/bench_reference.py [--calls N]

Times, for a 2 MiB firmware and a 4 KiB DTB in a 1 GiB Realm (RMM 1.0, 48 IPA bits):

- baseline: hashing each 4 KiB granule of the firmware and DTB once (what any RIM computation
  must pay: the content digests);
- rim sha256 / sha512: compute_rim() (params page, RIPAS, a 256-byte descriptor per granule,
  the REC), without the trace;
- rim sha256 + trace: the same, keeping every step (``--trace``).

Rows are timed round-robin in one process; the ratio against the baseline is the figure to read
on a noisy machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics

from kubevirt_cca.core.attestation.profile import parse_profile
from kubevirt_cca.core.attestation.reference import compute_rim, qemu_virt_layout
from timing import describe, sample

FIRMWARE = os.urandom(2 * 2**20)
DTB = os.urandom(4096)


def profile(algo: str):  # type: ignore[no-untyped-def]
    return parse_profile(
        {
            "rmmVersion": "1.0",
            "measurementAlgo": algo,
            "ipaBits": 48,
            "lpa2": False,
            "sveVectorLength": None,
            "breakpoints": 2,
            "watchpoints": 2,
            "pmuCounters": None,
        }
    )


def baseline() -> None:
    for data in (FIRMWARE, DTB):
        for offset in range(0, len(data), 4096):
            hashlib.sha256(data[offset : offset + 4096]).digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    layout = qemu_virt_layout(memory=2**30, dtb=DTB, firmware=FIRMWARE)
    sha256, sha512 = profile("sha256"), profile("sha512")
    times = sample(
        {
            "baseline: granule hashes (sha256)": baseline,
            "rim sha256": lambda: compute_rim(sha256, layout),
            "rim sha512": lambda: compute_rim(sha512, layout),
            "rim sha256 + trace": lambda: compute_rim(sha256, layout, trace=True),
        },
        args.calls,
    )
    base = statistics.median(times["baseline: granule hashes (sha256)"])
    for name, values in times.items():
        print(describe(name, values, base))


if __name__ == "__main__":
    main()
