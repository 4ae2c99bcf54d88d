"""``kubevirt-cca detect``: can this host run Realms, and if not, why not."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

# ``detect`` lives with the other host I/O (the labeller uses it too); re-exported here.
from kubevirt_cca.adapters.detection import detect
from kubevirt_cca.cli.common import HelpFormatter, add_output_flag
from kubevirt_cca.constants import DEFAULT_DOMCAPS_COMMAND
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.honoured import Honoured
from kubevirt_cca.core.wire.report_envelope import check, envelope
from kubevirt_cca.errors import InputTooLarge

__all__ = ["detect", "format_text", "register", "report_json", "run"]

DESCRIPTION = f"""\
Check whether this host can run Arm CCA Realms. libvirt decides: the host is capable when
'{" ".join(DEFAULT_DOMCAPS_COMMAND)}' reports <cca supported='yes'>. Host probes (architecture,
/dev/kvm, the KVM RMI capability parameter, the kernel's 'RMI ABI version' line) explain a "no".

Exit status: 0 capable, 1 not capable, 2 usage error (or a named file larger than 16 MiB).

example:
  kubevirt-cca detect
  kubevirt-cca detect --domcaps domcaps.xml --root /host --output json
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="check whether this host can run Realms",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--domcaps",
        metavar="FILE",
        help="read libvirt domain capabilities XML from FILE instead of virsh",
    )
    parser.add_argument(
        "--domcaps-command",
        metavar="CMD",
        default=shlex.join(DEFAULT_DOMCAPS_COMMAND),
        help="command that prints domain capabilities (default: %(default)s)",
    )
    parser.add_argument(
        "--rme-guest-help",
        metavar="FILE",
        help="QEMU's answer to '-object rme-guest,help' "
        "(what the qemu-commandline dialect can pass on); not asked without it",
    )
    parser.add_argument(
        "--root",
        metavar="DIR",
        default="/",
        help="read host files (/dev, /sys, /proc, /var/log) below DIR",
    )
    add_output_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = detect(
            domcaps_file=args.domcaps,
            domcaps_command=args.domcaps_command,
            root=args.root,
            rme_guest_file=args.rme_guest_help,
        )
    except InputTooLarge as exc:
        print(f"kubevirt-cca detect: error: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        json.dump(report_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(report))
    return 0 if report.capable else 1


def report_json(report: DetectionReport) -> dict[str, Any]:
    """``detect --output json``: a ``DetectionReport`` in the report envelope.

    The detection report's own keys stay at the top level, exactly as the labeller writes them
    into the node annotation (docs/node-labels.md, 'The detection report'); the envelope only
    adds its keys.
    """
    rme_guest = report.evidence.get("rmeGuest")
    checks = [
        check(
            "libvirt-cca",
            "pass" if report.capable else "fail",
            "libvirt reports <cca supported='yes'>"
            if report.capable
            else "this host cannot run Realms",
            details=report.reasons,
        ),
    ]
    if not isinstance(rme_guest, dict):
        checks.append(
            check("qemu-rme-guest", "not-checked", "QEMU not asked (no --rme-guest-help)")
        )
    elif "error" in rme_guest:
        checks.append(check("qemu-rme-guest", "warn", str(rme_guest["error"])))
    else:
        checks.append(
            check(
                "qemu-rme-guest",
                "pass",
                f"QEMU rme-guest honours: {_honoured_text(report.rme_guest)}"
                if report.rme_guest is not None
                else "QEMU answered",
            )
        )
    return envelope("DetectionReport", checks, report.to_json())


def _honoured_text(honoured: Honoured) -> str:
    parts = [f"measurementAlgo {a}" for a in honoured.measurement_algorithms]
    if honoured.personalization_value:
        parts.append("personalizationValue")
    if honoured.measurement_log:
        parts.append("measurementLog")
    return ", ".join(parts) or "no parameter (platform defaults only)"


def format_text(report: DetectionReport) -> str:
    lines = [f"CCA capable: {'yes' if report.capable else 'no'}"]
    if report.capable:
        algorithms = ", ".join(report.measurement_algorithms) or "none listed (platform default)"
        lines.append(f"measurement algorithms: {algorithms}")
        effective = report.effective_measurement_algorithm or "unknown (the platform's own)"
        lines.append(f"effective measurement algorithm (a Realm that asks for none): {effective}")
        lines.append(f"libvirt honours: {_honoured_text(report.honoured)}")
        if report.rme_guest is not None:
            lines.append(f"QEMU rme-guest honours: {_honoured_text(report.rme_guest)}")
    else:
        lines.append("why not:")
        lines.extend(f"  - {reason}" for reason in report.reasons)
    lines.append("evidence:")
    for source, values in report.evidence.items():
        lines.append(f"  {source}: {json.dumps(values, sort_keys=True)}")
    return "\n".join(lines) + "\n"
