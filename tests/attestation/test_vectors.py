"""The public test vectors in ../shared/fixtures/attestation/, each with the key its README names.

Skipped, with the reason, when ../shared is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.core.attestation.keys import (
    SAMPLE_PLATFORM_KEYS,
    SAMPLE_REALM_KEYS,
    decode_realm_public_key,
    load_trust_anchors,
    point_bytes,
)
from kubevirt_cca.core.attestation.token import CCAToken, parse_token
from kubevirt_cca.core.attestation.verify import Expectations, Verdict, verify_token
from kubevirt_cca.errors import AttestationError
from tests.attestation.builder import (
    REALM_PROFILE_1,
    REALM_PROFILE_2,
    TokenSpec,
    build_token,
    flip,
    value_offset,
)
from tests.conftest import SHARED, shared_path

pytestmark = pytest.mark.shared
FIXTURES = ("fixtures", "attestation")


@dataclass(frozen=True)
class Vector:
    token: str
    key: str
    form: str
    realm_key: str | None  # "raw" / "cose-key"; None for a platform token alone
    platform_alg: str = "ES384"
    realm_profile: str | None = None
    failing: frozenset[str] = frozenset()


VECTORS = (
    Vector(
        "tf-m-tools/cca_example_token.cbor",
        "tf-m-tools/cca_platform.pem",
        "tag-907",
        "cose-key",
        realm_profile=REALM_PROFILE_2,
    ),
    Vector(
        "tf-m-tools/cca_example_token_legacy.cbor", "tf-m-tools/cca_platform.pem", "tag-907", "raw"
    ),
    Vector("tf-m-tools/cca_token.cbor", "tf-m-tools/cca_platform.pem", "tag-907", "raw"),
    Vector(
        "tf-m-tools/cca_example_platform_token.cbor",
        "tf-m-tools/cca_platform.pem",
        "platform-only",
        None,
    ),
    Vector(
        "rust-ccatoken/cca-token-draft-ffm-00.cbor",
        "rust-ccatoken/cpak.json",
        "tag-399",
        "cose-key",
        realm_profile=REALM_PROFILE_1,
    ),
    Vector("rust-ccatoken/cca-token-01.cbor", "rust-ccatoken/cpak.json", "tag-399", "raw"),
    Vector(
        "rust-ccatoken/cca-token-02.cbor",
        "rust-ccatoken/ta-02-ok.json",
        "tag-399",
        "raw",
        platform_alg="ES256",
    ),
    Vector(
        "rust-ccatoken/bug-33-repro.cbor",
        "rust-ccatoken/cpak.json",
        "tag-399",
        "raw",
        failing=frozenset({"realm-platform-binding"}),
    ),
    Vector("trustee/cca-example-token.cbor", "trustee/cpak-pub.json", "tag-399", "raw"),
    Vector(
        "veraison-services/cca-evidence.cbor",
        "veraison-services/ec256.json",
        "tag-399",
        "cose-key",
        platform_alg="ES256",
        realm_profile=REALM_PROFILE_1,
    ),
)
REALM_VECTORS = tuple(v for v in VECTORS if v.realm_key is not None)


def fixture(name: str) -> Path:
    return shared_path(*FIXTURES, name)


def load(vector: Vector) -> tuple[bytes, CCAToken]:
    data = fixture(vector.token).read_bytes()
    return data, parse_token(data)


def verify(
    vector: Vector,
    data: bytes | None = None,
    *,
    nonce: bytes | None = None,
    rpv: bytes | None = None,
    key: str | None = None,
    allow_test_keys: bool = True,
) -> Verdict:
    original = parse_token(fixture(vector.token).read_bytes())
    token = parse_token(data) if data is not None else original
    realm = original.realm_claims
    anchor_name = key or vector.key
    anchors = load_trust_anchors(fixture(anchor_name).read_bytes(), label=anchor_name)
    expected = Expectations(
        nonce=nonce if nonce is not None else (realm.challenge if realm else bytes(64)),
        personalization_value=rpv
        if rpv is not None
        else (realm.personalization_value if realm else bytes(64)),
        personalization_source="the test",
        allow_test_keys=allow_test_keys,
    )
    return verify_token(token, anchors=anchors, expected=expected)


def failed_required(verdict: Verdict) -> set[str]:
    return {c.name for c in verdict.checks if c.status == "failed" and c.required}


def test_every_vector_in_the_folder_is_covered() -> None:
    folder = SHARED.joinpath(*FIXTURES)
    if not folder.is_dir():
        pytest.skip(f"../shared is absent ({folder} not found)")
    on_disk = {str(p.relative_to(folder)) for p in folder.glob("*/*.cbor")}
    assert on_disk == {v.token for v in VECTORS}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.token)
def test_vector_parses_and_verifies_with_its_key(vector: Vector) -> None:
    _, token = load(vector)
    assert token.form == vector.form
    verdict = verify(vector)
    platform = verdict.check("platform-signature")
    assert platform.status == "passed", platform.detail
    assert platform.detail.startswith(vector.platform_alg)
    if vector.realm_key is None:
        assert token.realm is None
        assert verdict.check("realm-signature").status == "failed"
        return
    assert token.realm_claims is not None
    assert token.realm_claims.profile == vector.realm_profile
    assert decode_realm_public_key(token.realm_claims.public_key).encoding == vector.realm_key
    assert verdict.check("realm-signature").status == "passed"
    assert failed_required(verdict) == set(vector.failing)
    assert verdict.passed == (not vector.failing)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.token)
def test_vectors_are_test_tokens(vector: Vector) -> None:
    """Every public vector is made with published keys: it must never pass as genuine."""
    verdict = verify(vector, allow_test_keys=False)
    assert verdict.test_token
    check = verdict.check("production-keys")
    assert check.status == "failed" and check.required
    assert "test token" in check.detail
    assert not verdict.passed


def test_bug_33_fails_on_the_binding_only() -> None:
    vector = next(v for v in VECTORS if v.token.endswith("bug-33-repro.cbor"))
    verdict = verify(vector)
    assert {c.name for c in verdict.checks if c.status == "failed"} == {
        "realm-platform-binding",
        "production-keys",
    }
    assert not verdict.check("production-keys").required  # allow_test_keys in this test


@pytest.mark.parametrize("vector", REALM_VECTORS, ids=lambda v: v.token)
def test_tampering_fails_exactly_the_right_check(vector: Vector) -> None:
    data, token = load(vector)
    assert token.realm is not None
    cases = {
        "platform payload": (
            value_offset(data, token.platform.payload, 2396),
            "platform-signature",
        ),
        "realm payload": (value_offset(data, token.realm.payload, 44239), "realm-signature"),
        "platform signature": (data.find(token.platform.signature) + 3, "platform-signature"),
        "realm signature": (data.find(token.realm.signature) + 3, "realm-signature"),
    }
    for where, (offset, check) in cases.items():
        tampered = flip(data, offset)
        verdict = verify(vector, tampered)
        assert failed_required(verdict) == {check} | set(vector.failing), where


@pytest.mark.parametrize("vector", REALM_VECTORS, ids=lambda v: v.token)
def test_every_byte_of_the_signed_payloads_is_covered(vector: Vector) -> None:
    data, token = load(vector)
    assert token.realm is not None
    for payload, check in (
        (token.platform.payload, "platform-signature"),
        (token.realm.payload, "realm-signature"),
    ):
        start = data.find(payload)
        for offset in range(start, start + len(payload), 7):
            try:
                tampered = flip(data, offset)
                verdict = verify(vector, tampered)
            except AttestationError:
                continue  # no longer a well-formed token: refused before any check
            assert verdict.check(check).status == "failed", (check, offset)


@pytest.mark.parametrize("vector", REALM_VECTORS, ids=lambda v: v.token)
def test_wrong_trust_anchor_fails_the_platform_signature(vector: Vector) -> None:
    other = (
        "rust-ccatoken/ta-02-ok.json"
        if vector.platform_alg == "ES384"
        else "tf-m-tools/cca_platform.pem"
    )
    verdict = verify(vector, key=other)
    assert failed_required(verdict) == {"platform-signature"} | set(vector.failing)


@pytest.mark.parametrize("vector", REALM_VECTORS, ids=lambda v: v.token)
def test_a_different_nonce_fails_the_challenge(vector: Vector) -> None:
    verdict = verify(vector, nonce=b"\x5a" * 64)
    assert failed_required(verdict) == {"realm-challenge"} | set(vector.failing)


@pytest.mark.parametrize("vector", REALM_VECTORS, ids=lambda v: v.token)
def test_a_different_personalization_value_fails(vector: Vector) -> None:
    verdict = verify(vector, rpv=b"\xa5" * 64)
    assert failed_required(verdict) == {"personalization-value"} | set(vector.failing)


# --- the published sample keys -------------------------------------------------------------------


def _pem_point(name: str) -> bytes:
    key = serialization.load_pem_private_key(fixture(name).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return point_bytes(key.public_key())


def test_embedded_sample_keys_are_the_published_ones() -> None:
    assert _pem_point("tf-m-tools/cca_platform.pem") in SAMPLE_PLATFORM_KEYS.values()
    assert _pem_point("tf-m-tools/cca_realm.pem") in SAMPLE_REALM_KEYS.values()
    assert _pem_point("tf-m-tools/cca_realm2.pem") in SAMPLE_REALM_KEYS.values()
    for name in (
        "rust-ccatoken/cpak.json",
        "trustee/cpak-pub.json",
        "veraison-services/ec256.json",
    ):
        (anchor,) = load_trust_anchors(fixture(name).read_bytes(), label=name)
        assert anchor.sample is not None, name


def _sample_private(name: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(fixture(name).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.mark.parametrize("form", ["tag-399", "tag-907"])
@pytest.mark.parametrize("encoding", ["raw", "cose-key"])
def test_tokens_signed_with_the_sample_keys_are_test_tokens(form: str, encoding: str) -> None:
    cpak = _sample_private("tf-m-tools/cca_platform.pem")
    rak = _sample_private("tf-m-tools/cca_realm.pem")
    spec = TokenSpec(
        platform_key=cpak,
        realm_key=rak,
        form=form,  # type: ignore[arg-type]
        realm_key_encoding=encoding,  # type: ignore[arg-type]
    )
    token = parse_token(build_token(spec))
    anchors = load_trust_anchors(
        fixture("tf-m-tools/cca_platform.pem").read_bytes(), label="cca_platform.pem"
    )
    expected = Expectations(
        nonce=spec.nonce, personalization_value=spec.rpv, personalization_source="the test"
    )
    verdict = verify_token(token, anchors=anchors, expected=expected)
    assert verdict.test_token
    assert {c.name for c in verdict.checks if c.status == "failed"} == {"production-keys"}
    detail = verdict.check("production-keys").detail
    assert "sample CPAK" in detail and "sample RAK" in detail
    assert not verdict.passed


def test_only_the_sample_realm_key_makes_a_test_token(
    platform_key: ec.EllipticCurvePrivateKey,
) -> None:
    from tests.attestation.builder import public_pem

    rak = _sample_private("tf-m-tools/cca_realm2.pem")
    spec = TokenSpec(platform_key=platform_key, realm_key=rak)
    anchors = load_trust_anchors(public_pem(platform_key), label="vendor.pem")
    verdict = verify_token(
        parse_token(build_token(spec)),
        anchors=anchors,
        expected=Expectations(
            nonce=spec.nonce, personalization_value=spec.rpv, personalization_source="the test"
        ),
    )
    assert verdict.test_token
    assert "cca_realm2.pem" in verdict.check("production-keys").detail
    assert "CPAK" not in verdict.check("production-keys").detail


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.token)
def test_show_prints_every_vector(vector: Vector) -> None:
    import json

    from tests.attestation.test_cli import attest

    path = fixture(vector.token)
    code, out, err = attest("show", path, "--output", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["form"] == vector.form
    assert shown["platform"]["algorithm"] == vector.platform_alg
    if vector.realm_key is None:
        assert shown["realm"] is None
    else:
        assert shown["realm"]["publicKeyEncoding"] == vector.realm_key
        assert shown["realm"]["profile"] == vector.realm_profile
    code, out, _ = attest("show", path)
    assert code == 0 and out.startswith(f"form: {vector.form}\n")
