"""Verify an Arm CCA attestation token against what the VM owner expects.

Each check is a value (:class:`Check`): passed, failed or not checked, with a sentence saying
why; each is one function of :mod:`~kubevirt_cca.core.attestation.checks`. The verdict passes
only when every check was made (all of :data:`CHECK_NAMES`, once each) and every required one
passed: a required check that could not be evaluated fails it. Byte claims are compared over
their whole length: a value of the wrong length for its algorithm never passes, whatever its
first bytes are. The checks, in order:

- ``platform-signature``: the platform token verifies (ES256/ES384/ES512, from its protected
  header) under one of the given trust anchors (the platform vendor's CPAK).
- ``realm-signature``: the realm token is signed ES384 (nothing else) and verifies under the
  P-384 key in its claim 44237.
- ``realm-platform-binding``: the platform challenge is the hash (claim 44240's algorithm) of
  the exact bytes of claim 44237, so this realm key was vouched for by this platform.
- ``realm-challenge``: the realm challenge is the owner's fresh nonce, zero-padded to 64 bytes.
- ``personalization-value``: the Realm Personalization Value is the one the VM declared.
- ``measurement-algorithm``: the token's measurement algorithm (claim 44236) is the
  ``measurementAlgo`` the VM declared (not checked when it declared none).
- ``initial-measurement``: the RIM equals the expected one (not checked when none is given);
  a token RIM or an expected RIM whose length is not the token algorithm's digest size never
  matches.
- ``measurement-log``: replaying the Realm's measurement log gives each REM the token carries
  (not checked when no log is given); see :mod:`kubevirt_cca.core.attestation.eventlog`.
- ``platform-lifecycle``: the platform is in the "secured" lifecycle state.
- ``production-keys``: neither key is a published sample key (a test token proves nothing
  about hardware).
- ``realm-profile``, ``realm-instance-id``, ``mec-policy``: the realm token's profile, Realm
  Instance ID and MEC policy are the ones the owner pinned (not checked when none is pinned);
  see :mod:`~kubevirt_cca.core.attestation.pins`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.checks import (
    Check,
    CheckStatus,
    Expectations,
    initial_measurement,
    measurement_algorithm,
    measurement_log,
    personalization_value,
    platform_lifecycle,
    platform_signature,
    production_keys,
    realm_challenge,
    realm_platform_binding,
    realm_signature,
    verify_signature,
)
from kubevirt_cca.core.attestation.eventlog import RemReplay
from kubevirt_cca.core.attestation.keys import RealmKey, TrustAnchor, decode_realm_public_key
from kubevirt_cca.core.attestation.pins import mec_policy, realm_instance_id, realm_profile
from kubevirt_cca.core.attestation.token import CCAToken
from kubevirt_cca.errors import AttestationError

__all__ = [
    "CHECK_NAMES",
    "NONCE_MAX_BYTES",
    "NONCE_MIN_BYTES",
    "Check",
    "CheckStatus",
    "Expectations",
    "Verdict",
    "challenge_for_nonce",
    "verify_signature",
    "verify_token",
]

log = logging.getLogger(__name__)

NONCE_MIN_BYTES = 32
NONCE_MAX_BYTES = c.REALM_CHALLENGE_BYTES
CHECK_NAMES = (
    "platform-signature",
    "realm-signature",
    "realm-platform-binding",
    "realm-challenge",
    "personalization-value",
    "measurement-algorithm",
    "initial-measurement",
    "measurement-log",
    "platform-lifecycle",
    "production-keys",
    "realm-profile",
    "realm-instance-id",
    "mec-policy",
)


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    test_token: bool  # signed with, or carrying, a published sample key
    log_replay: tuple[RemReplay, ...] | None = None  # per REM, when a log was given

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[str, ...]:
        """Why the verdict fails, one phrase per reason; empty when it passes."""
        names = [check.name for check in self.checks]
        reasons = [f"{name} was not made" for name in CHECK_NAMES if name not in names]
        reasons += [f"{name} was made twice" for name in CHECK_NAMES if names.count(name) > 1]
        for check in self.checks:
            if not check.required or check.status == "passed":
                continue
            if check.status == "failed":
                reasons.append(f"{check.name} failed")
            else:
                reasons.append(f"{check.name} is required but was not evaluated")
        return tuple(reasons)

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


def challenge_for_nonce(nonce: bytes) -> bytes:
    """The realm challenge a nonce yields: the nonce zero-padded to 64 bytes."""
    if not NONCE_MIN_BYTES <= len(nonce) <= NONCE_MAX_BYTES:
        raise AttestationError(
            f"the nonce is {len(nonce)} bytes; "
            f"it must be {NONCE_MIN_BYTES} to {NONCE_MAX_BYTES} bytes (for example: "
            "head -c 64 /dev/urandom > nonce.bin)"
        )
    return nonce + bytes(c.REALM_CHALLENGE_BYTES - len(nonce))


def verify_token(
    token: CCAToken, *, anchors: Sequence[TrustAnchor], expected: Expectations
) -> Verdict:
    """Run every check; never raises for a token that merely fails them."""
    if not anchors:
        raise AttestationError("no trust anchor given; give the platform vendor's CPAK")
    challenge = challenge_for_nonce(expected.nonce)
    platform_check, anchor = platform_signature(token.platform, anchors)
    realm = token.realm_claims
    realm_key: RealmKey | None = None
    key_error: str | None = None
    if realm is not None:
        try:
            realm_key = decode_realm_public_key(realm.public_key)
        except AttestationError as exc:
            key_error = str(exc)
    checks = [
        platform_check,
        realm_signature(token.realm, realm_key, key_error),
        realm_platform_binding(token, realm),
        realm_challenge(realm, challenge),
        personalization_value(realm, expected),
        measurement_algorithm(realm, expected),
        initial_measurement(realm, expected.initial_measurement, expected.reference_algorithm),
    ]
    log_check, log_replay = measurement_log(realm, expected.measurement_log)
    checks += [log_check, platform_lifecycle(token.platform_claims.lifecycle)]
    production, test_token = production_keys(anchor, realm_key, expected.allow_test_keys)
    checks += [
        production,
        realm_profile(realm, expected),
        realm_instance_id(realm, expected),
        mec_policy(realm, expected),
    ]
    verdict = Verdict(checks=tuple(checks), test_token=test_token, log_replay=log_replay)
    log.info(
        "attestation verdict=%s failed=%s test_token=%s",
        "passed" if verdict.passed else "failed",
        ",".join(ch.name for ch in checks if ch.required and ch.status != "passed") or "-",
        test_token,
    )
    return verdict
