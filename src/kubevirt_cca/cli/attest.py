"""``kubevirt-cca attest collect | verify | show``: a Realm's attestation token, checked."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any

from kubevirt_cca.adapters.configfs import collect_token
from kubevirt_cca.adapters.files import load_manifest, read_bytes
from kubevirt_cca.adapters.measurement_log import MAX_LOG_BYTES, read_measurement_log
from kubevirt_cca.cli import attest_nodeprofile, attest_reference
from kubevirt_cca.cli.common import HelpFormatter, add_output_flag
from kubevirt_cca.constants import ENABLED_LABEL, PERSONALIZATION_VALUE_BYTES
from kubevirt_cca.core.attestation import claims as c
from kubevirt_cca.core.attestation.eventlog import MeasurementLog, parse_event_log
from kubevirt_cca.core.attestation.keys import TrustAnchor, load_trust_anchors
from kubevirt_cca.core.attestation.reference import parse_reference
from kubevirt_cca.core.attestation.report import token_json, verdict_json
from kubevirt_cca.core.attestation.token import MAX_TOKEN_BYTES, CCAToken, parse_token
from kubevirt_cca.core.attestation.verify import (
    Expectations,
    Verdict,
    challenge_for_nonce,
    verify_token,
)
from kubevirt_cca.core.vmi.request import hex_hint, parse_request
from kubevirt_cca.core.wire.jsontext import NotJSONValue, UnreadableJSON, loads
from kubevirt_cca.errors import (
    AttestationError,
    CollectionError,
    ManifestError,
    RequestError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2
MAX_INPUT_BYTES = 1024 * 1024

DESCRIPTION = """\
Attestation for VM owners: get a Realm's Arm CCA attestation token inside the guest, then check
it outside against the VM's own declared parameters and the platform vendor's public key.

  collect    (inside the Realm) ask the RMM for a token bound to your nonce, via configfs-tsm
  verify     check the signatures, the binding, the nonce, the personalization value, the RIM,
             the REMs against the measurement log
  show       print the claims of a token
  reference  compute the RIM a Realm should have from its launch inputs, before it runs
  node-profile  (admin) publish a node type's launch inputs, for 'reference --node-profile'

See docs/attestation.md for the whole flow and what each check proves.

example:
  head -c 64 /dev/urandom > nonce.bin
  kubevirt-cca attest collect --nonce-file nonce.bin --out token.cbor          # in the guest
  kubevirt-cca attest verify token.cbor --nonce-file nonce.bin --vmi my-vm.yaml \\
      --trust-anchor vendor-cpak.pem
"""

COLLECT_DESCRIPTION = """\
Inside an Arm CCA Realm guest (Linux 6.13 or later, configfs-tsm), ask the RMM for an
attestation token whose realm challenge is the nonce (32 to 64 bytes, zero-padded to 64).
Needs root (it writes under /sys/kernel/config/tsm/report). With --log-out it also saves the
Realm's measurement log (the CCEL event log, /sys/firmware/acpi/tables/data/CCEL); without a
log, it writes nothing and exits 1.

Exit status: 0 token written, 1 this guest cannot produce a token, 2 unusable input.

example:
  head -c 64 /dev/urandom > nonce.bin
  kubevirt-cca attest collect --nonce-file nonce.bin --out token.cbor
"""

VERIFY_DESCRIPTION = f"""\
Check an Arm CCA attestation token: the platform signature under one of the trust anchors
(the platform vendor's CPAK public key, PEM or JWK), the realm signature, the binding of the
realm key to the platform token, the realm challenge against the nonce, the personalization
value against the VM manifest (--vmi, read the way admission reads it: label {ENABLED_LABEL}
and its launch-security annotation) or --expected-rpv, the measurement algorithm against the
manifest's measurementAlgo, the RIM against --expected-rim or a
--reference file ('attest reference --output json'), the REMs against a replay of the Realm's
measurement log (--measurement-log, saved by 'attest collect --log-out'), and the platform
lifecycle. On request it also pins the realm profile (--expected-profile), and for RMM 2.0
tokens the Realm Instance ID (--expected-instance-id) and the MEC policy
(--expected-mec-policy). A token made with a published sample key is reported as a test token.

Exit status: 0 every required check passed, 1 verification failed, 2 unusable input.
--output json is a stable interface (the report envelope kubevirt-cca.io/v1, docs/cli.md).

example:
  kubevirt-cca attest verify token.cbor --nonce-file nonce.bin --vmi my-vm.yaml \\
      --trust-anchor vendor-cpak.pem --expected-rim 3113...0d49
  kubevirt-cca attest verify token.cbor --nonce-file nonce.bin \\
      --expected-rpv "$(base64 -w0 rpv.bin)" --trust-anchor cpak.json --output json
"""

SHOW_DESCRIPTION = """\
Print the claims of an Arm CCA attestation token (tag 399 or tag 907 collection, or a platform
token alone). Nothing is verified: use 'attest verify' to decide whether to believe them.

Exit status: 0 printed, 2 the file is not a readable token.

example:
  kubevirt-cca attest show token.cbor
  kubevirt-cca attest show token.cbor --output json
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "attest",
        help="collect and verify a Realm's attestation token",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    collect = actions.add_parser(
        "collect",
        help="get a token inside the Realm (configfs-tsm)",
        description=COLLECT_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    collect.add_argument(
        "--nonce-file", metavar="FILE", required=True, help="the nonce: 32 to 64 raw bytes"
    )
    collect.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="where to write the token (- for standard output)",
    )
    collect.add_argument(
        "--log-out",
        metavar="FILE",
        help="also save the Realm's measurement log (the CCEL event log) here",
    )
    collect.add_argument(
        "--root", metavar="DIR", default="/", help="read /sys below DIR (default: /)"
    )
    collect.set_defaults(handler=run_collect)

    verify = actions.add_parser(
        "verify",
        help="check a token against the VM and vendor key",
        description=VERIFY_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    verify.add_argument("token", metavar="TOKEN", help="the token file (CBOR)")
    verify.add_argument(
        "--nonce-file", metavar="FILE", required=True, help="the nonce the token was collected with"
    )
    expected = verify.add_mutually_exclusive_group(required=True)
    expected.add_argument(
        "--vmi", metavar="FILE", help="the VM / VMI manifest whose personalizationValue to expect"
    )
    expected.add_argument(
        "--expected-rpv",
        metavar="B64",
        help="the expected personalization value, standard base64 of 64 bytes",
    )
    verify.add_argument(
        "--trust-anchor",
        metavar="FILE",
        action="append",
        required=True,
        help="platform vendor's public key (PEM or JWK); may be repeated",
    )
    rim = verify.add_mutually_exclusive_group()
    rim.add_argument(
        "--expected-rim", metavar="HEX", help="the expected Realm Initial Measurement, hex"
    )
    rim.add_argument(
        "--reference",
        metavar="FILE",
        help="the expected RIM as 'attest reference --output json' wrote it",
    )
    verify.add_argument(
        "--measurement-log",
        metavar="FILE",
        help="the Realm's measurement log ('attest collect --log-out'): "
        "replay it and check that it explains every REM",
    )
    verify.add_argument(
        "--expected-profile",
        metavar="PROFILE",
        choices=c.REALM_PROFILES,
        help="pin the realm token's profile (claim 265), e.g. " + c.REALM_PROFILE_2,
    )
    verify.add_argument(
        "--expected-instance-id",
        metavar="HEX",
        help="pin the Realm Instance ID (claim 256, RMM 2.0): 33 bytes of hex starting 01, "
        "as 'attest show' printed it for this Realm",
    )
    verify.add_argument(
        "--expected-mec-policy",
        choices=tuple(c.REALM_MEC_POLICIES.values()),
        help="pin the Realm's MEC policy (claim 44243, RMM 2.0)",
    )
    verify.add_argument(
        "--allow-test-keys",
        action="store_true",
        help="do not fail a token made with a published sample key (for emulators; "
        "it is still reported as a test token)",
    )
    add_output_flag(verify)
    verify.set_defaults(handler=run_verify)

    show = actions.add_parser(
        "show",
        help="print a token's claims",
        description=SHOW_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    show.add_argument("token", metavar="TOKEN", help="the token file (CBOR)")
    add_output_flag(show, shape="docs/attestation.md")
    show.set_defaults(handler=run_show)

    attest_reference.register(actions)
    attest_nodeprofile.register(actions, load_profile=attest_reference.load_profile)


# --- handlers ----------------------------------------------------------------------------------


def run_collect(args: argparse.Namespace) -> int:
    try:
        nonce = _read_bytes(args.nonce_file, "nonce file")
        # The log first: asked for and absent means nothing is written (both or neither).
        event_log = read_measurement_log(root=args.root) if args.log_out else None
        token = collect_token(nonce, root=args.root)
    except AttestationError as exc:
        return _error(exc)
    except CollectionError as exc:
        _print_error(str(exc))
        return EXIT_FAILED
    try:
        if args.out == "-":
            sys.stdout.buffer.write(token)
            sys.stdout.flush()
        else:
            Path(args.out).write_bytes(token)
    except OSError as exc:
        return _error(AttestationError(f"cannot write {args.out}: {exc.strerror or exc}"))
    if args.out != "-":
        print(f"wrote {len(token)} bytes to {args.out}", file=sys.stderr)
    if event_log is not None:
        try:
            Path(args.log_out).write_bytes(event_log)
        except OSError as exc:
            return _error(AttestationError(f"cannot write {args.log_out}: {exc.strerror or exc}"))
        print(f"wrote the {len(event_log)}-byte measurement log to {args.log_out}", file=sys.stderr)
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    try:
        token = _load_token(args.token)
        nonce = _read_bytes(args.nonce_file, "nonce file")
        challenge_for_nonce(nonce)  # a bad nonce is unusable input, not a failed check
        anchors: list[TrustAnchor] = []
        for path in args.trust_anchor:
            anchors.extend(load_trust_anchors(_read_bytes(path, "trust anchor"), label=path))
        rpv, source, algorithm = _expected_rpv(args)
        rim = _expected_rim(args.expected_rim)
        reference_algo = None
        if args.reference is not None:
            rim, reference_algo = _load_reference(args.reference)
        event_log = _load_log(args.measurement_log) if args.measurement_log else None
        expected = Expectations(
            nonce=nonce,
            personalization_value=rpv,
            personalization_source=source,
            initial_measurement=rim,
            allow_test_keys=args.allow_test_keys,
            measurement_log=event_log,
            reference_algorithm=reference_algo,
            measurement_algorithm=algorithm,
            measurement_algorithm_source=f"the VM manifest {args.vmi}" if args.vmi else None,
            realm_profile=args.expected_profile,
            instance_id=_expected_instance_id(args.expected_instance_id),
            mec_policy=args.expected_mec_policy,
        )
        verdict = verify_token(token, anchors=anchors, expected=expected)
    except RequestError as exc:
        for violation in exc.violations:
            _print_error(f"{args.vmi}: {violation}")
        return EXIT_UNUSABLE
    except (AttestationError, ManifestError) as exc:
        return _error(exc)
    if args.output == "json":
        _print_json(verdict_json(verdict, token))
    else:
        sys.stdout.write(format_verdict(verdict))
    return EXIT_OK if verdict.passed else EXIT_FAILED


def run_show(args: argparse.Namespace) -> int:
    try:
        token = _load_token(args.token)
    except AttestationError as exc:
        return _error(exc)
    if args.output == "json":
        _print_json(token_json(token))
    else:
        sys.stdout.write(format_token(token_json(token)))
    return EXIT_OK


# --- inputs --------------------------------------------------------------------------------------


def _read_bytes(path: str, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    return read_bytes(path, what=what, limit=limit, error=AttestationError)


def _load_token(path: str) -> CCAToken:
    data = _read_bytes(path, "token", MAX_TOKEN_BYTES)
    try:
        return parse_token(data)
    except AttestationError as exc:
        raise AttestationError(f"{path}: {exc}") from exc


def _load_reference(path: str) -> tuple[bytes, str]:
    raw = _read_bytes(path, "--reference")
    try:
        data = loads(raw)
    except NotJSONValue as exc:
        raise AttestationError(f"--reference {path}: {exc.reason}") from exc
    except UnreadableJSON as exc:
        raise AttestationError(
            f"--reference {path}: not JSON; give the output of 'attest reference --output json'"
        ) from exc
    return parse_reference(data, source=f"--reference {path}")


def _load_log(path: str) -> MeasurementLog:
    raw = _read_bytes(path, "--measurement-log", MAX_LOG_BYTES)
    try:
        return parse_event_log(raw)
    except AttestationError as exc:
        raise AttestationError(f"--measurement-log {path}: {exc}") from exc


def _expected_rpv(args: argparse.Namespace) -> tuple[bytes, str, str | None]:
    """The personalization value to expect, where it comes from, and the declared algorithm."""
    if args.vmi is not None:
        manifest = load_manifest(args.vmi)
        request = parse_request(manifest)
        if request is None:
            raise AttestationError(
                f'{args.vmi} does not ask for a Realm (no label {ENABLED_LABEL}: "true"); '
                "give the manifest the VM was created from"
            )
        declared = request.personalization_bytes
        if declared is None:
            # No personalizationValue: the Realm is created with an all-zero value.
            return (
                bytes(PERSONALIZATION_VALUE_BYTES),
                f"the VM manifest {args.vmi} (no personalizationValue: all zeros)",
                request.measurement_algo,
            )
        return declared, f"the VM manifest {args.vmi}", request.measurement_algo
    text = args.expected_rpv.strip()
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise AttestationError(
            "--expected-rpv is not valid standard base64; "
            f"expected base64 of exactly {PERSONALIZATION_VALUE_BYTES} bytes"
        ) from exc
    if len(raw) != PERSONALIZATION_VALUE_BYTES:
        raise AttestationError(
            f"--expected-rpv decodes to {len(raw)} bytes; "
            f"expected exactly {PERSONALIZATION_VALUE_BYTES}{hex_hint(text)}"
        )
    return raw, "--expected-rpv", None


def _expected_rim(text: str | None) -> bytes | None:
    if text is None:
        return None
    cleaned = text.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise AttestationError("--expected-rim is not hexadecimal") from exc
    if len(raw) not in (32, 48, 64):
        raise AttestationError(
            f"--expected-rim is {len(raw)} bytes; a RIM is 32 (sha-256), 48 or 64 (sha-512)"
        )
    return raw


def _expected_instance_id(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        raw = bytes.fromhex(text.strip().lower().removeprefix("0x"))
    except ValueError as exc:
        raise AttestationError("--expected-instance-id is not hexadecimal") from exc
    if len(raw) != c.REALM_INSTANCE_ID_BYTES or raw[0] != c.REALM_INSTANCE_ID_TYPE:
        raise AttestationError(
            f"--expected-instance-id is {len(raw)} bytes starting {raw[:1].hex() or 'nothing'}; "
            f"a Realm Instance ID is {c.REALM_INSTANCE_ID_BYTES} bytes starting "
            f"{c.REALM_INSTANCE_ID_TYPE:02x}"
        )
    return raw


# --- output --------------------------------------------------------------------------------------

_MARKS = {"passed": "ok  ", "failed": "FAIL", "not-checked": "--  "}


def format_verdict(verdict: Verdict) -> str:
    lines = [f"attestation: {'PASSED' if verdict.passed else 'FAILED'}"]
    if verdict.failures:
        lines.append(f"  because: {'; '.join(verdict.failures)}")
    if verdict.test_token:
        lines.append(
            "warning: this is a TEST TOKEN made with a published sample key; "
            "it proves nothing about hardware"
        )
    for check in verdict.checks:
        optional = "" if check.required else " (not required)"
        lines.append(f"  [{_MARKS[check.status]}] {check.name}{optional}: {check.detail}")
    for rem in verdict.log_replay or ():
        state = "explained" if rem.explained else "NOT explained"
        lines.append(f"  REM{rem.index}: {state} by {len(rem.events)} logged event(s)")
        lines.extend(f"    - {event.type_name}: {event.description}" for event in rem.events)
    return "\n".join(lines) + "\n"


def format_token(data: dict[str, Any]) -> str:
    lines = [f"form: {data['form']}", "platform token:"]
    lines.extend(_format_section(data["platform"]))
    if data["realm"] is None:
        lines.append("realm token: none (a platform token alone)")
    else:
        lines.append("realm token:")
        lines.extend(_format_section(data["realm"]))
    return "\n".join(lines) + "\n"


def _format_section(section: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in section.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"  {key}:")
            for item in value:
                shown = ", ".join(f"{k}={v}" for k, v in item.items() if v is not None)
                lines.append(f"    - {shown}")
        elif isinstance(value, list):
            lines.append(f"  {key}:")
            lines.extend(f"    - {item}" for item in value)
        elif isinstance(value, dict):
            if value:
                lines.append(f"  {key}: {json.dumps(value, sort_keys=True)}")
        else:
            lines.append(f"  {key}: {'-' if value is None else value}")
    return lines


def _print_json(value: dict[str, Any]) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_error(message: str) -> None:
    print(f"kubevirt-cca attest: error: {message}", file=sys.stderr)


def _error(exc: Exception) -> int:
    _print_error(str(exc))
    return EXIT_UNUSABLE
