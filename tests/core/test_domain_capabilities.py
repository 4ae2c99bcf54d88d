"""Capability detection from libvirt's domain capabilities, the report, and the node labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import NODE_ALGO_LABEL_PREFIX, NODE_CCA_LABEL
from kubevirt_cca.core.node.detection_report import HostEvidence, build_report
from kubevirt_cca.core.node.domain_capabilities import DomainCapabilities, parse_domcapabilities
from kubevirt_cca.core.node.honoured import Honoured, RmeGuest, parse_rme_guest_help
from kubevirt_cca.core.node.labels import is_owned_label, node_labels
from kubevirt_cca.errors import CapabilitiesError
from tests.conftest import shared_files, shared_path

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DOMCAPS = shared_files("fixtures", "kubevirt", "domcapabilities", pattern="*.xml")

# What each shared fixture must yield: (cca_supported, algorithms).
EXPECTED = {
    "aarch64-cca.xml": (True, ("sha256", "sha512")),
    "aarch64-cca-no-algo-enum.xml": (True, ()),
    "aarch64-cca-empty-algo-enum.xml": (True, ()),
    "aarch64-no-cca.xml": (None, ()),
    "x86_64-sev.xml": (None, ()),
    "x86_64-sevsnp.xml": (None, ()),
    "x86_64-tdx.xml": (None, ()),
    "x86_64-nothing_usable.xml": (None, ()),
    "x86_64-plain.xml": (None, ()),
    "s390x-pv.xml": (None, ()),
}


def fixture(name: str) -> str:
    return shared_path("fixtures", "kubevirt", "domcapabilities", name).read_text()


@pytest.mark.parametrize("path", DOMCAPS, ids=lambda p: p.name)
def test_every_shared_domcapabilities(path: Path) -> None:
    caps = parse_domcapabilities(path.read_text())
    assert (caps.cca_supported, caps.measurement_algorithms) == EXPECTED[path.name]


def test_every_shared_fixture_is_expected() -> None:
    if not DOMCAPS:
        pytest.skip("../shared is absent")
    assert {p.name for p in DOMCAPS} == set(EXPECTED)


def test_capable_report_and_labels() -> None:
    report = build_report(
        domcaps=parse_domcapabilities(fixture("aarch64-cca.xml")),
        domcaps_error=None,
        host=HostEvidence(arch="aarch64"),
        checked_at=NOW,
    )
    assert report.capable
    assert report.reasons == ()
    # libvirt's enum alone is no choice (issue 22): without QEMU's answer only the fixed sha512.
    assert node_labels(report) == {
        NODE_CCA_LABEL: "true",
        f"{NODE_ALGO_LABEL_PREFIX}sha512": "true",
    }
    doc = report.to_json()
    assert doc["capable"] is True
    assert doc["measurementAlgorithms"] == ["sha512"]
    assert doc["effectiveMeasurementAlgorithm"] == "sha512"
    assert doc["checkedAt"] == "2026-11-27T12:00:00Z"
    assert doc["evidence"]["libvirt"]["ccaSupported"] == "yes"
    assert doc["evidence"]["libvirt"]["measurementAlgorithms"] == ["sha256", "sha512"]


def test_a_qemu_that_takes_the_algorithm_makes_the_enum_a_choice() -> None:
    report = build_report(
        domcaps=parse_domcapabilities(fixture("aarch64-cca.xml")),
        domcaps_error=None,
        host=HostEvidence(arch="aarch64"),
        checked_at=NOW,
        rme_guest=parse_rme_guest_help(rme("linaro-v3.txt")),
    )
    assert node_labels(report) == {
        NODE_CCA_LABEL: "true",
        f"{NODE_ALGO_LABEL_PREFIX}sha256": "true",
        f"{NODE_ALGO_LABEL_PREFIX}sha512": "true",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha256": "true",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha512": "true",
        "cca.kubevirt.io/rme-guest-personalization-value": "true",
        "cca.kubevirt.io/rme-guest-measurement-log": "true",
    }
    assert report.to_json()["measurementAlgorithms"] == ["sha256", "sha512"]


@pytest.mark.parametrize(
    "name", ["aarch64-cca-no-algo-enum.xml", "aarch64-cca-empty-algo-enum.xml"]
)
def test_capable_without_algorithms_gets_only_the_main_label(name: str) -> None:
    report = build_report(
        domcaps=parse_domcapabilities(fixture(name)),
        domcaps_error=None,
        host=HostEvidence(),
        checked_at=NOW,
    )
    assert report.capable
    assert node_labels(report) == {NODE_CCA_LABEL: "true"}


def test_no_cca_element_is_explained() -> None:
    report = build_report(
        domcaps=parse_domcapabilities(fixture("aarch64-no-cca.xml")),
        domcaps_error=None,
        host=HostEvidence(arch="aarch64"),
        checked_at=NOW,
    )
    assert not report.capable
    assert node_labels(report) == {}
    assert any("does not know Arm CCA" in r for r in report.reasons)


def test_supported_no_is_explained() -> None:
    xml = "<domainCapabilities><features><cca supported='no'/></features></domainCapabilities>"
    report = build_report(
        domcaps=parse_domcapabilities(xml), domcaps_error=None, host=HostEvidence(), checked_at=NOW
    )
    assert not report.capable
    assert "libvirt reports cca supported='no'" in report.reasons


def test_algorithms_are_ignored_when_not_supported() -> None:
    xml = (
        "<domainCapabilities><features><cca supported='no'><enum name='measurement-algo'>"
        "<value>sha256</value></enum></cca></features></domainCapabilities>"
    )
    assert parse_domcapabilities(xml).measurement_algorithms == ()


@pytest.mark.parametrize("name", ["x86_64-sev.xml", "s390x-pv.xml", "x86_64-tdx.xml"])
def test_other_architectures_are_never_capable(name: str) -> None:
    caps = parse_domcapabilities(fixture(name))
    report = build_report(
        domcaps=caps, domcaps_error=None, host=HostEvidence(arch=caps.arch), checked_at=NOW
    )
    assert not report.capable
    assert any("needs an aarch64 host" in r for r in report.reasons)


def test_host_evidence_explains_a_no() -> None:
    host = HostEvidence(
        arch="aarch64",
        kvm_device=False,
        rmi_parameters={"kvm_cap_arm_rmi": None, "kvm_cap_arm_rme": "0"},
        rmi_abi_line=None,
        kernel_log_read=True,
    )
    report = build_report(
        domcaps=None, domcaps_error="virsh is not installed", host=host, checked_at=NOW
    )
    assert not report.capable
    text = " | ".join(report.reasons)
    assert "could not be read (virsh is not installed)" in text
    assert "no /dev/kvm" in text
    assert "KVM exposes no RMI capability" in text
    assert "'RMI ABI version'" in text
    assert report.to_json()["evidence"]["host"]["devKvm"] is False


def test_host_evidence_never_overrides_libvirt() -> None:
    """libvirt decides: a "yes" stays a "yes" whatever the probes saw."""
    host = HostEvidence(arch="aarch64", kvm_device=False)
    caps = DomainCapabilities(arch="aarch64", cca_supported=True, measurement_algorithms=())
    assert build_report(domcaps=caps, domcaps_error=None, host=host, checked_at=NOW).capable


def test_unsafe_algorithm_names_get_no_label() -> None:
    caps = DomainCapabilities(
        arch="aarch64", cca_supported=True, measurement_algorithms=("sha384", "bad/name", "x" * 80)
    )
    qemu = RmeGuest(
        known=True, properties=("measurement-algorithm",), honoured=Honoured(("sha384",))
    )
    report = build_report(
        domcaps=caps, domcaps_error=None, host=HostEvidence(), checked_at=NOW, rme_guest=qemu
    )
    assert node_labels(report) == {
        NODE_CCA_LABEL: "true",
        f"{NODE_ALGO_LABEL_PREFIX}sha384": "true",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha384": "true",
    }


@pytest.mark.parametrize("xml", ["", "<domain/>", "<domainCapabilities>", "plain text"])
def test_bad_domcapabilities_are_errors(xml: str) -> None:
    with pytest.raises(CapabilitiesError):
        parse_domcapabilities(xml)


def test_owned_labels() -> None:
    assert is_owned_label(NODE_CCA_LABEL)
    assert is_owned_label(f"{NODE_ALGO_LABEL_PREFIX}sha512")
    assert not is_owned_label("kubevirt.io/schedulable")
    assert not is_owned_label("cca.kubevirt.io/enabled")


# --- what the stack honours (issue 15) ---------------------------------------------------------


def own(name: str) -> str:
    from tests.conftest import DATA

    return (DATA / "domcapabilities" / name).read_text()


def rme(name: str) -> str:
    from tests.conftest import DATA

    return (DATA / "rme-guest" / name).read_text()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aarch64-cca-sha384.xml", (("sha256", "sha384", "sha512"), False, False, False)),
        ("aarch64-cca-all-parameters.xml", (("sha256", "sha512"), True, True, False)),
        ("aarch64-cca-no-enum.xml", ((), False, False, False)),
        ("aarch64-cca-empty-enum.xml", ((), False, False, False)),
        ("aarch64-virtcca.xml", ((), False, False, True)),
    ],
)
def test_libvirt_parameter_support(name: str, expected: tuple[Any, ...]) -> None:
    caps = parse_domcapabilities(own(name))
    assert (
        caps.measurement_algorithms,
        caps.personalization_value,
        caps.measurement_log,
        caps.virtcca,
    ) == expected


def test_parameters_under_cca_supported_no_honour_nothing() -> None:
    xml = own("aarch64-cca-all-parameters.xml").replace(
        "<cca supported='yes'>", "<cca supported='no'>"
    )
    caps = parse_domcapabilities(xml)
    assert (caps.measurement_algorithms, caps.personalization_value, caps.measurement_log) == (
        (),
        False,
        False,
    )


@pytest.mark.parametrize(
    ("name", "known", "properties", "honoured"),
    [
        ("rfc-v4.txt", True, (), ((), False, False)),
        (
            "linaro-v3.txt",
            True,
            ("measurement-algorithm", "measurement-log", "personalization-value"),
            (("sha256", "sha512"), True, True),
        ),
        ("algorithm-only.txt", True, ("measurement-algorithm",), ((), False, False)),
        ("unknown.txt", False, (), ((), False, False)),
    ],
)
def test_rme_guest_help(
    name: str, known: bool, properties: tuple[str, ...], honoured: tuple[Any, ...]
) -> None:
    answer = parse_rme_guest_help(rme(name))
    assert (answer.known, answer.properties) == (known, properties)
    h = answer.honoured
    assert (h.measurement_algorithms, h.personalization_value, h.measurement_log) == honoured


def test_rme_guest_help_empty_or_foreign_text_is_not_known() -> None:
    for text in ("", "\n", "memory-backend-ram options:\n  dump=<bool>  - x\n"):
        assert parse_rme_guest_help(text).known is False


def test_labels_per_layer_and_virtcca_gets_none() -> None:
    report = build_report(
        domcaps=parse_domcapabilities(own("aarch64-cca-all-parameters.xml")),
        domcaps_error=None,
        host=HostEvidence(),
        checked_at=datetime(2026, 11, 30, tzinfo=UTC),
        rme_guest=parse_rme_guest_help(rme("rfc-v4.txt")),
    )
    # RFC v4's rme-guest takes no algorithm: of libvirt's sha256 and sha512 only the fixed sha512.
    assert node_labels(report) == {
        "kubevirt.io/cca": "true",
        "cca.kubevirt.io/measurement-algo-sha512": "true",
        "cca.kubevirt.io/personalization-value": "true",
        "cca.kubevirt.io/measurement-log": "true",
    }
    virtcca = build_report(
        domcaps=parse_domcapabilities(own("aarch64-virtcca.xml")),
        domcaps_error=None,
        host=HostEvidence(),
        checked_at=datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert not virtcca.capable and node_labels(virtcca) == {}


@pytest.mark.parametrize(
    "key",
    [
        "cca.kubevirt.io/personalization-value",
        "cca.kubevirt.io/measurement-log",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha384",
        "cca.kubevirt.io/rme-guest-personalization-value",
        "cca.kubevirt.io/rme-guest-measurement-log",
    ],
)
def test_new_labels_are_owned(key: str) -> None:
    assert is_owned_label(key)


@pytest.mark.parametrize(
    "key",
    ["cca.kubevirt.io/personalization-value-x", "cca.kubevirt.io/rme-guest", "kubevirt.io/cca-x"],
)
def test_near_misses_are_not_owned(key: str) -> None:
    assert not is_owned_label(key)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_rme_guest_answer_is_read_without_raising(text: str) -> None:
    answer = parse_rme_guest_help(text)
    assert set(answer.honoured.measurement_algorithms) <= {"sha256", "sha384", "sha512"}
    if not answer.known:
        assert answer.properties == () and not answer.honoured.personalization_value


# --- the stacks of issue 22: NVIDIA's libvirt, the sectype signal, the algorithm rule ----------


def report_for(name: str, rme_guest: str | None = None) -> Any:
    return build_report(
        domcaps=parse_domcapabilities(own(name)),
        domcaps_error=None,
        host=HostEvidence(arch="aarch64"),
        checked_at=NOW,
        rme_guest=parse_rme_guest_help(rme(rme_guest)) if rme_guest else None,
    )


def test_every_own_fixture_says_where_it_comes_from() -> None:
    from tests.conftest import DATA

    readme = (DATA / "domcapabilities" / "README.md").read_text()
    for path in sorted((DATA / "domcapabilities").glob("*.xml")):
        assert f"| `{path.name}` |" in readme, path.name
    for path in sorted((DATA / "rme-guest").glob("*.txt")):
        assert f"`{path.name}`" in readme, path.name


@pytest.mark.parametrize(
    ("name", "cca", "launch_security", "sectypes"),
    [
        ("aarch64-nvidia-cca.xml", True, True, ("cca",)),
        ("aarch64-nvidia-cca-no.xml", False, False, ()),
        ("aarch64-nvidia-rng-shapes.xml", True, True, ("cca",)),
        ("aarch64-cca-launchsecurity-no.xml", True, False, ()),
        ("aarch64-sectype-only.xml", None, True, ("cca",)),
        ("aarch64-cca-sha384.xml", True, None, ()),
    ],
)
def test_both_support_signals_are_read(
    name: str, cca: bool | None, launch_security: bool | None, sectypes: tuple[str, ...]
) -> None:
    caps = parse_domcapabilities(own(name))
    assert (caps.cca_supported, caps.launch_security, caps.sectypes) == (
        cca,
        launch_security,
        sectypes,
    )


def test_nvidia_capable_host() -> None:
    report = report_for("aarch64-nvidia-cca.xml")
    assert report.capable and report.reasons == ()
    # Its domain capabilities never advertise the personalization value or the log.
    assert node_labels(report) == {
        NODE_CCA_LABEL: "true",
        f"{NODE_ALGO_LABEL_PREFIX}sha512": "true",
    }
    libvirt = report.to_json()["evidence"]["libvirt"]
    assert (libvirt["launchSecurity"], libvirt["sectypes"]) == ("yes", ["cca"])
    assert libvirt["measurementAlgorithms"] == ["sha256", "sha512"]


def test_nvidia_host_that_cannot() -> None:
    report = report_for("aarch64-nvidia-cca-no.xml")
    assert not report.capable and node_labels(report) == {}
    assert report.reasons == ("libvirt reports cca supported='no'",)


def test_the_shapes_nvidias_rng_allows() -> None:
    caps = parse_domcapabilities(own("aarch64-nvidia-rng-shapes.xml"))
    assert (caps.personalization_value, caps.measurement_log) == (True, True)


@pytest.mark.parametrize(
    ("cca", "expected"),
    [
        ("<cca supported='yes' measurement-log='no'/>", (False, False)),
        ("<cca supported='yes' measurement-log='on'/>", (False, False)),
        ("<cca supported='yes'><personalization-value/></cca>", (False, False)),
        ("<cca supported='yes'><personalization-value supported='no'/></cca>", (False, False)),
        ("<cca supported='no' measurement-log='yes'/>", (False, False)),
        ("<cca supported='yes' measurement-log='yes'/>", (False, True)),
    ],
)
def test_parameter_shapes_honour_only_an_explicit_yes(
    cca: str, expected: tuple[bool, bool]
) -> None:
    caps = parse_domcapabilities(
        f"<domainCapabilities><features>{cca}</features></domainCapabilities>"
    )
    assert (caps.personalization_value, caps.measurement_log) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "aarch64-cca-launchsecurity-no.xml",
            "libvirt's two answers disagree: <cca supported='yes'>, but its <launchSecurity> "
            "types (none) do not include cca; a node is labelled only when both say cca",
        ),
        (
            "aarch64-sectype-only.xml",
            "libvirt's two answers disagree: its <launchSecurity> types list cca, but it reports "
            "no <cca> feature; a node is labelled only when <cca supported='yes'> says so too",
        ),
    ],
)
def test_disagreeing_signals_are_not_capable(name: str, reason: str) -> None:
    report = report_for(name)
    assert not report.capable and node_labels(report) == {}
    assert reason in report.reasons


def test_cca_no_with_sectype_cca_keeps_both_reasons() -> None:
    xml = own("aarch64-nvidia-cca.xml").replace("<cca supported='yes'>", "<cca supported='no'>")
    report = build_report(
        domcaps=parse_domcapabilities(xml), domcaps_error=None, host=HostEvidence(), checked_at=NOW
    )
    assert not report.capable
    assert report.reasons[0] == "libvirt reports cca supported='no'"
    assert (
        "its <launchSecurity> types list cca, but it reports cca supported='no'"
        in (report.reasons[1])
    )


def test_other_sectypes_on_a_cca_host_disagree() -> None:
    xml = own("aarch64-nvidia-cca.xml").replace("<value>cca</value>", "<value>sev</value>")
    report = build_report(
        domcaps=parse_domcapabilities(xml), domcaps_error=None, host=HostEvidence(), checked_at=NOW
    )
    assert not report.capable
    assert any("types (sev) do not include cca" in r for r in report.reasons)


def test_x86_launch_security_without_cca_is_no_disagreement() -> None:
    report = build_report(
        domcaps=parse_domcapabilities(fixture("x86_64-sevsnp.xml")),
        domcaps_error=None,
        host=HostEvidence(),
        checked_at=NOW,
    )
    assert not any("disagree" in r for r in report.reasons)


@pytest.mark.parametrize(
    ("name", "rme_guest", "algorithms", "effective"),
    [
        # NVIDIA: the enum lists sha256 and sha512, the Realm is measured with SHA-512.
        ("aarch64-nvidia-cca.xml", None, ("sha512",), "sha512"),
        # Linaro's RFC v4 rme-guest takes no algorithm: only the fixed one.
        ("aarch64-nvidia-cca.xml", "rfc-v4.txt", ("sha512",), "sha512"),
        ("aarch64-cca-sha384.xml", "rfc-v4.txt", ("sha512",), "sha512"),
        ("aarch64-cca-sha384.xml", "algorithm-only.txt", ("sha512",), "sha512"),
        ("aarch64-cca-sha384.xml", "unknown.txt", ("sha512",), "sha512"),
        # A QEMU that names the algorithms makes libvirt's enum (as far as both list) a choice.
        ("aarch64-cca-sha384.xml", "linaro-v3.txt", ("sha256", "sha512"), "sha512"),
        ("aarch64-cca-sha384.xml", "sha384-choice.txt", ("sha256", "sha384", "sha512"), "sha512"),
        # No enum: libvirt accepts no algorithm; the effective one is known only from QEMU.
        ("aarch64-cca-no-enum.xml", None, (), None),
        ("aarch64-cca-no-enum.xml", "rfc-v4.txt", (), "sha512"),
        ("aarch64-cca-empty-enum.xml", None, (), None),
    ],
)
def test_the_algorithm_list_is_not_a_capability(
    name: str, rme_guest: str | None, algorithms: tuple[str, ...], effective: str | None
) -> None:
    report = report_for(name, rme_guest)
    assert report.capable
    assert report.measurement_algorithms == algorithms
    assert report.to_json()["effectiveMeasurementAlgorithm"] == effective
    labelled = {k for k in node_labels(report) if k.startswith(NODE_ALGO_LABEL_PREFIX)}
    assert labelled == {NODE_ALGO_LABEL_PREFIX + a for a in algorithms}


def test_a_report_that_is_not_capable_has_no_effective_algorithm() -> None:
    assert (
        report_for("aarch64-nvidia-cca-no.xml").to_json()["effectiveMeasurementAlgorithm"] is None
    )
