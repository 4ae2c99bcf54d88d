"""The guides say what the code does: the gate command, doctor's lines, the shipped settings."""

from __future__ import annotations

import re

from kubevirt_cca.core.doctor import Expected, Read, run_checks
from kubevirt_cca.core.doctor.cluster import gate_patch_command
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import FAILURE_POLICIES
from tests.conftest import ROOT
from tests.doctor.cluster import empty_snapshot

DOCS = ROOT / "docs"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\\\n", " ")).strip()


def _cr(gates: list[str] | None) -> dict[str, object]:
    developer = {} if gates is None else {"featureGates": gates}
    return {
        "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {"configuration": {"developerConfiguration": developer}},
    }


def test_the_gate_command_in_the_install_guide_is_what_doctor_prints() -> None:
    text = (DOCS / "install.md").read_text()
    fresh = re.search(r"```sh\n(kubectl patch kubevirt .*?)\n```", text, re.S)
    assert fresh is not None
    assert _one_line(fresh.group(1)) == gate_patch_command(_cr(None))
    example = re.search(r"fix: (kubectl patch kubevirt .*)", text)
    assert example is not None
    assert example.group(1) == gate_patch_command(_cr(["LiveMigration"]))


def test_troubleshooting_explains_every_doctor_check() -> None:
    # ... and the one check of a cluster where nothing of kubevirt-cca is installed.
    nothing = run_checks(empty_snapshot(), Expected(options=InstallOptions()))
    names = _check_names() + [c.name for c in nothing]
    text = (DOCS / "troubleshooting.md").read_text()
    missing = [n for n in names if f"**{n}**" not in text]
    assert missing == []


def test_the_admin_guide_states_the_shipped_failure_policies() -> None:
    text = (DOCS / "admin.md").read_text()
    for webhook, policy in FAILURE_POLICIES.items():
        assert re.search(rf"`{re.escape(webhook)}` \|[^|]*\| \*\*{policy}\*\*", text), webhook
    shipped = {
        h["name"]: h["failurePolicy"]
        for o in install_objects(InstallOptions())
        if o["kind"].endswith("WebhookConfiguration")
        for h in o["webhooks"]
    }
    assert shipped == FAILURE_POLICIES


def test_the_admin_guide_lists_every_setting_with_its_shipped_default() -> None:
    config = next(o for o in install_objects(InstallOptions()) if o["kind"] == "ConfigMap")
    text = (DOCS / "admin.md").read_text()
    for key, value in config["data"].items():
        if key == "hookImage":
            assert "| `hookImage` |" in text
        else:
            assert f"| `{key}` | `{value}` |" in text, key


def test_the_ready_sample_in_the_install_guide_lists_every_check_in_order() -> None:
    names = _check_names()
    text = (DOCS / "install.md").read_text()
    sample = text[text.index("A ready cluster:") :]
    shown = re.findall(r"^\[ ok \] ([^:]+):", sample[: sample.index("ready for Realms")], re.M)
    assert shown == names


def _check_names() -> list[str]:
    """Every doctor check's name, in the order doctor reports them (on a cluster where
    something of kubevirt-cca is installed: here its MutatingWebhookConfiguration)."""
    snapshot = empty_snapshot(mutating=Read(value={}))
    return [c.name for c in run_checks(snapshot, Expected(options=InstallOptions()))]
