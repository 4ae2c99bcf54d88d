"""The hook paths as KubeVirt drives them (both versions).

* Sidecar path (virt-launcher's hook manager, ``hookclient``): Info, the version it picks,
  three defines, the refusal text as KubeVirt reports it (docs/hook.md shows it), and an
  unlabelled VMI's domain byte for byte what it is without any hook.
* Plugins path (``pluginclient``): our deploy/plugin/ object evaluated by KubeVirt's CEL, Boot
  and MigrationTarget invocations, the refusal text as KubeVirt wraps it (docs/plugins.md), a
  foreign QEMU argument in the domain refused (the sidecar path's: test_foreign_qemu.py).
  Inside ``unshare -m`` with a tmpfs at /var/run/kubevirt-plugin (plugin_ns.py; needs root).
* The mixed state (legacy hook + any Plugin object) behaves as docs/plugins.md says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.cluster.integration import IntegrationMode, decide_mode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.vmi.request import parse_request
from tests.boot.domains import realm_problems
from tests.conftest import ROOT
from tests.core.qemu_cases import REFUSED_ARGUMENTS, with_commandlines
from tests.peers.binaries import peers_unavailable
from tests.peers.kubevirt.realm import realm_rule_problems, rng_errors, virsh_define
from tests.peers.kubevirt.support import (
    EXAMPLE_SHAPE,
    PLUGIN_CLUSTER,
    VERSIONS,
    Converted,
    PeerBins,
    admitted_vmi,
    hook_process,
    hookclient,
    kubevirt_reason,
    last_error,
    run_plugin_namespace,
    shape_manifests,
)

SHAPE = EXAMPLE_SHAPE
PLUGIN_YAML = ROOT / "deploy" / "plugin" / "plugin.yaml"
BAD_ALGO = {"measurementAlgo": "md5"}
FOREIGN_CASE = "machine-cgs"
FOREIGN_VMI = "foreign-args"
# Someone else's Plugin: a CEL domain hook that changes nothing (the mixed state needs any one).
NOOP_PLUGIN = {
    "apiVersion": "plugin.kubevirt.io/v1alpha1",
    "kind": "Plugin",
    "metadata": {"name": "someone-else"},
    "spec": {"domainHooks": [{"cel": {"expression": "Domain{}"}}]},
}
# What KubeVirt's Plugins path says when it rebuilds a legacy hook's vep domain (plugins.md).
MIXED_VEP_ERROR = (
    "converting DomainSpec to libvirtxml: failed to unmarshal XML into "
    "libvirtxml.Domain: xml: (*libvirtxml.DomainLaunchSecurity).UnmarshalXML did "
    "not consume entire <launchSecurity> element"
)


def _variant(
    converted: Converted,
    folder: Path,
    name: str,
    *,
    plain: bool = False,
    parameters: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Path:
    """The converter's VMI JSON made plain, or with other parameters / annotations."""
    vmi = json.loads(converted.vmi.read_text())
    metadata = vmi["metadata"]
    if plain:  # a VMI that never asked for a Realm: no label, none of our annotations, and
        # no hook entry (hookclient still finds our socket in the hooks dir and calls it)
        metadata["labels"].pop(ENABLED_LABEL)
        metadata["annotations"] = {
            k: v
            for k, v in metadata.get("annotations", {}).items()
            if not k.startswith("cca.kubevirt.io/") and k != "hooks.kubevirt.io/hookSidecars"
        }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if parameters is not None:
        metadata.setdefault("annotations", {})[LAUNCH_SECURITY_ANNOTATION] = json.dumps(parameters)
    path = folder / f"{name}.vmi.json"
    path.write_text(json.dumps(vmi))
    return path


def _calls(log: Path, call: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if f"call={call}" in line]


# --- sidecar path -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_sidecar_info_version_and_three_defines(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    with hook_process(tmp_path / "hooks" / "hook-sidecar-0") as log:
        result = hookclient(
            peer_bins[version],
            hooks_dir=tmp_path / "hooks",
            converted=converted[version][SHAPE],
            prefix=tmp_path / "a",
        )
    assert result.returncode == 0, last_error(result.stderr)
    info = _calls(log, "Info")
    assert len(info) == 1 and "versions=v1alpha1,v1alpha2,v1alpha3" in info[0], info
    defines = _calls(log, "OnDefineDomain")
    assert len(defines) == 3, defines
    # KubeVirt picks the newest version both sides know.
    assert all("version=v1alpha3" in line and "outcome=rewritten" in line for line in defines), (
        defines
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_sidecar_refusal_as_kubevirt_reports_it(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """A CCA VMI whose parameters are bad (its webhook bypassed): no domain reaches libvirt."""
    source = converted[version][SHAPE]
    vmi = _variant(source, tmp_path, "bad", parameters=BAD_ALGO)
    with hook_process(tmp_path / "hooks" / "hook-sidecar-0"):
        result = hookclient(
            peer_bins[version],
            hooks_dir=tmp_path / "hooks",
            converted=source,
            prefix=tmp_path / "r",
            vmi=vmi,
        )
    assert result.returncode == 1
    assert result.defines == ("", "", ""), "a refused Realm reached libvirt"
    reason = kubevirt_reason(result.stderr)
    name = json.loads(source.vmi.read_text())["metadata"]
    expected = (
        "rpc error: code = InvalidArgument desc = kubevirt-cca hook: refusing to "
        f"define the domain of VMI {name['namespace']}/{name['name']}: "
    )
    assert reason.startswith(expected), reason
    assert "measurementAlgo" in reason and "the VM is not started as a plain VM" in reason
    # docs/hook.md quotes it as KubeVirt's hook manager returns it (namespace/name generic).
    documented = reason.replace(f"{name['namespace']}/{name['name']}", "tenant-a/db")
    assert documented in (ROOT / "docs" / "hook.md").read_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_sidecar_unlabelled_vmi_is_byte_identical(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """What libvirt gets for a plain VMI with our hook attached = what it gets with no hook."""
    source = converted[version][SHAPE]
    vmi = _variant(source, tmp_path, "plain", plain=True)
    (tmp_path / "none").mkdir()
    baseline = hookclient(
        peer_bins[version],
        hooks_dir=tmp_path / "none",
        converted=source,
        prefix=tmp_path / "n",
        vmi=vmi,
        sidecars=0,
    )
    with hook_process(tmp_path / "hooks" / "hook-sidecar-0") as log:
        hooked = hookclient(
            peer_bins[version],
            hooks_dir=tmp_path / "hooks",
            converted=source,
            prefix=tmp_path / "p",
            vmi=vmi,
        )
    assert baseline.returncode == 0 and hooked.returncode == 0, hooked.stderr[-1000:]
    assert all("outcome=unchanged" in line for line in _calls(log, "OnDefineDomain"))
    assert len(_calls(log, "OnDefineDomain")) == 3
    assert hooked.defines == baseline.defines
    assert all(hooked.defines)


# --- Plugins path -------------------------------------------------------------------------------


def _pluginclient(bins: PeerBins, converted: Converted, vmi: Path, *args: str) -> list[str]:
    return [
        str(bins.launcher),
        "pluginclient",
        "-domain",
        str(converted.domain),
        "-vmi",
        str(vmi),
        *args,
    ]


@pytest.fixture(scope="module")
def plugin_runs(
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    admitted_plugin_annotations: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Any]]:
    """version -> scenario -> {returncode, stderr, prefix}; one namespace per version."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        peers_unavailable("the Plugins path needs root and unshare (a private mount namespace)")
    runs: dict[str, dict[str, Any]] = {}

    def run(version: str) -> dict[str, Any]:
        bins = peer_bins[version]
        source = converted[version][SHAPE]
        folder = tmp_path_factory.mktemp(f"plugin-{version}")
        cca = _variant(source, folder, "cca", annotations=admitted_plugin_annotations)
        bad = _variant(
            source, folder, "bad", annotations=admitted_plugin_annotations, parameters=BAD_ALGO
        )
        plain = _variant(source, folder, "plain", plain=True, annotations={})
        # its own VMI name, so the other scenarios' call counts leave its call out
        foreign_vmi = json.loads(cca.read_text())
        foreign_vmi["metadata"]["name"] = FOREIGN_VMI
        foreign = Converted(domain=folder / "foreign.xml", vmi=folder / "foreign.vmi.json")
        foreign.vmi.write_text(json.dumps(foreign_vmi))
        foreign.domain.write_text(
            with_commandlines(source.domain.read_text(), REFUSED_ARGUMENTS[FOREIGN_CASE][0])
        )
        plugin = ["-plugin", str(PLUGIN_YAML)]
        commands = {
            "Boot": _pluginclient(
                bins,
                source,
                cca,
                *plugin,
                "-invocation",
                "Boot",
                "-calls",
                "3",
                "-prefix",
                str(folder / "Boot"),
            ),
            # KubeVirt's migration-target path defines once; the domain comes on stdout.
            "MigrationTarget": _pluginclient(
                bins, source, cca, *plugin, "-invocation", "MigrationTarget"
            ),
            "refused": _pluginclient(
                bins, source, bad, *plugin, "-prefix", str(folder / "refused")
            ),
            "plain": _pluginclient(bins, source, plain, *plugin, "-prefix", str(folder / "plain")),
            "foreign": _pluginclient(
                bins, foreign, foreign.vmi, *plugin, "-prefix", str(folder / "foreign")
            ),
        }
        results, log = run_plugin_namespace(folder, commands)
        for name, result in results.items():
            result["prefix"] = str(folder / name)
        results["hook_log"] = log.read_text()
        return results

    existed = Path("/var/run/kubevirt-plugin").exists()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = dict(zip(VERSIONS, pool.map(run, VERSIONS), strict=True))
    finally:
        if not existed:
            Path("/var/run/kubevirt-plugin").rmdir()
    return runs


@pytest.fixture(scope="module")
def admitted_plugin_annotations() -> dict[str, str]:
    """The annotations our admission writes on the shape in plugin mode (no hook entry)."""
    vmi = admitted_vmi(shape_manifests()[SHAPE], PLUGIN_CLUSTER)
    annotations: dict[str, str] = vmi["metadata"]["annotations"]
    assert "hooks.kubevirt.io/hookSidecars" not in annotations
    return annotations


@pytest.mark.parametrize("invocation", ["Boot", "MigrationTarget"])
@pytest.mark.parametrize("version", VERSIONS)
def test_plugin_path_makes_a_realm(
    version: str,
    invocation: str,
    plugin_runs: dict[str, dict[str, Any]],
    converted: dict[str, dict[str, Converted]],
    admitted_shapes: dict[str, dict[str, Any]],
    libvirt_schema_dir: Path,
) -> None:
    result = plugin_runs[version][invocation]
    assert result["returncode"] == 0, last_error(result["stderr"])
    request = parse_request(admitted_shapes[SHAPE])
    assert request is not None
    source = converted[version][SHAPE].domain.read_text()
    if invocation == "Boot":
        defines = [Path(f"{result['prefix']}.define{n}.xml").read_text() for n in (1, 2, 3)]
    else:
        defines = [result["stdout"]]
    for number, xml in enumerate(defines, 1):
        where = f"{invocation} define {number}"
        assert rng_errors(xml, Dialect.QEMU_COMMANDLINE) == (), where
        libvirt = virsh_define(xml, Dialect.QEMU_COMMANDLINE)
        assert libvirt.error is None, where
        assert realm_problems(libvirt.dumped) == [], where
        assert (
            realm_rule_problems(
                xml, dialect=Dialect.QEMU_COMMANDLINE, request=request, source=source
            )
            == []
        ), where
    calls = [
        line
        for line in plugin_runs[version]["hook_log"].splitlines()
        if "call=MutateDomain" in line
        and f"context={invocation}" in line
        and "outcome=rewritten" in line
        and f"/{FOREIGN_VMI} " not in line
    ]
    assert len(calls) == len(defines), calls


@pytest.mark.parametrize("version", VERSIONS)
def test_plugin_refusal_as_kubevirt_wraps_it(
    version: str, plugin_runs: dict[str, dict[str, Any]]
) -> None:
    result = plugin_runs[version]["refused"]
    assert result["returncode"] == 1
    assert not Path(f"{result['prefix']}.define1.xml").exists(), "a refused Realm was defined"
    line = last_error(result["stderr"])
    documented = re.sub(r"VMI [a-z0-9-]+/[a-z0-9-]+:", "VMI tenant-a/db:", line)
    documented = documented.removeprefix("error: call 1: ")
    assert "kubevirt-cca hook: refusing to define the domain of VMI tenant-a/db" in documented
    assert documented in (ROOT / "docs" / "plugins.md").read_text(), documented


@pytest.mark.parametrize("version", VERSIONS)
def test_plugin_path_refuses_foreign_qemu_arguments(
    version: str, plugin_runs: dict[str, dict[str, Any]]
) -> None:
    """issue 21: a foreign -machine in the domain KubeVirt hands the plugin is refused.

    KubeVirt 1.9.0's Plugins path drops the domain's <qemu:commandline> before any plugin sees
    it (docs/plugins.md): there the argument never reaches QEMU, and the Realm is made as usual.
    """
    result = plugin_runs[version]["foreign"]
    if version == "v1.9.0":
        assert result["returncode"] == 0, last_error(result["stderr"])
        defined = Path(f"{result['prefix']}.define1.xml").read_text()
        assert "other0" not in defined and "rme-guest" in defined
        return
    assert result["returncode"] == 1
    assert not Path(f"{result['prefix']}.define1.xml").exists(), "a refused Realm was defined"
    line = last_error(result["stderr"])
    assert "but its domain cannot be made one: the domain carries what kubevirt-cca" in line, line
    assert REFUSED_ARGUMENTS[FOREIGN_CASE][1] in line and "not started as a plain VM" in line


@pytest.mark.parametrize("version", VERSIONS)
def test_plugin_cel_condition_skips_a_plain_vmi(
    version: str, plugin_runs: dict[str, dict[str, Any]]
) -> None:
    """deploy/plugin's CEL condition, evaluated by KubeVirt: our hook is not even called."""
    result = plugin_runs[version]["plain"]
    assert result["returncode"] == 0, last_error(result["stderr"])
    calls = [
        line
        for line in plugin_runs[version]["hook_log"].splitlines()
        if "call=MutateDomain" in line and f"/{FOREIGN_VMI} " not in line
    ]
    # Boot 3 + MigrationTarget 1 + the refused 1 for the CCA VMI; none for the plain one
    # (which our hook would answer with outcome=unchanged). The foreign scenario's VMI is left out.
    assert len(calls) == 5, calls
    assert not [line for line in calls if "outcome=unchanged" in line]
    xml = Path(f"{result['prefix']}.define1.xml").read_text()
    assert "rme-guest" not in xml and "launchSecurity" not in xml


# --- the mixed state ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dialect", [Dialect.VEP, Dialect.QEMU_COMMANDLINE], ids=["vep", "qemu-commandline"]
)
@pytest.mark.parametrize("version", VERSIONS)
def test_mixed_state_as_documented(
    version: str,
    dialect: Dialect,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """Legacy hook sidecar + someone else's Plugin: KubeVirt rebuilds the domain after our hook.

    docs/plugins.md: vep/openeuler -> the Realm fails to start; qemu-commandline -> dropped
    before KubeVirt 1.10 (v1.9.0), kept from 1.10 (main is the 1.10 line); and admission
    refuses the state except qemu-commandline on >= 1.10 (a warning).
    """
    source = converted[version][SHAPE]
    noop = tmp_path / "noop.yaml"
    noop.write_text(yaml.safe_dump(NOOP_PLUGIN))
    with hook_process(tmp_path / "hooks" / "hook-sidecar-0", "--dialect", dialect.value):
        done = subprocess.run(
            _pluginclient(
                peer_bins[version],
                source,
                source.vmi,
                "-plugin",
                str(noop),
                "-sidecars",
                "1",
                "-hooks-dir",
                str(tmp_path / "hooks"),
                "-prefix",
                str(tmp_path / "m"),
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    defined = tmp_path / "m.define1.xml"
    survives = defined.exists() and "rme-guest" in defined.read_text()
    if dialect is Dialect.VEP:
        assert done.returncode != 0 and not defined.exists(), "vep survived the mixed state"
        error = last_error(done.stderr).removeprefix("error: call 1: ")
        assert error == MIXED_VEP_ERROR, error
        assert MIXED_VEP_ERROR in (ROOT / "docs" / "plugins.md").read_text()
    else:
        assert done.returncode == 0, last_error(done.stderr)
        assert survives is (version == "main")
    # What admission decides for this state (the KubeVirt version as the CR reports it).
    for kubevirt_version, kept in (("v1.9.0", False), ("v1.10.0", True)):
        decision = decide_mode(
            IntegrationMode.SIDECAR,
            gates=frozenset({"Sidecar", "Plugins"}),
            plugin_names=frozenset({"someone-else"}),
            settings=Settings(dialect=dialect),
            kubevirt_version=kubevirt_version,
        )
        refused = bool(decision.problems)
        assert refused is not (kept and dialect is Dialect.QEMU_COMMANDLINE), decision
