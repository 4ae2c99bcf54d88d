"""``kubevirt-cca attest node-profile`` (the admin publishes a node type's launch inputs) and the
owner's side of ``attest reference``: ``--vmi`` and ``--node-profile``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kubevirt_cca.adapters.files import load_manifest, parse_documents, read_bytes
from kubevirt_cca.cli.common import HelpFormatter
from kubevirt_cca.constants import ENABLED_LABEL
from kubevirt_cca.core.attestation.nodeprofile import (
    MAX_DTB_BYTES,
    DtbShape,
    NodeProfile,
    node_profile_json,
    parse_node_profile,
    select_dtb,
)
from kubevirt_cca.core.attestation.profile import HostProfile
from kubevirt_cca.core.attestation.reference import RealmLayout, qemu_virt_layout
from kubevirt_cca.core.domain.basedomain import guest_memory_bytes, parse_quantity, vcpu_count
from kubevirt_cca.core.vmi.request import find_template, parse_request
from kubevirt_cca.core.wire.jsontext import loads
from kubevirt_cca.errors import (
    AttestationError,
    ManifestError,
    ReferenceValueError,
    RequestError,
    Violation,
)

EXIT_OK = 0
EXIT_UNUSABLE = 2
MAX_NODE_PROFILE_BYTES = 8 * 2**20
MAX_FIRMWARE_BYTES = 64 * 2**20
CONFIGMAP_KEY = "node-profile.json"
CONFIGMAP_MAX_BYTES = 1024 * 1024  # etcd's object limit, as the API server enforces it

DESCRIPTION = f"""\
For the admin, on a node (or anywhere with its files): write the node profile of this node type,
what a VM owner needs to compute a Realm's RIM without the node's files. It holds the host
profile, the CCA firmware as the digest of each 4 KiB granule (in the profile's algorithm, as
the RMM measures it), and one DTB per VM shape (vCPUs and guest memory) that QEMU builds; dump
each with the node's QEMU and the VM's command line plus
'-machine dumpdtb=FILE,dtb-randomness=off'. Publish the JSON in a ConfigMap (key
{CONFIGMAP_KEY}); owners give it to 'attest reference --node-profile' with '--vmi'.

Exit status: 0 written, 2 unusable input (the message names the field).

example:
  kubevirt-cca attest node-profile --profile host.yaml \\
      --firmware /usr/share/AAVMF/AAVMF_CODE.cca.fd \\
      --shape 2 2Gi vm-2cpu-2Gi.dtb --shape 4 8Gi vm-4cpu-8Gi.dtb \\
      --node-type grace-rmm2 > node-profile.json
  kubectl -n kubevirt-cca create configmap cca-node-profile-grace-rmm2 \\
      --from-file={CONFIGMAP_KEY}=node-profile.json
"""


def register(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    load_profile: Callable[[str], HostProfile],
) -> None:
    parser = actions.add_parser(
        "node-profile",
        help="publish a node type's launch inputs for VM owners",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--profile", metavar="FILE", required=True, help="the host profile (YAML)")
    parser.add_argument(
        "--firmware", metavar="FILE", required=True, help="the CCA firmware the node loads"
    )
    parser.add_argument(
        "--shape",
        nargs=3,
        action="append",
        default=[],
        metavar=("CPUS", "MEMORY", "DTB"),
        help="a VM shape and the DTB QEMU builds for it; may be repeated",
    )
    parser.add_argument("--node-type", metavar="NAME", help="a name for people (node type)")
    parser.set_defaults(handler=run_node_profile, load_profile=load_profile)


def run_node_profile(args: argparse.Namespace) -> int:
    try:
        profile = args.load_profile(args.profile)
        firmware = read_bytes(
            args.firmware, what="--firmware", limit=MAX_FIRMWARE_BYTES, error=AttestationError
        )
        shapes = [_shape(cpus, memory, path) for cpus, memory, path in args.shape]
        data = node_profile_json(
            profile=profile, firmware=firmware, dtbs=shapes, node_type=args.node_type
        )
    except AttestationError as exc:
        print(f"kubevirt-cca attest: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    text = json.dumps(data, separators=(",", ":"))  # compact: a ConfigMap holds 1 MiB
    sys.stdout.write(text + "\n")
    if len(text) + len(CONFIGMAP_KEY) > CONFIGMAP_MAX_BYTES:
        print(
            f"kubevirt-cca attest: warning: the node profile is {len(text)} bytes, "
            f"more than a ConfigMap holds ({CONFIGMAP_MAX_BYTES}); publish it another way "
            "(a file or an image owners can read)",
            file=sys.stderr,
        )
    return EXIT_OK


def _shape(cpus: str, memory: str, path: str) -> DtbShape:
    if not cpus.isdigit() or int(cpus) < 1:
        raise ReferenceValueError((Violation("--shape", f"CPUS: expected a count, got {cpus!r}"),))
    dtb = read_bytes(path, what="--shape DTB", limit=MAX_DTB_BYTES, error=AttestationError)
    return DtbShape(cpus=int(cpus), memory=_quantity(memory, "--shape MEMORY"), dtb=dtb)


# --- attest reference --vmi / --node-profile ------------------------------------------------------


def owner_inputs(
    args: argparse.Namespace,
    *,
    load_profile: Callable[[str], HostProfile],
    read: Callable[[str, str, int], bytes],
) -> tuple[HostProfile, RealmLayout] | None:
    """The profile and layout from ``--vmi`` and/or ``--node-profile``; None when neither.

    ``load_profile`` and ``read`` are ``attest reference``'s own readers (one place for how a
    profile file and an image are read)."""
    if args.vmi is None and args.node_profile is None:
        if args.cpus is not None:
            raise ReferenceValueError((Violation("--cpus", "only with --node-profile"),))
        return None
    problems = [
        Violation(flag, why)
        for flag, given, why in (
            ("--kernel", args.kernel, _NOT_WITH_OWNER),
            ("--initrd", args.initrd, _NOT_WITH_OWNER),
            ("--payload", args.payload, _NOT_WITH_OWNER),
            (
                "--profile",
                args.node_profile and args.profile,
                "not with --node-profile: it has one",
            ),
            (
                "--firmware",
                args.node_profile and args.firmware,
                "not with --node-profile: it has the firmware's granule digests",
            ),
            ("--memory", args.vmi and args.memory, "not with --vmi: the manifest's memory is used"),
            (
                "--cpus",
                args.vmi and args.cpus is not None,
                "not with --vmi: the manifest's is used",
            ),
        )
        if given
    ]
    if problems:
        raise ReferenceValueError(problems)
    node = _load_node_profile(args.node_profile) if args.node_profile else None
    if node is not None:
        profile = node.profile
    elif args.profile is not None:
        profile = load_profile(args.profile)
    else:
        raise ReferenceValueError((Violation("--profile", "required (or --node-profile)"),))
    if node is None and args.firmware is None:
        raise ReferenceValueError(
            (Violation("--firmware", "required with --vmi (or --node-profile)"),)
        )
    cpus, memory, kernel_boot = _vm_shape(args, profile)
    if args.dtb is not None:
        dtb = read(args.dtb, "--dtb", MAX_DTB_BYTES)
    elif kernel_boot:
        raise ReferenceValueError(
            (
                Violation(
                    "--dtb",
                    f"required: {args.vmi} boots a kernel directly "
                    "(spec.domain.firmware.kernelBoot), "
                    "so its DTB carries the kernel command line, "
                    "which a node profile's DTBs do not; dump it (docs/attestation.md)",
                ),
            )
        )
    elif node is not None:
        dtb = select_dtb(node, cpus=cpus, memory=memory)
    else:
        raise ReferenceValueError((Violation("--dtb", "required (or --node-profile)"),))
    firmware = (
        node.firmware if node is not None else read(args.firmware, "--firmware", MAX_FIRMWARE_BYTES)
    )
    return profile, qemu_virt_layout(memory=memory, dtb=dtb, firmware=firmware)


_NOT_WITH_OWNER = (
    "not with --vmi or --node-profile: KubeVirt starts a Realm through the CCA firmware "
    "(also with kernelBoot, whose kernel and initrd the firmware measures into a REM)"
)


def _vm_shape(args: argparse.Namespace, profile: HostProfile) -> tuple[int, int, bool]:
    """vCPUs, guest memory and whether it boots a kernel directly: the VMI's, or the flags'."""
    if args.vmi is None:
        if args.memory is None or args.cpus is None:
            raise ReferenceValueError(
                (Violation("--memory/--cpus", "required with --node-profile (or give --vmi)"),)
            )
        if args.cpus < 1:
            raise ReferenceValueError(
                (Violation("--cpus", f"expected a positive count, got {args.cpus}"),)
            )
        return args.cpus, _quantity(args.memory, "--memory"), False
    try:
        manifest = load_manifest(args.vmi)
        request = parse_request(manifest)
        template = find_template(manifest)
        memory = guest_memory_bytes(template)
    except RequestError as exc:
        raise ReferenceValueError(
            tuple(Violation(f"{args.vmi}: {v.field}", v.message) for v in exc.violations)
        ) from exc
    except ManifestError as exc:
        raise AttestationError(str(exc)) from exc
    if request is None:
        raise AttestationError(
            f'{args.vmi} does not ask for a Realm (no label {ENABLED_LABEL}: "true"); '
            "give the manifest the VM was created from"
        )
    declared = request.measurement_algo
    if declared is not None and declared != profile.measurement_algo:
        raise ReferenceValueError(
            (
                Violation(
                    f"{args.vmi}: measurementAlgo",
                    f"the VM asks for {declared}, "
                    f"but the profile measures with {profile.measurement_algo}: "
                    f"use the profile of a node type that gives Realms {declared}",
                ),
            )
        )
    domain = template.spec.get("domain")
    firmware = domain.get("firmware") if isinstance(domain, Mapping) else None
    kernel_boot = isinstance(firmware, Mapping) and isinstance(firmware.get("kernelBoot"), Mapping)
    return vcpu_count(template), memory, kernel_boot


def _load_node_profile(path: str) -> NodeProfile:
    raw = read_bytes(
        path, what="--node-profile", limit=MAX_NODE_PROFILE_BYTES, error=AttestationError
    )
    source = f"--node-profile {path}"
    try:
        # JSON is YAML; so is a ConfigMap. The project's manifest reader: duplicate keys, long
        # integers and NaN refused with the field named.
        documents = parse_documents(raw.decode("utf-8"), source=source)
    except UnicodeDecodeError as exc:
        raise AttestationError(f"{source}: not UTF-8 text") from exc
    except ManifestError as exc:
        raise AttestationError(str(exc)) from exc
    if len(documents) != 1:
        raise AttestationError(f"{source}: holds {len(documents)} documents; give one node profile")
    data: Any = documents[0]
    if isinstance(data, Mapping) and data.get("kind") == "ConfigMap":
        inner = (data.get("data") or {}).get(CONFIGMAP_KEY)
        if not isinstance(inner, str):
            raise AttestationError(f"{source}: the ConfigMap has no data key {CONFIGMAP_KEY}")
        try:
            data = loads(inner, unique_members=True)
        except ValueError as exc:
            raise AttestationError(
                f"{source}: "
                f"data[{CONFIGMAP_KEY}] is not JSON a node profile can be read from: {exc}"
            ) from exc
    try:
        return parse_node_profile(data)
    except ReferenceValueError as exc:
        raise AttestationError(f"--node-profile {path}: {exc}") from exc


def _quantity(text: str, flag: str) -> int:
    try:
        return parse_quantity(text, field=flag)
    except ManifestError as exc:
        raise AttestationError(str(exc)) from exc
