"""``kubevirt-cca manifests``: the install objects, with the image and namespace as options."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubevirt_cca import __version__
from kubevirt_cca.adapters.helm_chart import (
    LAUNCHER_NEEDED,
    PUBLISHED_IMAGE,
    chart_files,
    write_helm_chart,
)
from kubevirt_cca.adapters.install_files import (
    dump_documents,
    load_policies,
    policies_have_kustomization,
    write_kustomize,
)
from kubevirt_cca.cli.common import HelpFormatter
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.install import (
    InstallOptions,
    install_files,
)
from kubevirt_cca.core.install.names import CERTIFICATE_MODES
from kubevirt_cca.errors import SettingsError, UsageError

DESCRIPTION = f"""\
Print everything kubevirt-cca installs (the objects 'kubectl kustomize deploy/' renders),
with the image, the namespace and the certificate source as options.

--certificates cert-manager (default) has cert-manager issue the webhook's certificate;
--certificates self-signed needs no cert-manager: a Job and a daily CronJob ('kubevirt-cca
certs ensure', as their own ServiceAccount kubevirt-cca-certs) keep a self-signed CA and
serving certificate in a Secret and patch the webhook configurations' caBundle
(docs/install.md).

--monitoring adds the optional monitoring objects (prometheus-operator's PodMonitors and a
PrometheusRule, and a kube-state-metrics configuration; docs/monitoring.md). --write-kustomize
always writes them, into DIR/monitoring/ with a kustomization of their own that DIR's does not
list.

--image and --virt-launcher-image are required when printing: the objects must name the
kubevirt-cca image you built and pushed (docs/install.md, step 1; the release workflow publishes
{PUBLISHED_IMAGE}) and a virt-launcher image that can start Realms, which upstream KubeVirt's
cannot yet.
--image and --integration-mode go into the ConfigMap kubevirt-cca-config and are written into
the admission policies that pin the hook image (they take no parameter from the ConfigMap):
to change either, render and apply the install again (docs/admin.md).
--write-kustomize writes the base deploy/ with the placeholder {InstallOptions().image},
which an overlay replaces (README). --write-helm writes the Helm chart charts/kubevirt-cca,
whose values are these options (docs/install.md, "Helm"); its default image is --image, else
the release workflow's {PUBLISHED_IMAGE}.

example:
  kubevirt-cca manifests --image registry.example/kubevirt-cca:{__version__} \\
      --virt-launcher-image registry.example/kubevirt/virt-launcher:v1.8.0 | kubectl apply -f -
  kubevirt-cca manifests --image registry.example/kubevirt-cca:{__version__} \\
      --virt-launcher-image registry.example/kubevirt/virt-launcher:v1.8.0 \\
      --certificates self-signed | kubectl apply -f -
  kubevirt-cca manifests --image registry.example/kubevirt-cca:0.1.0 --monitoring
  kubevirt-cca manifests --write-kustomize deploy     # regenerate the kustomize base
  kubevirt-cca manifests --write-helm charts/kubevirt-cca     # regenerate the Helm chart
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = InstallOptions()
    parser = subparsers.add_parser(
        "manifests",
        help="print the install objects (image, namespace as options)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--image",
        help="the kubevirt-cca image you built and pushed, "
        "for every component and the hook sidecar (required, except with --write-kustomize, "
        f"which writes the placeholder {defaults.image})",
    )
    parser.add_argument(
        "--namespace", default=defaults.namespace, help="install namespace (default: %(default)s)"
    )
    parser.add_argument(
        "--kubevirt-namespace",
        default=defaults.kubevirt_namespace,
        help="namespace of the KubeVirt CR (default: %(default)s)",
    )
    parser.add_argument(
        "--virt-launcher-image",
        help="your KubeVirt's virt-launcher image, with a libvirt and QEMU that know CCA; "
        "the labeller asks its libvirt (required: upstream KubeVirt's cannot start Realms yet; "
        f"--write-kustomize writes the placeholder {defaults.virt_launcher_image}, "
        "which an overlay replaces)",
    )
    parser.add_argument(
        "--certificates",
        choices=CERTIFICATE_MODES,
        default=defaults.certificates,
        help="who issues the webhook's certificate (default: %(default)s)",
    )
    parser.add_argument(
        "--integration-mode",
        choices=[mode.value for mode in IntegrationMode],
        default=defaults.integration_mode.value,
        help="hook sidecar, KubeVirt Plugin, or auto (docs/plugins.md; default: %(default)s)",
    )
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="also print the PodMonitors, PrometheusRule and kube-state-metrics configuration "
        "(needs prometheus-operator; default: off)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--output",
        choices=("yaml", "json"),
        default="yaml",
        help="yaml: multi-document YAML; json: a v1 List (default: yaml)",
    )
    output.add_argument(
        "--write-kustomize",
        metavar="DIR",
        help="write a kustomize base into DIR instead of printing (how deploy/ is generated)",
    )
    output.add_argument(
        "--write-helm",
        metavar="DIR",
        help="write the Helm chart into DIR instead of printing "
        "(how charts/kubevirt-cca is generated); --image, if given, "
        "becomes the chart's default image",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.write_helm is not None:
        written = write_helm_chart(
            Path(args.write_helm), chart_files(load_policies(), image=args.image)
        )
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.image is None and args.write_kustomize is None:
        print(
            "kubevirt-cca manifests: error: image: required: "
            "the kubevirt-cca image you built and pushed "
            f"(for example --image registry.example/kubevirt-cca:{__version__}; docs/install.md, "
            "step 1)",
            file=sys.stderr,
        )
        return 2
    if args.virt_launcher_image is None and args.write_kustomize is None:
        print(
            f"kubevirt-cca manifests: error: virt-launcher-image: required: {LAUNCHER_NEEDED} "
            "(for example --virt-launcher-image registry.example/kubevirt/virt-launcher:v1.8.0)",
            file=sys.stderr,
        )
        return 2
    defaults = InstallOptions()
    try:
        options = InstallOptions(
            image=defaults.image if args.image is None else args.image,
            namespace=args.namespace,
            kubevirt_namespace=args.kubevirt_namespace,
            virt_launcher_image=(
                defaults.virt_launcher_image
                if args.virt_launcher_image is None
                else args.virt_launcher_image
            ),
            certificates=args.certificates,
            integration_mode=IntegrationMode(args.integration_mode),
            # The kustomize base always carries them, in a folder it does not list itself.
            monitoring=args.monitoring or args.write_kustomize is not None,
        )
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc
    files = install_files(options, load_policies())
    if args.write_kustomize is not None:
        written = write_kustomize(
            Path(args.write_kustomize), files, policies_folder=policies_have_kustomization()
        )
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        return 0
    objects = [obj for group in files.values() for obj in group]
    if args.output == "json":
        json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(dump_documents(objects))
    return 0
