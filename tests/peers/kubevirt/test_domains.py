"""Real domains: every shape through KubeVirt's converter and our hook as virt-launcher calls it.

Per KubeVirt version (v1.9.0, main), every shape (tests/data/peers/vmis, the examples, the docs'
manifests) is admitted by kubevirt-cca, converted by KubeVirt's converter (one batch process),
then handed to our ``kubevirt-cca hook`` process by virt-launcher's hook manager (``hookclient``)
with three defines, in each dialect. Every string libvirt would receive must be valid for
libvirt (its RNG with our overlay, and ``virsh -c test:///default define``) and a Realm by every
rule of docs/rewrite.md.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.core.cluster.settings import Dialect
from kubevirt_cca.core.vmi.request import parse_request
from tests.boot.domains import realm_problems
from tests.peers.kubevirt.realm import realm_rule_problems, rng_errors, virsh_define
from tests.peers.kubevirt.support import (
    VERSIONS,
    Converted,
    Defined,
    PeerBins,
    hookclient,
    last_error,
    shape_key,
    shape_manifests,
)

SHAPES = sorted(shape_manifests())
DIALECTS = tuple(Dialect)
CALLS = 3
Key = tuple[str, str, Dialect]


@pytest.fixture(scope="session")
def defined(
    peer_bins: dict[str, PeerBins],
    converted: dict[str, dict[str, Converted]],
    dialect_hooks: dict[Dialect, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[Key, Defined]:
    """(version, shape, dialect) -> what hookclient's three defines gave libvirt (2 threads)."""
    folder = tmp_path_factory.mktemp("defines")

    def run(key: Key) -> Defined:
        version, shape, dialect = key
        return hookclient(
            peer_bins[version],
            hooks_dir=dialect_hooks[dialect],
            converted=converted[version][shape_key(shape, dialect)],
            prefix=folder / f"{version}.{shape}.{dialect.value}",
            calls=CALLS,
        )

    keys = [(v, s, d) for v in VERSIONS for s in SHAPES for d in DIALECTS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(keys, pool.map(run, keys), strict=True))


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_define_is_a_valid_realm(
    version: str,
    shape: str,
    dialect: Dialect,
    defined: dict[Key, Defined],
    converted: dict[str, dict[str, Converted]],
    admitted_shapes: dict[str, dict[str, Any]],
    libvirt_schema_dir: Path,
) -> None:
    result = defined[(version, shape, dialect)]
    assert result.returncode == 0, last_error(result.stderr)
    source = converted[version][shape_key(shape, dialect)].domain.read_text()
    request = parse_request(admitted_shapes[shape_key(shape, dialect)])
    assert request is not None
    assert all(result.defines), "hookclient wrote fewer defines than calls"
    for number, xml in enumerate(result.defines, 1):
        where = f"define {number} of {CALLS}"
        assert rng_errors(xml, dialect) == (), where
        libvirt = virsh_define(xml, dialect)
        assert libvirt.error is None, where
        # What libvirt keeps and adds (implicit devices) is still a Realm's device set.
        assert realm_problems(libvirt.dumped) == [], where
        assert realm_rule_problems(xml, dialect=dialect, request=request, source=source) == [], (
            where
        )


@pytest.mark.parametrize("version", VERSIONS)
def test_later_defines_get_kubevirts_lossy_spec(version: str, defined: dict[Key, Defined]) -> None:
    """The premise of rule 12: from the second define on, KubeVirt hands the hook its own
    re-serialised spec, with the GIC gone and an empty interface driver name."""
    result = defined[(version, "uefi-containerdisk", Dialect.VEP)]
    assert result.returncode == 0, last_error(result.stderr)
    assert "<gic" not in result.specs[1]
    assert 'name=""' in result.specs[1]
    assert 'name=""' not in result.defines[1]
