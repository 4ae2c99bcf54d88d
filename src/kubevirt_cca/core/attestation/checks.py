"""The checks ``attest verify`` makes, one function each: a token part and the owner's
expectations in, a :class:`Check` out (passed, failed or not checked, and why).

:mod:`kubevirt_cca.core.attestation.verify` runs them in order and decides the verdict; what each
one proves is written there and in docs/attestation.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.eventlog import (
    MeasurementLog,
    RemReplay,
    replay,
    stray_events,
)
from kubevirt_cca.core.attestation.keys import (
    SAMPLE_REALM_KEYS,
    RealmKey,
    TrustAnchor,
    curve_name,
    sample_key_name,
)
from kubevirt_cca.core.attestation.token import CCAToken, RealmClaims, Sign1

CheckStatus = Literal["passed", "failed", "not-checked"]
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str
    required: bool = True


@dataclass(frozen=True)
class Expectations:
    """What the owner expects the token to say."""

    nonce: bytes
    personalization_value: bytes
    personalization_source: str  # for messages: "the VM manifest vm.yaml", "--expected-rpv"
    initial_measurement: bytes | None = None
    allow_test_keys: bool = False
    measurement_log: MeasurementLog | None = None
    reference_algorithm: str | None = None  # "sha256"...: the reference RIM's algorithm
    measurement_algorithm: str | None = None  # "sha256"...: the VM's declared measurementAlgo
    measurement_algorithm_source: str | None = None  # for messages: "the VM manifest vm.yaml"
    realm_profile: str | None = None  # pinned realm profile (claim 265)
    instance_id: bytes | None = None  # pinned Realm Instance ID (claim 256, RMM 2.0)
    mec_policy: str | None = None  # pinned MEC policy, "shared" / "private" (claim 44243)


def verify_signature(sign1: Sign1, key: ec.EllipticCurvePublicKey) -> str | None:
    """``None`` when ``sign1`` verifies under ``key``, else why not."""
    alg = sign1.algorithm
    if alg is None:
        return "its protected header names no algorithm (alg, label 1)"
    if alg not in c.COSE_ALGORITHMS:
        return f"its algorithm {alg} is not ES256, ES384 or ES512"
    name = c.COSE_ALGORITHMS[alg]
    curve = c.COSE_ALGORITHM_CURVES[alg]
    if curve_name(key) != curve:
        return f"{name} needs a {curve} key, this one is {curve_name(key)}"
    size = c.CURVE_COORDINATE_BYTES[curve]
    if len(sign1.signature) != 2 * size:
        return f"an {name} signature is {2 * size} bytes, this one is {len(sign1.signature)}"
    r = int.from_bytes(sign1.signature[:size], "big")
    s = int.from_bytes(sign1.signature[size:], "big")
    try:
        key.verify(
            encode_dss_signature(r, s),
            sign1.to_be_signed(),
            ec.ECDSA(_HASHES[c.COSE_ALGORITHM_HASHES[alg]]),
        )
    except InvalidSignature:
        return f"the {name} signature does not match"
    return None


# --- the checks, in verdict order -----------------------------------------------------------------


def platform_signature(
    platform: Sign1, anchors: Sequence[TrustAnchor]
) -> tuple[Check, TrustAnchor | None]:
    reasons = []
    for anchor in anchors:
        reason = verify_signature(platform, anchor.key)
        if reason is None:
            alg = c.COSE_ALGORITHMS[platform.algorithm] if platform.algorithm else "?"
            return Check(
                "platform-signature",
                "passed",
                f"{alg} signature verified with trust anchor {anchor.label} ({anchor.curve})",
            ), anchor
        reasons.append(f"{anchor.label}: {reason}")
    return Check(
        "platform-signature",
        "failed",
        "the platform token does not verify under any trust anchor given ("
        + "; ".join(reasons)
        + "); it was not signed by that platform key, "
        "or it was altered",
    ), None


def realm_signature(realm: Sign1 | None, key: RealmKey | None, key_error: str | None) -> Check:
    name = "realm-signature"
    if realm is None:
        return Check(name, "failed", NO_REALM)
    if key is None:
        return Check(name, "failed", f"cannot check: {key_error}")
    if realm.algorithm != c.REALM_SIGNING_ALGORITHM:
        alg = realm.algorithm
        named = f" ({c.COSE_ALGORITHMS[alg]})" if alg in c.COSE_ALGORITHMS else ""
        return Check(
            name,
            "failed",
            f"the realm token's algorithm is {alg!r}{named}; the RMM signs realm tokens with ES384 "
            f"({c.REALM_SIGNING_ALGORITHM}) on a P-384 key, nothing else",
        )
    reason = verify_signature(realm, key.key)
    if reason is not None:
        return Check(
            name,
            "failed",
            "the realm token does not verify under its own key "
            f"(claim {c.REALM_PUBLIC_KEY}): {reason}; it was altered",
        )
    return Check(
        name,
        "passed",
        f"ES384 signature verified with the realm key in claim {c.REALM_PUBLIC_KEY} "
        f"({'raw P-384 point' if key.encoding == 'raw' else 'COSE_Key'})",
    )


def realm_platform_binding(token: CCAToken, realm: RealmClaims | None) -> Check:
    name = "realm-platform-binding"
    if realm is None:
        return Check(name, "failed", NO_REALM)
    algorithm = c.HASH_ALGORITHMS.get(realm.public_key_hash_algo)
    if algorithm is None:
        return Check(
            name,
            "failed",
            "the realm key hash algorithm "
            f"(claim {c.REALM_PUBLIC_KEY_HASH_ALGO}) is {realm.public_key_hash_algo!r}; "
            f"expected one of {', '.join(c.HASH_ALGORITHMS)}",
        )
    digest = hashlib.new(algorithm, realm.public_key).digest()
    platform_challenge = token.platform_claims.challenge
    if len(platform_challenge) != len(digest):
        return Check(
            name,
            "failed",
            f"the platform challenge is {len(platform_challenge)} bytes, "
            f"but a {realm.public_key_hash_algo} hash of the realm key claim is {len(digest)}: "
            "this platform token does not vouch for this realm token",
        )
    if not same_bytes(digest, platform_challenge):
        return Check(
            name,
            "failed",
            f"the platform challenge {_short(platform_challenge)} is not the "
            f"{realm.public_key_hash_algo} of the realm key claim ({_short(digest)}): "
            "this platform token does not vouch for this realm token",
        )
    return Check(
        name,
        "passed",
        f"the platform challenge is the {realm.public_key_hash_algo} of the realm key claim: "
        "the platform vouches for this realm's attestation key",
    )


def realm_challenge(realm: RealmClaims | None, challenge: bytes) -> Check:
    name = "realm-challenge"
    if realm is None:
        return Check(name, "failed", NO_REALM)
    if len(realm.challenge) != len(challenge):
        return Check(
            name,
            "failed",
            f"the realm challenge is {len(realm.challenge)} bytes; "
            f"a realm challenge is {len(challenge)} (the nonce, zero-padded): "
            "the token is malformed",
        )
    if not same_bytes(realm.challenge, challenge):
        return Check(
            name,
            "failed",
            f"the realm challenge {_short(realm.challenge)} is not the nonce given "
            f"({_short(challenge)}, zero-padded to 64 bytes): "
            "the token was made for another request, or replayed",
        )
    return Check(name, "passed", "the realm challenge is the nonce given: the token is fresh")


def personalization_value(realm: RealmClaims | None, expected: Expectations) -> Check:
    name = "personalization-value"
    if realm is None:
        return Check(name, "failed", NO_REALM)
    got = realm.personalization_value
    if len(got) != len(expected.personalization_value):
        return Check(
            name,
            "failed",
            f"the token's personalization value is {len(got)} bytes; the one expected from "
            f"{expected.personalization_source} is {len(expected.personalization_value)} "
            f"({_b64(expected.personalization_value)})",
        )
    if not same_bytes(got, expected.personalization_value):
        return Check(
            name,
            "failed",
            f"the token's personalization value {_b64(got)} is not the one expected "
            f"from {expected.personalization_source} "
            f"({_b64(expected.personalization_value)})",
        )
    return Check(
        name,
        "passed",
        f"the personalization value is the one expected from {expected.personalization_source}",
    )


def measurement_algorithm(realm: RealmClaims | None, expected: Expectations) -> Check:
    name = "measurement-algorithm"
    declared = expected.measurement_algorithm
    source = expected.measurement_algorithm_source or "the VM manifest"
    if declared is None:
        seen = f"; the token's is {realm.hash_algo!r} (the host's choice)" if realm else ""
        return Check(name, "not-checked", f"no measurementAlgo declared{seen}", required=False)
    if realm is None:
        return Check(name, "failed", NO_REALM)
    if c.HASH_ALGORITHMS.get(realm.hash_algo) != declared:
        return Check(
            name,
            "failed",
            "the token's measurement algorithm "
            f"(claim {c.REALM_HASH_ALGO}) is {realm.hash_algo!r}, "
            f"but {source} declares measurementAlgo {declared!r}: "
            "the Realm was not created with the algorithm the VM asked for",
        )
    return Check(
        name,
        "passed",
        f"the Realm measures with {realm.hash_algo}, the measurementAlgo {source} declares",
    )


def initial_measurement(
    realm: RealmClaims | None, expected: bytes | None, algorithm: str | None = None
) -> Check:
    name = "initial-measurement"
    if realm is None:
        status: CheckStatus = "failed" if expected is not None else "not-checked"
        return Check(name, status, NO_REALM, required=expected is not None)
    rim = realm.initial_measurement
    token_algorithm = c.HASH_ALGORITHMS.get(realm.hash_algo)
    size = hashlib.new(token_algorithm).digest_size if token_algorithm else None
    if expected is None:
        odd = (
            f"; note that a {realm.hash_algo} RIM is {size} bytes, this one {len(rim)}"
            if size is not None and len(rim) != size
            else ""
        )
        return Check(
            name,
            "not-checked",
            f"no expected RIM given; the token's RIM is {rim.hex()} ({realm.hash_algo}{odd}). "
            "Compare it with one from a trusted first launch or a reference-value tool",
            required=False,
        )
    if token_algorithm is None or size is None:
        return Check(
            name,
            "failed",
            "the token's measurement algorithm "
            f"(claim {c.REALM_HASH_ALGO}) is {realm.hash_algo!r}; "
            f"expected one of {', '.join(c.HASH_ALGORITHMS)}: its RIM cannot be compared",
        )
    if algorithm is not None and token_algorithm != algorithm:
        return Check(
            name,
            "failed",
            f"the reference RIM is {algorithm}, but this Realm measures with {realm.hash_algo}: "
            "the reference was computed for another host profile (measurementAlgo)",
        )
    if len(rim) != size:
        return Check(
            name,
            "failed",
            f"the token's RIM is {len(rim)} bytes, but a {realm.hash_algo} RIM is {size}: "
            "a truncated or padded measurement is never the expected one",
        )
    if len(expected) != size:
        return Check(
            name,
            "failed",
            f"the expected RIM is {len(expected)} bytes, "
            f"but this Realm measures with {realm.hash_algo} ({size}-byte RIMs; "
            f"the token's is {rim.hex()}): "
            "the expected value is for another measurement algorithm, or truncated",
        )
    if not same_bytes(rim, expected):
        return Check(
            name,
            "failed",
            f"the token's RIM {rim.hex()} is not the expected {expected.hex()}: "
            "the Realm was started with other firmware, kernel or initial state",
        )
    return Check(name, "passed", f"the RIM is the expected {rim.hex()} ({realm.hash_algo})")


def measurement_log(
    realm: RealmClaims | None, log: MeasurementLog | None
) -> tuple[Check, tuple[RemReplay, ...] | None]:
    name = "measurement-log"
    if log is None:
        return Check(
            name,
            "not-checked",
            "no measurement log given; the REMs are not explained",
            required=False,
        ), None
    if realm is None:
        return Check(name, "failed", NO_REALM), None
    stray = stray_events(log)
    if stray:
        return Check(
            name,
            "failed",
            f"the log has {len(stray)} event(s) for registers a Realm does not have "
            f"(first at offset {stray[0].offset}: register {stray[0].mr_index}; "
            "a Realm has 0 for the RIM and 1-4 for REM0-REM3): not this Realm's log",
        ), None
    if realm.hash_algo not in c.HASH_ALGORITHMS:
        return Check(
            name, "failed", f"the token's hash algorithm {realm.hash_algo!r} cannot be replayed"
        ), None
    replays = replay(log, token_algorithm=realm.hash_algo, rems=realm.extensible_measurements)
    count = sum(len(r.events) for r in replays)
    unexplained = [r for r in replays if not r.explained]
    if unexplained:
        reasons = "; ".join(
            f"REM{r.index}: {r.problem}"
            if r.problem
            else f"REM{r.index}: the token has {_short(r.token_value)}, {len(r.events)} logged "
            f"event(s) give {_short(r.replayed or b'')}"
            for r in unexplained
        )
        return Check(
            name,
            "failed",
            f"the log does not explain {len(unexplained)} of {len(replays)} REMs ({reasons}): "
            "something was measured that the log does not show, or the log was altered",
        ), replays
    return Check(
        name,
        "passed",
        f"replaying the log's {count} event(s) gives all {len(replays)} REMs of the token: "
        "the log shows everything measured after boot",
    ), replays


def platform_lifecycle(value: int) -> Check:
    state = c.lifecycle_state(value)
    if state == c.LIFECYCLE_SECURED:
        return Check(
            "platform-lifecycle", "passed", f"the platform lifecycle is {value:#06x} (secured)"
        )
    return Check(
        "platform-lifecycle",
        "failed",
        f"the platform lifecycle is {value:#06x} ({state}); only a secured platform "
        "(0x3000-0x30ff) keeps its attestation key out of reach",
    )


def production_keys(
    anchor: TrustAnchor | None, realm_key: RealmKey | None, allow: bool
) -> tuple[Check, bool]:
    name = "production-keys"
    required = not allow
    problems = []
    if anchor is not None and anchor.sample is not None:
        problems.append(f"the platform token verifies only under {anchor.sample}")
    realm_sample = sample_key_name(realm_key.key, SAMPLE_REALM_KEYS) if realm_key else None
    if realm_sample is not None:
        problems.append(f"the realm token carries {realm_sample}")
    if problems:
        return Check(
            name,
            "failed",
            "this is a test token: "
            + " and ".join(problems)
            + "; anyone can sign with a published key, so it proves nothing about hardware",
            required=required,
        ), True
    if anchor is None:
        return Check(
            name,
            "not-checked",
            "the platform signature did not verify, so the platform key is unknown",
            required=required,
        ), False
    return Check(name, "passed", "no published sample key is involved", required=required), False


NO_REALM = "the token holds no realm token (it is a platform token alone)"


def same_bytes(left: bytes, right: bytes) -> bool:
    """Exactly the same bytes, length included (never a prefix, never a padded match)."""
    return len(left) == len(right) and hmac.compare_digest(left, right)


def _short(value: bytes) -> str:
    text = value.hex()
    return text if len(text) <= 24 else f"{text[:16]}...{text[-8:]}"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
