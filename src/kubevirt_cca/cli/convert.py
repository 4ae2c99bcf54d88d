"""``kubevirt-cca convert``: a VEP 129 native-form manifest rewritten into label + annotation."""

from __future__ import annotations

import argparse
import sys

from kubevirt_cca.adapters.files import load_documents
from kubevirt_cca.cli.common import HelpFormatter
from kubevirt_cca.cli.validate import dump_yaml
from kubevirt_cca.constants import ENABLED_LABEL, ENABLED_VALUE, LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.convert import convert, to_native
from kubevirt_cca.core.vmi.request import TEMPLATE_PATHS
from kubevirt_cca.errors import ManifestError

DESCRIPTION = f"""\
Rewrite a manifest written in VEP 129's native form (spec.domain.launchSecurity.cca, in a VMI
or in the VMI template of a VM, VMI replica set or VM pool) into the form stock KubeVirt keeps:
the label {ENABLED_LABEL}: "{ENABLED_VALUE}" and, when parameters are set, the annotation
{LAUNCH_SECURITY_ANNOTATION}. Everything else is kept. Prints the result (YAML, one document
per input document) and lists the changes on standard error.

With --to native, the other way: the label and annotation become
spec.domain.launchSecurity.cca, for handing a manifest over to a KubeVirt that implements CCA
itself (docs/admin.md, "KubeVirt's own CCA: handing over").

Exit status: 0 printed, 1 the CCA request is invalid or a kind convert does not know
carries the native form, 2 unreadable file.

example:
  kubevirt-cca convert vm-native.yaml > vm.yaml
  kubevirt-cca convert vm-native.yaml | kubectl apply -f -
  kubevirt-cca convert --to native vm.yaml > vm-native.yaml
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="rewrite VEP 129 native form into label + annotation",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="manifest (YAML or JSON; - for stdin)")
    parser.add_argument(
        "--to",
        choices=("label", "native"),
        default="label",
        help="label: VEP 129 native form to label + annotation (default); "
        "native: back to spec.domain.launchSecurity.cca",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        documents = load_documents(args.file)
    except ManifestError as exc:
        print(f"kubevirt-cca convert: error: {exc}", file=sys.stderr)
        return 2
    unknown = [
        (document.get("kind"), path)
        for document in documents
        if document.get("kind", "VirtualMachineInstance") not in TEMPLATE_PATHS
        and (path := _native_form_at(document)) is not None
    ]
    for kind, path in unknown:
        print(
            f"kubevirt-cca convert: error: kind {kind!r} is not understood, "
            f"but it carries VEP 129's native form at {path}; "
            f"convert rewrites only {', '.join(sorted(TEMPLATE_PATHS))} (nothing was printed)",
            file=sys.stderr,
        )
    if unknown:
        return 1
    converted = []
    changed = False
    for document in documents:
        if document.get("kind", "VirtualMachineInstance") not in TEMPLATE_PATHS:
            converted.append(document)  # not a kind that carries a VMI template: kept as is
            continue
        result = to_native(document) if args.to == "native" else convert(document)
        name = (
            document.get("metadata", {}).get("name", "?")
            if isinstance(document.get("metadata"), dict)
            else "?"
        )
        for change in result.changes:
            print(f"kubevirt-cca convert: {document.get('kind')} {name}: {change}", file=sys.stderr)
        changed = changed or bool(result.changes)
        converted.append(result.obj)
    if not changed:
        form = (
            "asking for CCA with the label" if args.to == "native" else "in VEP 129's native form"
        )
        print(f"kubevirt-cca convert: note: nothing {form}; printed unchanged", file=sys.stderr)
    sys.stdout.write(dump_yaml(converted))
    return 0


def _native_form_at(value: object, path: str = "") -> str | None:
    """Where ``value`` holds ``launchSecurity.cca`` (a dotted path), else ``None``."""
    if isinstance(value, dict):
        security = value.get("launchSecurity")
        if isinstance(security, dict) and "cca" in security:
            return f"{path}.launchSecurity.cca".lstrip(".")
        for key, item in value.items():
            found = _native_form_at(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _native_form_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
