"""``kubevirt-cca labeller``: keep this node's CCA labels and detection annotation current."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubevirt_cca.cli.common import HelpFormatter
from kubevirt_cca.constants import (
    DEFAULT_DOMCAPS_COMMAND,
    KUBEVIRT_SKIP_NODE_ANNOTATION,
    NODE_CCA_LABEL,
    NODE_DETECTION_ANNOTATION,
    NODE_HONOURS_OVERRIDE_ANNOTATION,
)
from kubevirt_cca.core.node.detection_report import DetectionReport

if TYPE_CHECKING:
    from kubevirt_cca.adapters.node_labeller import NodeLabeller

LOG = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0
DEFAULT_HEALTH_PORT = 8081
NODE_NAME_ENV = "NODE_NAME"
EXIT_USAGE = 2

DESCRIPTION = f"""\
Run on each arm64 node (a DaemonSet pod) and keep the node's labels in line with what the host
can do: '{NODE_CCA_LABEL}=true' where libvirt reports <cca supported='yes'> (and its
<launchSecurity> types do not contradict it), one 'cca.kubevirt.io/measurement-algo-<name>=true'
per algorithm a Realm really gets (libvirt lists it and, with --rme-guest-help-file, QEMU's
rme-guest names it; without that only sha512), one label per other parameter the node's libvirt
(and its QEMU) honours, none of them elsewhere, and the detection report (why or why not) in the
annotation '{NODE_DETECTION_ANNOTATION}'. The admin's Node annotation
'{NODE_HONOURS_OVERRIDE_ANNOTATION}' (e.g. personalizationValue,measurementLog) adds what a
capable node's libvirt cannot advertise; the labeller reads it, never writes it.

Only these keys are ever written or removed, only when they differ, and not at all on a node
annotated '{KUBEVIRT_SKIP_NODE_ANNOTATION}'. The node is re-checked every --interval seconds
(with 10 % jitter); while the API server fails the labeller backs off exponentially and leaves
the labels as they are. SIGTERM stops it between requests and kills a running
--domcaps-command at once (its process group).

Serves /healthz, /readyz (ready after the first reconcile) and /metrics on --health-port.

example:
  kubevirt-cca labeller --node-name "$NODE_NAME" --root /host
  kubevirt-cca labeller --node-name arm-1 --domcaps-file /var/run/cca/domcaps.xml --once
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "labeller",
        help="label this node with its Realm capability (DaemonSet)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--node-name",
        metavar="NAME",
        default=os.environ.get(NODE_NAME_ENV),
        help=f"this node's name (default: ${NODE_NAME_ENV}, e.g. from the downward API)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--domcaps-file",
        metavar="FILE",
        help="read libvirt domain capabilities XML from FILE "
        "(written by another container) instead of running a command",
    )
    source.add_argument(
        "--domcaps-command",
        metavar="CMD",
        default=shlex.join(DEFAULT_DOMCAPS_COMMAND),
        help="command that prints domain capabilities (default: %(default)s)",
    )
    parser.add_argument(
        "--rme-guest-help-file",
        metavar="FILE",
        help="QEMU's answer to '-object rme-guest,help', written by the virt-launcher image "
        "(labels what the qemu-commandline dialect can pass on); "
        "without it no rme-guest-* label is set",
    )
    parser.add_argument(
        "--root",
        metavar="DIR",
        default="/",
        help="the host's / (mounted read-only); host probes read below DIR",
    )
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=_positive_seconds,
        default=DEFAULT_INTERVAL,
        help="seconds between checks, jittered by 10 %% (default: %(default)g)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="reconcile once and exit (no health endpoint): "
        "exit status 0 when the node is up to date, 1 when the API server failed",
    )
    parser.add_argument(
        "--health-port",
        metavar="[ADDRESS:]PORT",
        type=_listen_address,
        default=("", DEFAULT_HEALTH_PORT),
        help="where /healthz, /readyz and /metrics listen (default: all addresses, "
        f"port {DEFAULT_HEALTH_PORT}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="the API server's URL (default: the pod's service account, else $KUBECONFIG)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.node_name:
        print(
            f"kubevirt-cca labeller: error: --node-name is required (or set ${NODE_NAME_ENV}, e.g. "
            "from the downward API: fieldRef spec.nodeName)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Imported here so the other commands do not load the Kubernetes client and HTTP server.
    from kubevirt_cca.adapters.detection import detect

    # Set on SIGTERM: kills a running domain capabilities command (its process group) at once.
    stopping = threading.Event()
    detector = functools.partial(
        detect,
        domcaps_file=args.domcaps_file,
        domcaps_command=args.domcaps_command,
        root=args.root,
        rme_guest_file=args.rme_guest_help_file,
        stop=stopping,
    )
    return asyncio.run(_main(args, detector, stopping))


async def _main(
    args: argparse.Namespace, detector: Callable[[], DetectionReport], stopping: threading.Event
) -> int:
    from kubevirt_cca.adapters.health import HealthServer
    from kubevirt_cca.adapters.kube import async_client
    from kubevirt_cca.adapters.node_labeller import NodeLabeller, Timing

    client = async_client(server=args.server)
    labeller = NodeLabeller(
        client=client,
        node_name=args.node_name,
        detector=detector,
        timing=Timing(interval=args.interval),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stop, labeller, stopping, signum)
    try:
        if args.once:
            result = await labeller.reconcile()
            LOG.info("node %s: reconcile %s", args.node_name, result.value)
            print(once_line(labeller, args.node_name, result.value))
            return 0
        host, port = args.health_port
        health = HealthServer(
            ready=lambda: labeller.ready,
            registry=labeller.metrics.registry,
            host=host,
            port=port,
            not_ready_message="not ready: the first reconcile has not finished",
        )
        bound = health.start()
        LOG.info(
            "health endpoint listening on http://%s:%d (/healthz, /readyz, /metrics)",
            host or "0.0.0.0",  # noqa: S104 (what "all addresses" means)
            bound,
        )
        try:
            await labeller.run()
        finally:
            health.stop()
        return 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await client.close()


def once_line(labeller: NodeLabeller, node: str, result: str) -> str:
    """``--once``'s result on standard output, e.g. ``node arm-1: capable, 3 labels set, 0
    removed, detection annotation updated``."""
    report = labeller.last_report
    capable = "capable" if report is not None and report.capable else "not capable"
    if result in ("skipped", "interrupted"):
        return f"node {node}: {capable}, {result}, nothing written"
    changes = labeller.last_changes
    written = sum(len(c.added) + len(c.changed) for c in changes)
    removed = sum(len(c.removed) for c in changes)
    annotation = "updated" if labeller.last_annotation_changed else "unchanged"
    return (
        f"node {node}: {capable}, {written} label(s) set, {removed} removed, "
        f"detection annotation {annotation}"
    )


def _stop(labeller: NodeLabeller, stopping: threading.Event, signum: int) -> None:
    LOG.info(
        "received %s; stopping after the request in flight "
        "(a running domain capabilities command is killed)",
        signal.Signals(signum).name,
    )
    stopping.set()
    labeller.request_stop()


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")  # [::1]:8081
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected PORT or ADDRESS:PORT (e.g. 8081 or 127.0.0.1:8081), got {text!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {port}")
    return host, port
