"""What libvirt says about CCA on this host: ``virsh domcapabilities`` read into one value.

``parse_domcapabilities`` reads ``<features><cca>`` (supported, the measurement algorithms, the
parameters libvirt passes on), ``<launchSecurity>`` as the second support signal, and the
virtCCA marker. Whether the host is capable is decided in ``detection_report.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from kubevirt_cca.constants import VIRTCCA_MARKER
from kubevirt_cca.core.node.honoured import Honoured
from kubevirt_cca.core.wire.libvirtxml import parse_document
from kubevirt_cca.errors import CapabilitiesError


@dataclass(frozen=True)
class DomainCapabilities:
    """What libvirt says about CCA. ``cca_supported`` is ``None`` when libvirt says nothing.

    ``virtcca`` is set when the ``<cca>`` libvirt reports is openEuler's virtCCA (it names
    ``hisi-cca-enable``), a different technology that borrows the name.
    """

    arch: str | None
    cca_supported: bool | None
    measurement_algorithms: tuple[str, ...]
    personalization_value: bool = False
    measurement_log: bool = False
    virtcca: bool = False
    launch_security: bool | None = None
    """``<features><launchSecurity supported=...>``: ``None`` when libvirt has no such element
    (libvirt before 9.x, or a CCA patch series older than it)."""
    sectypes: tuple[str, ...] = ()
    """The values of its ``<enum name='sectype'>`` (``cca``, ``sev``, ``s390-pv``, ...)."""

    @property
    def sectype_cca(self) -> bool | None:
        """The second support signal: does ``<launchSecurity>`` list ``cca``? ``None``: silent."""
        if self.launch_security is None:
            return None
        return self.launch_security and CCA_SECTYPE in self.sectypes

    @property
    def contradiction(self) -> str | None:
        """Why libvirt's two CCA signals disagree, or ``None`` when they do not (fail closed:
        a disagreement makes the node not capable, whichever of the two says yes)."""
        sectype = self.sectype_cca
        if sectype is None or sectype == (self.cca_supported is True):
            return None
        listed = ", ".join(self.sectypes) or "none"
        if self.cca_supported is True:
            return (
                "libvirt's two answers disagree: <cca supported='yes'>, "
                f"but its <launchSecurity> types ({listed}) do not include cca; "
                "a node is labelled only when both say cca"
            )
        said = "no <cca> feature" if self.cca_supported is None else "cca supported='no'"
        return (
            "libvirt's two answers disagree: its <launchSecurity> types list cca, "
            f"but it reports {said}; a node is labelled only when <cca supported='yes'> says so too"
        )

    @property
    def honoured(self) -> Honoured:
        return Honoured(
            self.measurement_algorithms, self.personalization_value, self.measurement_log
        )


# The elements under <cca> that say libvirt passes a parameter on (docs/node-labels.md).
_LIBVIRT_PARAMETER_ELEMENTS = ("personalization-value", "measurement-log")
# The launchSecurity type libvirt's CCA patches add to <enum name='sectype'>.
CCA_SECTYPE = "cca"


def parse_domcapabilities(xml: str | bytes) -> DomainCapabilities:
    """Parse ``<domainCapabilities>`` XML; :class:`CapabilitiesError` when it is not that.

    Read under ``<features><cca supported='yes'>``: the ``<enum name='measurement-algo'>``
    values (one algorithm each), and ``<personalization-value supported='yes'/>`` /
    ``<measurement-log supported='yes'/>`` children or a ``measurement-log='yes'`` attribute
    (libvirt passes that parameter on; NVIDIA's RNG allows the attribute and a
    ``<personalization-value>`` child, its formatter emits neither). Anything else, or
    ``supported`` other than ``yes``, honours nothing. ``<features><launchSecurity>`` and its
    ``<enum name='sectype'>`` are read as the second support signal (:attr:`sectype_cca`).
    """
    root = parse_document(
        xml,
        root="domainCapabilities",
        name="domain capabilities",
        kind="libvirt domain capabilities (virsh domcapabilities)",
        error=CapabilitiesError,
    )
    arch = root.findtext("arch")
    arch = arch.strip() if arch else None
    cca = root.find("features/cca")
    features = root.find("features")
    virtcca = features is not None and _names_virtcca(features)
    launch_security, sectypes = _launch_security(root.find("features/launchSecurity"))
    if cca is None:
        return DomainCapabilities(
            arch=arch,
            cca_supported=None,
            measurement_algorithms=(),
            virtcca=virtcca,
            launch_security=launch_security,
            sectypes=sectypes,
        )
    supported = cca.get("supported") == "yes"
    algorithms: list[str] = []
    for enum in cca.findall("enum"):
        if enum.get("name") == "measurement-algo":
            for value in enum.findall("value"):
                text = (value.text or "").strip()
                if text and text not in algorithms:
                    algorithms.append(text)
    flags = {
        tag: any(child.get("supported") == "yes" for child in cca.findall(tag))
        for tag in _LIBVIRT_PARAMETER_ELEMENTS
    }
    log_attribute = cca.get("measurement-log") == "yes"
    return DomainCapabilities(
        arch=arch,
        cca_supported=supported,
        measurement_algorithms=tuple(algorithms) if supported else (),
        personalization_value=supported and flags["personalization-value"],
        measurement_log=supported and (flags["measurement-log"] or log_attribute),
        virtcca=virtcca,
        launch_security=launch_security,
        sectypes=sectypes,
    )


def _launch_security(element: etree._Element | None) -> tuple[bool | None, tuple[str, ...]]:
    """``<launchSecurity supported=...>`` and its sectype values (upstream libvirt's shape)."""
    if element is None:
        return None, ()
    values: list[str] = []
    for enum in element.findall("enum"):
        if enum.get("name") == "sectype":
            for value in enum.findall("value"):
                text = (value.text or "").strip()
                if text and text not in values:
                    values.append(text)
    return element.get("supported") == "yes", tuple(values)


def _names_virtcca(features: etree._Element) -> bool:
    """Whether ``<features>`` names virtCCA's marker: as an element, attribute or enum name."""
    for element in features.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == VIRTCCA_MARKER or VIRTCCA_MARKER in element.attrib:
            return True
        if element.get("name") == VIRTCCA_MARKER:
            return True
    return False
