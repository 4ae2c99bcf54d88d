"""The numbers and names of an Arm CCA attestation token.

Facts from the RMM specification (DEN0137) and draft-ffm-rats-cca-token, as the public test
vectors use them. Claim keys are CBOR map keys (integers); profiles and hash algorithm names are
the strings the tokens carry.
"""

from __future__ import annotations

from typing import Final, Literal

# --- Envelope ----------------------------------------------------------------------------------
TAG_CCA_TOKEN: Final = 399  # RMM 1.0 collection: {44234: bstr, 44241: bstr}
TAG_CMW_COLLECTION: Final = 907  # CMW collection: {44234: [263, bstr], 44241: [263, bstr]}
CMW_CONTENT_TYPE: Final = 263  # the CoAP content format each CMW entry carries for a token
TAG_COSE_SIGN1: Final = 18
PLATFORM_TOKEN_KEY: Final = 44234
REALM_TOKEN_KEY: Final = 44241
CMW_COLLECTION_TYPE_KEY: Final = "__cmwc_t"  # optional collection type entry, ignored

# --- COSE (RFC 9052 / 9053) ---------------------------------------------------------------------
COSE_HEADER_ALG: Final = 1
COSE_ES256: Final = -7
COSE_ES384: Final = -35
COSE_ES512: Final = -36
COSE_ALGORITHMS: Final = {COSE_ES256: "ES256", COSE_ES384: "ES384", COSE_ES512: "ES512"}
# The curve and hash each ECDSA algorithm needs.
COSE_ALGORITHM_CURVES: Final = {COSE_ES256: "P-256", COSE_ES384: "P-384", COSE_ES512: "P-521"}
COSE_ALGORITHM_HASHES: Final = {COSE_ES256: "sha256", COSE_ES384: "sha384", COSE_ES512: "sha512"}
SIGNATURE1_CONTEXT: Final = "Signature1"

COSE_KEY_KTY: Final = 1
COSE_KEY_KTY_EC2: Final = 2
COSE_KEY_CRV: Final = -1
COSE_KEY_X: Final = -2
COSE_KEY_Y: Final = -3
COSE_CURVES: Final = {1: "P-256", 2: "P-384", 3: "P-521"}
CURVE_COORDINATE_BYTES: Final = {"P-256": 32, "P-384": 48, "P-521": 66}

# --- Realm token claims --------------------------------------------------------------------------
REALM_PROFILE: Final = 265
REALM_CHALLENGE: Final = 10
REALM_PERSONALIZATION_VALUE: Final = 44235
REALM_HASH_ALGO: Final = 44236
REALM_PUBLIC_KEY: Final = 44237
REALM_INITIAL_MEASUREMENT: Final = 44238
REALM_EXTENSIBLE_MEASUREMENTS: Final = 44239
REALM_PUBLIC_KEY_HASH_ALGO: Final = 44240
# RMM 2.0 (DEN0137 A7.2.3.1.3 and A7.2.3.1.8; TF-RMM's attestation_defs_priv.h; veraison's
# ccatoken realm/claims_v2.go): the Realm Instance ID under the EAT ueid label, 33 bytes whose
# first is 0x01 (a random UEID), and the MEC policy, an integer in the 2.0 profile (0 shared,
# 1 private) and the text "shared" / "private" in earlier encodings (draft-ffm-rats-cca-token
# -03, rust-ccatoken's realm_2024.rs).
REALM_INSTANCE_ID: Final = 256
REALM_MEC_POLICY: Final = 44243
REALM_INSTANCE_ID_BYTES: Final = 33
REALM_INSTANCE_ID_TYPE: Final = 0x01  # EAT UEID type "RAND"
REALM_MEC_POLICIES: Final[dict[int, Literal["shared", "private"]]] = {0: "shared", 1: "private"}

REALM_PROFILE_1: Final = "tag:arm.com,2023:realm#1.0.0"
REALM_PROFILE_2: Final = "tag:arm.com,2024:realm#2.0.0"
REALM_PROFILES: Final = (REALM_PROFILE_1, REALM_PROFILE_2)
REALM_CHALLENGE_BYTES: Final = 64
REALM_PERSONALIZATION_VALUE_BYTES: Final = 64
REALM_EXTENSIBLE_MEASUREMENT_COUNT: Final = 4
REALM_SIGNING_ALGORITHM: Final = COSE_ES384
REALM_CLAIM_NAMES: Final = {
    REALM_PROFILE: "profile",
    REALM_CHALLENGE: "challenge",
    REALM_PERSONALIZATION_VALUE: "personalization value",
    REALM_HASH_ALGO: "hash algorithm",
    REALM_PUBLIC_KEY: "public key",
    REALM_INITIAL_MEASUREMENT: "initial measurement (RIM)",
    REALM_EXTENSIBLE_MEASUREMENTS: "extensible measurements (REMs)",
    REALM_PUBLIC_KEY_HASH_ALGO: "public key hash algorithm",
    REALM_INSTANCE_ID: "realm instance id",
    REALM_MEC_POLICY: "MEC policy",
}

# --- Platform token claims ---------------------------------------------------------------------
PLATFORM_PROFILE: Final = 265
PLATFORM_CHALLENGE: Final = 10
PLATFORM_INSTANCE_ID: Final = 256
PLATFORM_LIFECYCLE: Final = 2395
PLATFORM_IMPLEMENTATION_ID: Final = 2396
PLATFORM_SW_COMPONENTS: Final = 2399
PLATFORM_VERIFICATION_SERVICE: Final = 2400
PLATFORM_CONFIG: Final = 2401
PLATFORM_HASH_ALGO: Final = 2402

PLATFORM_PROFILE_1: Final = "tag:arm.com,2023:cca_platform#1.0.0"
PLATFORM_PROFILE_LEGACY: Final = "http://arm.com/CCA-SSD/1.0.0"
PLATFORM_CLAIM_NAMES: Final = {
    PLATFORM_PROFILE: "profile",
    PLATFORM_CHALLENGE: "challenge",
    PLATFORM_INSTANCE_ID: "instance id",
    PLATFORM_LIFECYCLE: "lifecycle",
    PLATFORM_IMPLEMENTATION_ID: "implementation id",
    PLATFORM_SW_COMPONENTS: "software components",
    PLATFORM_VERIFICATION_SERVICE: "verification service",
    PLATFORM_CONFIG: "config",
    PLATFORM_HASH_ALGO: "hash algorithm",
}

# Software component entries (keys inside each map of claim 2399).
SW_COMPONENT_TYPE: Final = 1
SW_COMPONENT_MEASUREMENT: Final = 2
SW_COMPONENT_VERSION: Final = 4
SW_COMPONENT_SIGNER_ID: Final = 5
SW_COMPONENT_HASH_ALGO: Final = 6

# Lifecycle states: (name, first value, last value). Only "secured" is a production device.
LIFECYCLE_STATES: Final = (
    ("unknown", 0x0000, 0x00FF),
    ("assembly-and-test", 0x1000, 0x10FF),
    ("cca-platform-rot-provisioning", 0x2000, 0x20FF),
    ("secured", 0x3000, 0x30FF),
    ("non-cca-platform-rot-debug", 0x4000, 0x40FF),
    ("recoverable-cca-platform-rot-debug", 0x5000, 0x50FF),
    ("decommissioned", 0x6000, 0x60FF),
)
LIFECYCLE_SECURED: Final = "secured"

# --- Hash algorithms (IANA "Named Information Hash Algorithm" names) -------------------------
HASH_ALGORITHMS: Final = {"sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}


def lifecycle_state(value: int) -> str:
    """The lifecycle state a lifecycle claim value falls in (``"invalid"`` outside every range)."""
    for name, first, last in LIFECYCLE_STATES:
        if first <= value <= last:
            return name
    return "invalid"
