"""``kubevirt-cca render``: the Realm domain XML that a VMI would be started with."""

from __future__ import annotations

import argparse
import sys

from kubevirt_cca.adapters.files import load_manifest, read_text
from kubevirt_cca.cli.common import HelpFormatter, add_settings_flags, settings_from_args
from kubevirt_cca.constants import ENABLED_LABEL, ENABLED_VALUE
from kubevirt_cca.core.domain.basedomain import base_domain
from kubevirt_cca.core.domain.rewrite import rewrite_domain
from kubevirt_cca.core.vmi.request import find_template, parse_template
from kubevirt_cca.core.vmi.requirements import requirements
from kubevirt_cca.errors import ManifestError, RequestError, Violation

DESCRIPTION = f"""\
Print the libvirt domain XML that KubeVirt would hand to libvirt for a VMI once kubevirt-cca
has made it an Arm CCA Realm.

FILE is a VirtualMachineInstance, VirtualMachine, VirtualMachineInstanceReplicaSet or
VirtualMachinePool manifest (YAML or JSON) that asks for a Realm with the label
{ENABLED_LABEL}: "{ENABLED_VALUE}". Without --domain the rewrite starts from a built-in arm64
domain shaped like virt-launcher's; with it, from that domain XML (for example one taken from
'virsh dumpxml' on a node).

Exit status: 0 the domain was printed, 1 the VMI or domain was refused, 2 usage error or
an unreadable file (the message names the file and the line or field).

example:
  kubevirt-cca render examples/vmi-cca.yaml
  kubevirt-cca render examples/vm-cca-params.yaml --dialect qemu-commandline
  kubevirt-cca render my-vmi.yaml --domain dumped-domain.xml --virtio-iommu off
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render",
        help="show the Realm domain XML a VMI would get",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="VMI / VM / replica set / pool manifest")
    parser.add_argument(
        "--domain", metavar="XML", help="start from this domain XML instead of the built-in one"
    )
    add_settings_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        manifest = load_manifest(args.file)
        template = find_template(manifest)
        domain_xml = read_text(args.domain) if args.domain is not None else None
    except ManifestError as exc:
        print(f"kubevirt-cca render: error: {exc}", file=sys.stderr)
        return 2
    request = parse_template(template)
    if request is None:
        raise RequestError(
            [
                Violation(
                    template.path("metadata", "labels"),
                    f"{args.file} does not ask for a Realm; add the label "
                    f'{ENABLED_LABEL}: "{ENABLED_VALUE}" (see docs/vm-owners.md)',
                )
            ]
        )
    if domain_xml is None:
        raw_metadata = manifest.get("metadata")
        metadata = raw_metadata if isinstance(raw_metadata, dict) else {}
        name = str(metadata.get("name") or "vmi")
        namespace = str(metadata.get("namespace") or "default")
        domain_xml = base_domain(template, name=name, namespace=namespace)
    sys.stdout.write(rewrite_domain(domain_xml, request, settings))
    sys.stdout.write("\n")
    needed = requirements(request, settings.dialect)[1:]
    if needed:
        labels = ", ".join(f"{r.label}=true ({r.capability})" for r in needed)
        print(
            f"kubevirt-cca render: note: in a cluster this runs only on nodes labelled {labels}; "
            "see docs/vm-owners.md",
            file=sys.stderr,
        )
    return 0
