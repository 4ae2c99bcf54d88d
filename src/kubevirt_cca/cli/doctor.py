"""``kubevirt-cca doctor``: is this cluster ready for Realms, and what is missing."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime

from kubevirt_cca.adapters.doctor_snapshot import POLICY_KINDS, read_snapshot
from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.cli.common import HelpFormatter, add_cluster_flags, add_output_flag
from kubevirt_cca.core.doctor import Check, Expected, Status, is_ready, run_checks
from kubevirt_cca.core.install import (
    CERT_MANAGER,
    SELF_SIGNED,
    CertificateMode,
    InstallOptions,
    install_objects,
)
from kubevirt_cca.core.wire.report_envelope import envelope

DESCRIPTION = """\
Check, one thing at a time, whether this cluster can run Arm CCA Realms: KubeVirt and its
version, read as the webhook reads it (its namespace, the oldest CR; other KubeVirt CRs are
flagged); the WorkloadEncryptionCCA (or EnableCCA, EnableARMCCA) and Sidecar (or, in plugin mode,
Plugins) feature gates, and whether KubeVirt implements CCA itself;
kubevirt-cca-config; the integration mode in force and why (hook sidecar or KubeVirt Plugin,
docs/plugins.md), including the mixed state that breaks Realms; KubeVirt's Plugin objects and
kubevirt-cca's own with its failure strategy; the webhook configurations, the Service behind them
and its certificate; the admission policies; the labeller on every arm64 node; and which nodes
can run Realms, with the reasons for the others. Each problem comes with what to do: on a
KubeVirt CR the HyperConverged operator (HCO) owns, the kubevirt.kubevirt.io/jsonpatch annotation
of its HyperConverged CR instead of a patch HCO would revert; with the cert-manager install and
no cert-manager, --certificates self-signed. Where nothing of kubevirt-cca is installed, one line
says so.

Reads only. Exit status: 0 ready (warnings allowed), 1 not ready or the API server unreachable,
2 usage error or an unusable kubeconfig (the file, or a CA, certificate, key or token file it
names; the message names it).

example:
  kubevirt-cca doctor
  kubevirt-cca doctor --kubeconfig admin.conf --output json
"""

MARKS = {Status.OK: "[ ok ]", Status.WARN: "[warn]", Status.FAIL: "[FAIL]"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = InstallOptions()
    parser = subparsers.add_parser(
        "doctor",
        help="check whether this cluster is ready for Realms",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_cluster_flags(parser, defaults.namespace)
    parser.add_argument(
        "--kubevirt-namespace",
        default=defaults.kubevirt_namespace,
        help="where KubeVirt's CR is, when the webhook Deployment cannot be read "
        "(otherwise the webhook's own --kubevirt-namespace is used, as admission does; default: "
        "%(default)s)",
    )
    add_output_flag(parser)
    parser.set_defaults(handler=run)


def expected_from_args(args: argparse.Namespace) -> Expected:
    options = InstallOptions(namespace=args.namespace, kubevirt_namespace=args.kubevirt_namespace)
    loaded = load_policies()

    def policies(mode: CertificateMode) -> tuple[tuple[str, str], ...]:
        return tuple(
            (str(obj["kind"]), str(obj["metadata"]["name"]))
            for obj in install_objects(replace(options, certificates=mode), loaded)
            if obj["kind"] in POLICY_KINDS
        )

    common = policies(CERT_MANAGER)
    return Expected(
        options=options,
        policies=common,
        self_signed_policies=tuple(p for p in policies(SELF_SIGNED) if p not in common),
    )


async def diagnose(
    *, server: str | None, kubeconfig: str | None, expected: Expected
) -> list[Check]:
    client = async_client(server=server, kubeconfig=kubeconfig)
    try:
        snapshot = await read_snapshot(
            client,
            namespace=expected.options.namespace,
            policies=(*expected.policies, *expected.self_signed_policies),
            now=datetime.now(UTC),
        )
    finally:
        await client.close()
    return run_checks(snapshot, expected)


def run(args: argparse.Namespace) -> int:
    expected = expected_from_args(args)
    checks = asyncio.run(
        diagnose(server=args.server, kubeconfig=args.kubeconfig, expected=expected)
    )
    ready = is_ready(checks)
    if args.output == "json":
        report = envelope("DoctorReport", [c.to_json() for c in checks], {"ready": ready})
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(checks, ready=ready))
    return 0 if ready else 1


def format_text(checks: list[Check], *, ready: bool) -> str:
    lines = []
    for check in checks:
        lines.append(f"{MARKS[check.status]} {check.name}: {check.summary}")
        lines.extend(f"       - {detail}" for detail in check.details)
        if check.fix and check.status is not Status.OK:
            lines.append(f"       fix: {check.fix}")
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    verdict = "ready for Realms" if ready else "NOT ready for Realms"
    lines.append(f"{verdict} ({failed} failed, {warned} warning(s))")
    return "\n".join(lines) + "\n"
