"""Every verification check, passing and failing, on tokens built in the test with chosen values.

Keys are generated here, so none of these tests needs ../shared.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.core.attestation.eventlog import parse_event_log
from kubevirt_cca.core.attestation.keys import TrustAnchor, load_trust_anchors
from kubevirt_cca.core.attestation.token import parse_token
from kubevirt_cca.core.attestation.verify import (
    CHECK_NAMES,
    Expectations,
    Verdict,
    verify_token,
)
from kubevirt_cca.errors import AttestationError
from tests.attestation.builder import (
    REALM_PROFILE_1,
    REALM_PROFILE_2,
    RMM2_INSTANCE_ID,
    TokenSpec,
    build_token,
    flip,
    new_key,
    public_pem,
    value_offset,
)
from tests.attestation.logbuilder import BOOT_EVENTS, build_log, expected_rems

FORMS = ("tag-399", "tag-907")
ENCODINGS = ("raw", "cose-key")


def anchors_for(key: ec.EllipticCurvePrivateKey, label: str = "vendor.pem") -> list[TrustAnchor]:
    return list(load_trust_anchors(public_pem(key), label=label))


def expectations(spec: TokenSpec, **changes: object) -> Expectations:
    values: dict[str, object] = {
        "nonce": spec.nonce,
        "personalization_value": spec.rpv,
        "personalization_source": "the VM manifest vm.yaml",
        "initial_measurement": spec.rim,
        "measurement_algorithm": spec.hash_algo.replace("-", ""),
        "measurement_algorithm_source": "the VM manifest vm.yaml",
    }
    values.update(changes)
    return Expectations(**values)  # type: ignore[arg-type]


def run(
    spec: TokenSpec,
    *,
    anchors: list[TrustAnchor] | None = None,
    expected: Expectations | None = None,
    data: bytes | None = None,
) -> Verdict:
    token = parse_token(data if data is not None else build_token(spec))
    return verify_token(
        token,
        anchors=anchors or anchors_for(spec.platform_key),
        expected=expected or expectations(spec),
    )


def failed(verdict: Verdict) -> set[str]:
    return {check.name for check in verdict.checks if check.status == "failed"}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("profile", [REALM_PROFILE_1, REALM_PROFILE_2, None])
def test_a_good_token_passes_every_check(
    spec: TokenSpec, form: str, encoding: str, profile: str | None
) -> None:
    # A log that explains every REM, so that every check (measurement-log too) runs, and the
    # RMM 2.0 claims pinned (a profile-less token has no profile to pin).
    chosen = spec.but(
        form=form,
        realm_key_encoding=encoding,
        realm_profile=profile,
        rems=expected_rems(BOOT_EVENTS, "sha256"),
        instance_id=RMM2_INSTANCE_ID,
        mec_policy=1,
    )
    log = parse_event_log(build_log(BOOT_EVENTS))
    pins = {"realm_profile": profile, "instance_id": RMM2_INSTANCE_ID, "mec_policy": "private"}
    verdict = run(chosen, expected=expectations(chosen, measurement_log=log, **pins))
    assert [check.name for check in verdict.checks] == list(CHECK_NAMES)
    unpinned = {"realm-profile"} if profile is None else set()
    assert all(
        check.status == ("not-checked" if check.name in unpinned else "passed")
        for check in verdict.checks
    ), verdict.checks
    assert verdict.passed and not verdict.test_token
    token = parse_token(build_token(chosen))
    assert token.form == form
    assert token.realm_claims is not None
    assert token.realm_claims.profile == profile
    assert (
        "COSE_Key" in verdict.check("realm-signature").detail
        if encoding == "cose-key"
        else ("raw P-384 point" in verdict.check("realm-signature").detail)
    )


@pytest.mark.parametrize(
    "curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=["ES256", "ES384", "ES512"]
)
def test_platform_signature_with_each_algorithm(spec: TokenSpec, curve: ec.EllipticCurve) -> None:
    key = new_key(curve)
    verdict = run(spec.but(platform_key=key))
    assert verdict.check("platform-signature").status == "passed"
    assert verdict.passed


def test_platform_signature_fails_under_a_wrong_anchor(
    spec: TokenSpec, other_key: ec.EllipticCurvePrivateKey
) -> None:
    verdict = run(spec, anchors=anchors_for(other_key, "someone-else.pem"))
    assert failed(verdict) == {"platform-signature"}
    detail = verdict.check("platform-signature").detail
    assert "someone-else.pem: the ES384 signature does not match" in detail
    # The platform key is unknown, so whether it is a sample key cannot be said.
    assert verdict.check("production-keys").status == "not-checked"
    assert not verdict.passed


def test_platform_signature_tries_every_anchor(
    spec: TokenSpec, other_key: ec.EllipticCurvePrivateKey
) -> None:
    p256 = new_key(ec.SECP256R1())
    anchors = [
        *anchors_for(p256, "p256.pem"),
        *anchors_for(other_key, "other.pem"),
        *anchors_for(spec.platform_key, "right.pem"),
    ]
    verdict = run(spec, anchors=anchors)
    assert verdict.check("platform-signature").status == "passed"
    assert "right.pem" in verdict.check("platform-signature").detail
    wrong = run(spec, anchors=anchors[:2])
    assert "p256.pem: ES384 needs a P-384 key, this one is P-256" in (
        wrong.check("platform-signature").detail
    )


def test_realm_signature_fails_when_signed_by_another_key(
    spec: TokenSpec, other_key: ec.EllipticCurvePrivateKey
) -> None:
    verdict = run(spec.but(realm_signing_key=other_key))
    assert failed(verdict) == {"realm-signature"}
    assert not verdict.passed


def test_binding_fails_when_platform_challenge_is_not_the_key_hash(spec: TokenSpec) -> None:
    verdict = run(spec.but(platform_challenge=hashlib.sha256(b"another key").digest()))
    assert failed(verdict) == {"realm-platform-binding"}
    assert "does not vouch for this realm token" in (verdict.check("realm-platform-binding").detail)


@pytest.mark.parametrize("algo", ["sha-256", "sha-384", "sha-512"])
def test_binding_uses_the_key_hash_algorithm_claim(spec: TokenSpec, algo: str) -> None:
    assert run(spec.but(key_hash_algo=algo)).check("realm-platform-binding").status == "passed"


def test_binding_fails_on_an_unknown_key_hash_algorithm(spec: TokenSpec) -> None:
    verdict = run(spec.but(key_hash_algo="md5"))
    assert failed(verdict) == {"realm-platform-binding"}
    assert "'md5'" in verdict.check("realm-platform-binding").detail


def test_binding_hashes_the_exact_claim_bytes_of_a_cose_key(spec: TokenSpec) -> None:
    # A platform challenge over the raw point does not bind a COSE_Key claim of the same key.
    raw = spec.but(realm_key_encoding="raw")
    from tests.attestation.builder import realm_key_claim

    wrong = hashlib.sha256(realm_key_claim(raw.realm_key, "raw")).digest()
    verdict = run(spec.but(realm_key_encoding="cose-key", platform_challenge=wrong))
    assert failed(verdict) == {"realm-platform-binding"}


@pytest.mark.parametrize("size", [32, 48, 64])
def test_realm_challenge_is_the_nonce_zero_padded(spec: TokenSpec, size: int) -> None:
    nonce = bytes(range(100, 100 + size))
    assert run(spec.but(nonce=nonce)).check("realm-challenge").status == "passed"


def test_realm_challenge_fails_for_a_different_nonce(spec: TokenSpec) -> None:
    verdict = run(spec, expected=expectations(spec, nonce=b"\x99" * 64))
    assert failed(verdict) == {"realm-challenge"}
    # Same bytes, different length: the padding is part of the challenge.
    shorter = run(spec.but(nonce=b"\x07" * 48), expected=expectations(spec, nonce=b"\x07" * 32))
    assert failed(shorter) == {"realm-challenge"}


@pytest.mark.parametrize("size", [0, 31, 65])
def test_an_unusable_nonce_is_an_error_not_a_failed_check(spec: TokenSpec, size: int) -> None:
    with pytest.raises(AttestationError, match="32 to 64 bytes"):
        run(spec, expected=expectations(spec, nonce=b"\x01" * size))


def test_personalization_value_must_match(spec: TokenSpec) -> None:
    verdict = run(spec, expected=expectations(spec, personalization_value=b"\x12" * 64))
    assert failed(verdict) == {"personalization-value"}
    assert "the VM manifest vm.yaml" in verdict.check("personalization-value").detail


def test_rim_passes_fails_or_is_not_checked(spec: TokenSpec) -> None:
    sha512_rim = b"\x5a" * 64
    chosen = spec.but(rim=sha512_rim, hash_algo="sha-512")
    assert run(chosen).check("initial-measurement").status == "passed"
    wrong = run(chosen, expected=expectations(chosen, initial_measurement=b"\x5b" * 64))
    assert failed(wrong) == {"initial-measurement"}
    assert not wrong.passed
    unset = run(chosen, expected=expectations(chosen, initial_measurement=None))
    check = unset.check("initial-measurement")
    assert check.status == "not-checked" and not check.required
    assert sha512_rim.hex() in check.detail
    assert unset.passed  # the RIM is optional; everything else passed


@pytest.mark.parametrize(
    ("lifecycle", "ok"),
    [
        (0x3000, True),
        (0x30FF, True),
        (0x2000, False),
        (0x4001, False),
        (0x6000, False),
        (0x9999, False),
    ],
)
def test_platform_lifecycle_must_be_secured(spec: TokenSpec, lifecycle: int, ok: bool) -> None:
    verdict = run(spec.but(lifecycle=lifecycle))
    assert failed(verdict) == (set() if ok else {"platform-lifecycle"})


@pytest.mark.parametrize("form", FORMS)
def test_tampering_fails_exactly_the_right_check(spec: TokenSpec, form: str) -> None:
    chosen = spec.but(form=form)
    data = build_token(chosen)
    token = parse_token(data)
    assert token.realm is not None
    cases = {
        "platform payload": (
            value_offset(data, token.platform.payload, 2396),
            "platform-signature",
        ),
        "realm payload": (value_offset(data, token.realm.payload, 44239), "realm-signature"),
        "platform signature": (data.find(token.platform.signature) + 5, "platform-signature"),
        "realm signature": (data.find(token.realm.signature) + 5, "realm-signature"),
    }
    for where, (offset, check) in cases.items():
        verdict = run(chosen, data=flip(data, offset))
        assert failed(verdict) == {check}, where


def test_every_byte_of_the_realm_payload_is_covered_by_its_signature(spec: TokenSpec) -> None:
    data = build_token(spec)
    token = parse_token(data)
    assert token.realm is not None
    start = data.find(token.realm.payload)
    anchors = anchors_for(spec.platform_key)
    for offset in range(start, start + len(token.realm.payload)):
        try:
            tampered = parse_token(flip(data, offset))
        except AttestationError:
            continue  # no longer a well-formed token: refused before any check
        verdict = verify_token(tampered, anchors=anchors, expected=expectations(spec))
        assert verdict.check("realm-signature").status == "failed", offset
        assert verdict.check("platform-signature").status == "passed", offset
        assert not verdict.passed


def test_no_trust_anchor_is_an_error(spec: TokenSpec) -> None:
    with pytest.raises(AttestationError, match="no trust anchor"):
        verify_token(parse_token(build_token(spec)), anchors=[], expected=expectations(spec))


def test_an_unreadable_realm_key_fails_the_realm_signature(spec: TokenSpec) -> None:
    bad_point = b"\x04" + b"\x01" * 96
    verdict = run(spec.but(extra_realm_claims={44237: bad_point}))
    assert failed(verdict) == {"realm-signature"}
    assert "cannot check: the realm public key is not a point on P-384" in (
        verdict.check("realm-signature").detail
    )


def test_a_realm_key_on_another_curve_fails(spec: TokenSpec) -> None:
    verdict = run(spec.but(realm_key=new_key(ec.SECP256R1())))
    assert failed(verdict) == {"realm-signature"}
    assert "65 bytes; an uncompressed P-384 point is 97" in (
        verdict.check("realm-signature").detail
    )


def test_a_verdict_passes_only_when_every_check_was_made_and_every_required_one_passed(
    spec: TokenSpec,
) -> None:
    """The rule itself, on verdicts taken apart: a required check that is not-checked, a check
    that is missing, a check made twice each fail the verdict with a reason of their own."""
    from dataclasses import replace

    good = run(spec)
    assert good.passed and good.failures == ()
    checks = list(good.checks)
    index = CHECK_NAMES.index("production-keys")
    unevaluated = replace(checks[index], status="not-checked")
    cases = {
        "required not-checked": (
            [*checks[:index], unevaluated, *checks[index + 1 :]],
            ("production-keys is required but was not evaluated",),
        ),
        "missing": ([*checks[:index], *checks[index + 1 :]], ("production-keys was not made",)),
        "twice": ([*checks, checks[0]], ("platform-signature was made twice",)),
        "none": ([], tuple(f"{name} was not made" for name in CHECK_NAMES)),
    }
    for case, (made, reasons) in cases.items():
        verdict = Verdict(checks=tuple(made), test_token=False)
        assert not verdict.passed, case
        assert verdict.failures == reasons, case
    # Not required and not checked is the one status besides passed that leaves it passing.
    optional = replace(unevaluated, required=False)
    assert Verdict(
        checks=(*checks[:index], optional, *checks[index + 1 :]), test_token=False
    ).passed
