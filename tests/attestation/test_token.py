"""The token parser: both forms, and a message naming the problem for every malformed input."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from kubevirt_cca.core.attestation.token import parse_token
from kubevirt_cca.errors import AttestationError
from tests.attestation.builder import (
    TokenSpec,
    build_token,
    platform_claims,
    realm_claims,
    realm_key_claim,
    sign1,
)


def collection(platform: Any, realm: Any, tag: int = 399) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(tag, {44234: platform, 44241: realm}))


def signed_parts(
    spec: TokenSpec, *, realm: dict[Any, Any] | None = None, platform: dict[Any, Any] | None = None
) -> tuple[bytes, bytes]:
    realm = realm if realm is not None else realm_claims(spec)
    key_claim = realm.get(44237, realm_key_claim(spec.realm_key, "raw"))
    platform = platform if platform is not None else platform_claims(spec, key_claim)
    return (
        cbor2.dumps(sign1(platform, spec.platform_key)),
        cbor2.dumps(sign1(realm, spec.realm_key)),
    )


def test_both_forms_give_the_same_claims(spec: TokenSpec) -> None:
    a = parse_token(build_token(spec.but(form="tag-399")))
    b = parse_token(build_token(spec.but(form="tag-907")))
    assert (a.form, b.form) == ("tag-399", "tag-907")
    assert a.realm_claims is not None and b.realm_claims is not None
    assert a.realm_claims.challenge == b.realm_claims.challenge == spec.nonce
    assert a.realm_claims.personalization_value == spec.rpv
    assert a.realm_claims.initial_measurement == spec.rim
    assert len(a.realm_claims.extensible_measurements) == 4
    assert a.platform_claims.lifecycle == b.platform_claims.lifecycle == spec.lifecycle
    assert [sw.type for sw in a.platform_claims.sw_components] == ["RMM", "BL"]
    assert a.platform_claims.sw_components[1].version == "1.2.3"


def test_unknown_claims_are_kept_for_show(spec: TokenSpec) -> None:
    # 44244 (the RMM 2.0 LFA policy) and 44257 (devices token hash) are not interpreted; 44243
    # and 256 are since December 2026 (test_rmm2_token.py).
    extra = {44244: 1, 44257: b"\x01"}
    token = parse_token(build_token(spec.but(extra_realm_claims=extra)))
    assert token.realm_claims is not None
    assert dict(token.realm_claims.other) == extra


def test_a_platform_token_alone(spec: TokenSpec) -> None:
    platform, _ = signed_parts(spec)
    token = parse_token(platform)
    assert token.form == "platform-only"
    assert token.realm is None and token.realm_claims is None


def _malformed(spec: TokenSpec) -> dict[str, tuple[bytes, str]]:
    platform, realm = signed_parts(spec)
    claims = realm_claims(spec)

    def realm_with(**changes: Any) -> bytes:
        edited = dict(claims)
        for key, value in changes.items():
            number = int(key.removeprefix("k"))
            if value is None:
                edited.pop(number)
            else:
                edited[number] = value
        return collection(platform, cbor2.dumps(sign1(edited, spec.realm_key)))

    sign1_body = cbor2.loads(platform).value
    return {
        "empty": (b"", "the token is empty"),
        "not cbor": (b"\xff\xff", "not valid CBOR"),
        "truncated": (build_token(spec)[:-10], "ends early"),
        "trailing": (build_token(spec) + b"\x00", "1 unexpected bytes after"),
        "untagged": (cbor2.dumps({44234: platform}), "not a tagged Arm CCA token"),
        "other tag": (cbor2.dumps(cbor2.CBORTag(400, {})), "CBOR tag 400"),
        "collection not a map": (cbor2.dumps(cbor2.CBORTag(399, [1])), "must be a CBOR map"),
        "no realm": (cbor2.dumps(cbor2.CBORTag(399, {44234: platform})), "no realm token"),
        "no platform": (
            cbor2.dumps(cbor2.CBORTag(907, {44241: [263, realm]})),
            "no platform token",
        ),
        "399 value not bytes": (collection(platform, [263, realm]), "must be a byte string"),
        "907 value not a record": (collection([263, platform], realm, 907), "CMW record"),
        "907 wrong type": (collection([263, platform], [264, realm], 907), "CMW type 264"),
        "907 bool type": (collection([263, platform], [True, realm], 907), "CMW type True"),
        "sign1 untagged": (
            collection(platform, cbor2.dumps(list(sign1_body))),
            "COSE_Sign1 with CBOR tag 18",
        ),
        "sign1 short": (
            collection(platform, cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b""]))),
            "array of 4 items",
        ),
        "detached payload": (
            collection(platform, cbor2.dumps(cbor2.CBORTag(18, [b"", {}, None, b"x"]))),
            "detached payloads",
        ),
        "protected not a map": (
            collection(platform, cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(1), {}, b"", b""]))),
            "protected header must be a CBOR map",
        ),
        "alg not an int": (
            collection(
                platform, cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: "ES384"}), {}, b"", b""]))
            ),
            "alg (label 1) must be an integer",
        ),
        "payload not a map": (
            collection(platform, cbor2.dumps(cbor2.CBORTag(18, [b"", {}, cbor2.dumps([1]), b""]))),
            "realm token's claims must be a CBOR map",
        ),
        "missing challenge": (realm_with(k10=None), "claim 10 (challenge) is missing"),
        "short challenge": (realm_with(k10=b"\x01" * 63), "63 bytes; expected 64"),
        "rpv text": (
            realm_with(k44235="x" * 64),
            "claim 44235 (personalization value) must be a byte string, got a text",
        ),
        "three REMs": (realm_with(k44239=[b"\x00" * 32] * 3), "list of 4 byte strings"),
        "unknown profile": (realm_with(k265="tag:arm.com,2099:realm#9"), "kubevirt-cca reads"),
        "bool hash algo": (realm_with(k44236=True), "must be a text string, got a boolean"),
        "duplicate keys": (
            collection(
                platform, cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"\xa2\x0a\x40\x0a\x40", b""]))
            ),
            "Duplicate map key",
        ),
        "deep nesting": (b"\x81" * 5000, "not valid CBOR"),
        "sw component without measurement": (
            collection(
                cbor2.dumps(
                    sign1({**platform_claims(spec, b""), 2399: [{1: "RMM"}]}, spec.platform_key)
                ),
                realm,
            ),
            "has no measurement value",
        ),
        "lifecycle bool": (
            collection(
                cbor2.dumps(sign1({**platform_claims(spec, b""), 2395: True}, spec.platform_key)),
                realm,
            ),
            "claim 2395 (lifecycle) must be an integer, got a boolean",
        ),
    }


def test_every_malformed_token_has_a_clear_error(spec: TokenSpec) -> None:
    for name, (data, message) in _malformed(spec).items():
        with pytest.raises(AttestationError) as raised:
            parse_token(data)
        assert message in str(raised.value), (name, str(raised.value))


def test_boolean_and_float_keys_never_stand_in_for_claims(spec: TokenSpec) -> None:
    """In Python True == 1 and 10.0 == 10; in CBOR they are different keys."""
    platform, _ = signed_parts(spec)
    claims = realm_claims(spec)
    challenge = claims.pop(10)
    for key in (10.0, True):
        edited = {key: challenge, **claims}
        data = collection(platform, cbor2.dumps(sign1(edited, spec.realm_key)))
        with pytest.raises(AttestationError, match="claim 10 \\(challenge\\) is missing"):
            parse_token(data)


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(AttestationError, match="a few KiB"):
        parse_token(b"\x00" * (65 * 1024))
