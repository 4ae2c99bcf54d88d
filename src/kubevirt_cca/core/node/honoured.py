"""What one layer of a node's stack honours, and QEMU's ``rme-guest`` answer read into it.

:class:`Honoured` is the value both layers share (libvirt's domain capabilities in
``domain_capabilities.py``, the virt-launcher image's QEMU here); ``parse_rme_guest_help``
reads QEMU's ``-object rme-guest,help`` output (docs/node-labels.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kubevirt_cca.constants import MEASUREMENT_ALGORITHMS, RME_GUEST_OBJECT


@dataclass(frozen=True)
class Honoured:
    """What one layer of a node's stack says it honours of VEP 129's parameters.

    Conservative: a parameter is honoured only where the layer says so; silence is "no".
    """

    measurement_algorithms: tuple[str, ...] = ()
    personalization_value: bool = False
    measurement_log: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "measurementAlgorithms": list(self.measurement_algorithms),
            "personalizationValue": self.personalization_value,
            "measurementLog": self.measurement_log,
        }


@dataclass(frozen=True)
class RmeGuest:
    """What the virt-launcher image's QEMU says about ``-object rme-guest,help``.

    ``known`` is False when QEMU does not know the object at all; ``properties`` the property
    names it lists (none: Linaro's RFC v4 form); ``honoured`` what they let a request express.
    """

    known: bool
    properties: tuple[str, ...] = ()
    honoured: Honoured = field(default_factory=Honoured)
    answer: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"known": self.known, "properties": list(self.properties), **self.honoured.to_json()}


# "  NAME=<TYPE>   - DESCRIPTION" (the description is optional; a TYPE may nest, as in
# "<link<thread-context>>", as a real QEMU prints it).
_HELP_PROPERTY = re.compile(r"\A\s+([a-z][a-z0-9-]*)=<(.+?)>(?:\s+-\s+(.*))?\s*\Z")
_QUOTED_ALGORITHM = re.compile(r"sha[0-9]+")


def parse_rme_guest_help(text: str) -> RmeGuest:
    """Read QEMU's ``-object rme-guest,help`` output (standard output and error together).

    ``rme-guest options:`` followed by ``  NAME=<TYPE> - DESCRIPTION`` lines lists the
    properties; ``There are no options for rme-guest.`` is the property-less RFC v4 object;
    anything else (``invalid object type: rme-guest``, an empty file) means QEMU does not
    know the object. The algorithms ``measurement-algorithm`` takes are the ``shaNNN`` names
    its description lists; a property that lists none honours no algorithm choice.
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    answer = lines[0].strip()[:200] if lines else "(no output)"
    if f"There are no options for {RME_GUEST_OBJECT}." in lines:
        return RmeGuest(known=True, answer=answer)
    if f"{RME_GUEST_OBJECT} options:" not in lines:
        return RmeGuest(known=False, answer=answer)
    start = lines.index(f"{RME_GUEST_OBJECT} options:") + 1
    properties: list[str] = []
    algorithms: list[str] = []
    for line in lines[start:]:
        match = _HELP_PROPERTY.match(line)
        if match is None:
            break
        name, description = match.group(1), match.group(3) or ""
        properties.append(name)
        if name == "measurement-algorithm":
            for algorithm in _QUOTED_ALGORITHM.findall(description):
                if algorithm in MEASUREMENT_ALGORITHMS and algorithm not in algorithms:
                    algorithms.append(algorithm)
    honoured = Honoured(
        measurement_algorithms=tuple(algorithms),
        personalization_value="personalization-value" in properties,
        measurement_log="measurement-log" in properties,
    )
    return RmeGuest(known=True, properties=tuple(properties), honoured=honoured, answer=answer)
