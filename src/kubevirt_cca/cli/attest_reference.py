"""``kubevirt-cca attest reference``: the RIM a Realm should have, before it ever runs."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from kubevirt_cca.adapters.files import parse_documents, read_bytes
from kubevirt_cca.cli import attest_nodeprofile
from kubevirt_cca.cli.common import HelpFormatter, add_output_flag
from kubevirt_cca.core.attestation.profile import HostProfile, parse_profile
from kubevirt_cca.core.attestation.reference import (
    RealmLayout,
    Reference,
    compute_rim,
    corim_json,
    payload_layout,
    qemu_virt_layout,
    reference_json,
)
from kubevirt_cca.core.domain.basedomain import parse_quantity
from kubevirt_cca.errors import AttestationError, ManifestError, ReferenceValueError, Violation

EXIT_OK = 0
EXIT_UNUSABLE = 2
MAX_PROFILE_BYTES = 64 * 1024
MAX_DTB_BYTES = 2 * 2**20  # QEMU's own limit for a DTB it loads
MAX_IMAGE_BYTES = 1024 * 2**20
# A fixed namespace, so the same RIM always gets the same CoMID tag id.
CORIM_TAG_NAMESPACE = uuid.UUID("6c1b3c2e-4f0d-5a8e-9b7a-2f6d0c9e1a54")

DESCRIPTION = """\
Compute the Realm Initial Measurement (RIM) a Realm will have, from its launch inputs, without
running it: the host profile of the node type (RMM version, algorithm, IPA bits, SVE,
breakpoints, watchpoints, PMU), the images QEMU loads (the CCA firmware, or a kernel and an
initrd for direct kernel boot), the DTB the VM boots with, and its memory size. The layout is
the one QEMU's virt machine uses. Give the result to 'attest verify --reference', or to a
verifier as reference value (--corim).

The profile's measurementAlgo is the algorithm the Realm is measured with: the VM's own
measurementAlgo where the node honours a choice, else the node's effective algorithm (the
detection report's effectiveMeasurementAlgorithm). That is sha512 on NVIDIA's CCA stack (its
QEMU measures with SHA-512 whatever libvirt lists) and with Linaro's RFC v4 QEMU (rme-guest
takes no algorithm): write measurementAlgo: sha512 for such nodes (docs/node-labels.md).

The DTB is taken as a file (QEMU builds it from the VM's shape; dump it with
'-machine dumpdtb=FILE' on the same QEMU, see docs/attestation.md). When the result does not
match a real Realm, docs/attestation.md lists why it can differ.

--payload takes a raw bare-metal image instead (no DTB): loaded at the start of RAM
(0x40000000) and entered there with x0..x7 zero, as the Realm launcher of the realm test lane
does (docs/testing.md).

Exit status: 0 computed, 2 unusable input (the message names the field).
--output json prints {"rim", "measurementAlgo"} (and "steps" with --trace).

example:
  kubevirt-cca attest reference --profile examples/attest-profiles/rmm-1.0-sha256.yaml \\
      --firmware /usr/share/AAVMF/AAVMF_CODE.cca.fd --dtb vm.dtb --memory 2Gi
  kubevirt-cca attest reference --profile host.yaml --kernel Image --initrd initrd.img \\
      --dtb vm.dtb --memory 1Gi --output json > reference.json
  kubevirt-cca attest reference --profile realm-lane.yaml --payload payload.bin --memory 2Mi
"""


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "reference",
        help="compute the RIM a Realm should have",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="the host profile (YAML) of the node type the VM runs on; "
        "its measurementAlgo is sha512 on nodes that give a Realm no choice (NVIDIA's stack, "
        "Linaro's RFC v4 QEMU)",
    )
    boot = parser.add_mutually_exclusive_group()
    boot.add_argument("--firmware", metavar="FILE", help="the CCA firmware (firmware boot)")
    boot.add_argument(
        "--kernel", metavar="FILE", help="the kernel Image, uncompressed (direct kernel boot)"
    )
    boot.add_argument(
        "--payload",
        metavar="FILE",
        help="a raw bare-metal image at the start of RAM, entered at its first byte (no --dtb)",
    )
    parser.add_argument("--initrd", metavar="FILE", help="the initrd (with --kernel)")
    parser.add_argument(
        "--dtb",
        metavar="FILE",
        help="the device tree blob the VM boots with (required with --firmware or --kernel)",
    )
    parser.add_argument(
        "--memory",
        metavar="SIZE",
        help="the VM's memory, a Kubernetes quantity (1Gi)",
    )
    owner = parser.add_argument_group("for VM owners (docs/attestation.md, 'Without the node')")
    owner.add_argument(
        "--vmi",
        metavar="FILE",
        help="the VM / VMI manifest: its memory, vCPUs, kernel boot and measurementAlgo",
    )
    owner.add_argument(
        "--node-profile",
        metavar="FILE",
        help="the node type's profile, firmware digests and DTBs ('attest node-profile'; "
        "JSON, or its ConfigMap)",
    )
    owner.add_argument(
        "--cpus", metavar="N", type=int, help="the VM's vCPUs (with --node-profile, no --vmi)"
    )
    add_output_flag(parser, shape="docs/attestation.md")
    parser.add_argument(
        "--trace", action="store_true", help="also list every measured step with the RIM after it"
    )
    parser.add_argument(
        "--corim", metavar="FILE", help="also write the RIM as a CoMID-style reference value (JSON)"
    )
    parser.set_defaults(handler=run_reference)


def run_reference(args: argparse.Namespace) -> int:
    try:
        owner = attest_nodeprofile.owner_inputs(args, load_profile=load_profile, read=_read)
        if owner is not None:
            profile, layout = owner
        else:
            profile = load_profile(_required(args.profile, "--profile", "or --node-profile"))
            memory = _memory(_required(args.memory, "--memory", "or --vmi"))
            layout = _layout(args, memory)
        reference = compute_rim(profile, layout, trace=args.trace)
        if args.corim:
            _write_corim(args.corim, reference)
    except AttestationError as exc:
        print(f"kubevirt-cca attest: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.output == "json":
        json.dump(reference_json(reference, trace=args.trace), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_reference(reference, profile, layout, trace=args.trace))
    return EXIT_OK


def format_reference(
    reference: Reference, profile: HostProfile, layout: RealmLayout, *, trace: bool
) -> str:
    sve = f"SVE {profile.sve_vector_length} bits" if profile.sve_vector_length else "no SVE"
    pmu = f"PMU {profile.pmu_counters} counters" if profile.pmu_counters is not None else "no PMU"
    if profile.rmm_version == "2.0":
        da = "DA" if profile.device_assignment else "no DA"
        pmu += f", {da}, MEC {profile.mec_policy}"
    lines = [
        f"RIM ({reference.measurement_algo}): {reference.rim.hex()}",
        f"host: RMM {profile.rmm_version}, {profile.ipa_bits} IPA bits"
        f"{' (LPA2)' if profile.lpa2 else ''}, {sve}, {profile.breakpoints} breakpoints, "
        f"{profile.watchpoints} watchpoints, {pmu}",
        f"RAM: {layout.ram_base:#x}-{layout.ram_base + layout.ram_size:#x}",
    ]
    lines.extend(f"{image.name}: {image.ipa:#x} ({image.size} bytes)" for image in layout.images)
    lines.append(f"vCPU 0: pc {layout.pc:#x}, x0 {layout.gprs[0]:#x}")
    if trace:
        lines.append("steps:")
        for step in reference.steps:
            if step.kind == "ripas":
                what = f"base {step.base:#x} top {step.top:#x}"
            elif step.kind == "data":
                what = f"ipa {step.ipa:#x} content {(step.content_digest or b'').hex()}"
            elif step.kind == "rec":
                what = f"pc {step.pc:#x} gprs {list(step.gprs or ())}"
            else:
                what = "RmiRealmParams"
            lines.append(f"  {step.kind:<12} {what} -> {step.rim.hex()}")
    return "\n".join(lines) + "\n"


# --- inputs --------------------------------------------------------------------------------------


def load_profile(path: str) -> HostProfile:
    raw = _read(path, "--profile", MAX_PROFILE_BYTES)
    try:
        documents = parse_documents(raw.decode("utf-8"), source=f"--profile {path}")
    except UnicodeDecodeError as exc:
        raise AttestationError(f"--profile {path}: not UTF-8 text") from exc
    except ManifestError as exc:
        raise AttestationError(str(exc)) from exc
    if len(documents) > 1:
        raise AttestationError(
            f"--profile {path}: holds {len(documents)} YAML documents; give one host profile"
        )
    data: Any = documents[0] if documents else None
    try:
        return parse_profile(data)
    except AttestationError as exc:
        raise AttestationError(f"--profile {path}: {exc}") from exc


def _required(value: str | None, flag: str, alternative: str) -> str:
    if value is None:
        raise ReferenceValueError((Violation(flag, f"required ({alternative})"),))
    return value


def _layout(args: argparse.Namespace, memory: int) -> RealmLayout:
    if args.payload is not None:
        problems = [
            Violation(flag, "not used with --payload (the payload is the only image)")
            for flag, value in (("--dtb", args.dtb), ("--initrd", args.initrd))
            if value is not None
        ]
        if problems:
            raise ReferenceValueError(problems)
        return payload_layout(
            memory=memory, payload=_read(args.payload, "--payload", MAX_IMAGE_BYTES)
        )
    if args.firmware is None and args.kernel is None:
        raise ReferenceValueError(
            (Violation("--firmware/--kernel/--payload", "give one (or --node-profile)"),)
        )
    if args.dtb is None:
        raise ReferenceValueError(
            (Violation("--dtb", "required with --firmware or --kernel: the DTB the VM boots with"),)
        )
    return qemu_virt_layout(
        memory=memory,
        dtb=_read(args.dtb, "--dtb", MAX_DTB_BYTES),
        firmware=_read(args.firmware, "--firmware", MAX_IMAGE_BYTES) if args.firmware else None,
        kernel=_read(args.kernel, "--kernel", MAX_IMAGE_BYTES) if args.kernel else None,
        initrd=_read(args.initrd, "--initrd", MAX_IMAGE_BYTES) if args.initrd else None,
    )


def _memory(text: str) -> int:
    try:
        return parse_quantity(text, field="--memory")
    except ManifestError as exc:
        raise AttestationError(str(exc)) from exc


def _read(path: str, what: str, limit: int) -> bytes:
    return read_bytes(path, what=what, limit=limit, error=AttestationError)


def _write_corim(path: str, reference: Reference) -> None:
    tag_id = str(uuid.uuid5(CORIM_TAG_NAMESPACE, reference.rim.hex()))
    text = json.dumps(corim_json(reference, tag_id=tag_id), indent=2) + "\n"
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AttestationError(f"--corim {path}: {exc.strerror or exc}") from exc
