"""``kubevirt-cca uninstall``: remove what kubevirt-cca put into a cluster, in a safe order."""

from __future__ import annotations

import argparse
import asyncio
import sys

from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.adapters.uninstall_runner import StepResult, cca_workloads, run_steps
from kubevirt_cca.cli.common import HelpFormatter, add_cluster_flags
from kubevirt_cca.core.install import InstallOptions
from kubevirt_cca.core.install.uninstall_plan import uninstall_objects, uninstall_steps
from kubevirt_cca.errors import SettingsError

EXIT_REFUSED = 1
EXIT_USAGE = 2
SHOWN_USERS = 10

DESCRIPTION = """\
Remove what kubevirt-cca installed (any variant: cert-manager or self-signed certificates,
monitoring, the Plugin object), then its labels and detection annotation on every node, in
this order, one line per step:

  admission             the webhook configurations, the Plugin, the admission policies
                        (first: nothing refuses or calls a webhook while the rest goes)
  workloads             the labeller DaemonSet, the webhook Deployment, the certificate jobs
  rbac                  bindings, roles, service accounts (the labeller can patch no node now)
  labeller restriction  the policies that confined the labeller
  configuration         Service, ConfigMaps, Secrets, cert-manager and monitoring objects
  node labels           only kubevirt-cca's keys; nodes with KubeVirt's skip-node annotation
                        are left alone (their labels are the admin's)
  namespace             the install namespace

With the admission objects gone, a VM that asks for CCA would start as a plain VM. So it first
looks for VMIs and VMs (in their template) with the label cca.kubevirt.io/enabled, and refuses
while any exists: stop and delete them, or remove the label, first; --force goes on anyway.

--dry-run sends every delete and patch with dryRun=All: the API server checks each (rights,
admission) and changes nothing; the lines say what would be removed.
The feature gates in the KubeVirt CR are left as they are (docs/admin.md, "Uninstalling").

Exit status: 0 done, 1 refused (CCA VMs exist) or an API request failed (the steps before it
are done; run it again), 2 usage error.

example:
  kubevirt-cca uninstall --dry-run
  kubevirt-cca uninstall --kubeconfig admin.conf
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = InstallOptions()
    parser = subparsers.add_parser(
        "uninstall",
        help="remove kubevirt-cca and its node labels from a cluster",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_cluster_flags(parser, defaults.namespace)
    parser.add_argument(
        "--kubevirt-namespace",
        default=defaults.kubevirt_namespace,
        help="the KubeVirt CR's namespace it was installed with; "
        "the webhook's Role there is removed (default: %(default)s)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check and print every step, change nothing",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="go on although VMIs or VMs ask for CCA (they would then start as plain VMs)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        options = InstallOptions(
            namespace=args.namespace, kubevirt_namespace=args.kubevirt_namespace
        )
    except SettingsError as exc:
        print(f"kubevirt-cca uninstall: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_uninstall(args, options))


async def _uninstall(args: argparse.Namespace, options: InstallOptions) -> int:
    steps = uninstall_steps(uninstall_objects(options, load_policies()))
    client = async_client(server=args.server, kubeconfig=args.kubeconfig)
    try:
        users = await cca_workloads(client)
        if users:
            shown = ", ".join(users[:SHOWN_USERS])
            more = f" and {len(users) - SHOWN_USERS} more" if len(users) > SHOWN_USERS else ""
            if not args.force:
                print(
                    f"kubevirt-cca uninstall: error: {len(users)} VMI(s)/VM(s) ask for CCA "
                    f"({shown}{more}); without kubevirt-cca they would start as plain VMs. "
                    "Stop and delete them or remove their cca.kubevirt.io/enabled label first, "
                    "or give --force. Nothing was changed",
                    file=sys.stderr,
                )
                return EXIT_REFUSED
            print(
                "kubevirt-cca uninstall: warning: going on "
                f"(--force) although {len(users)} VMI(s)/VM(s) ask for CCA ({shown}{more})",
                file=sys.stderr,
            )

        def report(result: StepResult) -> None:
            print(result.line(dry_run=args.dry_run), flush=True)

        await run_steps(client, steps, dry_run=args.dry_run, report=report)
    finally:
        await client.close()
    if args.dry_run:
        print("dry run: nothing was changed")
    else:
        print(f"kubevirt-cca removed from namespace {options.namespace} and every node")
    return 0
