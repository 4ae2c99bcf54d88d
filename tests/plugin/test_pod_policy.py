"""The pod-side CEL backstop (deploy/policies/cca-launcher-pod-needs-plugin.yaml), evaluated with
cel-python: a labelled virt-launcher pod must run a kubevirt-cca container, in either mode."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from kubevirt_cca.constants import PLUGIN_CONTAINER
from kubevirt_cca.core.admission.launcher_pod import pod_patch
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install import InstallOptions
from tests.plugin.policy import POLICIES, PolicyFile
from tests.plugin.test_plugin_objects import launcher_pod

PATH = POLICIES / "cca-launcher-pod-needs-plugin.yaml"
POLICY = PolicyFile(PATH)
IMAGE = InstallOptions().image  # the install's, rendered into the policy


def injected() -> dict[str, Any]:
    pod = launcher_pod()
    ops, _ = pod_patch(pod, Settings(dialect=Dialect.QEMU_COMMANDLINE), IMAGE)
    patched: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    return patched


def with_legacy_sidecar() -> dict[str, Any]:
    """What KubeVirt makes of a VMI with our hookSidecars entry (sidecar mode)."""
    pod = launcher_pod()
    pod["spec"]["containers"].append(
        {"name": "hook-sidecar-0", "image": IMAGE, "args": ["hook", "--dialect", "vep"]}
    )
    return pod


def test_binding_denies_with_its_policy() -> None:
    # No parameter (issue 21 item 6): the install's values are rendered in.
    assert POLICY.binding["spec"] == {
        "policyName": POLICY.policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert "paramKind" not in POLICY.policy["spec"]
    assert POLICY.policy["spec"]["failurePolicy"] == "Fail"


@pytest.mark.parametrize("pod", [injected(), with_legacy_sidecar()], ids=["plugin", "sidecar"])
def test_pods_with_a_kubevirt_cca_container_pass(pod: dict[str, Any]) -> None:
    assert POLICY.denials(pod) == []


def test_a_labelled_launcher_pod_the_webhook_skipped_is_refused() -> None:
    [message] = POLICY.denials(launcher_pod())
    assert message.startswith("spec.containers: the virt-launcher pod of a VMI labelled")
    assert "kubevirt-cca doctor" in message


def bad(change: Any) -> dict[str, Any]:
    pod = injected()
    change(pod)
    return pod


@pytest.mark.parametrize(
    "pod",
    [
        bad(lambda p: p["spec"]["containers"][-1].update(name="impostor")),
        bad(lambda p: p["spec"]["containers"][-1].update(args=["sleep"])),
        bad(lambda p: p["spec"]["containers"][-1].pop("args")),
        bad(lambda p: p["spec"]["containers"][-1].update(args=[])),
    ],
    ids=["other-name", "other-command", "no-args", "empty-args"],
)
def test_a_container_that_only_looks_like_ours_does_not_count(pod: dict[str, Any]) -> None:
    assert len(POLICY.denials(pod)) == 1


def test_other_pods_and_updates_are_not_matched() -> None:
    assert POLICY.denials(launcher_pod(labelled=False)) == []
    handler = launcher_pod()
    handler["metadata"]["labels"]["kubevirt.io"] = "virt-handler"
    assert POLICY.denials(handler) == []
    assert POLICY.denials(launcher_pod(), "UPDATE") == []
    assert [c["name"] for c in injected()["spec"]["containers"]] == ["compute", PLUGIN_CONTAINER]


# --- issue 13: the image is pinned, the container shape checked --------------------------------


@pytest.mark.parametrize("name", ["hook-sidecar-0", PLUGIN_CONTAINER])
def test_a_container_of_another_image_is_no_kubevirt_cca_container(name: str) -> None:
    pod = launcher_pod()
    pod["spec"]["containers"].append(
        {"name": name, "image": "attacker/anything:1", "args": ["hook"]}
    )
    assert len(POLICY.denials(pod)) == 1
    pod["spec"]["containers"][-1]["image"] = IMAGE
    assert POLICY.denials(pod) == []
    # The pin follows the install's image.
    other = PolicyFile(PATH, InstallOptions(image="registry.example/cca:9"))
    assert len(other.denials(pod)) == 1


def test_the_plugin_container_does_not_count_in_sidecar_mode() -> None:
    sidecar_mode = PolicyFile(PATH, InstallOptions(integration_mode=IntegrationMode.SIDECAR))
    assert len(sidecar_mode.denials(injected())) == 1
    assert sidecar_mode.denials(with_legacy_sidecar()) == []


# --- issue 21: in sidecar mode, no hook sidecar but ours ----------------------------------------


def _with_sidecars(pod: dict[str, Any], *images: str) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    start = sum(c["name"].startswith("hook-sidecar-") for c in pod["spec"]["containers"])
    for index, image in enumerate(images, start):
        pod["spec"]["containers"].append(
            {"name": f"hook-sidecar-{index}", "image": image, "args": ["--version", "v1alpha3"]}
        )
    return pod


def test_a_second_hook_sidecar_beside_ours_is_refused() -> None:
    [message] = POLICY.denials(_with_sidecars(with_legacy_sidecar(), "user/strip:1"))
    assert message.startswith("spec.containers: the virt-launcher pod of a VMI labelled")
    assert "more than one hook sidecar" in message
    assert len(POLICY.denials(_with_sidecars(with_legacy_sidecar(), "a:1", "b:1"))) == 1
    # Named like ours, our image: still a second sidecar (KubeVirt de-duplicates sockets by name).
    assert len(POLICY.denials(_with_sidecars(with_legacy_sidecar(), IMAGE))) == 1


def test_a_users_hook_sidecar_beside_the_plugin_container_passes() -> None:
    assert POLICY.denials(_with_sidecars(injected(), "user/x:1", "user/y:1")) == []
    sidecar_mode = PolicyFile(PATH, InstallOptions(integration_mode=IntegrationMode.SIDECAR))
    assert len(sidecar_mode.denials(_with_sidecars(injected(), "user/x:1", "user/y:1"))) == 2
