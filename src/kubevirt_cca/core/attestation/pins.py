"""The claims an owner may pin: the realm profile, the Realm Instance ID and the MEC policy.

Each is a check like those of :mod:`~kubevirt_cca.core.attestation.checks`, not required (and
``not-checked``) unless the owner pinned a value; then the token must carry exactly that value.
All three are RMM 2.0 facts (DEN0137 A7.2.3.1): the profile ``tag:arm.com,2024:realm#2.0.0``,
the instance id (claim 256, a fresh random value per Realm) and the MEC policy (claim 44243).
"""

from __future__ import annotations

from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.checks import NO_REALM, Check, Expectations, same_bytes
from kubevirt_cca.core.attestation.token import RealmClaims


def realm_profile(realm: RealmClaims | None, expected: Expectations) -> Check:
    name = "realm-profile"
    pinned = expected.realm_profile
    if pinned is None:
        seen = f"; the token's is {_profile(realm.profile)}" if realm is not None else ""
        return Check(name, "not-checked", f"no realm profile pinned{seen}", required=False)
    if realm is None:
        return Check(name, "failed", NO_REALM)
    if realm.profile != pinned:
        return Check(
            name,
            "failed",
            f"the realm token's profile (claim {c.REALM_PROFILE}) is {_profile(realm.profile)}, "
            f"not the pinned {pinned!r}: the token comes from another RMM generation",
        )
    return Check(name, "passed", f"the realm token's profile is the pinned {pinned!r}")


def realm_instance_id(realm: RealmClaims | None, expected: Expectations) -> Check:
    name = "realm-instance-id"
    pinned = expected.instance_id
    if pinned is None:
        seen = ""
        if realm is not None:
            seen = (
                f"; the token's is {realm.instance_id.hex()}"
                if realm.instance_id is not None
                else "; the token carries none (an RMM 1.0 token)"
            )
        return Check(name, "not-checked", f"no Realm Instance ID pinned{seen}", required=False)
    if realm is None:
        return Check(name, "failed", NO_REALM)
    if realm.instance_id is None:
        return Check(
            name,
            "failed",
            "the token carries no Realm Instance ID "
            f"(claim {c.REALM_INSTANCE_ID}); {pinned.hex()} was pinned",
        )
    if not same_bytes(realm.instance_id, pinned):
        return Check(
            name,
            "failed",
            f"the Realm Instance ID {realm.instance_id.hex()} is not the pinned {pinned.hex()}: "
            "another Realm (or the same VM started again) made this token",
        )
    return Check(name, "passed", "the Realm Instance ID is the pinned one: the same Realm")


def mec_policy(realm: RealmClaims | None, expected: Expectations) -> Check:
    name = "mec-policy"
    pinned = expected.mec_policy
    if pinned is None:
        seen = ""
        if realm is not None:
            seen = f"; the token's is {realm.mec_policy or 'absent (an RMM 1.0 token)'}"
        return Check(name, "not-checked", f"no MEC policy pinned{seen}", required=False)
    if realm is None:
        return Check(name, "failed", NO_REALM)
    if realm.mec_policy is None:
        return Check(
            name,
            "failed",
            f"the token carries no MEC policy (claim {c.REALM_MEC_POLICY}); {pinned} was pinned",
        )
    if realm.mec_policy != pinned:
        return Check(
            name,
            "failed",
            f"the Realm's MEC policy (claim {c.REALM_MEC_POLICY}) is {realm.mec_policy}, "
            f"not the pinned {pinned}",
        )
    return Check(name, "passed", f"the Realm's MEC policy is the pinned {pinned}")


def _profile(profile: str | None) -> str:
    return repr(profile) if profile is not None else "absent (a profile-less token)"
