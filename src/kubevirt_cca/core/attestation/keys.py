"""Public keys: trust anchors (PEM or JWK), the realm key claim, and the published sample keys.

Every function takes bytes or decoded values; reading the files is the command's job.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.cbor import decode_cbor
from kubevirt_cca.core.wire.jsontext import NotJSONValue, UnreadableJSON, loads
from kubevirt_cca.errors import AttestationError

RealmKeyEncoding = Literal["raw", "cose-key"]
REALM_KEY_CURVE = c.COSE_ALGORITHM_CURVES[c.REALM_SIGNING_ALGORITHM]  # "P-384"

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

# Published test keys whose private halves anyone can download: a token signed with them proves
# nothing about hardware. Uncompressed points (0x04 || x || y).
SAMPLE_PLATFORM_KEYS: dict[str, bytes] = {
    # TF-M tools iat-verifier cca_platform.pem, also rust-ccatoken cpak.json and trustee's key.
    "the published Arm sample CPAK (TF-M tools cca_platform.pem)": bytes.fromhex(
        "04212867c52e2b9508b0a420a90560f394d2dfaa21bdd7514ff1a901afe7e1f78b"
        "b11d4e66f8a8a38afa76af6a31c4de8c84ce2dafc9964258b53fad718774f45620"
        "d111b176e8318e1187db0235a318d37ba597fee80e0e4c762a12bcb3ea6ed4"
    ),
    # Veraison's ec256.json (its private part "d" is published with it).
    "the published Veraison sample key (ec256.json)": bytes.fromhex(
        "0430a0424cd21c2944838a2d75c92b37e76ea20d9f00893a3b4eee8a3c0aafec3e"
        "e04b65e92456d9888b52b379bdfbd51ee869ef1f0fc65b6659695b6cce081723"
    ),
}
SAMPLE_REALM_KEYS: dict[str, bytes] = {
    "the published Arm sample RAK (TF-M tools cca_realm.pem)": bytes.fromhex(
        "0476f988091be585ed41801aecfab858548c63057e16b0e676120bbd0d2f9c29e0"
        "56c5d41a0130eb9c21517899dc23146b28e1b062bd3ea4b315fd219f1cbb528cb6"
        "e74ca49be16773734f61a1ca61031b2bbf3d918f2f94ffc4228e50919544ae"
    ),
    "the published Arm sample RAK (TF-M tools cca_realm2.pem)": bytes.fromhex(
        "0481195880a2207fb956032a3cb97f5da5af726ffcb715ee164784a7fb16c06096"
        "bdd9462a32650b2912a8551570d6ea1f3b2d1f7da8a275fa00330f0078618bc3e1"
        "49549c8170d32ec55890a7f9ec789f1f18ae92eb15d222af971d971c965af1"
    ),
}


@dataclass(frozen=True)
class TrustAnchor:
    """A platform key a token may be verified under, with where it came from."""

    label: str  # e.g. "vendor-cpak.pem" or "ta.json#0"
    key: ec.EllipticCurvePublicKey

    @property
    def curve(self) -> str:
        return curve_name(self.key)

    @property
    def sample(self) -> str | None:
        """The published sample key this is, or ``None``."""
        return sample_key_name(self.key, SAMPLE_PLATFORM_KEYS)


@dataclass(frozen=True)
class RealmKey:
    key: ec.EllipticCurvePublicKey
    encoding: RealmKeyEncoding


def curve_name(key: ec.EllipticCurvePublicKey) -> str:
    return _CURVE_NAMES.get(key.curve.name, key.curve.name)


def point_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key as an uncompressed point, the form sample keys are compared in."""
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def sample_key_name(key: ec.EllipticCurvePublicKey, samples: Mapping[str, bytes]) -> str | None:
    point = point_bytes(key)
    for name, sample in samples.items():
        if point == sample:
            return name
    return None


def load_trust_anchors(data: bytes, *, label: str) -> tuple[TrustAnchor, ...]:
    """The EC public keys in a PEM file (public key, certificate or private key) or JSON file.

    JSON may be one JWK, a JWK set (``{"keys": [...]}``) or a list whose entries are JWKs or
    objects with the JWK under ``pkey`` (Veraison's trust anchor format).
    """
    text = data.lstrip()
    if text.startswith(b"-----BEGIN"):
        return (TrustAnchor(label=label, key=_pem_key(data, label)),)
    if text.startswith((b"{", b"[")):
        return _json_anchors(data, label)
    raise AttestationError(
        f"trust anchor {label}: not a PEM file (-----BEGIN ...) or a JSON Web Key; "
        "give the platform vendor's CPAK public key"
    )


def decode_realm_public_key(raw: bytes) -> RealmKey:
    """Claim 44237: a raw uncompressed P-384 point (97 bytes) or a COSE_Key (EC2, P-384)."""
    if raw[:1] == b"\x04":
        return RealmKey(key=_point(raw, REALM_KEY_CURVE, "the realm public key"), encoding="raw")
    value = decode_cbor(raw, "the realm public key (COSE_Key)")
    if not isinstance(value, Mapping):
        raise AttestationError(
            "the realm public key is neither a raw P-384 point (0x04 || x || y) nor a COSE_Key map"
        )
    kty = value.get(c.COSE_KEY_KTY)
    if type(kty) is not int or kty != c.COSE_KEY_KTY_EC2:
        raise AttestationError(f"the realm public key COSE_Key has kty {kty!r}; expected 2 (EC2)")
    crv = value.get(c.COSE_KEY_CRV)
    curve = c.COSE_CURVES.get(crv) if type(crv) is int else None
    if curve != REALM_KEY_CURVE:
        named = f" ({curve})" if curve else ""
        raise AttestationError(
            f"the realm public key COSE_Key has crv {crv!r}{named}; expected 2 (P-384): "
            "the RMM signs realm tokens with ES384 on a P-384 key"
        )
    x, y = value.get(c.COSE_KEY_X), value.get(c.COSE_KEY_Y)
    if not isinstance(x, bytes) or not isinstance(y, bytes):
        raise AttestationError(
            "the realm public key COSE_Key needs byte-string x (-2) and y (-3) coordinates"
        )
    return RealmKey(
        key=_point(b"\x04" + x + y, REALM_KEY_CURVE, "the realm public key"), encoding="cose-key"
    )


# --- helpers -------------------------------------------------------------------------------------


def _pem_key(data: bytes, label: str) -> ec.EllipticCurvePublicKey:
    loaded: Any
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509

            loaded = x509.load_pem_x509_certificate(data).public_key()
        elif b"PRIVATE KEY-----" in data:
            loaded = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AttestationError(f"trust anchor {label}: unreadable PEM ({exc})") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise AttestationError(
            f"trust anchor {label}: not an elliptic-curve key ({type(loaded).__name__}); "
            "a CCA platform key is an EC key on P-256, P-384 or P-521"
        )
    if curve_name(loaded) not in _CURVES:
        raise AttestationError(f"trust anchor {label}: unsupported curve {loaded.curve.name}")
    return loaded


def _json_anchors(data: bytes, label: str) -> tuple[TrustAnchor, ...]:
    try:
        value = loads(data)
    except NotJSONValue as exc:
        raise AttestationError(f"trust anchor {label}: {exc.reason}") from exc
    except UnreadableJSON as exc:
        raise AttestationError(f"trust anchor {label}: not valid JSON") from exc
    if isinstance(value, Mapping) and "keys" in value:
        value = value["keys"]
    if isinstance(value, Mapping):
        return (TrustAnchor(label=label, key=_jwk_key(value, label)),)
    if not isinstance(value, list) or not value:
        raise AttestationError(
            f"trust anchor {label}: expected a JWK object, a JWK set or a non-empty list of JWKs"
        )
    anchors = []
    for index, entry in enumerate(value):
        where = f"{label}#{index}"
        if isinstance(entry, Mapping) and "pkey" in entry:
            entry = entry["pkey"]
        if not isinstance(entry, Mapping):
            raise AttestationError(f"trust anchor {where}: expected a JWK object")
        anchors.append(TrustAnchor(label=where, key=_jwk_key(entry, where)))
    return tuple(anchors)


def _jwk_key(jwk: Mapping[str, Any], label: str) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC":
        raise AttestationError(
            f'trust anchor {label}: JWK kty is {jwk.get("kty")!r}; expected "EC"'
        )
    curve = jwk.get("crv")
    if not isinstance(curve, str) or curve not in _CURVES:
        raise AttestationError(
            f"trust anchor {label}: JWK crv is {curve!r}; expected P-256, P-384 or P-521"
        )
    size = c.CURVE_COORDINATE_BYTES[curve]
    coordinates = []
    for name in ("x", "y"):
        raw = jwk.get(name)
        try:
            if not isinstance(raw, str):
                raise ValueError
            decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (ValueError, binascii.Error):
            raise AttestationError(
                f"trust anchor {label}: JWK {name} must be base64url text"
            ) from None
        if len(decoded) != size:
            raise AttestationError(
                f"trust anchor {label}: JWK {name} is {len(decoded)} bytes; {curve} needs {size}"
            )
        coordinates.append(decoded)
    return _point(b"\x04" + coordinates[0] + coordinates[1], curve, f"trust anchor {label}")


def _point(raw: bytes, curve: str, what: str) -> ec.EllipticCurvePublicKey:
    size = c.CURVE_COORDINATE_BYTES[curve]
    if len(raw) != 1 + 2 * size:
        raise AttestationError(
            f"{what} is {len(raw)} bytes; an uncompressed {curve} point is {1 + 2 * size}"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[curve], raw)
    except ValueError as exc:
        raise AttestationError(f"{what} is not a point on {curve}") from exc
