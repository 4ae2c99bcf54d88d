"""``kubevirt-cca certs ensure``: the webhook certificate without cert-manager."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from kubevirt_cca.adapters.cert_store import Outcome, ensure
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.cli.common import HelpFormatter
from kubevirt_cca.constants import INSTALL_NAMESPACE
from kubevirt_cca.core.certs import Action
from kubevirt_cca.core.install.names import (
    CERTIFICATE_CONFIG_MAP,
    TLS_SECRET,
    WEBHOOK,
    WEBHOOK_CONFIGURATION,
)

DESCRIPTION = f"""\
Make sure the webhook has a serving certificate the API server trusts, without cert-manager:
a self-signed CA (10 years) signs a serving certificate (1 year) for the Service's DNS names,
both kept in a Secret of type kubernetes.io/tls; the serving certificate is reissued 30 days
before it expires. The CA goes into the caBundle of every webhook of the Mutating- and the
ValidatingWebhookConfiguration, and the certificate's public half (tls.crt, ca.crt) into the
ConfigMap --config-map, which the install creates empty (doctor reads it: it reads no Secret).
With --write-dir, the certificate and key are also written
there for the webhook server. Safe to run from several replicas at once.

It runs as the Job kubevirt-cca-certs (at install) and the CronJob kubevirt-cca-certs-renewal
(daily) of the self-signed install (deploy-self-signed/, or 'kubevirt-cca manifests
--certificates self-signed'), as their own ServiceAccount: the webhook cannot write Secrets.

Exit status: 0 done, 1 the API server refused or could not be reached, 2 usage error.

example:
  kubevirt-cca certs ensure --namespace {INSTALL_NAMESPACE} --secret {TLS_SECRET} \\
      --service {WEBHOOK} --webhook-configuration {WEBHOOK_CONFIGURATION} \\
      --write-dir /etc/kubevirt-cca/tls
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="keep the webhook certificate without cert-manager",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = actions.add_parser(
        "ensure",
        help="create or renew the certificate, set caBundle",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    sub.add_argument(
        "--namespace",
        default=INSTALL_NAMESPACE,
        help="namespace of the Secret and the Service (default: %(default)s)",
    )
    sub.add_argument(
        "--secret",
        default=TLS_SECRET,
        help="Secret that holds the certificate (default: %(default)s)",
    )
    sub.add_argument(
        "--service",
        default=WEBHOOK,
        help="the webhook Service the certificate is for (default: %(default)s)",
    )
    sub.add_argument(
        "--webhook-configuration",
        default=WEBHOOK_CONFIGURATION,
        help="name of the Mutating- and ValidatingWebhookConfiguration (default: %(default)s)",
    )
    sub.add_argument(
        "--config-map",
        default=CERTIFICATE_CONFIG_MAP,
        help="ConfigMap (in --namespace) that gets the public certificate, for doctor; "
        "'' for none (default: %(default)s)",
    )
    sub.add_argument(
        "--write-dir", metavar="DIR", help="also write tls.crt, tls.key and ca.crt into DIR"
    )
    sub.add_argument(
        "--server",
        metavar="URL",
        help="API server URL (default: the pod's service account, or kubeconfig)",
    )
    sub.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file")
    sub.set_defaults(handler=run)


def dns_names(service: str, namespace: str) -> list[str]:
    base = f"{service}.{namespace}"
    return [service, base, f"{base}.svc", f"{base}.svc.cluster.local"]


async def ensure_once(args: argparse.Namespace) -> Outcome:
    client = async_client(server=args.server, kubeconfig=args.kubeconfig)
    try:
        return await ensure(
            client,
            namespace=args.namespace,
            secret=args.secret,
            webhook_configuration=args.webhook_configuration,
            dns_names=dns_names(args.service, args.namespace),
            now=datetime.now(UTC),
            write_dir=Path(args.write_dir) if args.write_dir else None,
            config_map=args.config_map or None,
        )
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    outcome = asyncio.run(ensure_once(args))
    print(result_line(outcome, secret=f"{args.namespace}/{args.secret}"))
    return 0


# What each plan did, in the one-line result.
DONE = {Action.KEEP: "unchanged", Action.NEW_SERVING: "renewed", Action.NEW_CA: "new CA issued"}


def result_line(outcome: Outcome, *, secret: str) -> str:
    """The one-line result, e.g. ``certificate kubevirt-cca/kubevirt-cca-webhook-tls: renewed,
    valid until 2027-12-08T00:00:00Z (...), caBundle set on 2 webhook configuration(s)``."""
    until = outcome.plan.material.valid_until.isoformat().replace("+00:00", "Z")
    parts = [
        f"certificate {secret}: {DONE[outcome.plan.action]}, valid until {until} "
        f"({outcome.plan.reason})"
    ]
    if outcome.patched:
        parts.append(f"caBundle set on {', '.join(outcome.patched)}")
    if outcome.published:
        parts.append(f"public certificate written to {outcome.published}")
    return ", ".join(parts)
