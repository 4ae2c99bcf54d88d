"""The peers lane: real KubeVirt code (and a real API server) from ../shared/peers.

``../shared/peers/scripts/unpack.py`` unpacks the binaries into a cache folder (env
``KUBEVIRT_CCA_PEERS_CACHE``, else unpack.py's default) and checks their checksums. The lane skips
with a reason when ``../shared/peers`` is absent or a runtime need is missing; CI runs
``scripts/peers-lane-setup.sh`` and sets ``KUBEVIRT_CCA_PEERS_REQUIRED=1``, which turns every such
skip into a failure, so the lane cannot go green by skipping itself.
"""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from tests.peers.binaries import peers_unavailable, unpack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.peers)


@pytest.fixture(scope="session")
def kubevirt_peers_bin() -> Path:
    """The folder holding kubevirt-{api,launcher}-peer-{v1.9.0,main}."""
    if ctypes.util.find_library("virt") is None:
        peers_unavailable("libvirt0 is not installed (kubevirt-launcher-peer links libvirt)")
    return unpack(
        *(
            f"kubevirt-{part}-peer-{version}"
            for part in ("api", "launcher")
            for version in ("v1.9.0", "main")
        )
    )
