"""A host profile: what a node type's RMM and KVM put into ``RmiRealmParams`` for every Realm.

The RIM starts from the Realm's parameters, and those are not the VM owner's choice: the host
(hardware, RMM version, KVM) decides the IPA size, the SVE vector length, the number of
breakpoints, watchpoints and PMU counters, and (on newer kernels) the measurement algorithm.
A profile writes them down once per node type (``examples/attest-profiles/``), as YAML::

    rmmVersion: "1.0"          # "1.0" or "2.0"
    measurementAlgo: sha256    # sha256, sha384 (RMM 2.0), sha512
    ipaBits: 48                # the Realm's stage-2 input size (s2sz)
    lpa2: false
    sveVectorLength: null      # bits (128..2048, a multiple of 128), or null: no SVE
    breakpoints: 2             # 2..16
    watchpoints: 2             # 2..16
    pmuCounters: null          # 0..31, or null: no PMU (null with RMM 2.0)
    # RMM 2.0 only, and then required:
    deviceAssignment: true     # flags0 bit 3 (DA): the host enables it whenever the RMM offers it
    mecPolicy: shared          # flags0 bits 7-8: shared (0) or private (1)

:func:`parse_profile` takes the decoded YAML and reports every problem at once, each naming
its key. Pure: no file is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from kubevirt_cca.errors import ReferenceValueError, Violation

RmmVersion = Literal["1.0", "2.0"]
MeasurementAlgo = Literal["sha256", "sha384", "sha512"]
MecPolicy = Literal["shared", "private"]

RMM_VERSIONS: Final[tuple[RmmVersion, ...]] = ("1.0", "2.0")
MEASUREMENT_ALGOS: Final[tuple[MeasurementAlgo, ...]] = ("sha256", "sha384", "sha512")
PROFILE_KEYS: Final = (
    "rmmVersion",
    "measurementAlgo",
    "ipaBits",
    "lpa2",
    "sveVectorLength",
    "breakpoints",
    "watchpoints",
    "pmuCounters",
)
# Keys of RmmRealmFlags0 that RMM 1.0 does not have: required with rmmVersion "2.0", refused
# with "1.0" (TF-RMM's lib/smc/include/smc-rmi.h: DA bit 3, MEC policy bits 7-8).
PROFILE_KEYS_RMM_2: Final = ("deviceAssignment", "mecPolicy")
MEC_POLICIES: Final[tuple[MecPolicy, ...]] = ("shared", "private")
IPA_BITS_MIN: Final = 32
IPA_BITS_MAX: Final = 48  # without LPA2
IPA_BITS_MAX_LPA2: Final = 52
SVE_GRANULE_BITS: Final = 128
SVE_MAX_BITS: Final = 2048
DEBUG_MIN: Final = 2
DEBUG_MAX: Final = 16
PMU_MAX_COUNTERS: Final = 31


@dataclass(frozen=True)
class HostProfile:
    """The Realm parameters of one node type (the measured part of ``RmiRealmParams``)."""

    rmm_version: RmmVersion
    measurement_algo: MeasurementAlgo
    ipa_bits: int
    lpa2: bool
    sve_vector_length: int | None  # bits; None: no SVE
    breakpoints: int
    watchpoints: int
    pmu_counters: int | None  # None: no PMU
    device_assignment: bool = False  # RMM 2.0: flags0 DA
    mec_policy: MecPolicy = "shared"  # RMM 2.0: flags0 MEC policy


def parse_profile(data: Any) -> HostProfile:
    """A :class:`HostProfile` from decoded YAML, or :class:`ReferenceValueError` naming keys."""
    if not isinstance(data, Mapping):
        raise ReferenceValueError(
            (Violation("profile", "expected a mapping with the keys " + ", ".join(PROFILE_KEYS)),)
        )
    problems: list[Violation] = []
    known = PROFILE_KEYS + PROFILE_KEYS_RMM_2
    for key in data:
        if key not in known:
            problems.append(
                Violation(f"profile.{key}", "unknown key; expected one of " + ", ".join(known))
            )
    rmm_2 = data.get("rmmVersion") == "2.0"
    for key in PROFILE_KEYS_RMM_2:
        if rmm_2 and key not in data:
            problems.append(
                Violation(
                    f"profile.{key}",
                    'required with rmmVersion "2.0" (the RMM measures the whole flags0 word)',
                )
            )
        elif not rmm_2 and key in data and data.get("rmmVersion") in RMM_VERSIONS:
            problems.append(
                Violation(
                    f"profile.{key}",
                    'only with rmmVersion "2.0"; RMM 1.0 has no device assignment or MEC '
                    "policy in its realm flags: remove the key",
                )
            )
    for key in PROFILE_KEYS:
        if key not in data:
            problems.append(
                Violation(
                    f"profile.{key}",
                    "required (use null where it allows null)" if key in _NULLABLE else "required",
                )
            )
    if problems:
        raise ReferenceValueError(problems)

    rmm = _choice(data["rmmVersion"], "rmmVersion", allowed=RMM_VERSIONS, problems=problems)
    algo = _choice(
        data["measurementAlgo"], "measurementAlgo", allowed=MEASUREMENT_ALGOS, problems=problems
    )
    lpa2 = data["lpa2"]
    if not isinstance(lpa2, bool):
        problems.append(Violation("profile.lpa2", f"expected true or false, got {lpa2!r}"))
    top = IPA_BITS_MAX_LPA2 if lpa2 is True else IPA_BITS_MAX
    _integer(
        data["ipaBits"],
        "ipaBits",
        low=IPA_BITS_MIN,
        high=top,
        problems=problems,
        hint=" (more than 48 needs lpa2: true)" if lpa2 is not True else "",
    )
    sve = data["sveVectorLength"]
    if sve is not None:
        checked = _integer(
            sve,
            "sveVectorLength",
            low=SVE_GRANULE_BITS,
            high=SVE_MAX_BITS,
            problems=problems,
            hint=", a multiple of 128, or null for no SVE",
        )
        if checked is not None and checked % SVE_GRANULE_BITS:
            problems.append(
                Violation(
                    "profile.sveVectorLength", f"expected a multiple of 128 bits, got {checked}"
                )
            )
    _integer(data["breakpoints"], "breakpoints", low=DEBUG_MIN, high=DEBUG_MAX, problems=problems)
    _integer(data["watchpoints"], "watchpoints", low=DEBUG_MIN, high=DEBUG_MAX, problems=problems)
    pmu = data["pmuCounters"]
    if pmu is not None:
        _integer(
            pmu,
            "pmuCounters",
            low=0,
            high=PMU_MAX_COUNTERS,
            problems=problems,
            hint=", or null for no PMU",
        )
    if rmm == "2.0" and pmu is not None:
        problems.append(
            Violation(
                "profile.pmuCounters",
                'expected null with rmmVersion "2.0": TF-RMM 2.0 gives Realms no PMU',
            )
        )
    device_assignment = data.get("deviceAssignment", False)
    if not isinstance(device_assignment, bool):
        problems.append(
            Violation(
                "profile.deviceAssignment", f"expected true or false, got {device_assignment!r}"
            )
        )
    mec = data.get("mecPolicy", "shared")
    _choice(mec, "mecPolicy", allowed=MEC_POLICIES, problems=problems)
    if rmm == "1.0" and algo == "sha384":
        problems.append(
            Violation(
                "profile.measurementAlgo",
                'sha384 needs rmmVersion "2.0"; RMM 1.0 has sha256 and sha512 only',
            )
        )
    if problems:
        raise ReferenceValueError(problems)
    return HostProfile(
        rmm_version=rmm,
        measurement_algo=algo,
        ipa_bits=data["ipaBits"],
        lpa2=lpa2,
        sve_vector_length=sve,
        breakpoints=data["breakpoints"],
        watchpoints=data["watchpoints"],
        pmu_counters=pmu,
        device_assignment=device_assignment,
        mec_policy=mec,
    )


def profile_data(profile: HostProfile) -> dict[str, Any]:
    """The YAML/JSON keys of ``profile`` (what :func:`parse_profile` reads back)."""
    data: dict[str, Any] = {
        "rmmVersion": profile.rmm_version,
        "measurementAlgo": profile.measurement_algo,
        "ipaBits": profile.ipa_bits,
        "lpa2": profile.lpa2,
        "sveVectorLength": profile.sve_vector_length,
        "breakpoints": profile.breakpoints,
        "watchpoints": profile.watchpoints,
        "pmuCounters": profile.pmu_counters,
    }
    if profile.rmm_version == "2.0":
        data.update(deviceAssignment=profile.device_assignment, mecPolicy=profile.mec_policy)
    return data


_NULLABLE = ("sveVectorLength", "pmuCounters")


def _choice(value: Any, key: str, *, allowed: tuple[Any, ...], problems: list[Violation]) -> Any:
    if isinstance(value, str) and value in allowed:
        return value
    quoted = ", ".join(f'"{a}"' for a in allowed)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # YAML reads an unquoted 1.0 as a number; the values are strings.
        example = f' ({key}: "{value}")' if str(value) in allowed else ""
        problems.append(
            Violation(
                f"profile.{key}",
                f"YAML read {value!r} as a number; the value is a string: quote it{example} "
                f"(one of {quoted})",
            )
        )
        return None
    problems.append(Violation(f"profile.{key}", f"expected one of {quoted}, got {value!r}"))
    return None


def _integer(
    value: Any, key: str, *, low: int, high: int, problems: list[Violation], hint: str = ""
) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(
            Violation(f"profile.{key}", f"expected an integer {low} to {high}{hint}, got {value!r}")
        )
        return None
    return value
