"""What the install promises about its workloads and webhooks, object by object."""

from __future__ import annotations

from typing import Any

import pytest

from kubevirt_cca.core.install import SELF_SIGNED, InstallOptions, install_objects
from tests.install.support import find


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return install_objects(InstallOptions())


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_webhook_deployment_is_highly_available_and_locked_down(
    objects: list[dict[str, Any]],
) -> None:
    deployment = find(objects, "Deployment", "kubevirt-cca-webhook")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
        "podAffinityTerm"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert _selects(term["labelSelector"]["matchLabels"], labels)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    args = container["args"]
    assert args[0] == "webhook"
    assert args[args.index("--port") + 1] == str(ports["https"])
    assert args[args.index("--health-port") + 1] == str(ports["health"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args[args.index("--tls-cert-file") + 1] == f"{mounts['tls']}/tls.crt"
    assert args[args.index("--tls-key-file") + 1] == f"{mounts['tls']}/tls.key"
    budget = find(objects, "PodDisruptionBudget", "kubevirt-cca-webhook")
    assert budget["spec"]["minAvailable"] == 1
    assert _selects(budget["spec"]["selector"]["matchLabels"], labels)
    service = find(objects, "Service", "kubevirt-cca-webhook")
    assert _selects(service["spec"]["selector"], labels)
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]


def test_the_labeller_runs_on_arm64_nodes_with_the_host_read_only(
    objects: list[dict[str, Any]],
) -> None:
    daemon_set = find(objects, "DaemonSet", "kubevirt-cca-labeller")
    pod = daemon_set["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["kubernetes.io/arch"] == "arm64"
    assert pod["serviceAccountName"] == "kubevirt-cca-labeller"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["host"]["hostPath"]["path"] == "/"
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["host"] == {"name": "host", "mountPath": "/host", "readOnly": True}
    args = container["args"]
    assert args[args.index("--root") + 1] == "/host"
    assert args[args.index("--node-name") + 1] == "$(NODE_NAME)"
    assert container["env"] == [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    ]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "privileged" not in container["securityContext"]
    # libvirt's answer: written by the virt-launcher image's init container, read by the labeller.
    (init,) = pod["initContainers"]
    shared = next(m for m in init["volumeMounts"] if m["name"] == "domcapabilities")
    domcaps = args[args.index("--domcaps-file") + 1]
    assert domcaps.startswith(shared["mountPath"] + "/")
    assert mounts["domcapabilities"]["mountPath"] == shared["mountPath"]
    assert "node-labeller.sh" in init["command"][-1]
    assert init["image"].split(":")[0].endswith("/virt-launcher")


def test_the_webhooks_fail_closed_only_for_labelled_vmis(objects: list[dict[str, Any]]) -> None:
    mutating = find(objects, "MutatingWebhookConfiguration", "kubevirt-cca")
    validating = find(objects, "ValidatingWebhookConfiguration", "kubevirt-cca")
    hooks = {h["name"]: h for h in mutating["webhooks"] + validating["webhooks"]}
    selector = {"matchExpressions": [{"key": "cca.kubevirt.io/enabled", "operator": "Exists"}]}
    for name in ("mutate-vmi.cca.kubevirt.io", "validate-vmi.cca.kubevirt.io"):
        assert hooks[name]["objectSelector"] == selector
        assert hooks[name]["failurePolicy"] == "Fail"
        assert hooks[name]["rules"][0]["resources"] == ["virtualmachineinstances"]
    for name in ("validate-templates.cca.kubevirt.io", "validate-migration.cca.kubevirt.io"):
        assert "objectSelector" not in hooks[name]
        assert hooks[name]["failurePolicy"] == "Ignore"
    # The Plugins path's pod webhook: only labelled virt-launcher pods, failing closed.
    pod = hooks["mutate-launcher-pod.cca.kubevirt.io"]
    assert pod["objectSelector"] == {
        "matchExpressions": [
            {"key": "cca.kubevirt.io/enabled", "operator": "Exists"},
            {"key": "kubevirt.io", "operator": "In", "values": ["virt-launcher"]},
        ]
    }
    assert pod["failurePolicy"] == "Fail"
    assert pod["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "operations": ["CREATE"],
            "scope": "Namespaced",
        }
    ]
    assert pod["clientConfig"]["service"]["path"] == "/mutate-launcher-pod"
    # The entrance to the mixed state: KubeVirt's cluster-scoped Plugin objects, CREATE only,
    # failing closed (docs/admission.md, "Plugin objects").
    plugins = hooks["validate-plugin.cca.kubevirt.io"]
    assert "objectSelector" not in plugins
    assert plugins["failurePolicy"] == "Fail"
    assert plugins["rules"] == [
        {
            "apiGroups": ["plugin.kubevirt.io"],
            "apiVersions": ["v1alpha1"],
            "resources": ["plugins"],
            "operations": ["CREATE"],
            "scope": "Cluster",
        }
    ]
    assert plugins["clientConfig"]["service"]["path"] == "/validate-plugin"
    # ... and the KubeVirt CR's gate turned on: UPDATE only, never blocking KubeVirt (Ignore).
    kubevirt = hooks["validate-kubevirt.cca.kubevirt.io"]
    assert "objectSelector" not in kubevirt
    assert kubevirt["failurePolicy"] == "Ignore"
    assert kubevirt["rules"] == [
        {
            "apiGroups": ["kubevirt.io"],
            "apiVersions": ["v1"],
            "resources": ["kubevirts"],
            "operations": ["UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert {r for h in hooks.values() for rule in h["rules"] for r in rule["resources"]} == {
        "virtualmachineinstances",
        "virtualmachines",
        "virtualmachineinstancereplicasets",
        "virtualmachinepools",
        "virtualmachineinstancemigrations",
        "pods",
        "plugins",
        "kubevirts",
    }
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "IfNeeded"
    assert mutating["webhooks"][0]["rules"][0]["operations"] == ["CREATE"]
    for hook in hooks.values():
        assert hook["sideEffects"] == "None"
        assert 1 <= hook["timeoutSeconds"] <= 30
        assert hook["clientConfig"]["service"]["name"] == "kubevirt-cca-webhook"


def test_the_config_map_holds_every_default(objects: list[dict[str, Any]]) -> None:
    from kubevirt_cca.core.cluster.settings import Settings, settings_from_config_map

    config = find(objects, "ConfigMap", "kubevirt-cca-config")
    assert settings_from_config_map(config["data"]) == Settings()
    assert config["data"] == {
        "dialect": "vep",
        "firmware": "/usr/share/AAVMF/AAVMF_CODE.cca.fd",
        "virtioIOMMU": "on",
        "hookImage": "kubevirt-cca:0.1.0",
        "integrationMode": "auto",
    }


def test_self_signed_mode_swaps_only_the_certificate_source() -> None:
    default = install_objects(InstallOptions())
    self_signed = install_objects(InstallOptions(certificates=SELF_SIGNED))
    pod = find(self_signed, "Deployment", "kubevirt-cca-webhook")["spec"]["template"]["spec"]
    # The webhook pod is the same in both modes: the Secret mounted, no certificate work.
    assert pod == find(default, "Deployment", "kubevirt-cca-webhook")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "kubevirt-cca-webhook-tls"
    job = find(self_signed, "Job", "kubevirt-cca-certs")["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == "kubevirt-cca-certs"
    assert job["containers"][0]["args"][:2] == ["certs", "ensure"]
    assert {o["kind"] for o in default} - {o["kind"] for o in self_signed} == {
        "Certificate",
        "Issuer",
    }
    assert {o["kind"] for o in self_signed} - {o["kind"] for o in default} == {"Job", "CronJob"}
