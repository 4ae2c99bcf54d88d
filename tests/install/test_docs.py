"""The guides say what the code does: the gate command, doctor's lines, the shipped settings."""

from __future__ import annotations

import asyncio
import io
import re
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.adapters.kubeconfig import PREFIX as KUBECONFIG_PREFIX
from kubevirt_cca.cli import main
from kubevirt_cca.core.doctor import Expected, Read, hyperconverged, run_checks
from kubevirt_cca.core.doctor.cluster import gate_patch_command
from kubevirt_cca.core.doctor.installed import check_not_installed
from kubevirt_cca.core.doctor.webhooks import cert_manager_missing_line
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import FAILURE_POLICIES
from tests.conftest import ROOT, shared_path
from tests.doctor.cluster import empty_snapshot, load, make_ca
from tests.doctor.scenarios import DOC_CLUSTERS

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


def test_troubleshooting_explains_the_lines_that_replace_a_wall_of_failures() -> None:
    """Issue 23: the kubeconfig errors, "not installed", cert-manager missing and HCO's
    annotation each have their row, quoted as doctor words them."""
    not_installed = check_not_installed(empty_snapshot(), Expected(options=InstallOptions()))
    hco = hyperconverged.HyperConverged("NS", "NAME", "x")
    lines = [
        f"`{KUBECONFIG_PREFIX}: kubeconfig FILE",
        f"`{KUBECONFIG_PREFIX}: the kubeconfig's certificate or key files do not load",
        f"**{not_installed.name}**: `{not_installed.summary}"[:80],
        f"`{cert_manager_missing_line('...')}`",
        f"`managed by the HyperConverged operator: {hyperconverged.HCO_KIND} NS/NAME",
        f"`fix: {hyperconverged.annotate_command(hco, [])[:-3]}[...]'`",
    ]
    text = (DOCS / "troubleshooting.md").read_text()
    assert [line for line in lines if line not in text] == []


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


# Quoted command output: `<!-- output-of: COMMAND; cluster: NAME[; check: A, B] -->` right
# before a ```text block. The block must be what COMMAND prints on that cluster (of
# tests/doctor/scenarios.DOC_CLUSTERS), or only the lines of the checks named.
MARKER = re.compile(r"^<!-- output-of: (?P<spec>.*?) -->\n```text\n(?P<block>.*?)^```", re.M | re.S)
# The first line of every command's output that docs quote: doctor's checks, detect's verdict.
OUTPUT_BLOCK = re.compile(r"^```text\n(?:\[(?: ok |warn|FAIL)\] |CCA capable: )", re.M)
# What changes from run to run: the certificate's dates.
VARYING = [
    (
        re.compile(r"valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+ days\)"),
        "valid until DATE (N days)",
    )
]


def _quoted_outputs() -> list[tuple[str, dict[str, str], str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for match in MARKER.finditer(page.read_text()):
            command, *fields = (part.strip() for part in match.group("spec").split(";"))
            spec = dict(field.split(": ", 1) for field in fields)
            found.append(
                (
                    f"{page.name}: {match.group('spec')}",
                    {"command": command, **spec},
                    match.group("block"),
                )
            )
    return found


QUOTED = _quoted_outputs()


def _normalised(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


def _checks_of(output: str, names: list[str]) -> str:
    """The lines of the checks ``names`` (each from its ``[....] name:`` line to the next)."""
    picked: list[str] = []
    keep = False
    for line in output.splitlines():
        if re.match(r"\[(?: ok |warn|FAIL)\] ", line):
            keep = line[7:].split(":", 1)[0] in names
        elif not line.startswith("       "):
            keep = False
        if keep:
            picked.append(line)
    return "\n".join(picked) + "\n"


def test_every_quoted_output_is_marked() -> None:
    """A doctor or detect sample without a marker would go unchecked: every one has it."""
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for block in OUTPUT_BLOCK.finditer(text):
            before = text[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
            assert before.startswith("<!-- output-of: "), f"{page.name}: {block.group(0)!r}"
    assert len(QUOTED) >= 6


def _kvm_without_rmm(root: Path) -> None:
    """node-labels.md's host: arm64 with /dev/kvm, but KVM without RMI and no RMM at boot."""
    for folder in ("proc/sys/kernel", "dev", "sys/module/kvm/parameters", "var/log"):
        (root / folder).mkdir(parents=True)
    (root / "proc/sys/kernel/arch").write_text("aarch64\n")
    (root / "dev/kvm").write_text("")
    (root / "sys/module/kvm/parameters/kvm_cap_arm_rmi").write_text("0\n")
    (root / "var/log/kern.log").write_text("[    0.000000] Booting Linux on physical CPU 0x0\n")


HOSTS = {"kvm-without-rmm": _kvm_without_rmm}


@pytest.mark.asyncio
@pytest.mark.parametrize(("where", "spec", "block"), QUOTED, ids=[q[0] for q in QUOTED])
async def test_a_quoted_output_is_what_the_command_prints(
    kmock: Any, tmp_path: Path, where: str, spec: dict[str, str], block: str
) -> None:
    if spec["command"] == "kubevirt-cca doctor":
        load(kmock, DOC_CLUSTERS[spec["cluster"]](make_ca()))
        argv = ["doctor", "--server", str(kmock.url)]
    elif spec["command"] == "kubevirt-cca detect":
        HOSTS[spec["host"]](tmp_path)
        domcaps = shared_path("fixtures", "kubevirt", "domcapabilities", spec["domcaps"])
        argv = ["detect", "--domcaps", str(domcaps), "--root", str(tmp_path)]
    else:
        raise AssertionError(f"{where}: no runner for this command")
    out = io.StringIO()
    with redirect_stdout(out):
        await asyncio.to_thread(main, argv)
    printed = out.getvalue()
    if "check" in spec:
        printed = _checks_of(printed, [n.strip() for n in spec["check"].split(",")])
    assert _normalised(block) == _normalised(printed), f"{where}:\n{printed}"
