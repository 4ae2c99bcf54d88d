"""Foreign QEMU arguments through KubeVirt's own hook manager (``hookclient``, both versions).

The converter's domain of the example CCA VMI is defined by virt-launcher's hook manager with
our hook in each dialect (issue 21, item 2), carrying foreign QEMU arguments two ways: in the
incoming domain (KubeVirt's own spec keeps ``<qemu:commandline>`` args and envs, and drops
other elements of libvirt's QEMU namespace before any hook sees them), and added by an earlier
sidecar (``foreign_sidecar.py`` in ``hook-sidecar-0``, ours in ``hook-sidecar-1``: whatever it
returns reaches our hook as is, ``<qemu:override>`` included):

* each foreign class is refused: the call fails with FailedPrecondition naming the argument,
  and libvirt receives nothing on any of the three defines;
* KubeVirt's own Ignition ``-fw_cfg`` (and ``-msg``) is kept, in two blocks given, and every
  define libvirt receives holds one block with our arguments last (``qemu-commandline``).

The Plugins path's refusal is in ``test_hook_paths.py`` (``plugin_runs``, scenario "foreign").
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevirt_cca.core.cluster.settings import Dialect
from tests.conftest import ROOT
from tests.core.qemu_cases import (
    HARMLESS_ARGUMENTS,
    REFUSED_ARGUMENTS,
    REFUSED_ELEMENTS,
    commandline_values,
    commandline_xml,
    with_commandlines,
    with_element,
)
from tests.peers.kubevirt.foreign_sidecar import FOREIGN_ANNOTATION, SOCKET_NAME
from tests.peers.kubevirt.support import (
    EXAMPLE_SHAPE,
    VERSIONS,
    Converted,
    Defined,
    PeerBins,
    hook_process,
    hookclient,
    kubevirt_reason,
    last_error,
    shape_key,
    stop,
    wait_for_socket,
)

DIALECTS = list(Dialect)
# One of each class core/domain/qemuargs.py refuses, in spellings KubeVirt's spec must carry through
# (every case and spelling, in every dialect, is in tests/core/test_qemuargs.py).
ARGUMENT_CASES = (
    "machine-cgs",
    "M-cgs",
    "accel-tcg",
    "enable-kvm",
    "cpu-max",
    "drive-pflash",
    "global-iommu-off",
    "someone-elses-rme-guest",
    "fw-cfg-swallows-machine",
)
# Through an earlier sidecar: one per class, and the elements KubeVirt's own spec cannot carry.
SIDECAR_CASES = ("machine-cgs", "accel-tcg", "cpu-max", "drive-pflash", "global-iommu-off")
ELEMENT_CASES = ("env", "override", "capabilities")
OURS_TAIL = ["-machine", "confidential-guest-support=rme0"]


@pytest.fixture(scope="module")
def chained_hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Dialect, Path]]:
    """Per dialect a hooks dir: the foreign sidecar in hook-sidecar-0, ours in hook-sidecar-1."""
    base = tmp_path_factory.mktemp("chained")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for dialect in DIALECTS:
            folder = base / dialect.value / "hook-sidecar-0"
            folder.mkdir(parents=True)
            log = base / f"{dialect.value}.foreign.log"
            with log.open("w") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "tests.peers.kubevirt.foreign_sidecar", str(folder)],
                    cwd=ROOT,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            wait_for_socket(folder / SOCKET_NAME, process, log)
        with (
            hook_process(base / "vep" / "hook-sidecar-1", "--dialect", "vep"),
            hook_process(base / "openeuler" / "hook-sidecar-1", "--dialect", "openeuler"),
            hook_process(
                base / "qemu-commandline" / "hook-sidecar-1", "--dialect", "qemu-commandline"
            ),
        ):
            yield {d: base / d.value for d in DIALECTS}
    finally:
        for process in processes:
            stop(process)


def _incoming(source: Converted, folder: Path, case: str) -> tuple[Converted, str]:
    """The converter's domain with the case's foreign content; what the refusal must name."""
    xml = source.domain.read_text()
    if case in REFUSED_ELEMENTS:
        element, named = REFUSED_ELEMENTS[case]
        foreign = with_element(xml, element)
    else:
        values, named = REFUSED_ARGUMENTS[case]
        foreign = with_commandlines(xml, values)
    path = folder / f"{case}.xml"
    path.write_text(foreign)
    return Converted(domain=path, vmi=source.vmi), named


def _from_sidecar(source: Converted, folder: Path, case: str) -> tuple[Converted, str]:
    """The converter's VMI asking the foreign sidecar to add the case's content."""
    if case in REFUSED_ELEMENTS:
        fragment, named = REFUSED_ELEMENTS[case]
    else:
        values, named = REFUSED_ARGUMENTS[case]
        fragment = commandline_xml(values)
    vmi = json.loads(source.vmi.read_text())
    vmi["metadata"].setdefault("annotations", {})[FOREIGN_ANNOTATION] = fragment
    path = folder / f"{case}.vmi.json"
    path.write_text(json.dumps(vmi))
    return Converted(domain=source.domain, vmi=path), named


def _assert_refused(source: Converted, result: Defined, named: str) -> None:
    assert result.returncode == 1, last_error(result.stderr)
    assert result.defines == ("", "", ""), "a domain with a foreign QEMU argument reached libvirt"
    reason = kubevirt_reason(result.stderr)
    meta = json.loads(source.vmi.read_text())["metadata"]
    assert reason.startswith(
        "rpc error: code = FailedPrecondition desc = kubevirt-cca hook: refusing to define the "
        f"domain of VMI {meta['namespace']}/{meta['name']}: the VMI asks for an Arm CCA Realm, "
        "but its domain cannot be made one: the domain carries what kubevirt-cca does not pass "
        "to a Realm in libvirt's QEMU namespace: "
    ), reason
    assert named in reason, reason
    assert reason.endswith("the VM is not started as a plain VM (see docs/hook.md)"), reason


@pytest.mark.parametrize("case", ARGUMENT_CASES)
@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
@pytest.mark.parametrize("version", VERSIONS)
def test_foreign_arguments_in_the_incoming_domain_are_refused(
    version: str,
    dialect: Dialect,
    case: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    dialect_hooks: dict[Dialect, Path],
    tmp_path: Path,
) -> None:
    source = converted[version][shape_key(EXAMPLE_SHAPE, dialect)]
    foreign, named = _incoming(source, tmp_path, case)
    result = hookclient(
        peer_bins[version],
        hooks_dir=dialect_hooks[dialect],
        converted=foreign,
        prefix=tmp_path / "r",
    )
    _assert_refused(foreign, result, named)


@pytest.mark.parametrize("case", [*SIDECAR_CASES, *ELEMENT_CASES])
@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
@pytest.mark.parametrize("version", VERSIONS)
def test_foreign_arguments_from_an_earlier_sidecar_are_refused(
    version: str,
    dialect: Dialect,
    case: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    chained_hooks: dict[Dialect, Path],
    tmp_path: Path,
) -> None:
    source = converted[version][shape_key(EXAMPLE_SHAPE, dialect)]
    asked, named = _from_sidecar(source, tmp_path, case)
    result = hookclient(
        peer_bins[version],
        hooks_dir=chained_hooks[dialect],
        converted=source,
        vmi=asked.vmi,
        prefix=tmp_path / "s",
        sidecars=2,
    )
    _assert_refused(asked, result, named)


@pytest.mark.parametrize("version", VERSIONS)
def test_kubevirt_drops_other_qemu_elements_of_the_incoming_domain(
    version: str,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """Why the elements are tested through a sidecar: KubeVirt's spec has no place for them."""
    source, _ = _incoming(converted[version][EXAMPLE_SHAPE], tmp_path, "override")
    (tmp_path / "none").mkdir()
    result = hookclient(
        peer_bins[version],
        hooks_dir=tmp_path / "none",
        converted=source,
        prefix=tmp_path / "n",
        sidecars=0,
    )
    assert result.returncode == 0, last_error(result.stderr)
    assert all(define and "override" not in define for define in result.defines)


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
@pytest.mark.parametrize("version", VERSIONS)
def test_kubevirts_own_arguments_stay_and_ours_are_last_on_every_define(
    version: str,
    dialect: Dialect,
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    chained_hooks: dict[Dialect, Path],
    tmp_path: Path,
) -> None:
    """KubeVirt's Ignition block in the domain, a second block with -msg from the earlier
    sidecar: libvirt gets one block, KubeVirt's and the sidecar's values first, ours last.
    (What KubeVirt itself keeps of its own block on the later defines, without any hook, is
    the baseline: v1.9.0 drops it from its re-serialised spec, main keeps it.)"""
    original = converted[version][shape_key(EXAMPLE_SHAPE, dialect)]
    ignition, msg = HARMLESS_ARGUMENTS["kubevirt-ignition"], HARMLESS_ARGUMENTS["msg"]
    domain = tmp_path / "ignition.xml"
    domain.write_text(with_commandlines(original.domain.read_text(), ignition))
    vmi = json.loads(original.vmi.read_text())
    vmi["metadata"].setdefault("annotations", {})[FOREIGN_ANNOTATION] = commandline_xml(msg)
    (tmp_path / "msg.vmi.json").write_text(json.dumps(vmi))
    given = Converted(domain=domain, vmi=tmp_path / "msg.vmi.json")
    (tmp_path / "none").mkdir()
    baseline = hookclient(
        peer_bins[version],
        hooks_dir=tmp_path / "none",
        converted=given,
        prefix=tmp_path / "b",
        sidecars=0,
    )
    result = hookclient(
        peer_bins[version],
        hooks_dir=chained_hooks[dialect],
        converted=given,
        prefix=tmp_path / "h",
        sidecars=2,
    )
    assert baseline.returncode == 0 and result.returncode == 0, last_error(result.stderr)
    ours = 4 if dialect is Dialect.QEMU_COMMANDLINE else 0
    for number, (define, plain) in enumerate(zip(result.defines, baseline.defines, strict=True), 1):
        blocks = commandline_values(define)
        assert len(blocks) == 1, (number, blocks)
        values = blocks[0]
        kubevirts = [value for block in commandline_values(plain) for value in block]
        theirs = values[: len(values) - ours]
        if number == 1:
            assert kubevirts == list(ignition) and theirs == [*ignition, *msg], values
        else:  # the earlier sidecar adds its block again on each define
            assert theirs[: len(kubevirts)] == kubevirts, (number, values, kubevirts)
            assert set(theirs[len(kubevirts) :]) == set(msg), (number, values)
        if ours:
            assert values[-4] == "-object" and values[-3].startswith("rme-guest,id=rme0")
            assert values[-2:] == OURS_TAIL, (number, values)


def test_kubevirt_keeps_only_the_last_commandline_block_of_a_domain(
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    tmp_path: Path,
) -> None:
    """Why the rewrite leaves one block: KubeVirt's spec holds one, the last it read."""
    original = converted["main"][EXAMPLE_SHAPE]
    domain = tmp_path / "two.xml"
    domain.write_text(
        with_commandlines(original.domain.read_text(), ["-msg", "timestamp=on"], ["-cpu", "max"])
    )
    (tmp_path / "none").mkdir()
    result = hookclient(
        peer_bins["main"],
        hooks_dir=tmp_path / "none",
        converted=Converted(domain=domain, vmi=original.vmi),
        prefix=tmp_path / "n",
        sidecars=0,
    )
    assert result.returncode == 0, last_error(result.stderr)
    assert commandline_values(result.defines[0]) == [["-cpu", "max"]]
