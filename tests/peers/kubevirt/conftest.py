"""Session fixtures of the KubeVirt peers: converted shapes per version, our hook per dialect."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.core.cluster.settings import Dialect
from tests.peers.kubevirt.support import (
    VERSIONS,
    Converted,
    PeerBins,
    admitted_vmi,
    convert_batch,
    hook_process,
    shape_key,
    shape_manifests,
    sidecar_cluster,
)


@pytest.fixture(scope="session")
def peer_bins(kubevirt_peers_bin: Path) -> dict[str, PeerBins]:
    return {
        v: PeerBins(
            version=v,
            api=kubevirt_peers_bin / f"kubevirt-api-peer-{v}",
            launcher=kubevirt_peers_bin / f"kubevirt-launcher-peer-{v}",
        )
        for v in VERSIONS
    }


@pytest.fixture(scope="session")
def admitted_shapes() -> dict[str, dict[str, Any]]:
    """Every shape as kubevirt-cca's admission lets it through (the input KubeVirt sees).

    Keyed by ``shape_key``: admission schedules each CCA parameter on the node label of the
    configured dialect, and the hook checks it, so each dialect gets its own admitted VMI.
    """
    return {
        shape_key(name, dialect): admitted_vmi(manifest, sidecar_cluster(dialect))
        for name, manifest in shape_manifests().items()
        for dialect in Dialect
    }


@pytest.fixture(scope="session")
def converted(
    peer_bins: dict[str, PeerBins],
    admitted_shapes: dict[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Converted]]:
    """version -> shape -> KubeVirt's domain and mutated VMI (one converter run per version)."""
    with ThreadPoolExecutor(max_workers=2) as pool:  # one process per version, side by side
        runs = {
            v: pool.submit(
                convert_batch, bins, admitted_shapes, tmp_path_factory.mktemp(f"convert-{v}")
            )
            for v, bins in peer_bins.items()
        }
        return {v: run.result() for v, run in runs.items()}


@pytest.fixture(scope="session")
def dialect_hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Dialect, Path]]:
    """One ``kubevirt-cca hook`` process per dialect: dialect -> the hooks dir to scan."""
    base = tmp_path_factory.mktemp("hooks")
    with (
        hook_process(base / "vep" / "hook-sidecar-0", "--dialect", "vep"),
        hook_process(base / "openeuler" / "hook-sidecar-0", "--dialect", "openeuler"),
        hook_process(base / "qemu-commandline" / "hook-sidecar-0", "--dialect", "qemu-commandline"),
    ):
        yield {d: base / d.value for d in Dialect}
