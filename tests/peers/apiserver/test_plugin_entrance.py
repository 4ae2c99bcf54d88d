"""The entrance to the mixed state through the real API server: ``kubectl create`` of a KubeVirt
Plugin object while kubevirt-cca runs as a hook sidecar (docs/plugins.md, "The mixed state").

The ValidatingWebhookConfiguration is the one ``kubevirt-cca manifests`` prints; the webhook
process watches the KubeVirt CR and kubevirt-cca-config as in a cluster, so each change below is
waited for (bounded) before the refusal is checked. No virt-operator runs here: the KubeVirt CR
reports no version unless the test writes its status.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.peers.apiserver.conftest import GATES, INSTALL_NAMESPACE, KUBEVIRT_NAMESPACE, Installed

pytestmark = pytest.mark.peers

CONFIG = "kubevirt-cca-config"
OTHERS = {
    "apiVersion": "plugin.kubevirt.io/v1alpha1",
    "kind": "Plugin",
    "metadata": {"name": "someone-elses"},
    "spec": {"domainHooks": [{"sidecar": {"socketPath": "/var/run/x/x.sock"}}]},
}
# kubectl shows the webhook's Invalid status as "The request is invalid: <causes>".
REFUSAL = (
    "The request is invalid: metadata.name: creating Plugin {name} would put the "
    "cluster in the mixed state: "
    "kubevirt-cca runs as a hook sidecar (integrationMode=sidecar in kubevirt-cca-config) "
    "and KubeVirt's Plugins gate is on"
)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """The webhook sees a change through its watches a moment after it lands."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.25)


def patch_kubevirt(installed: Installed, gates: list[str]) -> None:
    installed.server.kubectl(
        "patch",
        "kubevirt",
        "kubevirt",
        "-n",
        KUBEVIRT_NAMESPACE,
        "--type=merge",
        "-p",
        json.dumps(
            {"spec": {"configuration": {"developerConfiguration": {"featureGates": gates}}}}
        ),
    )


def patch_version(installed: Installed, version: str | None) -> None:
    installed.server.kubectl(
        "patch",
        "kubevirt",
        "kubevirt",
        "-n",
        KUBEVIRT_NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"observedKubeVirtVersion": version}}),
    )


def patch_config(installed: Installed, data: dict[str, str | None]) -> None:
    installed.server.kubectl(
        "patch",
        "configmap",
        CONFIG,
        "-n",
        INSTALL_NAMESPACE,
        "--type=merge",
        "-p",
        json.dumps({"data": data}),
    )


def dry_run(installed: Installed, obj: dict[str, Any]) -> str:
    """The API server's answer to a server-side dry run (webhooks are called): "" if admitted."""
    done = installed.server.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(obj), check=False
    )
    return "" if done.returncode == 0 else done.stderr


def plugin_names(installed: Installed) -> list[str]:
    listed = installed.server.kubectl("get", "plugins.plugin.kubevirt.io", "-o", "json")
    return sorted(o["metadata"]["name"] for o in json.loads(listed.stdout)["items"])


@pytest.fixture
def sidecar_with_plugins_gate(installed: Installed) -> Iterator[Installed]:
    """kubevirt-cca pinned to sidecar mode with the qemu-commandline dialect, KubeVirt's Plugins
    gate on, no Plugin object yet; everything put back afterwards."""
    assert plugin_names(installed) == []
    patch_config(installed, {"integrationMode": "sidecar", "dialect": "qemu-commandline"})
    patch_kubevirt(installed, [*GATES, "Plugins"])
    try:
        yield installed
    finally:
        installed.server.kubectl("delete", "plugins.plugin.kubevirt.io", "--all")
        patch_version(installed, None)
        patch_kubevirt(installed, GATES)
        patch_config(installed, {"integrationMode": "auto", "dialect": None})


def test_a_plugin_is_refused_in_sidecar_mode_and_ours_admitted_in_plugin_mode(
    sidecar_with_plugins_gate: Installed,
) -> None:
    installed = sidecar_with_plugins_gate
    ours = installed.server.kubectl("kustomize", str(ROOT / "deploy" / "plugin")).stdout
    # Until its watch has listed the just-served Plugin CRD the webhook refuses every Plugin
    # object as unlistable (fail closed); wait for the mixed-state refusal itself.
    wait_until(
        lambda: "mixed state: kubevirt-cca runs" in dry_run(installed, OTHERS),
        "the webhook sees sidecar + Plugins",
    )
    # The KubeVirt CR reports no version (no virt-operator): 1.10 cannot be assumed.
    for name, stdin in (("someone-elses", json.dumps(OTHERS)), ("kubevirt-cca", ours)):
        done = installed.server.kubectl("create", "-f", "-", stdin=stdin, check=False)
        assert done.returncode != 0, done.stdout
        message = done.stderr.strip()
        assert REFUSAL.format(name=name) in message, message
        assert (
            "with dialect qemu-commandline before KubeVirt 1.10 that rebuild drops the "
            "Realm's QEMU arguments and a CCA VM admitted earlier would start as a plain VM "
            "(this KubeVirt's version is not known)"
        ) in message, message
        assert (
            "Move kubevirt-cca to plugin mode first (integrationMode: plugin in "
            "kubevirt-cca-config, with dialect qemu-commandline), or upgrade KubeVirt to "
            "1.10 or newer; see docs/plugins.md"
        ) in message, message
    assert plugin_names(installed) == []

    # docs/plugins.md, moving to plugin mode: switch the mode, then apply the Plugin object.
    patch_config(installed, {"integrationMode": "plugin"})
    wait_until(lambda: dry_run(installed, OTHERS) == "", "the webhook sees plugin mode")
    applied = installed.server.kubectl("apply", "-k", str(ROOT / "deploy" / "plugin"), check=False)
    assert applied.returncode == 0, applied.stderr
    assert "Warning" not in applied.stderr
    assert plugin_names(installed) == ["kubevirt-cca"]


def test_on_kubevirt_1_10_the_qemu_commandline_mixed_state_is_admitted_with_a_warning(
    sidecar_with_plugins_gate: Installed,
) -> None:
    installed = sidecar_with_plugins_gate
    patch_version(installed, "v1.10.0")
    wait_until(lambda: dry_run(installed, OTHERS) == "", "the webhook sees KubeVirt 1.10")
    done = installed.server.kubectl("create", "-f", "-", stdin=json.dumps(OTHERS))
    assert (
        "Warning: mixed state: KubeVirt's Plugins gate is on and Plugin objects exist "
        "(someone-elses)"
    ) in done.stderr, done.stderr
    assert plugin_names(installed) == ["someone-elses"]
    # Another dialect does not survive the rebuild on any version: refused.
    patch_config(installed, {"dialect": "vep"})
    other = {**OTHERS, "metadata": {"name": "another"}}
    wait_until(lambda: "with dialect vep" in dry_run(installed, other), "the webhook sees vep")
    refused = dry_run(installed, other)
    assert REFUSAL.format(name="another") in refused, refused
    assert "with dialect vep that rebuild refuses the Realm's <launchSecurity type='cca'>" in (
        refused
    )
    assert "upgrade KubeVirt" not in refused


@pytest.fixture
def sidecar_with_a_plugin_object(installed: Installed) -> Iterator[Installed]:
    """Sidecar mode with qemu-commandline, the Plugins gate off, and a Plugin object that
    outlived it (KubeVirt's virt-api, absent here, would refuse creating it with the gate off;
    our webhook admits it: no mixed state without the gate)."""
    assert plugin_names(installed) == []
    patch_config(installed, {"integrationMode": "sidecar", "dialect": "qemu-commandline"})
    try:
        wait_until(
            lambda: (
                "mixed state" not in dry_run(installed, OTHERS)
                and "cannot" not in dry_run(installed, OTHERS)
            ),
            "the webhook sees sidecar",
        )
        installed.server.kubectl("create", "-f", "-", stdin=json.dumps(OTHERS))
        yield installed
    finally:
        installed.server.kubectl("delete", "plugins.plugin.kubevirt.io", "--all")
        patch_kubevirt(installed, GATES)
        patch_config(installed, {"integrationMode": "auto", "dialect": None})


def test_turning_the_plugins_gate_on_with_a_plugin_object_is_refused(
    sidecar_with_a_plugin_object: Installed,
) -> None:
    installed = sidecar_with_a_plugin_object
    on = json.dumps(
        {
            "spec": {
                "configuration": {"developerConfiguration": {"featureGates": [*GATES, "Plugins"]}}
            }
        }
    )

    def gate_on(*extra: str) -> subprocess.CompletedProcess[str]:
        return installed.server.kubectl(
            "patch",
            "kubevirt",
            "kubevirt",
            "-n",
            KUBEVIRT_NAMESPACE,
            "--type=merge",
            "-p",
            on,
            *extra,
            check=False,
        )

    def patch_gate_on() -> str:
        done = gate_on("--dry-run=server")
        return "" if done.returncode == 0 else done.stderr

    wait_until(lambda: "mixed state" in patch_gate_on(), "the webhook sees the Plugin object")
    done = gate_on()
    assert done.returncode != 0, done.stdout
    assert (
        "spec.configuration.developerConfiguration.featureGates: turning on KubeVirt's "
        "Plugins gate while Plugin objects exist (someone-elses) would put the cluster in "
        "the mixed state: kubevirt-cca runs as a hook sidecar"
    ) in done.stderr, done.stderr
    assert "Move kubevirt-cca to plugin mode first" in done.stderr
    gates = installed.server.get("kubevirt", "kubevirt", namespace=KUBEVIRT_NAMESPACE)["spec"][
        "configuration"
    ]["developerConfiguration"]["featureGates"]
    assert gates == GATES
    # In plugin mode the same update goes through.
    patch_config(installed, {"integrationMode": "plugin"})
    wait_until(lambda: patch_gate_on() == "", "the webhook sees plugin mode")
