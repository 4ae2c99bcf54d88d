"""The Arm CCA attestation token: its model, and a parser that names whatever is wrong.

A token is a CBOR collection of two COSE_Sign1 messages (tag 18): the platform token (key
44234), signed by the platform's CCA Platform Attestation Key (CPAK), and the realm token (key
44241), signed by the Realm Attestation Key (RAK) whose public half it carries in claim 44237.
Two collection forms exist: tag 399 (RMM 1.0, each value a byte string holding the COSE_Sign1)
and tag 907 (a CMW collection, each value ``[263, bstr]``). A bare tagged COSE_Sign1 is read as
a platform token on its own (what emulators return for the platform part).

:func:`parse_token` checks structure and claim types only; whether the token can be believed is
:mod:`kubevirt_cca.core.attestation.verify`'s business. Every problem is an
:class:`~kubevirt_cca.errors.AttestationError` naming the part and the claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cbor2

from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.cbor import cbor_kind, cbor_map, decode_cbor
from kubevirt_cca.errors import AttestationError

TokenForm = Literal["tag-399", "tag-907", "platform-only"]
MecPolicy = Literal["shared", "private"]
MAX_TOKEN_BYTES = 64 * 1024  # real tokens are 1-3 KiB; refuse anything absurd before decoding


@dataclass(frozen=True)
class Sign1:
    """One COSE_Sign1 message, kept as the exact bytes that were signed."""

    protected: bytes  # the serialized protected header, as signed
    algorithm: int | None  # the protected header's ``alg`` (label 1)
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        """The Sig_structure of RFC 9052 section 4.4 (no external AAD)."""
        return cbor2.dumps([c.SIGNATURE1_CONTEXT, self.protected, b"", self.payload])


@dataclass(frozen=True)
class SoftwareComponent:
    """One entry of the platform's software components claim (2399)."""

    measurement: bytes
    type: str | None = None
    version: str | None = None
    signer_id: bytes | None = None
    hash_algo: str | None = None


@dataclass(frozen=True)
class PlatformClaims:
    profile: str
    challenge: bytes
    implementation_id: bytes
    instance_id: bytes
    lifecycle: int
    sw_components: tuple[SoftwareComponent, ...]
    config: bytes | None = None
    verification_service: str | None = None
    hash_algo: str | None = None
    other: tuple[tuple[Any, Any], ...] = ()  # claims kubevirt-cca does not interpret


@dataclass(frozen=True)
class RealmClaims:
    profile: str | None  # None: the profile-less (RMM 1.0 beta) realm token
    challenge: bytes
    personalization_value: bytes
    initial_measurement: bytes
    extensible_measurements: tuple[bytes, ...]
    hash_algo: str
    public_key: bytes  # the exact bytes of claim 44237 (raw P-384 point or COSE_Key)
    public_key_hash_algo: str
    other: tuple[tuple[Any, Any], ...] = ()
    instance_id: bytes | None = None  # claim 256 (RMM 2.0): 33 bytes, the first 0x01
    mec_policy: MecPolicy | None = None  # claim 44243 (RMM 2.0), whichever encoding it had
    mec_policy_encoding: Literal["integer", "text"] | None = None


@dataclass(frozen=True)
class CCAToken:
    form: TokenForm
    platform: Sign1
    platform_claims: PlatformClaims
    realm: Sign1 | None = None
    realm_claims: RealmClaims | None = None


def parse_token(data: bytes) -> CCAToken:
    """Read an Arm CCA attestation token; :class:`AttestationError` saying what is wrong."""
    if not data:
        raise AttestationError("the token is empty")
    if len(data) > MAX_TOKEN_BYTES:
        raise AttestationError(
            f"the token is {len(data)} bytes; an Arm CCA token is a few KiB "
            f"(at most {MAX_TOKEN_BYTES} accepted)"
        )
    top = decode_cbor(data, "the token")
    if not isinstance(top, cbor2.CBORTag):
        raise AttestationError(
            f"the token is CBOR {cbor_kind(top)}, not a tagged Arm CCA token; "
            f"expected CBOR tag {c.TAG_CCA_TOKEN} (CCA token collection) or {c.TAG_CMW_COLLECTION} "
            "(CMW collection)"
        )
    if top.tag == c.TAG_COSE_SIGN1:
        platform = _parse_sign1(top, "platform token")
        return CCAToken(
            form="platform-only",
            platform=platform,
            platform_claims=_parse_platform(platform.payload),
        )
    if top.tag == c.TAG_CCA_TOKEN:
        form: TokenForm = "tag-399"
        platform_bytes, realm_bytes = _collection_399(top.value)
    elif top.tag == c.TAG_CMW_COLLECTION:
        form = "tag-907"
        platform_bytes, realm_bytes = _collection_907(top.value)
    else:
        raise AttestationError(
            f"the token has CBOR tag {top.tag}; expected {c.TAG_CCA_TOKEN} "
            f"(CCA token collection), {c.TAG_CMW_COLLECTION} "
            f"(CMW collection) or {c.TAG_COSE_SIGN1} (a platform token alone)"
        )
    platform = _parse_sign1(decode_cbor(platform_bytes, "the platform token"), "platform token")
    realm = _parse_sign1(decode_cbor(realm_bytes, "the realm token"), "realm token")
    return CCAToken(
        form=form,
        platform=platform,
        platform_claims=_parse_platform(platform.payload),
        realm=realm,
        realm_claims=_parse_realm(realm.payload),
    )


# --- envelope ----------------------------------------------------------------------------------


def _collection_399(value: Any) -> tuple[bytes, bytes]:
    entries = cbor_map(value, f"the tag {c.TAG_CCA_TOKEN} collection")
    found: list[bytes] = []
    for key, part in ((c.PLATFORM_TOKEN_KEY, "platform"), (c.REALM_TOKEN_KEY, "realm")):
        if key not in entries:
            raise AttestationError(f"the token collection has no {part} token (key {key})")
        item = entries[key]
        if not isinstance(item, bytes):
            raise AttestationError(
                f"the {part} token (key {key}) must be a byte string holding a COSE_Sign1, "
                f"got {cbor_kind(item)}"
            )
        found.append(item)
    return found[0], found[1]


def _collection_907(value: Any) -> tuple[bytes, bytes]:
    entries = cbor_map(value, f"the tag {c.TAG_CMW_COLLECTION} CMW collection")
    found: list[bytes] = []
    for key, part in ((c.PLATFORM_TOKEN_KEY, "platform"), (c.REALM_TOKEN_KEY, "realm")):
        if key not in entries:
            raise AttestationError(f"the CMW collection has no {part} token (key {key})")
        item = entries[key]
        shape = f"[{c.CMW_CONTENT_TYPE}, bstr]"
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise AttestationError(
                f"the {part} token (key {key}) must be a CMW record {shape}, got {cbor_kind(item)}"
            )
        content_type, content = item
        if type(content_type) is not int or content_type != c.CMW_CONTENT_TYPE:
            raise AttestationError(
                f"the {part} token (key {key}) has CMW type {content_type!r}; "
                f"expected {c.CMW_CONTENT_TYPE}"
            )
        if not isinstance(content, bytes):
            raise AttestationError(
                f"the {part} token (key {key}) must be a CMW record {shape}; "
                f"its value is {cbor_kind(content)}"
            )
        found.append(content)
    return found[0], found[1]


def _parse_sign1(value: Any, part: str) -> Sign1:
    if not isinstance(value, cbor2.CBORTag) or value.tag != c.TAG_COSE_SIGN1:
        got = f"CBOR tag {value.tag}" if isinstance(value, cbor2.CBORTag) else cbor_kind(value)
        raise AttestationError(
            f"the {part} must be a COSE_Sign1 with CBOR tag {c.TAG_COSE_SIGN1}, got {got}"
        )
    body = value.value
    if not isinstance(body, list | tuple) or len(body) != 4:
        raise AttestationError(
            f"the {part}'s COSE_Sign1 must be an array of 4 items "
            "[protected, unprotected, payload, signature], got "
            f"{cbor_kind(body)}" + (f" of {len(body)}" if isinstance(body, list | tuple) else "")
        )
    protected, unprotected, payload, signature = body
    if not isinstance(protected, bytes):
        raise AttestationError(
            f"the {part}'s protected header must be a byte string, got {cbor_kind(protected)}"
        )
    if not isinstance(unprotected, Mapping):
        raise AttestationError(
            f"the {part}'s unprotected header must be a map, got {cbor_kind(unprotected)}"
        )
    if not isinstance(payload, bytes):
        raise AttestationError(
            f"the {part}'s payload must be a byte string "
            f"(detached payloads are not used in CCA tokens), got {cbor_kind(payload)}"
        )
    if not isinstance(signature, bytes):
        raise AttestationError(
            f"the {part}'s signature must be a byte string, got {cbor_kind(signature)}"
        )
    algorithm: int | None = None
    if protected:
        header = cbor_map(
            decode_cbor(protected, f"the {part}'s protected header"),
            f"the {part}'s protected header",
        )
        alg = header.get(c.COSE_HEADER_ALG)
        if alg is not None and type(alg) is not int:
            raise AttestationError(
                f"the {part}'s protected header alg (label 1) must be an integer COSE algorithm, "
                f"got {cbor_kind(alg)}"
            )
        algorithm = alg
    return Sign1(protected=protected, algorithm=algorithm, payload=payload, signature=signature)


_KIND_NAMES: dict[Any, str] = {
    bytes: "a byte string",
    str: "a text string",
    int: "an integer",
    list | tuple: "an array",
}


# --- claims --------------------------------------------------------------------------------------


class _Claims:
    """Typed reads from one claims map, with messages naming the token part and claim."""

    def __init__(self, payload: bytes, part: str, names: Mapping[int, str]) -> None:
        self.part = part
        self.names = names
        self.entries = cbor_map(
            decode_cbor(payload, f"the {part}'s payload"), f"the {part}'s claims"
        )
        self.used: set[int] = set()

    def where(self, key: int) -> str:
        return f"the {self.part}'s claim {key} ({self.names.get(key, 'unnamed')})"

    def get(self, key: int, kind: Any, *, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.entries:
            if required:
                raise AttestationError(f"{self.where(key)} is missing")
            return None
        value = self.entries[key]
        ok = type(value) is int if kind is int else isinstance(value, kind)
        if not ok:
            raise AttestationError(
                f"{self.where(key)} must be {_KIND_NAMES[kind]}, got {cbor_kind(value)}"
            )
        return value

    def sized(self, key: int, sizes: tuple[int, ...], *, required: bool = True) -> Any:
        value = self.get(key, bytes, required=required)
        if value is not None and len(value) not in sizes:
            expected = " or ".join(str(s) for s in sizes)
            raise AttestationError(f"{self.where(key)} is {len(value)} bytes; expected {expected}")
        return value

    def other(self) -> tuple[tuple[Any, Any], ...]:
        return tuple((k, v) for k, v in self.entries.items() if k not in self.used)


def _parse_realm(payload: bytes) -> RealmClaims:
    claims = _Claims(payload, "realm token", c.REALM_CLAIM_NAMES)
    profile = claims.get(c.REALM_PROFILE, str, required=False)
    if profile is not None and profile not in c.REALM_PROFILES:
        known = " or ".join(repr(p) for p in c.REALM_PROFILES)
        raise AttestationError(
            f"{claims.where(c.REALM_PROFILE)} is {profile!r}; kubevirt-cca reads {known} "
            "(or a token without a profile)"
        )
    rems = claims.get(c.REALM_EXTENSIBLE_MEASUREMENTS, list | tuple)
    if len(rems) != c.REALM_EXTENSIBLE_MEASUREMENT_COUNT or not all(
        isinstance(rem, bytes) for rem in rems
    ):
        raise AttestationError(
            f"{claims.where(c.REALM_EXTENSIBLE_MEASUREMENTS)} must be a list of "
            f"{c.REALM_EXTENSIBLE_MEASUREMENT_COUNT} byte strings"
        )
    instance_id = claims.sized(c.REALM_INSTANCE_ID, (c.REALM_INSTANCE_ID_BYTES,), required=False)
    if instance_id is not None and instance_id[0] != c.REALM_INSTANCE_ID_TYPE:
        raise AttestationError(
            f"{claims.where(c.REALM_INSTANCE_ID)} starts with byte {instance_id[0]:#04x}; "
            f"a Realm Instance ID starts with {c.REALM_INSTANCE_ID_TYPE:#04x} (a random UEID)"
        )
    mec_policy, mec_encoding = _mec_policy(claims)
    return RealmClaims(
        profile=profile,
        instance_id=instance_id,
        mec_policy=mec_policy,
        mec_policy_encoding=mec_encoding,
        challenge=claims.sized(c.REALM_CHALLENGE, (c.REALM_CHALLENGE_BYTES,)),
        personalization_value=claims.sized(
            c.REALM_PERSONALIZATION_VALUE, (c.REALM_PERSONALIZATION_VALUE_BYTES,)
        ),
        initial_measurement=claims.sized(c.REALM_INITIAL_MEASUREMENT, (32, 48, 64)),
        extensible_measurements=tuple(rems),
        hash_algo=claims.get(c.REALM_HASH_ALGO, str),
        public_key=claims.get(c.REALM_PUBLIC_KEY, bytes),
        public_key_hash_algo=claims.get(c.REALM_PUBLIC_KEY_HASH_ALGO, str),
        other=claims.other(),
    )


def _mec_policy(
    claims: _Claims,
) -> tuple[MecPolicy | None, Literal["integer", "text"] | None]:
    """Claim 44243: 0 / 1 (the RMM 2.0 profile) or "shared" / "private" (earlier drafts)."""
    claims.used.add(c.REALM_MEC_POLICY)
    if c.REALM_MEC_POLICY not in claims.entries:
        return None, None
    value = claims.entries[c.REALM_MEC_POLICY]
    for number, name in c.REALM_MEC_POLICIES.items():
        if type(value) is int and value == number:
            return name, "integer"
        if isinstance(value, str) and value == name:
            return name, "text"
    shown = repr(value) if type(value) in (int, str) else cbor_kind(value)
    raise AttestationError(
        f"{claims.where(c.REALM_MEC_POLICY)} is {shown}; expected 0 (shared) or 1 (private), "
        'or the text "shared" / "private" of earlier token versions'
    )


def _parse_platform(payload: bytes) -> PlatformClaims:
    claims = _Claims(payload, "platform token", c.PLATFORM_CLAIM_NAMES)
    raw_components = claims.get(c.PLATFORM_SW_COMPONENTS, list | tuple)
    where = claims.where(c.PLATFORM_SW_COMPONENTS)
    components = tuple(
        _software_component(item, where, index) for index, item in enumerate(raw_components)
    )
    return PlatformClaims(
        profile=claims.get(c.PLATFORM_PROFILE, str),
        challenge=claims.sized(c.PLATFORM_CHALLENGE, (32, 48, 64)),
        implementation_id=claims.get(c.PLATFORM_IMPLEMENTATION_ID, bytes),
        instance_id=claims.get(c.PLATFORM_INSTANCE_ID, bytes),
        lifecycle=claims.get(c.PLATFORM_LIFECYCLE, int),
        sw_components=components,
        config=claims.get(c.PLATFORM_CONFIG, bytes, required=False),
        verification_service=claims.get(c.PLATFORM_VERIFICATION_SERVICE, str, required=False),
        hash_algo=claims.get(c.PLATFORM_HASH_ALGO, str, required=False),
        other=claims.other(),
    )


def _software_component(value: Any, claim: str, index: int) -> SoftwareComponent:
    where = f"{claim}[{index}]"
    entry = cbor_map(value, where)
    fields: dict[int, tuple[str, Any]] = {
        c.SW_COMPONENT_MEASUREMENT: ("measurement value", bytes),
        c.SW_COMPONENT_TYPE: ("type", str),
        c.SW_COMPONENT_VERSION: ("version", str),
        c.SW_COMPONENT_SIGNER_ID: ("signer id", bytes),
        c.SW_COMPONENT_HASH_ALGO: ("hash algorithm", str),
    }
    values: dict[int, Any] = {}
    for key, (name, kind) in fields.items():
        item = entry.get(key)
        if item is not None and not isinstance(item, kind):
            raise AttestationError(
                f"{where} key {key} ({name}) must be {_KIND_NAMES[kind]}, got {cbor_kind(item)}"
            )
        values[key] = item
    if values[c.SW_COMPONENT_MEASUREMENT] is None:
        raise AttestationError(
            f"{where} has no measurement value (key {c.SW_COMPONENT_MEASUREMENT})"
        )
    return SoftwareComponent(
        measurement=values[c.SW_COMPONENT_MEASUREMENT],
        type=values[c.SW_COMPONENT_TYPE],
        version=values[c.SW_COMPONENT_VERSION],
        signer_id=values[c.SW_COMPONENT_SIGNER_ID],
        hash_algo=values[c.SW_COMPONENT_HASH_ALGO],
    )
