"""Detect this host's Realm capability: libvirt's domain capabilities plus the host probes.

Shared by ``kubevirt-cca detect`` (a person's shell) and ``kubevirt-cca labeller`` (a DaemonSet
pod), so both reach the same verdict from the same sources.
"""

from __future__ import annotations

import shlex
import threading
from datetime import UTC, datetime

from kubevirt_cca.adapters.files import read_text
from kubevirt_cca.adapters.host import probe_host
from kubevirt_cca.adapters.virsh import run_domcapabilities
from kubevirt_cca.core.node.detection_report import DetectionReport, build_report
from kubevirt_cca.core.node.domain_capabilities import DomainCapabilities, parse_domcapabilities
from kubevirt_cca.core.node.honoured import RmeGuest, parse_rme_guest_help
from kubevirt_cca.errors import CapabilitiesError, InputTooLarge, ManifestError


def detect(
    *,
    domcaps_file: str | None,
    domcaps_command: str,
    root: str,
    rme_guest_file: str | None = None,
    stop: threading.Event | None = None,
) -> DetectionReport:
    """Read libvirt's answer (file or command) and probe the host; never raises for a "no".

    A named file larger than the bound files are read to is not a "no" but unusable input:
    :class:`InputTooLarge` (``detect`` exits 2).

    ``domcaps_file`` wins over ``domcaps_command`` (a shell-quoted command line, split with
    :func:`shlex.split`, never run through a shell). When neither yields domain capabilities the
    report says why in its reasons. ``rme_guest_file`` holds QEMU's ``-object rme-guest,help``
    answer; without it QEMU is not asked (the report then honours nothing for the
    ``qemu-commandline`` dialect).
    Setting ``stop`` kills a running command at once.
    """
    domcaps: DomainCapabilities | None = None
    error: str | None = None
    try:
        if domcaps_file is not None:
            xml = read_text(domcaps_file)
        else:
            xml = run_domcapabilities(shlex.split(domcaps_command), stop=stop)
        domcaps = parse_domcapabilities(xml)
    except InputTooLarge:
        raise
    except (CapabilitiesError, ManifestError) as exc:
        error = str(exc)
    rme_guest: RmeGuest | None = None
    rme_guest_error: str | None = None
    if rme_guest_file is not None:
        try:
            rme_guest = parse_rme_guest_help(read_text(rme_guest_file))
        except InputTooLarge:
            raise
        except ManifestError as exc:
            rme_guest_error = str(exc)
    return build_report(
        domcaps=domcaps,
        domcaps_error=error,
        host=probe_host(root),
        checked_at=datetime.now(UTC).replace(microsecond=0),
        rme_guest=rme_guest,
        rme_guest_error=rme_guest_error,
    )
