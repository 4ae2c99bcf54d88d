"""The JSON shapes of ``attest show`` (a stable interface, schema 1) and ``attest verify`` (the
report envelope, ``kubevirt-cca.io/v1``).

Byte strings are lowercase hex, except the personalization value, which is also given in the
standard base64 a VM manifest declares it in. docs/attestation.md documents every field.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import cbor2

from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.checks import CheckStatus
from kubevirt_cca.core.attestation.eventlog import RemReplay
from kubevirt_cca.core.attestation.keys import decode_realm_public_key, point_bytes
from kubevirt_cca.core.attestation.token import CCAToken, PlatformClaims, RealmClaims
from kubevirt_cca.core.attestation.verify import Verdict
from kubevirt_cca.core.wire import report_envelope as envelope
from kubevirt_cca.errors import AttestationError

SCHEMA_VERSION = 1


def token_json(token: CCAToken) -> dict[str, Any]:
    """``attest show --output json``."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "form": token.form,
        "platform": _platform_json(token),
        "realm": _realm_json(token),
    }


# The checks' words on the report envelope's one status vocabulary (core/wire/report_envelope.py).
ENVELOPE_STATUS: dict[CheckStatus, envelope.Status] = {
    "passed": "pass",
    "failed": "fail",
    "not-checked": "not-checked",
}


def verdict_json(verdict: Verdict, token: CCAToken) -> dict[str, Any]:
    """``attest verify --output json``: an ``AttestationVerdict`` in the report envelope.

    Its verdict is the token's (only required checks count), never ``warn``.
    """
    checks = [
        envelope.check(
            check.name, ENVELOPE_STATUS[check.status], check.detail, required=check.required
        )
        for check in verdict.checks
    ]
    return envelope.envelope(
        "AttestationVerdict",
        checks,
        {
            "testToken": verdict.test_token,
            "token": token_json(token),
            "measurementLog": _log_json(verdict.log_replay),
        },
        verdict="pass" if verdict.passed else "fail",
    )


def _log_json(replays: tuple[RemReplay, ...] | None) -> list[dict[str, Any]] | None:
    """Per REM: explained or not, and what the log says was measured into it."""
    if replays is None:
        return None
    return [
        {
            "index": r.index,
            "explained": r.explained,
            "tokenValue": r.token_value.hex(),
            "replayedValue": r.replayed.hex() if r.replayed is not None else None,
            "problem": r.problem,
            "events": [
                {
                    "offset": e.offset,
                    "type": e.type_name,
                    "typeValue": e.event_type,
                    "description": e.description,
                    "digests": {name: value.hex() for name, value in e.digests},
                }
                for e in r.events
            ],
        }
        for r in replays
    ]


def _platform_json(token: CCAToken) -> dict[str, Any]:
    claims: PlatformClaims = token.platform_claims
    return {
        "algorithm": _algorithm(token.platform.algorithm),
        "profile": claims.profile,
        "challenge": claims.challenge.hex(),
        "implementationId": claims.implementation_id.hex(),
        "instanceId": claims.instance_id.hex(),
        "config": claims.config.hex() if claims.config is not None else None,
        "lifecycle": claims.lifecycle,
        "lifecycleState": c.lifecycle_state(claims.lifecycle),
        "verificationService": claims.verification_service,
        "hashAlgorithm": claims.hash_algo,
        "softwareComponents": [
            {
                "type": sw.type,
                "version": sw.version,
                "measurement": sw.measurement.hex(),
                "signerId": sw.signer_id.hex() if sw.signer_id is not None else None,
                "hashAlgorithm": sw.hash_algo,
            }
            for sw in claims.sw_components
        ],
        "otherClaims": _other(claims.other),
    }


def _realm_json(token: CCAToken) -> dict[str, Any] | None:
    claims: RealmClaims | None = token.realm_claims
    if claims is None or token.realm is None:
        return None
    try:
        realm_key = decode_realm_public_key(claims.public_key)
        encoding: str | None = realm_key.encoding
        point: str | None = point_bytes(realm_key.key).hex()
    except AttestationError:
        encoding, point = "unreadable", None
    return {
        "algorithm": _algorithm(token.realm.algorithm),
        "profile": claims.profile,
        "challenge": claims.challenge.hex(),
        "personalizationValue": claims.personalization_value.hex(),
        "personalizationValueBase64": base64.b64encode(claims.personalization_value).decode(),
        "initialMeasurement": claims.initial_measurement.hex(),
        "extensibleMeasurements": [rem.hex() for rem in claims.extensible_measurements],
        "hashAlgorithm": claims.hash_algo,
        "publicKey": claims.public_key.hex(),
        "publicKeyEncoding": encoding,
        "publicKeyPoint": point,
        "publicKeyHashAlgorithm": claims.public_key_hash_algo,
        "instanceId": claims.instance_id.hex() if claims.instance_id is not None else None,
        "mecPolicy": claims.mec_policy,
        "otherClaims": _other(claims.other),
    }


def _algorithm(alg: int | None) -> str | None:
    if alg is None:
        return None
    return c.COSE_ALGORITHMS.get(alg, str(alg))


def _other(entries: tuple[tuple[Any, Any], ...]) -> dict[str, Any]:
    return {str(key): _plain(value) for key, value in entries}


def _plain(value: Any) -> Any:
    """Any decoded CBOR value as JSON: bytes as hex, tags as {"tag", "value"}."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": _plain(value.value)}
    return repr(value)
