"""``kubevirt-cca webhook``: the admission webhook (HTTPS) with health and metrics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import textwrap

from kubevirt_cca.adapters.cluster_state import ClusterState
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.adapters.webhook.server import WebhookApp, serve
from kubevirt_cca.adapters.webhook.tls import ReloadingTLS
from kubevirt_cca.cli.common import HelpFormatter
from kubevirt_cca.constants import INSTALL_NAMESPACE
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS

logger = logging.getLogger(__name__)


def _endpoint_lines() -> str:
    """One entry per endpoint of the webhook table (core/vmi/webhook_table.py), in 100 columns."""
    width = max(len(hook.path) for hook in WEBHOOKS) + 1
    lines = []
    for hook in WEBHOOKS:
        wrapped = textwrap.wrap(hook.summary, width=100 - 2 - width)
        lines.append(f"  {hook.path:<{width}}{wrapped[0]}")
        lines += [f"  {'':<{width}}{more}" for more in wrapped[1:]]
    return "\n".join(lines)


DESCRIPTION = f"""\
Serve kubevirt-cca's admission webhooks over HTTPS (AdmissionReview admission.k8s.io/v1):

{_endpoint_lines()}

The certificate and key are re-read when the files change (Secret rotation needs no restart).
Plain HTTP on --health-port serves /healthz, /readyz and /metrics (Prometheus). Feature gates,
the kubevirt-cca-config ConfigMap, KubeVirt Plugin objects and CCA VMIs are watched through the
API server (in-cluster service account, $KUBECONFIG, or --server).

example:
  kubevirt-cca --log-level INFO webhook --tls-cert-file /certs/tls.crt --tls-key-file /certs/tls.key
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "webhook",
        help="serve the admission webhooks (HTTPS)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--tls-cert-file",
        required=True,
        metavar="PATH",
        help="PEM certificate (chain) the webhook presents",
    )
    parser.add_argument(
        "--tls-key-file", required=True, metavar="PATH", help="PEM private key of that certificate"
    )
    parser.add_argument("--port", type=int, default=8443, help="HTTPS port (default: 8443)")
    parser.add_argument(
        "--health-port",
        type=int,
        default=8080,
        help="plain-HTTP port for /healthz, /readyz, /metrics (default: 8080)",
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - a pod serves its IP
        help="address to listen on (default: all)",
    )
    parser.add_argument(
        "--namespace",
        default=INSTALL_NAMESPACE,
        help=f"namespace of kubevirt-cca-config (default: {INSTALL_NAMESPACE})",
    )
    parser.add_argument(
        "--kubevirt-namespace",
        default="kubevirt",
        help="namespace of the KubeVirt CR (default: kubevirt)",
    )
    parser.add_argument(
        "--server", metavar="URL", help="API server URL (default: in-cluster or $KUBECONFIG)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    tls = ReloadingTLS(args.tls_cert_file, args.tls_key_file)
    asyncio.run(_serve(args, tls))
    return 0


async def _serve(args: argparse.Namespace, tls: ReloadingTLS) -> None:
    client = async_client(server=args.server)
    state = ClusterState(
        client, namespace=args.namespace, kubevirt_namespace=args.kubevirt_namespace
    )
    await state.start()
    app = WebhookApp(state, tls=tls)
    running = await serve(app, host=args.host, port=args.port, health_port=args.health_port)
    logger.info(
        "webhook serving https_port=%d health_port=%d", running.https_port, running.health_port
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        logger.info("webhook stopping")
        await running.stop()
        await state.stop()
        await client.close()
