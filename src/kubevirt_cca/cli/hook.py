"""``kubevirt-cca hook``: the KubeVirt hook sidecar that makes a CCA VMI's domain a Realm."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kubevirt_cca.adapters.hook import hook_server, plugin_server, serve_until_stopped
from kubevirt_cca.cli.common import HelpFormatter, add_settings_flags, settings_from_args
from kubevirt_cca.constants import (
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    HOOK_SOCKET_DIR,
    HOOK_SOCKET_NAME,
)
from kubevirt_cca.core.cluster.settings import Dialect

EXIT_USAGE = 2

DESCRIPTION = f"""\
Serve KubeVirt's hook sidecar protocol (gRPC: Info, Callbacks v1alpha1-v1alpha3) on the unix
socket DIR/{HOOK_SOCKET_NAME}. virt-launcher calls OnDefineDomain before it defines the VM's
libvirt domain: a VMI labelled {ENABLED_LABEL}: "true" gets its domain made an Arm CCA Realm
(launch security, ROM firmware, no NVRAM, iommu on virtio devices, ...); any other VMI gets
its domain back unchanged. When a Realm cannot be made, the call fails, so the VM does not start
as a plain VM. Shutdown (v1alpha3), SIGTERM or SIGINT stop the server and remove the socket.

It runs as a sidecar container in the virt-launcher pod; the kubevirt-cca admission webhook
attaches it through the {HOOK_SIDECARS_ANNOTATION} annotation. It needs no Kubernetes access.
Every call is logged on one line at INFO, even under the default global --log-level WARNING
(kubevirt-cca --log-level DEBUG hook ... logs more). See docs/hook.md.

With --plugin-socket PATH it serves KubeVirt Plugins' domain hook instead (VEP 190, gRPC
kubevirt.hooks.plugins.v1alpha1.DomainHookService/MutateDomain) on PATH alone: the legacy hook
directory is not mounted in the plugin container and no legacy socket is created. PATH is
created mode 0660 (the container runs as uid 107, virt-launcher's qemu user). On that path only
the qemu-commandline dialect survives KubeVirt's rebuild of the domain: it is the default there,
and any other --dialect is a usage error (exit 2). The kubevirt-cca pod webhook injects this
container into labelled virt-launcher pods; see docs/plugins.md.

Exit status: 0 stopped on request, 1 could not start (socket), 2 usage error (settings too).

example:
  kubevirt-cca hook
  kubevirt-cca hook --socket-dir /tmp/hooks/cca --dialect qemu-commandline --virtio-iommu on
  kubevirt-cca hook --plugin-socket /var/run/kubevirt-plugin/kubevirt-cca/kubevirt-cca.sock
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "hook",
        help="run the KubeVirt hook sidecar (inside virt-launcher pods)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        default=HOOK_SOCKET_DIR,
        help=f"directory for the socket {HOOK_SOCKET_NAME} (default: %(default)s)",
    )
    parser.add_argument(
        "--plugin-socket",
        metavar="PATH",
        help="serve KubeVirt Plugins' DomainHookService on this socket only "
        "(dialect qemu-commandline)",
    )
    add_settings_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.plugin_socket is not None:
        if args.dialect not in (None, Dialect.QEMU_COMMANDLINE.value):
            print(
                "kubevirt-cca hook: error: "
                f"--dialect {args.dialect} cannot be used with --plugin-socket: "
                f"on KubeVirt's Plugins path only the {Dialect.QEMU_COMMANDLINE.value} dialect "
                "survives (KubeVirt refuses <launchSecurity type='cca'> there); "
                f"use --dialect {Dialect.QEMU_COMMANDLINE.value} or leave it out",
                file=sys.stderr,
            )
            return EXIT_USAGE
        args.dialect = Dialect.QEMU_COMMANDLINE.value
    settings = settings_from_args(args)
    # The per-call line is the sidecar's record of what it did to each domain: keep it visible.
    package_logger = logging.getLogger("kubevirt_cca")
    package_logger.setLevel(min(logging.getLogger().getEffectiveLevel(), logging.INFO))
    if args.plugin_socket is not None:
        server = plugin_server(Path(args.plugin_socket).absolute(), settings)
    else:
        server = hook_server(Path(args.socket_dir).absolute(), settings)
    logging.getLogger(__name__).info(
        "starting socket=%s dialect=%s firmware=%s virtio_iommu=%s",
        server.path,
        settings.dialect.value,
        settings.firmware,
        "on" if settings.virtio_iommu else "off",
    )
    serve_until_stopped([server])
    return 0
