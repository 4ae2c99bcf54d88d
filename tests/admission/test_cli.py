"""``kubevirt-cca validate`` and ``convert`` on the shared manifests and hand-made bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    LAUNCH_SECURITY_ANNOTATION,
)
from tests.admission.helpers import (
    KUBEVIRT_CR,
    MANIFESTS,
    labelled,
    load,
    require_manifests,
    run,
    template_node,
    write,
)

pytestmark = pytest.mark.shared
require_manifests()


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_validate_every_shared_manifest_with_and_without_the_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    plain = load(path)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0, err
    assert "assuming the WorkloadEncryptionCCA and Sidecar feature gates are on" in err
    assert yaml.safe_load(out) == plain  # not a CCA object: admitted unchanged
    if plain["kind"] == "VirtualMachineInstanceMigration":
        return
    cca = labelled(plain)
    annotations = template_node(cca)["metadata"].get("annotations", {})
    if HOOK_SIDECARS_ANNOTATION in annotations:
        # A CCA VMI carries no hook sidecar but kubevirt-cca's (issue 21): refused, named.
        code, out, err = run(capsys, "validate", write(tmp_path, "cca.yaml", cca))
        assert (code, out) == (1, "")
        assert f"annotations[{HOOK_SIDECARS_ANNOTATION}]: holds 1 hook sidecar entry (" in err
        assert "that kubevirt-cca did not write" in err
        del annotations[HOOK_SIDECARS_ANNOTATION]
    code, out, err = run(capsys, "validate", write(tmp_path, "cca.yaml", cca))
    assert code == 0, err
    admitted = yaml.safe_load(out)
    if plain["kind"] == "VirtualMachineInstance":
        assert admitted["spec"]["nodeSelector"]["kubevirt.io/cca"] == "true"
    else:
        assert admitted == cca  # templates are checked, not mutated
    # With a KubeVirt CR that lacks our gate: refused, exit 1, the gate named.
    cr = copy.deepcopy(KUBEVIRT_CR)

    def validate_with_gates(gates: list[str]) -> tuple[int, str, str]:
        cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] = gates
        return run(
            capsys,
            "validate",
            write(tmp_path, "cca.yaml", cca),
            "--kubevirt-cr",
            write(tmp_path, "kv.yaml", cr),
        )

    code, out, err = validate_with_gates(["Sidecar"])
    assert (code, out) == (1, "")
    assert "WorkloadEncryptionCCA feature gate is not enabled in kubevirt-config" in err
    # The gate's other names are the same switch (validate uses the webhook's builder).
    code, out, err = validate_with_gates(["EnableARMCCA", "Sidecar"])
    assert code == 0, err


BAD = [
    (
        "arch",
        lambda o: template_node(o)["spec"].update(architecture="amd64"),
        "spec.architecture: a CCA Realm runs only on arm64",
    ),
    (
        "params",
        lambda o: (
            template_node(o)["metadata"]
            .setdefault("annotations", {})
            .update({LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo": "sha256", "extra": 1}'})
        ),
        "extra: unknown key",
    ),
    (
        "no-label",
        lambda o: (
            template_node(o)["metadata"]["labels"].pop(ENABLED_LABEL)
            and template_node(o)["metadata"]
            .setdefault("annotations", {})
            .update({LAUNCH_SECURITY_ANNOTATION: "{}"})
        ),
        "need the label",
    ),
    (
        "foreign-sidecar",
        lambda o: (
            template_node(o)["metadata"]
            .setdefault("annotations", {})
            .update({HOOK_SIDECARS_ANNOTATION: '[{"image": "registry.example/strip:1"}]'})
        ),
        f"annotations[{HOOK_SIDECARS_ANNOTATION}]: holds 1 hook sidecar entry (image "
        "'registry.example/strip:1') that kubevirt-cca did not write; a CCA VMI runs no hook "
        "sidecar but kubevirt-cca's",
    ),
]


@pytest.mark.parametrize(("change", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("stem", ["vmi-fedora", "vm-cirros", "vm-pool-cirros"])
def test_validate_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, words: str, stem: str
) -> None:
    obj = labelled(next(load(p) for p in MANIFESTS if p.stem == stem))
    change(obj)
    code, out, err = run(capsys, "validate", write(tmp_path, "bad.yaml", obj))
    assert (code, out) == (1, "")
    assert "kubevirt-cca validate: refused:" in err and words in err


def test_validate_update_with_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vmi = next(load(p) for p in MANIFESTS if p.stem == "vmi-fedora")
    code, out, _ = run(capsys, "validate", write(tmp_path, "v.yaml", labelled(vmi)))
    admitted = yaml.safe_load(out)
    changed = copy.deepcopy(admitted)
    changed["metadata"]["labels"][ENABLED_LABEL] = "false"
    code, _, err = run(
        capsys,
        "validate",
        write(tmp_path, "new.yaml", changed),
        "--old",
        write(tmp_path, "old.yaml", admitted),
    )
    assert code == 1 and "cannot stop being one" in err
    assert (
        run(
            capsys,
            "validate",
            write(tmp_path, "new.yaml", admitted),
            "--old",
            write(tmp_path, "old.yaml", admitted),
        )[0]
        == 0
    )


def test_validate_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in err
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    code, _, err = run(capsys, "validate", write(tmp_path, "pod.yaml", pod))
    assert code == 2 and "kind 'Pod' is not admitted" in err
    code, _, err = run(
        capsys,
        "validate",
        write(tmp_path, "x.yaml", pod),
        "--kubevirt-cr",
        write(tmp_path, "kv.yaml", pod),
    )
    assert code == 2 and "expected a KubeVirt object" in err


NATIVE = {"measurementAlgo": "sha256", "measurementLog": True}


@pytest.mark.parametrize(
    "stem", ["vmi-fedora", "vm-cirros", "vmi-replicaset-cirros", "vm-pool-cirros"]
)
def test_native_form_is_explained_by_validate_and_rewritten_by_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stem: str
) -> None:
    obj = next(load(p) for p in MANIFESTS if p.stem == stem)
    native = copy.deepcopy(obj)
    template_node(native)["spec"]["domain"]["launchSecurity"] = {"cca": NATIVE}
    path = write(tmp_path, "native.yaml", native)
    code, out, err = run(capsys, "validate", path)
    assert (code, out) == (1, "")
    assert "stock KubeVirt does not have" in err and f"kubevirt-cca convert {path}" in err
    code, out, err = run(capsys, "convert", path)
    assert code == 0
    converted = yaml.safe_load(out)
    assert converted == labelled(obj, json.dumps(NATIVE, separators=(",", ":")))
    assert "removed" in err
    # The converted manifest is admitted.
    assert run(capsys, "validate", write(tmp_path, "converted.yaml", converted))[0] == 0
    # And handed back (to a KubeVirt that knows CCA itself): the native manifest again.
    code, out, err = run(
        capsys, "convert", "--to", "native", write(tmp_path, "back.yaml", converted)
    )
    assert code == 0 and "launchSecurity.cca" in err
    assert yaml.safe_load(out) == native


@pytest.mark.parametrize(
    "stem", ["vmi-fedora", "vm-cirros", "vmi-replicaset-cirros", "vm-pool-cirros"]
)
def test_a_native_request_pruned_to_an_empty_launch_security_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stem: str
) -> None:
    """Issue 21 item 11: what the API server stores of a native-form manifest applied without
    strict field validation. Labelled: refused, the field and the way out named. Unlabelled: not
    ours (KubeVirt refuses the empty launchSecurity), admitted with a note saying so."""
    obj = next(load(p) for p in MANIFESTS if p.stem == stem)
    pruned = labelled(obj)
    template_node(pruned)["spec"]["domain"]["launchSecurity"] = {}
    code, out, err = run(capsys, "validate", write(tmp_path, "pruned.yaml", pruned))
    assert (code, out) == (1, "")
    prefix = (
        ""
        if obj["kind"] == "VirtualMachineInstance"
        else (
            "spec.virtualMachineTemplate.spec.template."
            if obj["kind"] == "VirtualMachinePool"
            else "spec.template."
        )
    )
    field = f"{prefix}spec.domain.launchSecurity"
    assert (
        f"refused: {field}: is empty: the API server dropped cca from VEP 129's native form "
        f"{field}.cca"
    ) in err
    assert f"the annotation {LAUNCH_SECURITY_ANNOTATION}" in err and "kubevirt-cca convert" in err
    unlabelled = copy.deepcopy(obj)
    template_node(unlabelled)["spec"]["domain"]["launchSecurity"] = {}
    code, out, err = run(capsys, "validate", write(tmp_path, "plain.yaml", unlabelled))
    assert code == 0, err
    assert yaml.safe_load(out) == unlabelled
    assert f"note: {field} is empty: KubeVirt refuses that itself" in err


def test_convert_keeps_other_documents_and_reports_nothing_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.yaml"
    vm = next(load(p) for p in MANIFESTS if p.stem == "vm-cirros")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    path.write_text(yaml.safe_dump_all([svc, vm]))
    code, out, err = run(capsys, "convert", str(path))
    assert code == 0 and list(yaml.safe_load_all(out)) == [svc, vm]
    assert "nothing in VEP 129's native form" in err


def test_convert_refuses_an_invalid_native_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vm = next(load(p) for p in MANIFESTS if p.stem == "vm-cirros")
    template_node(vm)["spec"]["domain"]["launchSecurity"] = {"cca": {"measurementAlgo": "md5"}}
    code, out, err = run(capsys, "convert", write(tmp_path, "bad.yaml", vm))
    assert (code, out) == (1, "")
    assert "unsupported value 'md5'" in err


def test_validate_with_nodes_warns_when_no_node_honours_the_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vmi = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": "realm",
            "labels": {ENABLED_LABEL: "true"},
            "annotations": {LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo": "sha384"}'},
        },
        "spec": {"domain": {"devices": {}}},
    }
    nodes: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "kind": "Node",
                "metadata": {
                    "name": "arm-1",
                    "labels": {
                        "kubevirt.io/cca": "true",
                        "cca.kubevirt.io/measurement-algo-sha256": "true",
                    },
                },
            },
            {
                "kind": "Node",
                "metadata": {
                    "name": "x86-1",
                    "labels": {"cca.kubevirt.io/measurement-algo-sha384": "true"},
                },
            },
        ],
    }
    file, nodes_file = write(tmp_path, "vmi.yaml", vmi), write(tmp_path, "nodes.yaml", nodes)
    code, out, err = run(capsys, "validate", file, "--nodes", nodes_file)
    assert code == 0, err
    assert (
        "kubevirt-cca validate: warning: no node in this cluster honours measurementAlgo "
        "sha384 (libvirt) (node label cca.kubevirt.io/measurement-algo-sha384=true) with "
        "the vep dialect: the VMI stays Pending"
    ) in err
    admitted = yaml.safe_load(out)
    assert admitted["spec"]["nodeSelector"] == {
        "kubevirt.io/cca": "true",
        "cca.kubevirt.io/measurement-algo-sha384": "true",
    }
    # Without --nodes: not checked, and it says so.
    code, _, err = run(capsys, "validate", file)
    assert code == 0 and "warning" not in err
    assert "no --nodes given; whether any node honours the requested parameters" in err
    # A node that honours it: no warning.
    nodes["items"][0]["metadata"]["labels"]["cca.kubevirt.io/measurement-algo-sha384"] = "true"
    code, _, err = run(capsys, "validate", file, "--nodes", write(tmp_path, "n2.yaml", nodes))
    assert code == 0 and "warning" not in err and "no --nodes" not in err
    # Not nodes: a usage error.
    code, _, err = run(capsys, "validate", file, "--nodes", file)
    assert code == 2 and "expected nodes ('kubectl get nodes -o json')" in err
