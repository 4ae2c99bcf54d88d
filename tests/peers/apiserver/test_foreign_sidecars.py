"""Issue 21 item 1 on the real kube-apiserver, with the webhook running: a VM owner's own hook
sidecar on a CCA VMI is refused at ``kubectl create`` (the mutating webhook refuses instead of
appending ours beside it), on VM templates early, and an UPDATE that appends an entry is refused
by the backstop policy and, with the policy's binding deleted, by the validating webhook.

The policies alone (webhook configurations deleted) are in ``test_policies.py``; KubeVirt's
hook manager itself in ``tests/peers/kubevirt/test_foreign_sidecars.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.peers.apiserver.conftest import Installed
from tests.peers.apiserver.test_admission import (
    ENABLED,
    HOOKS,
    create,
    stored,
    template_of,
    vm,
    vmi,
)
from tests.peers.apiserver.test_policies import wait_until

pytestmark = pytest.mark.peers

STRIP = {"image": "registry.example/strip:1", "args": ["--version", "v1alpha3"]}
NEEDS_HOOK = "kubevirt-cca-vmi-needs-hook"
FOREIGN = (
    f"annotations[{HOOKS}]: holds 1 hook sidecar entry (image 'registry.example/strip:1') that "
    "kubevirt-cca did not write; a CCA VMI runs no hook sidecar but kubevirt-cca's: KubeVirt "
    "calls sidecars in the order it finds their sockets, not in the list's order, and skips a "
    "socket named like one it already has, so another sidecar could undo the Realm and the VM "
    "would run as a plain VM. Expected: no hooks.kubevirt.io/hookSidecars annotation "
    "(kubevirt-cca adds its own entry); remove the other entries (docs/vm-owners.md)"
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _decisions(installed: Installed, namespace: str, name: str) -> list[str]:
    """The webhook's log line per review of ``namespace/name``: endpoint, operation, verdict."""
    found = []
    for line in installed.webhook.log.read_text().splitlines():
        if f" namespace={namespace} name={name} " in line and " admission endpoint=" in line:
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            found.append(f"{fields['endpoint']} {fields['operation']} {fields['verdict']}")
    return found


def test_a_cca_vmi_with_its_own_sidecar_is_refused_at_create(
    installed: Installed, namespace: str
) -> None:
    owned = vmi("owned", annotations={HOOKS: json.dumps([STRIP])})
    refusal = _one_line(create(installed, namespace, owned))
    assert refusal.startswith(f"The request is invalid: metadata.{FOREIGN}"), refusal
    # The mutating webhook refused (rather than append ours beside it); nothing came after.
    assert _decisions(installed, namespace, "owned") == ["mutate-vmi CREATE denied"]
    assert installed.server.kubectl("get", "vmi", "-n", namespace, "-o", "name").stdout == ""
    # The same owner's sidecar on a plain VMI is none of our business.
    plain = vmi("plain", cca=False, annotations={HOOKS: json.dumps([STRIP])})
    assert create(installed, namespace, plain) == ""


def test_a_vm_template_with_its_own_sidecar_is_refused_early(
    installed: Installed, namespace: str
) -> None:
    template = template_of(vmi("x", annotations={HOOKS: json.dumps([STRIP])}))
    refusal = _one_line(create(installed, namespace, vm("owned", template)))
    assert refusal.startswith(f"The request is invalid: spec.template.metadata.{FOREIGN}")
    assert _decisions(installed, namespace, "owned") == ["validate-templates CREATE denied"]


@pytest.fixture
def without_the_hook_policy(installed: Installed) -> Iterator[None]:
    """The backstop's binding deleted for a moment, so the validating webhook answers alone."""
    binding = next(
        o
        for o in installed.objects
        if o["kind"] == "ValidatingAdmissionPolicyBinding" and o["metadata"]["name"] == NEEDS_HOOK
    )
    installed.server.kubectl("delete", "validatingadmissionpolicybinding", NEEDS_HOOK)
    try:
        yield
    finally:
        installed.server.create(binding)


def _append(installed: Installed, namespace: str, entries: list[Any]) -> str:
    done = installed.server.kubectl(
        "patch",
        "vmi",
        "realm",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"metadata": {"annotations": {HOOKS: json.dumps(entries)}}}),
        check=False,
    )
    assert done.returncode != 0, "the update was admitted"
    return _one_line(done.stderr)


def test_an_update_appending_a_sidecar_is_refused(installed: Installed, namespace: str) -> None:
    realm = vmi("realm")
    assert create(installed, namespace, realm) == ""
    ours = json.loads(stored(installed, namespace, realm)["metadata"]["annotations"][HOOKS])
    assert [entry["args"][0] for entry in ours] == ["hook"]
    # The backstop policy answers first (the API server runs policies before webhooks).
    refusal = _append(installed, namespace, [*ours, STRIP])
    assert (
        f"ValidatingAdmissionPolicy '{NEEDS_HOOK}' with binding '{NEEDS_HOOK}' denied request: "
        f"metadata.annotations[{HOOKS}]: the hook sidecar list of an existing CCA VMI cannot "
        "change"
    ) in refusal
    got = stored(installed, namespace, realm)
    assert json.loads(got["metadata"]["annotations"][HOOKS]) == ours
    assert got["metadata"]["labels"][ENABLED] == "true"


def test_the_validating_webhook_refuses_an_appended_sidecar_on_its_own(
    installed: Installed, namespace: str, without_the_hook_policy: None
) -> None:
    realm = vmi("realm")
    assert create(installed, namespace, realm) == ""
    ours = json.loads(stored(installed, namespace, realm)["metadata"]["annotations"][HOOKS])
    refusals: list[str] = []

    def webhook_answers() -> bool:
        refusals.append(_append(installed, namespace, [*ours, STRIP]))
        return NEEDS_HOOK not in refusals[-1]

    # The API server drops the deleted binding a moment later: until then the policy answers.
    wait_until(webhook_answers, "the policy's binding gone")
    refusal = refusals[-1]
    assert _decisions(installed, namespace, "realm")[-1] == "validate-vmi UPDATE denied"
    assert (
        f"metadata.annotations[{HOOKS}]: cannot gain hook sidecar entries on an existing CCA "
        "VMI, got 1 hook sidecar entry (image 'registry.example/strip:1') more; a CCA VMI runs "
        "no hook sidecar but kubevirt-cca's"
    ) in refusal
    assert json.loads(stored(installed, namespace, realm)["metadata"]["annotations"][HOOKS]) == ours
