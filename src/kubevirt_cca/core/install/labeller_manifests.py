"""The node labeller: DaemonSet on arm64 nodes, its RBAC, and the policy that fences it in.

How ``virsh domcapabilities`` runs: KubeVirt starts a fresh libvirt inside every virt-launcher
pod, so there is no node-wide libvirt socket to ask, and the libvirt that will start a Realm is
virt-launcher's (a CCA-capable build of it is what makes a cluster Realm-ready). So the
labeller does what KubeVirt's own node labeller does in virt-handler's init container: an init
container in the **virt-launcher image** runs KubeVirt's ``node-labeller.sh``, which starts
``virtqemud`` and writes ``virsh domcapabilities --machine virt --arch aarch64`` into a shared
``emptyDir``; the labeller reads that file (``--domcaps-file``) and probes the host (``/`` mounted
read-only at ``/host``). docs/architecture.md explains the choice and the alternative
(``--domcaps-command``).
"""

from __future__ import annotations

import shlex
from typing import Any

from kubevirt_cca.constants import (
    LABELLER_EVENT_REASONS,
    LABELLER_OWNED_LABELS,
    NODE_DETECTION_ANNOTATION,
    QEMU_BINARIES,
    RME_GUEST_HELP_ARGS,
)
from kubevirt_cca.core.install.names import (
    DOMCAPS_DIR,
    DOMCAPS_FILE,
    EVENT_RESTRICTION_POLICY,
    HOST_ROOT,
    LABELLER,
    LABELLER_HEALTH_PORT,
    LABELLER_INTERVAL_SECONDS,
    NODE_RESTRICTION_POLICY,
    RME_GUEST_HELP_FILE,
    SCRATCH_DIR,
    InstallOptions,
    Manifest,
    metadata,
    selector,
    service_account_user,
)
from kubevirt_cca.core.install.rbac import binding, cluster_role, role, rule, service_account
from kubevirt_cca.core.install.restriction import (
    or_empty,
    resource_rule,
    service_account_policy,
)
from kubevirt_cca.core.node.labels import OWNED_LABELS

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"

# KubeVirt's script exits non-zero when libvirt cannot answer; the labeller must still run and
# say why (an absent or unreadable file becomes a reason on the node), so the failure is logged
# and the init container succeeds.
DOMCAPS_SCRIPT = (
    "node-labeller.sh || echo 'kubevirt-cca: node-labeller.sh failed (status '$?'); "
    "the labeller will report that the domain capabilities could not be read' >&2"
)
# Then the same image's QEMU is asked which properties its rme-guest object takes (what the
# qemu-commandline dialect can pass on). QEMU answers `-object TYPE,help` before it creates a
# machine, so no /dev/kvm is needed; its answer (or error) goes to a file the labeller reads.
RME_GUEST_SCRIPT = (
    f"for q in {' '.join(shlex.quote(b) for b in QEMU_BINARIES)}; do "
    f'if [ -x "$q" ]; then "$q" {shlex.join(RME_GUEST_HELP_ARGS)} '
    f"> {shlex.quote(RME_GUEST_HELP_FILE)} 2>&1; break; fi; done; true"
)


# Node Events go to the "default" namespace (as the kubelet's do), so that is the one place the
# labeller may create Events.
EVENTS_NAMESPACE = "default"


def labeller_rbac(options: InstallOptions) -> list[Manifest]:
    """Nodes: get and patch (the policy below limits patch to its own node and keys); Events
    in ``default``, nowhere else."""
    return [
        service_account(LABELLER, component="labeller", namespace=options.namespace),
        cluster_role(LABELLER, component="labeller", rules=[rule("", ["nodes"], ["get", "patch"])]),
        binding(
            LABELLER,
            component="labeller",
            role_kind="ClusterRole",
            subject_namespace=options.namespace,
        ),
        role(
            LABELLER,
            component="labeller",
            namespace=EVENTS_NAMESPACE,
            rules=[rule("", ["events"], ["create"])],
        ),
        binding(
            LABELLER,
            component="labeller",
            role_kind="Role",
            subject_namespace=options.namespace,
            namespace=EVENTS_NAMESPACE,
        ),
    ]


def labeller_daemon_set(options: InstallOptions) -> Manifest:
    init: dict[str, Any] = {
        "name": "domcapabilities",
        "image": options.virt_launcher_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", f"{DOMCAPS_SCRIPT}; {RME_GUEST_SCRIPT}"],
        # As in KubeVirt's virt-handler: libvirt must open /dev/kvm to probe KVM's features, and
        # the script may create and open up /dev/kvm; the virt-launcher image's own user is not
        # root (107), hence root here.
        "securityContext": {"privileged": True, "runAsUser": 0},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "volumeMounts": [{"name": "domcapabilities", "mountPath": DOMCAPS_DIR}],
    }
    container: dict[str, Any] = {
        "name": "labeller",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "labeller",
            "--node-name",
            "$(NODE_NAME)",
            "--domcaps-file",
            DOMCAPS_FILE,
            "--rme-guest-help-file",
            RME_GUEST_HELP_FILE,
            "--root",
            HOST_ROOT,
            "--interval",
            str(LABELLER_INTERVAL_SECONDS),
            "--health-port",
            str(LABELLER_HEALTH_PORT),
        ],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "ports": [{"name": "health", "containerPort": LABELLER_HEALTH_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"}, "periodSeconds": 10},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        # Root without any capability: reads root-owned host files (/var/log/kern.log,
        # /var/log/dmesg), writes nothing on the host (its / is mounted read-only) and escalates
        # nothing. /dev/kmsg needs CAP_SYSLOG where kernel.dmesg_restrict=1 (the usual
        # default); the probe then notes why it could not read it (docs/node-labels.md).
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "host", "mountPath": HOST_ROOT, "readOnly": True},
            {"name": "domcapabilities", "mountPath": DOMCAPS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": SCRATCH_DIR},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(LABELLER, component="labeller", namespace=options.namespace),
        "spec": {
            "selector": {"matchLabels": selector("labeller")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": metadata(LABELLER, component="labeller")["labels"]},
                "spec": {
                    "serviceAccountName": LABELLER,
                    "nodeSelector": {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"},
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "initContainers": [init],
                    "containers": [container],
                    "volumes": [
                        {"name": "host", "hostPath": {"path": "/", "type": "Directory"}},
                        {"name": "domcapabilities", "emptyDir": {"sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                    ],
                },
            },
        },
    }


def _changed_keys(field: str) -> str:
    """CEL: keys of metadata.<field> added, removed or changed between oldObject and object."""
    new, old = f"variables.new{field.capitalize()}", f"variables.old{field.capitalize()}"
    return (
        f"{new}.filter(k, !(k in {old}) || {old}[k] != {new}[k]) + {old}.filter(k, !(k in {new}))"
    )


OWNED_LABEL_CEL = "k in [" + ", ".join(f"'{key}'" for key in OWNED_LABELS) + "]"
# A key under one of the labeller's prefixes that it no longer writes (an older version's) is
# its to remove, never to set.
STALE_LABEL_CEL = " || ".join(
    f"k.startsWith('{owned}')" for owned in LABELLER_OWNED_LABELS if owned.endswith("-")
)
OWNED_ANNOTATION_CEL = f"k == '{NODE_DETECTION_ANNOTATION}'"


def labeller_node_restriction(options: InstallOptions) -> list[Manifest]:
    """A ValidatingAdmissionPolicy + binding: the labeller changes only its own node's keys.

    As KubeVirt does for virt-handler (after CVE-2023-26484): RBAC can only say "may patch
    nodes"; this policy, evaluated in the API server, says which node (the one its pod runs on,
    from the token's ``authentication.kubernetes.io/node-name``) and which keys.
    """
    user = service_account_user(options.namespace, LABELLER)
    extra = f"request.userInfo.extra['{NODE_NAME_EXTRA}']"
    variables = [
        {
            "name": "nodeName",
            "expression": (
                "has(request.userInfo.extra) "
                f"&& '{NODE_NAME_EXTRA}' in request.userInfo.extra && size({extra}) == 1 ? "
                f"{extra}[0] : ''"
            ),
        },
        {"name": "newLabels", "expression": or_empty("object.metadata", "labels", "{}")},
        {"name": "oldLabels", "expression": or_empty("oldObject.metadata", "labels", "{}")},
        {"name": "newAnnotations", "expression": or_empty("object.metadata", "annotations", "{}")},
        {
            "name": "oldAnnotations",
            "expression": or_empty("oldObject.metadata", "annotations", "{}"),
        },
        # Set: only the keys the labeller writes. Removed: those, and any key under its prefixes
        # (a stale one from an older version is the labeller's to clean up).
        {
            "name": "foreignLabels",
            "expression": (
                "variables.newLabels.filter(k, (!(k in variables.oldLabels) || "
                f"variables.oldLabels[k] != variables.newLabels[k]) && !({OWNED_LABEL_CEL})) + "
                "variables.oldLabels.filter(k, "
                f"!(k in variables.newLabels) && !({OWNED_LABEL_CEL}) && !({STALE_LABEL_CEL}))"
            ),
        },
        {
            "name": "foreignAnnotations",
            "expression": (
                f"({_changed_keys('annotations')}).filter(k, !({OWNED_ANNOTATION_CEL}))"
            ),
        },
    ]
    validations = [
        {
            "expression": "variables.nodeName != ''",
            "message": (
                f"kubevirt-cca-labeller's token names no node (user extra {NODE_NAME_EXTRA}); "
                "it needs a pod-bound service account token, as Kubernetes 1.30 and newer issue"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": "variables.nodeName == '' || object.metadata.name == variables.nodeName",
            "messageExpression": (
                "'kubevirt-cca-labeller on node ' + variables.nodeName + ' may only change its own "
                "Node, not ' + object.metadata.name"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": "size(variables.foreignLabels) == 0",
            "messageExpression": (
                f"'kubevirt-cca-labeller may only change the labels {', '.join(OWNED_LABELS)}, "
                "not: ' + variables.foreignLabels.join(', ')"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": "size(variables.foreignAnnotations) == 0",
            "messageExpression": (
                "'kubevirt-cca-labeller may only change the annotation "
                f"{NODE_DETECTION_ANNOTATION}, not: ' + variables.foreignAnnotations.join(', ')"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": (
                "has(object.spec) == has(oldObject.spec) && "
                "(!has(object.spec) || object.spec == oldObject.spec)"
            ),
            "message": "kubevirt-cca-labeller may not change a Node's spec (taints, podCIDR, ...)",
            "reason": "Forbidden",
        },
        {
            "expression": (
                "("
                + or_empty("object.metadata", "ownerReferences", "[]")
                + ") == ("
                + or_empty("oldObject.metadata", "ownerReferences", "[]")
                + ") && ("
                + or_empty("object.metadata", "finalizers", "[]")
                + ") == ("
                + or_empty("oldObject.metadata", "finalizers", "[]")
                + ")"
            ),
            "message": "kubevirt-cca-labeller may not change a Node's owners or finalizers",
            "reason": "Forbidden",
        },
    ]
    node_policy = service_account_policy(
        NODE_RESTRICTION_POLICY,
        component="labeller",
        user=user,
        rules=[resource_rule("", ["nodes"], ["UPDATE"])],
        variables=variables,
        validations=validations,
    )
    return [*node_policy, *_event_restriction(user, variables[0])]


def _event_restriction(user: str, node_name: dict[str, str]) -> list[Manifest]:
    """A policy + binding: the labeller's Events (RBAC: create in ``default``) are only about
    its own Node, with its own reasons and component: it cannot forge Events about other
    objects, or in another node's name."""
    reasons = ", ".join(f"'{r}'" for r in LABELLER_EVENT_REASONS)
    validations = [
        {
            "expression": f"request.namespace == '{EVENTS_NAMESPACE}'",
            "message": f"kubevirt-cca-labeller records Events in namespace {EVENTS_NAMESPACE} only",
            "reason": "Forbidden",
        },
        {
            "expression": (
                "has(object.involvedObject) && has(object.involvedObject.kind) && "
                "object.involvedObject.kind == 'Node' && has(object.involvedObject.name) && "
                "variables.nodeName != '' && object.involvedObject.name == variables.nodeName && "
                "(!has(object.involvedObject.namespace) || object.involvedObject.namespace == '')"
            ),
            "messageExpression": (
                "'kubevirt-cca-labeller on node ' + variables.nodeName + ' may only record Events "
                "about its own Node'"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": f"has(object.reason) && object.reason in [{reasons}]",
            "message": f"kubevirt-cca-labeller's Events have the reasons {reasons} only",
            "reason": "Forbidden",
        },
        # Both places a component is named: kubectl describe shows source.component when
        # reportingComponent is empty (found on the real kube-apiserver: an Event with only
        # source.component: kubelet passed when this checked reportingComponent alone).
        {
            "expression": (
                "(!has(object.reportingComponent) "
                f"|| object.reportingComponent == '{LABELLER}' || object.reportingComponent == '') "
                "&& (!has(object.source) || !has(object.source.component) "
                f"|| object.source.component == '{LABELLER}' || object.source.component == '')"
            ),
            "message": (
                f"kubevirt-cca-labeller's Events are reported as {LABELLER} "
                "(reportingComponent and source.component)"
            ),
            "reason": "Forbidden",
        },
    ]
    return service_account_policy(
        EVENT_RESTRICTION_POLICY,
        component="labeller",
        user=user,
        rules=[resource_rule("", ["events"], ["CREATE", "UPDATE"])],
        variables=[node_name],
        validations=validations,
    )
