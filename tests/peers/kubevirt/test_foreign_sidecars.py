"""Issue 21, item 1, under KubeVirt's own hook manager (``hookclient``, both versions) and its
Plugins client (``pluginclient -sidecars``).

The threat, shown with the real manager: a second hook sidecar that KubeVirt calls after ours
(the one whose socket directory sorts later, whatever the annotation's order says) returns the
domain without its Realm, and that is what libvirt gets; one serving a socket named like ours
in an earlier directory makes the manager skip ours. The defence: our hook refuses a CCA VMI
whose hooks.kubevirt.io/hookSidecars lists any entry beside ours, so no domain reaches libvirt
(admission refuses that VMI first: tests/admission, tests/peers/apiserver). Plugin mode: the
Plugins path calls our plugin after every legacy sidecar, so the same stripping sidecar cannot
undo the Realm there.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.constants import HOOK_SIDECARS_ANNOTATION
from tests.conftest import ROOT
from tests.peers.binaries import peers_unavailable
from tests.peers.kubevirt.support import (
    PLUGIN_CLUSTER,
    VERSIONS,
    Converted,
    PeerBins,
    admitted_vmi,
    hook_process,
    hookclient,
    last_error,
    run_plugin_namespace,
    shape_manifests,
    strip_process,
)

SHAPE = "example-vmi-cca"
PLUGIN_YAML = ROOT / "deploy" / "plugin" / "plugin.yaml"
STRIP_ENTRY = {"image": "registry.example/strip:1", "args": ["--version", "v1alpha3"]}
REALM_MARKS = ("<launchSecurity", "rme-guest")


def _vmi_listing(converted: Converted, folder: Path, entries: list[Any]) -> Path:
    """The converter's VMI JSON (admitted: our entry only) with ``entries`` appended."""
    vmi = json.loads(converted.vmi.read_text())
    annotations = vmi["metadata"]["annotations"]
    ours = json.loads(annotations[HOOK_SIDECARS_ANNOTATION])
    assert [e["args"][0] for e in ours] == ["hook"], ours
    annotations[HOOK_SIDECARS_ANNOTATION] = json.dumps([*ours, *entries])
    path = folder / "listed.vmi.json"
    path.write_text(json.dumps(vmi))
    return path


def _is_realm(xml: str) -> bool:
    return any(mark in xml for mark in REALM_MARKS)


def _calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "call=OnDefineDomain" in line]


# --- the threat, under KubeVirt's real hook manager -----------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_a_sidecar_called_after_ours_strips_the_realm(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """Why a CCA VMI may run no other sidecar: KubeVirt calls them in socket-directory order and
    defines what the last one returns. Here the VMI lists only our entry, so our hook rewrites;
    the stripping sidecar in the later directory then hands libvirt a plain domain, and KubeVirt
    reports success."""
    hooks = tmp_path / "hooks"
    with (
        hook_process(hooks / "hook-sidecar-0") as ours,
        strip_process(hooks / "hook-sidecar-1" / "strip.sock") as strip,
    ):
        result = hookclient(
            peer_bins[version],
            hooks_dir=hooks,
            converted=converted[version][SHAPE],
            prefix=tmp_path / "d",
            sidecars=2,
        )
    assert result.returncode == 0, last_error(result.stderr)
    assert len(_calls(ours)) == 3 and all("outcome=rewritten" in c for c in _calls(ours))
    assert strip.read_text().count("call=OnDefineDomain stripped=1") == 3
    assert all(result.defines) and not any(_is_realm(xml) for xml in result.defines)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_socket_named_like_ours_shadows_our_hook(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """KubeVirt de-duplicates sidecar sockets by file name: a sidecar in an earlier directory
    that serves a socket named like ours (and one more, so the count of sidecars is met) makes
    the manager skip ours; our hook is never called, so only admission can keep this out
    (tests/admission, tests/peers/apiserver/test_foreign_sidecars.py)."""
    hooks = tmp_path / "hooks"
    with (
        strip_process(
            hooks / "hook-sidecar-0" / "kubevirt-cca.sock", hooks / "hook-sidecar-0" / "x.sock"
        ) as strip,
        hook_process(hooks / "hook-sidecar-1") as ours,
    ):
        result = hookclient(
            peer_bins[version],
            hooks_dir=hooks,
            converted=converted[version][SHAPE],
            prefix=tmp_path / "d",
            sidecars=2,
        )
    assert result.returncode == 0, last_error(result.stderr)
    assert _calls(ours) == [], "KubeVirt called our hook after all"
    # Both of its sockets are called for each of the three defines, ours for none.
    assert strip.read_text().count("call=OnDefineDomain") == 6
    assert all(result.defines) and not any(_is_realm(xml) for xml in result.defines)


# --- the defence in the hook ----------------------------------------------------------------------


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "ours-last"])
@pytest.mark.parametrize("version", VERSIONS)
def test_our_hook_refuses_a_cca_vmi_that_lists_another_sidecar(
    version: str,
    ours_first: bool,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """The VMI lists the owner's sidecar beside ours (its webhook and policies bypassed): our
    hook fails OnDefineDomain, KubeVirt's manager stops, and no domain reaches libvirt, in
    whichever order the manager calls the two."""
    source = converted[version][SHAPE]
    vmi = _vmi_listing(source, tmp_path, [STRIP_ENTRY])
    hooks = tmp_path / "hooks"
    ours_dir, strip_dir = ("hook-sidecar-0", "hook-sidecar-1")[:: 1 if ours_first else -1]
    with (
        hook_process(hooks / ours_dir) as ours,
        strip_process(hooks / strip_dir / "strip.sock"),
    ):
        result = hookclient(
            peer_bins[version],
            hooks_dir=hooks,
            converted=source,
            prefix=tmp_path / "d",
            vmi=vmi,
            sidecars=2,
        )
    assert result.returncode == 1
    assert result.defines == ("", "", ""), "a domain reached libvirt"
    error = result.stderr
    assert "kubevirt-cca hook: refusing to define the domain of VMI " in error, error[-2000:]
    assert (
        f"{HOOK_SIDECARS_ANNOTATION}: it lists 1 hook sidecar entry "
        "(image 'registry.example/strip:1') besides kubevirt-cca's" in error
    )
    assert [c for c in _calls(ours) if "outcome=refused" in c], ours.read_text()


# --- plugin mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_plugin_mode_keeps_the_realm_after_a_stripping_sidecar(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """KubeVirt's Plugins path calls our plugin after every legacy sidecar: the owner's
    stripping sidecar (listed on the VMI, admitted in plugin mode) runs first, and the domain
    libvirt gets is still a Realm."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        peers_unavailable("the Plugins path needs root and unshare (a private mount namespace)")
    source = converted[version][SHAPE]
    vmi = json.loads(source.vmi.read_text())
    admitted = admitted_vmi(shape_manifests()[SHAPE], PLUGIN_CLUSTER)
    annotations = dict(admitted["metadata"]["annotations"])
    annotations[HOOK_SIDECARS_ANNOTATION] = json.dumps([STRIP_ENTRY])
    vmi["metadata"]["annotations"] = annotations
    vmi_path = tmp_path / "plugin.vmi.json"
    vmi_path.write_text(json.dumps(vmi))
    hooks = tmp_path / "hooks"
    command = [
        str(peer_bins[version].launcher),
        "pluginclient",
        "-domain",
        str(source.domain),
        "-vmi",
        str(vmi_path),
        "-plugin",
        str(PLUGIN_YAML),
        "-sidecars",
        "1",
        "-hooks-dir",
        str(hooks),
        "-calls",
        "3",
        "-prefix",
        str(tmp_path / "p"),
    ]
    existed = Path("/var/run/kubevirt-plugin").exists()
    try:
        with strip_process(hooks / "hook-sidecar-0" / "strip.sock") as strip:
            results, log = run_plugin_namespace(tmp_path, {"run": command})
    finally:
        if not existed and Path("/var/run/kubevirt-plugin").exists():
            Path("/var/run/kubevirt-plugin").rmdir()
    result = results["run"]
    assert result["returncode"] == 0, last_error(result["stderr"])
    assert strip.read_text().count("call=OnDefineDomain") == 3
    defines = [(tmp_path / f"p.define{n}.xml").read_text() for n in (1, 2, 3)]
    assert all("rme-guest" in xml for xml in defines), "the stripping sidecar undid the Realm"
    mutates = [line for line in log.read_text().splitlines() if "call=MutateDomain" in line]
    assert len(mutates) == 3 and all("outcome=rewritten" in line for line in mutates), mutates
