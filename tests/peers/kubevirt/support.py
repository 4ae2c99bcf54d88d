"""Driving KubeVirt's own code: the shapes, the converter in batch, our hook under hookclient.

The peers (``../shared/peers``, unpacked by ``tests/peers/conftest.py``):

* ``kubevirt-api-peer-VERSION converter``: virt-api's VMI mutations + virt-launcher's converter,
  the domain KubeVirt generates for a VMI. ~3 s per start, so every shape goes through one
  batch run per version.
* ``kubevirt-launcher-peer-VERSION hookclient``: virt-launcher's hook manager calling our
  ``kubevirt-cca hook`` process over its real unix socket, ``-calls 3`` defines as virt-launcher
  does on a start, ``-prefix P`` writes what libvirt would get (``P.defineN.xml``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubevirt_cca.constants import CCA_FEATURE_GATE, PLUGIN_NAME, PLUGINS_FEATURE_GATE
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates, all_gates_on
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.vmi.request import find_template
from tests.conftest import DATA, ROOT

VERSIONS = ("v1.9.0", "main")
SHAPES_DIR = DATA / "peers" / "vmis"
CCA = ROOT / ".venv" / "bin" / "kubevirt-cca"
DOC_FILES = ("README.md", "docs/vm-owners.md", "docs/attestation.md")
_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
# The shape most hook-path tests start from (tests/data/peers/vmis/).
EXAMPLE_SHAPE = "example-vmi-cca"
_REASON = re.compile(r'"msg":"Failed to call OnDefineDomain".*?"reason":"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class PeerBins:
    """The unpacked binaries of one KubeVirt version."""

    version: str
    api: Path
    launcher: Path


def vmi_from(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A VMI for ``manifest``: itself, or the VMI its VM / replica set / pool template makes."""
    if manifest.get("kind") == "VirtualMachineInstance":
        return copy.deepcopy(dict(manifest))
    template = find_template(manifest)
    meta = manifest.get("metadata", {})
    tmeta = dict(template.metadata)
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": meta.get("name", "x"),
            "namespace": meta.get("namespace", "peers"),
            **{k: v for k, v in tmeta.items() if k in ("labels", "annotations")},
        },
        "spec": copy.deepcopy(dict(template.spec)),
    }


def doc_manifests() -> dict[str, dict[str, Any]]:
    """The complete manifests (with a ``kind``) in the docs a VM owner reads."""
    found: dict[str, dict[str, Any]] = {}
    for name in DOC_FILES:
        text = (ROOT / name).read_text()
        for number, block in enumerate(_YAML_BLOCK.findall(text)):
            loaded = yaml.safe_load(block)
            if isinstance(loaded, dict) and str(loaded.get("kind", "")).startswith("Virtual"):
                found[f"doc-{Path(name).stem}-{number}"] = loaded
    return found


def shape_manifests() -> dict[str, dict[str, Any]]:
    """Every shape: the varied set in tests/data/peers/vmis, the examples, the docs' manifests."""
    shapes = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(SHAPES_DIR.glob("*.yaml"))}
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        shapes[f"example-{example.stem}"] = yaml.safe_load(example.read_text())
    shapes.update(doc_manifests())
    return shapes


# The clusters docs/install.md sets up: sidecar mode (WorkloadEncryptionCCA + Sidecar) and plugin
# mode (WorkloadEncryptionCCA + Plugins, our Plugin object, dialect qemu-commandline).
SIDECAR_CLUSTER = ClusterView(gates=all_gates_on())


def sidecar_cluster(dialect: Dialect) -> ClusterView:
    """Sidecar mode with kubevirt-cca-config's ``dialect``."""
    return ClusterView(gates=all_gates_on(), settings=Settings(dialect=dialect))


def shape_key(shape: str, dialect: Dialect) -> str:
    """The name of a shape admitted under ``dialect`` (the default dialect keeps the bare name)."""
    return shape if dialect is Dialect.VEP else f"{shape}__{dialect.value}"


PLUGIN_CLUSTER = ClusterView(
    gates=FeatureGates(enabled=frozenset({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE})),
    settings=Settings(dialect=Dialect.QEMU_COMMANDLINE),
    integration_mode=IntegrationMode.PLUGIN,
    plugin_names=frozenset({PLUGIN_NAME}),
)


def admitted_vmi(
    manifest: Mapping[str, Any], cluster: ClusterView = SIDECAR_CLUSTER
) -> dict[str, Any]:
    """The VMI as kubevirt-cca's admission (mutating webhook) lets it through on ``cluster``."""
    vmi = vmi_from(manifest)
    plan = plan_vmi(vmi, cluster)
    assert not plan.violations, f"our admission refused the shape: {plan.violations}"
    admitted: dict[str, Any] = patches.apply(vmi, plan.patch)
    return admitted


@dataclass(frozen=True)
class Converted:
    """The converter's output for one shape: the domain and the VMI after virt-api's mutations."""

    domain: Path
    vmi: Path


def convert_batch(
    bins: PeerBins, vmis: Mapping[str, Mapping[str, Any]], folder: Path, *, arch: str = "arm64"
) -> dict[str, Converted]:
    """One converter process for all ``vmis``; the outputs per shape."""
    inputs = folder / "in"
    out = folder / "out"
    inputs.mkdir(parents=True)
    out.mkdir()
    for name, vmi in vmis.items():
        (inputs / f"{name}.json").write_text(json.dumps(vmi))
    done = subprocess.run(
        [str(bins.api), "converter", "-arch", arch, "-out", str(out), str(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"converter {bins.version}: {done.stderr[-3000:]}"
    return {
        name: Converted(domain=out / f"{name}.xml", vmi=out / f"{name}.vmi.json") for name in vmis
    }


@contextmanager
def hook_process(socket_dir: Path, *args: str) -> Iterator[Path]:
    """``kubevirt-cca hook --socket-dir DIR ARGS`` as a process; yields its log file."""
    socket_dir.mkdir(parents=True, exist_ok=True)
    log = socket_dir.parent / f"{socket_dir.name}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(CCA), "hook", "--socket-dir", str(socket_dir), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_socket(socket_dir / "kubevirt-cca.sock", process, log)
        yield log
    finally:
        stop(process)


@contextmanager
def strip_process(socket: Path, *more: Path) -> Iterator[Path]:
    """The hostile sidecar of ``strip_sidecar.py`` serving ``socket`` (and ``more``); yields
    its log file."""
    log = socket.parent.parent / f"{socket.parent.name}.strip.log"
    socket.parent.mkdir(parents=True, exist_ok=True)
    sockets = [str(s) for s in (socket, *more)]
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.peers.kubevirt.strip_sidecar", *sockets],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        for path in (socket, *more):
            wait_for_socket(path, process, log)
        yield log
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the hook removes its socket), SIGKILL after 10 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_socket(socket: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not socket.exists():
        assert process.poll() is None, f"the hook exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"no socket {socket}: {log.read_text()}"
        time.sleep(0.05)


@dataclass(frozen=True)
class Defined:
    """One hookclient run: exit status, stderr, and every string libvirt would have received."""

    returncode: int
    stderr: str
    defines: tuple[str, ...]
    specs: tuple[str, ...]


def hookclient(
    bins: PeerBins,
    *,
    hooks_dir: Path,
    converted: Converted,
    prefix: Path,
    calls: int = 3,
    vmi: Path | None = None,
    sidecars: int = 1,
) -> Defined:
    """virt-launcher's hook manager: Info, then ``calls`` defines through OnDefineDomain."""
    done = subprocess.run(
        [
            str(bins.launcher),
            "hookclient",
            "-hooks-dir",
            str(hooks_dir),
            "-domain",
            str(converted.domain),
            "-vmi",
            str(vmi or converted.vmi),
            "-calls",
            str(calls),
            "-sidecars",
            str(sidecars),
            "-prefix",
            str(prefix),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(),
    )
    return Defined(
        returncode=done.returncode,
        stderr=done.stderr,
        defines=tuple(_read(Path(f"{prefix}.define{n}.xml")) for n in range(1, calls + 1)),
        specs=tuple(_read(Path(f"{prefix}.spec{n}.xml")) for n in range(1, calls + 1)),
    )


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBEVIRT_CCA_")}


def last_error(stderr: str) -> str:
    """The last line of a peer's stderr that is not one of KubeVirt's info logs."""
    lines = [line for line in stderr.splitlines() if line.strip() and '"level":"info"' not in line]
    return lines[-1] if lines else ""


def kubevirt_reason(stderr: str) -> str:
    """The error virt-launcher's hook manager logs and returns (manager.go)."""
    found = _REASON.findall(stderr)
    assert found, stderr[-2000:]
    reason: str = json.loads(f'"{found[-1]}"')
    return reason


def run_plugin_namespace(folder: Path, commands: Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """``commands`` (pluginclient argument lists by name) run by ``plugin_ns.py`` in a private
    mount namespace, where KubeVirt's fixed plugin socket folder is a tmpfs of its own: each
    command's result by name, and the hook's log file."""
    spec = folder / "spec.json"
    out = folder / "out.json"
    log = folder / "hook.log"
    spec.write_text(
        json.dumps({"cca": str(CCA), "hook_log": str(log), "out": str(out), "commands": commands})
    )
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-m",
            "tests.peers.kubevirt.plugin_ns",
            str(spec),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results, log
