"""The Plugin object and the virt-launcher pod injection, checked against what the API enforces.

The Plugin object is checked with a real CEL evaluator against the rules KubeVirt's admission
applies to Plugins (socket path under /var/run/kubevirt-plugin/, ending in .sock, at most 108
characters — a unix socket path limit — and exactly one of cel/sidecar per domain hook). The
injected pod is validated against the Kubernetes Pod schema.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import jsonpatch
import kubernetes_validate
import pytest

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    PLUGIN_CONTAINER,
    PLUGIN_SOCKET,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SOCKETS_VOLUME,
)
from kubevirt_cca.core.admission.launcher_pod import pod_patch
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install.plugin_manifest import plugin_object

K8S_VERSION = "1.33"

# KubeVirt's validation of a Plugin's domain hooks, as CEL over one hook (`self`).
_NO_SIDECAR = "!has(self.sidecar) || "
_FAILURE_STRATEGY = "!has(self.failureStrategy) || self.failureStrategy in ['Fail', 'Ignore']"
HOOK_RULES = {
    "exactly one of cel or sidecar": "has(self.cel) != has(self.sidecar)",
    "socket path under /var/run/kubevirt-plugin/": (
        _NO_SIDECAR + "self.sidecar.socketPath.startsWith('/var/run/kubevirt-plugin/')"
    ),
    "socket path ends in .sock": _NO_SIDECAR + "self.sidecar.socketPath.endsWith('.sock')",
    "socket path at most 108 characters": _NO_SIDECAR + "size(self.sidecar.socketPath) <= 108",
    "failure strategy Fail or Ignore": _FAILURE_STRATEGY,
}
SPEC_RULES = {
    "failure strategy Fail or Ignore": _FAILURE_STRATEGY,
}


def cel(expression: str, self_value: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return bool(program.evaluate({"self": celpy.json_to_cel(self_value)}))


def broken_hook_rules(hook: dict[str, Any]) -> list[str]:
    return [name for name, rule in HOOK_RULES.items() if not cel(rule, hook)]


def vmi_labels_condition(labels: dict[str, str]) -> bool:
    env = celpy.Environment()
    spec = plugin_object()["spec"]
    program = env.program(env.compile(spec["condition"]))
    return bool(program.evaluate({"vmi": celpy.json_to_cel({"Labels": labels})}))


def test_plugin_object_passes_kubevirts_rules() -> None:
    obj = plugin_object()
    assert obj["apiVersion"] == "plugin.kubevirt.io/v1alpha1" and obj["kind"] == "Plugin"
    spec = obj["spec"]
    assert spec["failureStrategy"] == "Fail"
    assert all(cel(rule, spec) for rule in SPEC_RULES.values())
    for hook in spec["domainHooks"]:
        assert broken_hook_rules(hook) == []
        assert hook["failureStrategy"] == "Fail"
    assert PLUGIN_SOCKET.startswith(PLUGIN_SOCKET_DIR + "/")


@pytest.mark.parametrize(
    ("hook", "broken"),
    [
        ({"sidecar": {"socketPath": "/tmp/x.sock"}}, "socket path under /var/run/kubevirt-plugin/"),
        ({"sidecar": {"socketPath": "/var/run/kubevirt-plugin/a/x"}}, "socket path ends in .sock"),
        (
            {"sidecar": {"socketPath": "/var/run/kubevirt-plugin/" + "a" * 90 + ".sock"}},
            "socket path at most 108 characters",
        ),
        (
            {"cel": {"expression": "true"}, "sidecar": {"socketPath": PLUGIN_SOCKET}},
            "exactly one of cel or sidecar",
        ),
        ({}, "exactly one of cel or sidecar"),
    ],
)
def test_the_rules_can_fail(hook: dict[str, Any], broken: str) -> None:
    assert broken in broken_hook_rules(hook)


@pytest.mark.parametrize(
    ("labels", "called"),
    [
        ({ENABLED_LABEL: "true"}, True),
        # any value calls the hook, which then refuses a value other than "true": never skipped
        ({ENABLED_LABEL: "false"}, True),
        ({"app": "x"}, False),
        ({}, False),
    ],
)
def test_plugin_condition(labels: dict[str, str], called: bool) -> None:
    assert vmi_labels_condition(labels) is called


def launcher_pod(*, labelled: bool = True, with_volume: bool = True) -> dict[str, Any]:
    labels = {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "realm"}
    if labelled:
        labels[ENABLED_LABEL] = "true"
    volumes: list[dict[str, Any]] = [{"name": "private", "emptyDir": {}}]
    if with_volume:
        volumes.append({"name": PLUGIN_SOCKETS_VOLUME, "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "virt-launcher-realm-abcde", "namespace": "default", "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "compute",
                    "image": "virt-launcher:v1.9.0",
                    "volumeMounts": [
                        {"name": PLUGIN_SOCKETS_VOLUME, "mountPath": "/var/run/kubevirt-plugin"}
                    ]
                    if with_volume
                    else [],
                }
            ],
            "volumes": volumes,
        },
    }


def test_injection_into_a_labelled_launcher_pod() -> None:
    pod = launcher_pod()
    settings = Settings(dialect=Dialect.QEMU_COMMANDLINE)
    ops, violations = pod_patch(pod, settings, "example/kubevirt-cca:0.1.0")
    assert violations == []
    patched = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    kubernetes_validate.validate(patched, K8S_VERSION, strict=True)
    ours = [c for c in patched["spec"]["containers"] if c["name"] == PLUGIN_CONTAINER]
    assert len(ours) == 1
    container = ours[0]
    assert container["args"][:3] == ["hook", "--plugin-socket", PLUGIN_SOCKET]
    assert container["args"][container["args"].index("--dialect") + 1] == "qemu-commandline"
    assert container["volumeMounts"] == [
        {"name": PLUGIN_SOCKETS_VOLUME, "mountPath": PLUGIN_SOCKET_DIR, "subPath": "kubevirt-cca"}
    ]
    assert container["securityContext"]["runAsUser"] == 107
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # reinvocation: the container is there, nothing more to add
    assert pod_patch(patched, settings, "example/kubevirt-cca:0.1.0") == ([], [])


def test_other_pods_are_left_alone() -> None:
    assert pod_patch(launcher_pod(labelled=False), Settings(), "i") == ([], [])
    pod = launcher_pod()
    pod["metadata"]["labels"]["kubevirt.io"] = "virt-handler"
    assert pod_patch(pod, Settings(), "i") == ([], [])


def test_labelled_pod_without_the_socket_volume_is_refused() -> None:
    ops, violations = pod_patch(launcher_pod(with_volume=False), Settings(), "i")
    assert ops == []
    assert violations and violations[0].field == "spec.volumes"
    assert "Plugins gate is off" in violations[0].message


def test_the_schema_check_can_fail() -> None:
    pod = launcher_pod()
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": 3}]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
