"""Small pieces the subcommands share: help formatting and settings flags."""

from __future__ import annotations

import argparse

from kubevirt_cca.core.cluster.settings import Dialect, Settings, settings_from_strings
from kubevirt_cca.errors import SettingsError, UsageError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in a command's description as written."""


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """The rewrite's settings as flags; unset flags take the defaults of kubevirt-cca-config."""
    defaults = Settings()
    parser.add_argument(
        "--dialect",
        choices=[d.value for d in Dialect],
        help=f"libvirt XML dialect to emit (default: {defaults.dialect.value})",
    )
    parser.add_argument(
        "--firmware",
        metavar="PATH",
        help=f"CCA firmware loaded as ROM (default: {defaults.firmware})",
    )
    parser.add_argument(
        "--virtio-iommu",
        choices=("on", "off"),
        help="set iommu='on' on every virtio device (default: on)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings the flags give; a bad value is a :class:`UsageError` (exit 2)."""
    try:
        return settings_from_strings(
            dialect=args.dialect, firmware=args.firmware, virtio_iommu=args.virtio_iommu
        )
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc


REPORT_ENVELOPE = "the report envelope kubevirt-cca.io/v1, docs/cli.md"


def add_output_flag(parser: argparse.ArgumentParser, *, shape: str = REPORT_ENVELOPE) -> None:
    """``--output text|json``; ``shape`` says where the JSON is documented."""
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help=f"text for people (default) or json for programs ({shape})",
    )


def add_cluster_flags(parser: argparse.ArgumentParser, namespace: str) -> None:
    """``--server``, ``--kubeconfig`` and ``--namespace`` of the commands an admin runs against a
    cluster from their shell (doctor, uninstall)."""
    parser.add_argument(
        "--server", metavar="URL", help="API server URL (default: from the kubeconfig or the pod)"
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--namespace",
        default=namespace,
        help="where kubevirt-cca is installed (default: %(default)s)",
    )
