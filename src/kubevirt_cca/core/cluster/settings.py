"""How the hook turns a domain into a Realm: XML dialect, CCA firmware, virtio IOMMU policy.

Admins set these in the ``kubevirt-cca-config`` ConfigMap; the defaults work without it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubevirt_cca.constants import DEFAULT_CCA_FIRMWARE
from kubevirt_cca.errors import SettingsError


class Dialect(StrEnum):
    """The libvirt XML grammar the hook emits (docs/rewrite.md, "XML dialects")."""

    VEP = "vep"
    OPENEULER = "openeuler"
    QEMU_COMMANDLINE = "qemu-commandline"


# ConfigMap keys (data of kubevirt-cca-config) and their meaning.
DIALECT_KEY = "dialect"
FIRMWARE_KEY = "firmware"
VIRTIO_IOMMU_KEY = "virtioIOMMU"
HOOK_IMAGE_KEY = "hookImage"

_ON_OFF = {"on": True, "off": False}


@dataclass(frozen=True)
class Settings:
    """The rewrite's settings. Build with :func:`settings_from_strings` to validate user text."""

    dialect: Dialect = Dialect.VEP
    firmware: str = DEFAULT_CCA_FIRMWARE
    virtio_iommu: bool = True

    def __post_init__(self) -> None:
        check_firmware(self.firmware)

    def to_json(self) -> dict[str, str]:
        """The string form, as the ConfigMap and the command-line flags spell it."""
        return {
            DIALECT_KEY: self.dialect.value,
            FIRMWARE_KEY: self.firmware,
            VIRTIO_IOMMU_KEY: "on" if self.virtio_iommu else "off",
        }


def parse_dialect(value: str) -> Dialect:
    """A dialect from its name, or a :class:`SettingsError` that lists the names."""
    try:
        return Dialect(value)
    except ValueError:
        names = ", ".join(d.value for d in Dialect)
        raise SettingsError(f"dialect: unknown value {value!r}; expected one of {names}") from None


def parse_on_off(value: str, *, field: str) -> bool:
    """``on`` / ``off`` to a bool."""
    if value in _ON_OFF:
        return _ON_OFF[value]
    raise SettingsError(f'{field}: expected "on" or "off", got {value!r}')


def check_firmware(path: str) -> str:
    """A firmware path must be absolute and plain (libvirt's absFilePath, no ``..``)."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or posixpath.normpath(path) != path
        or any(ch in path for ch in "\0\n\r,")
    ):
        raise SettingsError(
            f"firmware: expected an absolute, normalised file path such as {DEFAULT_CCA_FIRMWARE}, "
            f"got {path!r}"
        )
    return path


def settings_from_strings(
    *,
    dialect: str | None = None,
    firmware: str | None = None,
    virtio_iommu: str | None = None,
) -> Settings:
    """Settings from user text (flags or ConfigMap data); unset values take the defaults."""
    default = Settings()
    return Settings(
        dialect=parse_dialect(dialect) if dialect is not None else default.dialect,
        firmware=check_firmware(firmware) if firmware is not None else default.firmware,
        virtio_iommu=(
            parse_on_off(virtio_iommu, field=VIRTIO_IOMMU_KEY)
            if virtio_iommu is not None
            else default.virtio_iommu
        ),
    )


def settings_from_config_map(data: Mapping[str, Any] | None) -> Settings:
    """Settings from the ``data`` of the kubevirt-cca-config ConfigMap (absent keys: defaults)."""
    data = data or {}
    for key in (DIALECT_KEY, FIRMWARE_KEY, VIRTIO_IOMMU_KEY):
        if key in data and not isinstance(data[key], str):
            raise SettingsError(f"{key}: expected a string")
    return settings_from_strings(
        dialect=data.get(DIALECT_KEY),
        firmware=data.get(FIRMWARE_KEY),
        virtio_iommu=data.get(VIRTIO_IOMMU_KEY),
    )
