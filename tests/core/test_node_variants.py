"""Each CCA stack in the field, from detection to labels to admission to the rewrite.

One row per variant (tests/data/domcapabilities, tests/data/rme-guest): what the node's stack
reports, the dialect, what a VM asks for, and what must happen. The chain is the real one:
parse the stack's answer, plan the labeller's patch and apply it to a Node with an independent
RFC 6902 implementation, run the mutating webhook's decision on an AdmissionReview for a
cluster with that node, check the patched VMI against KubeVirt's CRD schema, schedule it the
way the scheduler matches a nodeSelector, and let the hook define the domain, which must pass
libvirt's RNG (with our dialect overlays) and carry exactly what was asked.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import pytest
from lxml import etree

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.admission.admit import admit
from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from kubevirt_cca.core.admission.reviews import parse_review
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.hook import define_domain
from kubevirt_cca.core.node.detection_report import HostEvidence, build_report
from kubevirt_cca.core.node.domain_capabilities import parse_domcapabilities
from kubevirt_cca.core.node.honoured import parse_rme_guest_help
from kubevirt_cca.core.node.labelling import NodeMetadata, plan_node
from kubevirt_cca.core.vmi.webhook_table import Endpoint
from kubevirt_cca.errors import HookError
from tests.admission.helpers import review, schema_errors
from tests.conftest import DATA
from tests.core.rewrite_support import Q, require_schema
from tests.core.rewrite_support import schema_errors as rng_errors

RPV = base64.b64encode(bytes(range(64))).decode()
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DOMAIN = (DATA / "domains" / "kernel-boot-bare.xml").read_bytes()


@dataclass(frozen=True)
class Variant:
    domcaps: str
    rme_guest: str | None
    dialect: Dialect
    parameters: dict[str, Any] | None
    labels: frozenset[str]
    """The owned labels the node must get (besides kubevirt.io/cca when capable)."""
    runs: bool
    """The VM can be scheduled on this node (else: admitted with a warning, stays Pending)."""
    capable: bool = True


VARIANTS = {
    # libvirt's enum alone is no choice (issue 22): QEMU not asked, only the fixed sha512.
    "rmm2-sha384-enum-alone-is-no-choice": Variant(
        "aarch64-cca-sha384.xml",
        None,
        Dialect.VEP,
        {"measurementAlgo": "sha384"},
        frozenset({"cca.kubevirt.io/measurement-algo-sha512"}),
        runs=False,
    ),
    "rmm2-sha384-qemu-names-it": Variant(
        "aarch64-cca-sha384.xml",
        "sha384-choice.txt",
        Dialect.VEP,
        {"measurementAlgo": "sha384"},
        frozenset(
            {
                "cca.kubevirt.io/measurement-algo-sha256",
                "cca.kubevirt.io/measurement-algo-sha384",
                "cca.kubevirt.io/measurement-algo-sha512",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha256",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha384",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha512",
                "cca.kubevirt.io/rme-guest-personalization-value",
                "cca.kubevirt.io/rme-guest-measurement-log",
            }
        ),
        runs=True,
    ),
    # NVIDIA's libvirt lists sha256 and sha512, its QEMU measures with SHA-512 whatever is asked.
    "nvidia-sha256-is-not-honoured": Variant(
        "aarch64-nvidia-cca.xml",
        None,
        Dialect.VEP,
        {"measurementAlgo": "sha256"},
        frozenset({"cca.kubevirt.io/measurement-algo-sha512"}),
        runs=False,
    ),
    "nvidia-sha512-runs": Variant(
        "aarch64-nvidia-cca.xml",
        None,
        Dialect.VEP,
        {"measurementAlgo": "sha512"},
        frozenset({"cca.kubevirt.io/measurement-algo-sha512"}),
        runs=True,
    ),
    "nvidia-personalization-value-not-advertised": Variant(
        "aarch64-nvidia-cca.xml",
        None,
        Dialect.VEP,
        {"personalizationValue": RPV},
        frozenset({"cca.kubevirt.io/measurement-algo-sha512"}),
        runs=False,
    ),
    "nvidia-rng-shapes": Variant(
        "aarch64-nvidia-rng-shapes.xml",
        None,
        Dialect.VEP,
        {"measurementLog": True, "personalizationValue": RPV},
        frozenset(
            {
                "cca.kubevirt.io/measurement-algo-sha512",
                "cca.kubevirt.io/personalization-value",
                "cca.kubevirt.io/measurement-log",
            }
        ),
        runs=True,
    ),
    "nvidia-cca-no": Variant(
        "aarch64-nvidia-cca-no.xml", None, Dialect.VEP, None, frozenset(), runs=False, capable=False
    ),
    "launch-security-disagrees": Variant(
        "aarch64-cca-launchsecurity-no.xml",
        None,
        Dialect.VEP,
        None,
        frozenset(),
        runs=False,
        capable=False,
    ),
    "sectype-without-cca-feature": Variant(
        "aarch64-sectype-only.xml", None, Dialect.VEP, None, frozenset(), runs=False, capable=False
    ),
    "older-stack-all-parameters": Variant(
        "aarch64-cca-all-parameters.xml",
        None,
        Dialect.OPENEULER,
        {"measurementAlgo": "sha512", "measurementLog": True, "personalizationValue": RPV},
        frozenset(
            {
                "cca.kubevirt.io/measurement-algo-sha512",
                "cca.kubevirt.io/personalization-value",
                "cca.kubevirt.io/measurement-log",
            }
        ),
        runs=True,
    ),
    "newest-kvm-drops-personalization": Variant(
        "aarch64-cca-no-enum.xml",
        None,
        Dialect.VEP,
        {"personalizationValue": RPV},
        frozenset(),
        runs=False,
    ),
    "newest-kvm-label-only": Variant(
        "aarch64-cca-no-enum.xml", None, Dialect.VEP, None, frozenset(), runs=True
    ),
    "empty-enum-no-algorithm": Variant(
        "aarch64-cca-empty-enum.xml",
        None,
        Dialect.VEP,
        {"measurementAlgo": "sha256"},
        frozenset(),
        runs=False,
    ),
    "libvirt-sha384-not-for-qemu": Variant(
        "aarch64-cca-sha384.xml",
        "linaro-v3.txt",
        Dialect.QEMU_COMMANDLINE,
        {"measurementAlgo": "sha384"},
        frozenset(
            {
                "cca.kubevirt.io/measurement-algo-sha256",
                "cca.kubevirt.io/measurement-algo-sha512",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha256",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha512",
                "cca.kubevirt.io/rme-guest-personalization-value",
                "cca.kubevirt.io/rme-guest-measurement-log",
            }
        ),
        runs=False,
    ),
    "qemu-linaro-v3-all-parameters": Variant(
        "aarch64-cca-no-enum.xml",
        "linaro-v3.txt",
        Dialect.QEMU_COMMANDLINE,
        {"measurementAlgo": "sha512", "measurementLog": True, "personalizationValue": RPV},
        frozenset(
            {
                "cca.kubevirt.io/rme-guest-measurement-algo-sha256",
                "cca.kubevirt.io/rme-guest-measurement-algo-sha512",
                "cca.kubevirt.io/rme-guest-personalization-value",
                "cca.kubevirt.io/rme-guest-measurement-log",
            }
        ),
        runs=True,
    ),
    "qemu-rfc-v4-drops-the-log": Variant(
        "aarch64-cca-no-enum.xml",
        "rfc-v4.txt",
        Dialect.QEMU_COMMANDLINE,
        {"measurementLog": True},
        frozenset(),
        runs=False,
    ),
    "qemu-rfc-v4-label-only": Variant(
        "aarch64-cca-no-enum.xml",
        "rfc-v4.txt",
        Dialect.QEMU_COMMANDLINE,
        None,
        frozenset(),
        runs=True,
    ),
    "qemu-algorithm-without-values": Variant(
        "aarch64-cca-no-enum.xml",
        "algorithm-only.txt",
        Dialect.QEMU_COMMANDLINE,
        {"measurementAlgo": "sha256"},
        frozenset(),
        runs=False,
    ),
    "qemu-without-rme-guest": Variant(
        "aarch64-cca-all-parameters.xml",
        "unknown.txt",
        Dialect.QEMU_COMMANDLINE,
        {"personalizationValue": RPV},
        frozenset(
            {
                "cca.kubevirt.io/measurement-algo-sha512",
                "cca.kubevirt.io/personalization-value",
                "cca.kubevirt.io/measurement-log",
            }
        ),
        runs=False,
    ),
    "openeuler-virtcca": Variant(
        "aarch64-virtcca.xml", None, Dialect.OPENEULER, None, frozenset(), runs=False, capable=False
    ),
}


def detect(variant: Variant) -> Any:
    domcaps = parse_domcapabilities((DATA / "domcapabilities" / variant.domcaps).read_text())
    rme = (
        parse_rme_guest_help((DATA / "rme-guest" / variant.rme_guest).read_text())
        if variant.rme_guest
        else None
    )
    return build_report(
        domcaps=domcaps,
        domcaps_error=None,
        rme_guest=rme,
        host=HostEvidence(arch="aarch64", kvm_device=True),
        checked_at=NOW,
    )


def labelled_node(report: Any) -> dict[str, Any]:
    """A Node as the labeller leaves it: its plan applied by an independent RFC 6902 library."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "arm-1",
            "resourceVersion": "7",
            "labels": {"kubernetes.io/arch": "arm64"},
        },
    }
    plan = plan_node(NodeMetadata.from_object(node), report)
    patched: dict[str, Any] = jsonpatch.apply_patch(node, [dict(op) for op in plan.patch])
    return patched


def vmi(parameters: dict[str, Any] | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "realm",
        "namespace": "default",
        "labels": {ENABLED_LABEL: "true"},
    }
    if parameters is not None:
        metadata["annotations"] = {LAUNCH_SECURITY_ANNOTATION: json.dumps(parameters)}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": metadata,
        "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "1Gi"}}}},
    }


def schedulable(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """The scheduler's nodeSelector rule: every key present with exactly that value."""
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_from_detection_to_the_domain(name: str) -> None:
    variant = VARIANTS[name]
    report = detect(variant)
    assert report.capable is variant.capable, report.reasons
    node = labelled_node(report)
    owned = {
        k
        for k, v in node["metadata"]["labels"].items()
        if k.startswith(("kubevirt.io/cca", "cca.kubevirt.io/")) and v == "true"
    }
    assert owned == ({"kubevirt.io/cca", *variant.labels} if variant.capable else set())
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"

    # Admission, for a cluster whose one CCA node is this one.
    nodes = tuple(
        n["metadata"]["labels"]
        for n in [node]
        if n["metadata"]["labels"].get("kubevirt.io/cca") == "true"
    )
    cluster = ClusterView(
        gates=all_gates_on(), settings=Settings(dialect=variant.dialect), cca_node_labels=nodes
    )
    obj = vmi(variant.parameters)
    verdict = admit(Endpoint.MUTATE_VMI, parse_review(json.dumps(review(obj)).encode()), cluster)
    assert verdict.response["allowed"], verdict.causes
    patch = json.loads(base64.b64decode(verdict.response["patch"]))
    admitted = jsonpatch.apply_patch(obj, patch)
    assert schema_errors(admitted) == []
    warnings = verdict.response.get("warnings", [])
    selector = admitted["spec"]["nodeSelector"]
    assert schedulable(selector, node["metadata"]["labels"]) is variant.runs
    if not variant.runs:
        # Never run without what was asked: admitted with a warning naming it, stays Pending.
        [warning] = warnings
        assert warning.startswith("no node in this cluster honours ")
        missing = [k for k, v in selector.items() if node["metadata"]["labels"].get(k) != v]
        assert missing and all(f"node label {key}=true" in warning for key in missing)
        return
    assert warnings == []

    # The hook on that node: exactly the parameters asked for, in the dialect's grammar.
    require_schema()
    defined = define_domain(
        DOMAIN, json.dumps(admitted).encode(), Settings(dialect=variant.dialect)
    )
    assert defined.realm
    root = etree.fromstring(defined.domain_xml)
    assert rng_errors(root, variant.dialect) == []
    assert realm_parameters(root, variant.dialect) == (variant.parameters or {})


def realm_parameters(root: etree._Element, dialect: Dialect) -> dict[str, Any]:
    """What the domain asks the stack for, read back in VEP 129's words."""
    found: dict[str, Any] = {}
    if dialect is Dialect.QEMU_COMMANDLINE:
        [cmdline] = root.findall(f"{Q}commandline")
        values = [a.get("value") for a in cmdline.findall(f"{Q}arg")]
        [rme] = [v for v in values if v and v.startswith("rme-guest,")]
        properties = dict(p.split("=", 1) for p in rme.split(",")[1:])
        assert properties.pop("id") == "rme0"
        names = {
            "measurement-algorithm": "measurementAlgo",
            "personalization-value": "personalizationValue",
            "measurement-log": "measurementLog",
        }
        for key, value in properties.items():
            found[names[key]] = True if value == "on" else value
        return found
    [element] = root.findall("launchSecurity")
    assert element.get("type") == "cca"
    algo = element.findtext("measurement-algo")
    if algo is not None:
        found["measurementAlgo"] = algo
    rpv = element.findtext("personalization-value")
    if rpv is not None:
        found["personalizationValue"] = rpv
    log_element = element.find("measurement-log")
    log = (
        element.get("measurement-log")
        if dialect is Dialect.VEP
        else (log_element.get("state") if log_element is not None else None)
    )
    if log is not None:
        found["measurementLog"] = log in ("yes", "on")
    return found


def test_virtcca_is_explained_for_what_it_is() -> None:
    report = detect(VARIANTS["openeuler-virtcca"])
    assert report.reasons[0] == (
        "libvirt's <cca> is openEuler's virtCCA (it names hisi-cca-enable): HiSilicon's "
        "confidential VMs on TrustZone (S-EL2 and its TMM), not Arm CCA Realms (RME); "
        "kubevirt-cca cannot run Realms on it"
    )
    assert report.evidence["libvirt"]["virtCCA"] is True


@pytest.mark.parametrize(
    ("scheduled_for", "hook_dialect"),
    [
        (Dialect.VEP, Dialect.QEMU_COMMANDLINE),
        (Dialect.QEMU_COMMANDLINE, Dialect.VEP),
    ],
)
def test_the_hook_refuses_a_parameter_checked_for_another_dialect(
    scheduled_for: Dialect, hook_dialect: Dialect
) -> None:
    """Admitted under one dialect, defined under another: the node was never checked for it."""
    variant = VARIANTS["qemu-linaro-v3-all-parameters"]
    node = labelled_node(detect(variant))
    cluster = ClusterView(
        gates=all_gates_on(),
        settings=Settings(dialect=scheduled_for),
        cca_node_labels=(node["metadata"]["labels"],),
    )
    obj = vmi({"personalizationValue": RPV})
    verdict = admit(Endpoint.MUTATE_VMI, parse_review(json.dumps(review(obj)).encode()), cluster)
    admitted = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(verdict.response["patch"])))
    with pytest.raises(HookError) as refused:
        define_domain(DOMAIN, json.dumps(admitted).encode(), Settings(dialect=hook_dialect))
    wanted = (
        "cca.kubevirt.io/rme-guest-personalization-value"
        if hook_dialect is Dialect.QEMU_COMMANDLINE
        else "cca.kubevirt.io/personalization-value"
    )
    assert f"(node label {wanted})" in str(refused.value)
    assert "the VM is not started as a plain VM" in str(refused.value)


def admission_warnings(variant: Variant) -> list[str]:
    node = labelled_node(detect(variant))
    cluster = ClusterView(
        gates=all_gates_on(),
        settings=Settings(dialect=variant.dialect),
        cca_node_labels=(node["metadata"]["labels"],),
    )
    obj = vmi(variant.parameters)
    verdict = admit(Endpoint.MUTATE_VMI, parse_review(json.dumps(review(obj)).encode()), cluster)
    assert verdict.response["allowed"], verdict.causes
    warnings: list[str] = verdict.response.get("warnings", [])
    return warnings


def test_sha256_on_a_sha512_only_cluster_is_warned_and_never_scheduled() -> None:
    """NVIDIA's stack: the VMI keeps its sha256 node selector, and the warning says why."""
    [warning] = admission_warnings(VARIANTS["nvidia-sha256-is-not-honoured"])
    assert warning.startswith(
        "no node in this cluster honours measurementAlgo sha256 (libvirt) "
        "(node label cca.kubevirt.io/measurement-algo-sha256=true) with the vep dialect"
    )
    assert warning.endswith(". The CCA nodes here honour measurementAlgo sha512 only")


def test_a_cluster_without_any_algorithm_choice_says_so() -> None:
    [warning] = admission_warnings(VARIANTS["empty-enum-no-algorithm"])
    assert warning.endswith(
        ". No CCA node here lets a Realm choose its measurement algorithm (where the stack "
        "gives no choice, a Realm is measured with sha512)"
    )


def test_a_parameter_warning_names_no_algorithm() -> None:
    [warning] = admission_warnings(VARIANTS["nvidia-personalization-value-not-advertised"])
    assert "measurementAlgo" not in warning
