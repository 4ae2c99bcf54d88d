"""A test-side Arm CCA token builder: both collection forms, both realm-key encodings.

Written from the format facts (RMM spec, draft-ffm-rats-cca-token), independently of the parser
under test: it encodes with cbor2 and signs with cryptography, nothing from kubevirt_cca.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ES256, ES384, ES512 = -7, -35, -36
_ALG_HASH = {ES256: hashes.SHA256(), ES384: hashes.SHA384(), ES512: hashes.SHA512()}
REALM_PROFILE_1 = "tag:arm.com,2023:realm#1.0.0"
REALM_PROFILE_2 = "tag:arm.com,2024:realm#2.0.0"
PLATFORM_PROFILE = "tag:arm.com,2023:cca_platform#1.0.0"


def new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP384R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def alg_for(key: ec.EllipticCurvePrivateKey) -> int:
    return {"secp256r1": ES256, "secp384r1": ES384, "secp521r1": ES512}[key.curve.name]


def realm_key_claim(key: ec.EllipticCurvePrivateKey, encoding: str) -> bytes:
    """Claim 44237: a raw uncompressed point, or a COSE_Key (kty EC2, the key's own crv)."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    if encoding == "raw":
        return point
    size = (len(point) - 1) // 2
    crv = {"secp256r1": 1, "secp384r1": 2, "secp521r1": 3}[key.curve.name]
    return cbor2.dumps({1: 2, -1: crv, -2: point[1 : 1 + size], -3: point[1 + size :]})


def sign1(
    claims: dict[Any, Any], key: ec.EllipticCurvePrivateKey, alg: int | None = None
) -> cbor2.CBORTag:
    alg = alg_for(key) if alg is None else alg
    protected = cbor2.dumps({1: alg})
    payload = cbor2.dumps(claims)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(key.sign(to_sign, ec.ECDSA(_ALG_HASH[alg])))
    size = (key.curve.key_size + 7) // 8  # the key's size: an algorithm may not match its key
    signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return cbor2.CBORTag(18, [protected, {}, payload, signature])


@dataclass(frozen=True)
class TokenSpec:
    """Everything a test may choose; defaults make a token that passes every check."""

    platform_key: ec.EllipticCurvePrivateKey
    realm_key: ec.EllipticCurvePrivateKey
    nonce: bytes = bytes(range(64))
    rpv: bytes = b"\x11" * 64
    rim: bytes = b"\x22" * 32
    rems: tuple[bytes, ...] = (b"\x33" * 32, b"\x44" * 32, b"\x55" * 32, b"\x66" * 32)
    form: Literal["tag-399", "tag-907"] = "tag-399"
    realm_key_encoding: Literal["raw", "cose-key"] = "raw"
    realm_profile: str | None = REALM_PROFILE_1
    lifecycle: int = 0x3003
    key_hash_algo: str = "sha-256"
    hash_algo: str = "sha-256"  # claim 44236: the Realm's measurement algorithm
    realm_alg: int = ES384  # the realm token's COSE algorithm (the RMM's is ES384)
    platform_challenge: bytes | None = None  # None: the right hash of the realm key claim
    realm_signing_key: ec.EllipticCurvePrivateKey | None = None  # None: realm_key
    instance_id: bytes | None = None  # claim 256 (RMM 2.0); None: absent
    mec_policy: int | str | None = None  # claim 44243 (RMM 2.0: 0 / 1); None: absent
    extra_realm_claims: dict[Any, Any] = field(default_factory=dict)

    def but(self, **changes: Any) -> TokenSpec:
        return replace(self, **changes)


def realm_claims(spec: TokenSpec) -> dict[Any, Any]:
    claims: dict[Any, Any] = {
        10: spec.nonce + bytes(64 - len(spec.nonce)),
        44235: spec.rpv,
        44236: spec.hash_algo,
        44237: realm_key_claim(spec.realm_key, spec.realm_key_encoding),
        44238: spec.rim,
        44239: list(spec.rems),
        44240: spec.key_hash_algo,
    }
    if spec.realm_profile is not None:
        claims[265] = spec.realm_profile
    if spec.instance_id is not None:
        claims[256] = spec.instance_id
    if spec.mec_policy is not None:
        claims[44243] = spec.mec_policy
    claims.update(spec.extra_realm_claims)
    return claims


def platform_claims(spec: TokenSpec, key_claim: bytes) -> dict[Any, Any]:
    if spec.platform_challenge is not None:
        challenge = spec.platform_challenge
    else:
        name = {"sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}.get(
            spec.key_hash_algo, "sha256"
        )
        challenge = hashlib.new(name, key_claim).digest()
    return {
        265: PLATFORM_PROFILE,
        10: challenge,
        2396: b"\x7f" * 32,
        256: b"\x01" + b"\x02" * 32,
        2401: b"\xcf\xcf\xcf\xcf",
        2395: spec.lifecycle,
        2399: [
            {1: "RMM", 2: b"\xa1" * 32, 5: b"\x53" * 32, 6: "sha-256"},
            {1: "BL", 2: b"\xb2" * 32, 4: "1.2.3", 5: b"\x53" * 32},
        ],
        2400: "https://verifier.example/",
        2402: "sha-256",
    }


RMM2_INSTANCE_ID = b"\x01" + bytes(range(0xA0, 0xC0))  # 33 bytes, a random UEID (type 0x01)


def rmm2(spec: TokenSpec) -> TokenSpec:
    """What TF-RMM 2.0 emits by default: a tag-907 CMW collection, the 2.0 realm profile, a
    Realm Instance ID and the MEC policy as an integer (RMM spec DEN0137 A7.2.3.1)."""
    return spec.but(
        form="tag-907", realm_profile=REALM_PROFILE_2, instance_id=RMM2_INSTANCE_ID, mec_policy=0
    )


def build_token(spec: TokenSpec) -> bytes:
    realm = realm_claims(spec)
    realm_token = sign1(realm, spec.realm_signing_key or spec.realm_key, spec.realm_alg)
    platform_token = sign1(platform_claims(spec, realm[44237]), spec.platform_key)
    platform_bytes, realm_bytes = cbor2.dumps(platform_token), cbor2.dumps(realm_token)
    if spec.form == "tag-399":
        return cbor2.dumps(cbor2.CBORTag(399, {44234: platform_bytes, 44241: realm_bytes}))
    return cbor2.dumps(
        cbor2.CBORTag(907, {44234: [263, platform_bytes], 44241: [263, realm_bytes]})
    )


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def value_offset(data: bytes, payload: bytes, key: int) -> int:
    """Where, in ``data``, the first content byte of claim ``key``'s byte string sits.

    ``payload`` is the claims map as it appears (verbatim) inside ``data``; for an array of
    byte strings (the REMs) the first element is taken.
    """
    base = data.find(payload)
    assert base >= 0, "payload not found verbatim in the token"
    marker = cbor2.dumps(key)
    start = payload.find(marker)
    while start >= 0:
        at = start + len(marker)
        if payload[at] >> 5 == 4:  # an array header: step into its first element
            at += 1
        head = payload[at]
        if head >> 5 == 2:  # a byte string
            extra = {24: 1, 25: 2}.get(head & 0x1F, 0)
            return base + at + 1 + extra
        start = payload.find(marker, start + 1)
    raise AssertionError(f"claim {key} not found as a byte string")
