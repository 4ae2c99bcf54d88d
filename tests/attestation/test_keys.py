"""Trust anchors (PEM, certificate, JWK, JWK set, Veraison lists) and the realm key claim."""

from __future__ import annotations

import base64
import datetime
import json

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from kubevirt_cca.core.attestation.keys import (
    decode_realm_public_key,
    load_trust_anchors,
    point_bytes,
)
from kubevirt_cca.errors import AttestationError
from tests.attestation.builder import new_key, public_pem, realm_key_claim


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(key: ec.EllipticCurvePrivateKey, **extra: str) -> dict[str, str]:
    point = point_bytes(key.public_key())
    size = (len(point) - 1) // 2
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64url(point[1 : 1 + size]),
        "y": b64url(point[1 + size :]),
        **extra,
    }


def same(anchor_key: ec.EllipticCurvePublicKey, key: ec.EllipticCurvePrivateKey) -> bool:
    return point_bytes(anchor_key) == point_bytes(key.public_key())


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_every_accepted_form_gives_the_same_key(curve: ec.EllipticCurve) -> None:
    key = new_key(curve)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CPAK")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    forms = {
        "public PEM": public_pem(key),
        "private PEM": private_pem,
        "certificate": cert.public_bytes(serialization.Encoding.PEM),
        "JWK": json.dumps(jwk(key)).encode(),
        "JWK with d": json.dumps(jwk(key, d="ignored")).encode(),
        "JWK set": json.dumps({"keys": [jwk(key)]}).encode(),
        "Veraison list": json.dumps([{"instance-id": "01", "pkey": jwk(key)}]).encode(),
    }
    for form, data in forms.items():
        (anchor,) = load_trust_anchors(data, label="f")
        assert same(anchor.key, key), form
        assert anchor.sample is None


def test_a_list_labels_each_entry() -> None:
    keys = [new_key(), new_key(ec.SECP256R1())]
    anchors = load_trust_anchors(json.dumps([jwk(k) for k in keys]).encode(), label="tas.json")
    assert [a.label for a in anchors] == ["tas.json#0", "tas.json#1"]
    assert [a.curve for a in anchors] == ["P-384", "P-256"]


def _rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a PEM file"),
        (b"hello", "not a PEM file"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "unreadable PEM"),
        (b"{not json", "not valid JSON"),
        (b"[]", "non-empty list"),
        (b"[1]", "expected a JWK object"),
        (b'{"kty": "RSA"}', "kty is 'RSA'; expected \"EC\""),
        (b'{"kty": "EC", "crv": "P-192"}', "crv is 'P-192'"),
        (b'{"kty": "EC", "crv": "P-256", "x": 5, "y": "AA"}', "x must be base64url"),
        (
            b'{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}',
            "x is 3 bytes; P-256 needs 32",
        ),
    ],
)
def test_unusable_trust_anchors(data: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match="trust anchor ta") as raised:
        load_trust_anchors(data, label="ta")
    assert message in str(raised.value)


def test_an_rsa_key_is_refused() -> None:
    with pytest.raises(AttestationError, match="not an elliptic-curve key"):
        load_trust_anchors(_rsa_pem(), label="rsa.pem")


def test_a_point_off_the_curve_is_refused() -> None:
    off = {"kty": "EC", "crv": "P-256", "x": b64url(b"\x01" * 32), "y": b64url(b"\x02" * 32)}
    with pytest.raises(AttestationError, match="not a point on P-256"):
        load_trust_anchors(json.dumps(off).encode(), label="ta")


@pytest.mark.parametrize("encoding", ["raw", "cose-key"])
def test_realm_key_encodings(encoding: str) -> None:
    key = new_key()
    decoded = decode_realm_public_key(realm_key_claim(key, encoding))
    assert decoded.encoding == encoding
    assert same(decoded.key, key)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x04" + b"\x01" * 96, "not a point on P-384"),
        (b"\x04" + b"\x01" * 64, "65 bytes; an uncompressed P-384 point is 97"),
        (cbor2.dumps([1]), "neither a raw P-384 point"),
        (cbor2.dumps({1: 1}), "kty 1; expected 2 (EC2)"),
        (cbor2.dumps({1: 2, -1: 9}), "crv 9"),
        (cbor2.dumps({1: 2, -1: 2, -2: "x", -3: b""}), "byte-string x (-2) and y (-3)"),
        (b"\xa1", "not valid CBOR"),
    ],
)
def test_unusable_realm_keys(raw: bytes, message: str) -> None:
    with pytest.raises(AttestationError) as raised:
        decode_realm_public_key(raw)
    assert message in str(raised.value)
