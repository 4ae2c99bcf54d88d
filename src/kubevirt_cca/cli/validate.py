"""``kubevirt-cca validate``: the admission verdict on a manifest, without a cluster."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from kubevirt_cca.adapters.files import load_manifest
from kubevirt_cca.cli.common import HelpFormatter, add_output_flag
from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    CONFIG_MAP_NAME,
    ENABLED_LABEL,
    NODE_CCA_LABEL,
    PLUGIN_NAME,
    PLUGINS_FEATURE_GATE,
)
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.admit import template_warnings
from kubevirt_cca.core.admission.gates import (
    ClusterView,
    FeatureGates,
    all_gates_on,
    build_view,
)
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.validate import validate_template, validate_vmi
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.convert import native_field
from kubevirt_cca.core.vmi.placement import VMI_KIND
from kubevirt_cca.core.vmi.request import find_template, native_form_advice, parse_request
from kubevirt_cca.core.vmi.requirements import requirements
from kubevirt_cca.core.vmi.webhook_table import MIGRATION_KIND, TEMPLATE_KINDS
from kubevirt_cca.core.wire.objects import labels_of, meta_str
from kubevirt_cca.core.wire.report_envelope import check, envelope
from kubevirt_cca.errors import ManifestError, RequestError, SettingsError, Violation

EXIT_ADMITTED, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = f"""\
Run kubevirt-cca's admission on a manifest without a cluster: the same mutating then
validating logic the webhook runs. Prints the object as it would be admitted (YAML), or every
reason it would be refused.

FILE is a VirtualMachineInstance, VirtualMachine, VirtualMachineInstanceReplicaSet or
VirtualMachinePool. A VMI is checked as if created (mutated, then validated); with --old, as
an update from the object in that file. Without --kubevirt-cr both feature gates
({CCA_FEATURE_GATE} and Sidecar; Plugins too when --config sets integrationMode: plugin) are
assumed on. Settings come from --config (the kubevirt-cca-config ConfigMap), else the defaults.

The integration mode is decided as the webhook decides it (integrationMode, the KubeVirt CR's
Plugins gate; see docs/plugins.md). In plugin mode the admitted VMI carries no hook sidecar
entry but cca.kubevirt.io/integration: plugin, and kubevirt-cca's Plugin object is assumed to
be installed (offline, the cluster's Plugin objects are unknown).

With --nodes, a request no CCA node honours (a parameter or algorithm, under the configured
dialect) is admitted with a warning, as the webhook does: its VMI would stay Pending.

With --output json the verdict is an AdmissionVerdict in the report envelope (docs/cli.md):
the admitted object, or a failed check per reason, with the warnings and notes.

Exit status: 0 admitted, 1 refused, 2 usage error (unreadable file, unsupported kind).

example:
  kubevirt-cca validate examples/vmi-cca.yaml
  kubectl get kubevirt -n kubevirt kubevirt -o yaml > kubevirt.yaml
  kubevirt-cca validate my-vm.yaml --kubevirt-cr kubevirt.yaml
  kubevirt-cca validate edited-vmi.yaml --old running-vmi.yaml
  kubectl get configmap -n kubevirt-cca kubevirt-cca-config -o yaml > config.yaml
  kubevirt-cca validate my-vm.yaml --kubevirt-cr kubevirt.yaml --config config.yaml
  kubevirt-cca validate my-vm.yaml --output json
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="the admission verdict on a manifest, offline",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="VMI / VM / replica set / pool manifest")
    parser.add_argument(
        "--kubevirt-cr", metavar="FILE", help="the cluster's KubeVirt CR (for its feature gates)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the kubevirt-cca-config ConfigMap (settings, integrationMode)",
    )
    parser.add_argument(
        "--old", metavar="FILE", help="check FILE as an update of the object in this file"
    )
    parser.add_argument(
        "--nodes",
        metavar="FILE",
        help="the cluster's nodes ('kubectl get nodes -o json'): "
        "warn when none honours a requested parameter; without it that is not checked",
    )
    add_output_flag(parser)
    parser.set_defaults(handler=run)


class _Verdict:
    """Where the verdict goes: text (the object on stdout, every line of reason, warning and
    note on stderr as it is found) or, with ``json``, one AdmissionVerdict at the end."""

    def __init__(self, *, json_output: bool) -> None:
        self.json_output = json_output
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def note(self, message: str) -> None:
        if self.json_output:
            self.notes.append(message)
        else:
            print(f"kubevirt-cca validate: note: {message}", file=sys.stderr)

    def warn(self, message: str) -> None:
        if self.json_output:
            self.warnings.append(message)
        else:
            print(f"kubevirt-cca validate: warning: {message}", file=sys.stderr)

    def refuse(self, violations: tuple[Violation, ...] | list[Violation]) -> int:
        if self.json_output:
            checks = [check(v.field, "fail", v.message) for v in violations]
            self._dump(checks, allowed=False, obj=None)
        else:
            for violation in violations:
                print(f"kubevirt-cca validate: refused: {violation}", file=sys.stderr)
        return EXIT_REFUSED

    def admit(self, obj: Mapping[str, Any]) -> int:
        if self.json_output:
            checks = [check("admission", "pass", "admitted")]
            checks += [check("admission", "warn", w) for w in self.warnings]
            self._dump(checks, allowed=True, obj=obj)
        else:
            sys.stdout.write(dump_yaml([dict(obj)]))
        return EXIT_ADMITTED

    def _dump(self, checks: list[dict[str, Any]], *, allowed: bool, obj: Any) -> None:
        payload = {"allowed": allowed, "object": obj, "notes": self.notes}
        json.dump(envelope("AdmissionVerdict", checks, payload), sys.stdout, indent=2)
        sys.stdout.write("\n")


def run(args: argparse.Namespace) -> int:
    out = _Verdict(json_output=args.output == "json")
    try:
        obj = load_manifest(args.file)
        old = load_manifest(args.old) if args.old is not None else None
        cluster = _cluster(args.kubevirt_cr, args.config, out)
        if args.nodes is not None:
            cluster = dataclasses.replace(cluster, cca_node_labels=_cca_nodes(args.nodes))
    except (ManifestError, SettingsError) as exc:
        return _usage(str(exc))
    kind = obj.get("kind")
    if kind == MIGRATION_KIND:
        out.note(
            "a migration is refused when the VMI it names uses CCA; offline, that VMI is unknown, "
            "so the migration is shown as admitted"
        )
        return out.admit(obj)
    if kind not in (VMI_KIND, *TEMPLATE_KINDS):
        kinds = ", ".join((VMI_KIND, *TEMPLATE_KINDS))
        return _usage(
            f"{args.file}: kind {kind!r} is not admitted by kubevirt-cca; expected one of {kinds}"
        )
    if old is not None and old.get("kind") != kind:
        return _usage(f"{args.old}: kind {old.get('kind')!r} differs from {args.file}'s {kind!r}")
    native = native_field(obj)
    if native is not None:
        return out.refuse(
            [
                Violation(
                    native,
                    (
                        "is VEP 129's native form, which stock KubeVirt does not have: "
                        "kubectl rejects it as an unknown field, "
                        "or the API server drops it and the VM "
                        "would start without CCA. " + native_form_advice(args.file)
                    ),
                )
            ]
        )
    if kind == VMI_KIND:
        return _vmi(obj, old, cluster, out)
    violations = validate_template(
        obj, operation="UPDATE" if old is not None else "CREATE", cluster=cluster, old=old
    )
    if violations:
        return out.refuse(violations)
    _note_empty_launch_security(obj, out)
    _warn(template_warnings(obj, cluster), obj, cluster, out)
    return out.admit(obj)


def _vmi(
    obj: dict[str, Any], old: Mapping[str, Any] | None, cluster: ClusterView, out: _Verdict
) -> int:
    if old is not None:
        violations = validate_vmi(obj, operation="UPDATE", cluster=cluster, old=old)
        if violations:
            return out.refuse(violations)
        return out.admit(obj)
    plan = plan_vmi(obj, cluster)
    if plan.violations:
        return out.refuse(plan.violations)
    admitted = patches.apply(obj, plan.patch)
    violations = validate_vmi(admitted, operation="CREATE", cluster=cluster)
    if violations:
        return out.refuse(violations)
    if plan.request is None:
        out.note(f"does not ask for a Realm (no {ENABLED_LABEL} label); admitted unchanged")
        _note_empty_launch_security(obj, out)
    _warn(template_warnings(obj, cluster), obj, cluster, out)
    return out.admit(admitted)


def _note_empty_launch_security(obj: Mapping[str, Any], out: _Verdict) -> None:
    """An admitted object (so: no CCA label) with ``launchSecurity: {}``: not ours to refuse,
    KubeVirt does (docs/vm-owners.md), but it may be a native-form request whose ``cca`` was
    lost."""
    template = find_template(obj)
    domain = template.spec.get("domain")
    launch_security = domain.get("launchSecurity") if isinstance(domain, Mapping) else None
    if isinstance(launch_security, Mapping) and not launch_security:
        out.note(
            f"{template.path('spec', 'domain', 'launchSecurity')} is empty: "
            "KubeVirt refuses that itself (on arm64: 'No launchSecurity support for architecture: "
            "arm64'). If it held VEP 129's native cca, the API server dropped it. "
            + native_form_advice()
        )


def _cluster(path: str | None, config_path: str | None, out: _Verdict) -> ClusterView:
    """The view admission would have, built by the webhook's builder from the files given."""
    data = _config_data(config_path)
    ours = frozenset({PLUGIN_NAME})
    if path is None:
        cluster = build_view(
            kubevirts=[], kubevirt_namespace="", config_data=data, plugin_names=ours
        )
        if cluster.config_problem is not None:
            raise SettingsError(f"{config_path}: {cluster.config_problem}")
        gates = all_gates_on()
        if cluster.integration_mode is IntegrationMode.PLUGIN:
            gates = FeatureGates(
                enabled=gates.enabled | {PLUGINS_FEATURE_GATE}, source=gates.source
            )
            out.note(
                "no --kubevirt-cr given; "
                f"assuming the {CCA_FEATURE_GATE} and Plugins feature gates are on"
            )
        else:
            out.note(
                "no --kubevirt-cr given; "
                f"assuming the {CCA_FEATURE_GATE} and Sidecar feature gates are on"
            )
        cluster = dataclasses.replace(cluster, gates=gates, gates_problem=None)
    else:
        cr = load_manifest(path)
        if cr.get("kind") != "KubeVirt":
            raise ManifestError(f"{path}: expected a KubeVirt object, got kind {cr.get('kind')!r}")
        cluster = build_view(
            kubevirts=[cr],
            config_data=data,
            plugin_names=ours,
            kubevirt_namespace=meta_str(cr, "namespace"),
        )
        if cluster.config_problem is not None:
            raise SettingsError(f"{config_path}: {cluster.config_problem}")
        if cluster.gates is None:
            raise SettingsError(f"{path}: {cluster.gates_problem}")
        status = cr.get("status")
        if not isinstance(status, Mapping) or "observedKubeVirtVersion" not in status:
            # A CR saved without its status says nothing about the version: not checked.
            cluster = dataclasses.replace(cluster, kubevirt_version=None)
    decision = cluster.mode
    if decision is not None:
        out.note(f"integration mode {decision.mode.value} ({decision.reason})")
        if decision.mode is IntegrationMode.PLUGIN:
            out.note(f"assuming kubevirt-cca's Plugin object ({PLUGIN_NAME}) is installed")
    return cluster


def _config_data(path: str | None) -> Mapping[str, Any] | None:
    """The data of a kubevirt-cca-config manifest (``None``: no file, the defaults)."""
    if path is None:
        return None
    obj = load_manifest(path)
    if obj.get("kind") != "ConfigMap":
        raise ManifestError(
            f"{path}: expected the ConfigMap {CONFIG_MAP_NAME}, got kind {obj.get('kind')!r}"
        )
    data = obj.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise ManifestError(f"{path}: data: expected a map of strings")
    return data


def _cca_nodes(path: str) -> tuple[Mapping[str, str], ...]:
    """The labels of the CCA nodes in a Node, NodeList or List manifest."""
    obj = load_manifest(path)
    kind = obj.get("kind")
    if kind == "Node":
        nodes: Any = [obj]
    elif kind in ("NodeList", "List"):
        nodes = obj.get("items")
    else:
        raise ManifestError(
            f"{path}: expected nodes ('kubectl get nodes -o json'), got kind {kind!r}"
        )
    if not isinstance(nodes, list):
        raise ManifestError(f"{path}: items: expected a list of nodes")
    found: list[Mapping[str, str]] = []
    for node in nodes:
        node_labels = labels_of(node)
        if node_labels.get(NODE_CCA_LABEL) == "true":
            found.append({str(k): str(v) for k, v in node_labels.items()})
    return tuple(found)


def _warn(warnings: list[str], obj: Mapping[str, Any], cluster: ClusterView, out: _Verdict) -> None:
    for warning in warnings:
        out.warn(warning)
    if cluster.cca_node_labels is not None:
        return
    try:
        request = parse_request(obj)
    except RequestError:
        return
    if request is not None and len(requirements(request, cluster.settings.dialect)) > 1:
        out.note(
            "no --nodes given; whether any node honours the requested parameters is not checked "
            "(docs/vm-owners.md)"
        )


def _usage(message: str) -> int:
    print(f"kubevirt-cca validate: error: {message}", file=sys.stderr)
    return EXIT_USAGE


class _Dumper(yaml.SafeDumper):
    """Safe YAML that keeps multi-line strings (cloud-init user data) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(ch in value for ch in "\r\t") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(documents: list[Any]) -> str:
    """Documents as YAML, keys in their order, multi-line strings as literal blocks."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
