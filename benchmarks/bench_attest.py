"""Benchmark: ``attest verify``'s work on one token (parse + every check), against its floor.

Run: uv run python benchmarks/bench_attest.py [--calls N]

Times, on ../shared/fixtures/attestation/tf-m-tools/cca_example_token.cbor (tag 907, COSE_Key
realm key, ES384 both) with its sample CPAK:

- baseline: the two ECDSA P-384 verifications the token needs, done directly with cryptography
  over pre-built Sig_structures (what any verifier must pay);
- parse: parse_token() alone;
- parse + verify: parse_token() then verify_token() with every check.

The three are timed interleaved in one process; the ratio against the baseline is the figure to
read on a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kubevirt_cca.core.attestation.keys import decode_realm_public_key, load_trust_anchors
from kubevirt_cca.core.attestation.token import Sign1, parse_token
from kubevirt_cca.core.attestation.verify import Expectations, verify_token

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "attestation"
TOKEN = FIXTURES / "tf-m-tools" / "cca_example_token.cbor"
CPAK = FIXTURES / "tf-m-tools" / "cca_platform.pem"


def sample(fns: list[Callable[[], object]], calls: int) -> list[list[float]]:
    """Time each function ``calls`` times, interleaved, so load changes hit all of them alike."""
    for _ in range(min(50, calls)):  # warm-up
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(calls):
        for fn, column in zip(fns, times, strict=True):
            start = time.perf_counter_ns()
            fn()
            column.append((time.perf_counter_ns() - start) / 1e6)
    return times


def describe(name: str, times: list[float]) -> str:
    times = sorted(times)
    p50 = statistics.median(times)
    p99 = times[int(len(times) * 0.99) - 1]
    return f"{name:<22} p50 {p50:.3f} ms   p99 {p99:.3f} ms"


def _der(sign1: Sign1) -> bytes:
    size = len(sign1.signature) // 2
    return encode_dss_signature(
        int.from_bytes(sign1.signature[:size], "big"), int.from_bytes(sign1.signature[size:], "big")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if not TOKEN.exists():
        print(f"fixture not found: {TOKEN} (needs ../shared beside the project)")
        return 2
    data = TOKEN.read_bytes()
    anchors = load_trust_anchors(CPAK.read_bytes(), label="cca_platform.pem")
    token = parse_token(data)
    assert token.realm is not None
    assert token.realm_claims is not None
    realm = token.realm_claims
    expected = Expectations(
        nonce=realm.challenge,
        personalization_value=realm.personalization_value,
        personalization_source="bench",
        initial_measurement=realm.initial_measurement,
        allow_test_keys=True,
    )
    assert verify_token(token, anchors=anchors, expected=expected).passed

    platform_key = anchors[0].key
    realm_key = decode_realm_public_key(realm.public_key).key
    pairs = [
        (platform_key, _der(token.platform), token.platform.to_be_signed()),
        (realm_key, _der(token.realm), token.realm.to_be_signed()),
    ]
    algorithm = ec.ECDSA(hashes.SHA384())

    def baseline() -> None:
        for key, signature, message in pairs:
            key.verify(signature, message, algorithm)

    def full() -> None:
        verify_token(parse_token(data), anchors=anchors, expected=expected)

    base, parse, whole = sample([baseline, lambda: parse_token(data), full], args.calls)
    print(describe("baseline 2x ECDSA", base))
    print(describe("parse", parse))
    print(describe("parse + verify", whole))
    ratio = statistics.median(whole) / statistics.median(base)
    print(f"parse + verify / baseline (p50): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
