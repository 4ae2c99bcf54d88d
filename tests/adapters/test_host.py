"""Host probes on fake host trees: each reports evidence, none raises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubevirt_cca.adapters.host import probe_host


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp_path


def test_cca_host_tree(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/sys/kernel/arch": "aarch64\n",
            "dev/kvm": "",
            "sys/module/kvm/parameters/kvm_cap_arm_rmi": "1\n",
            "var/log/dmesg": "[    0.1] Booting\n[    0.2] kvm [1]: RMI ABI version 1.0\n",
        },
    )
    host = probe_host(root)
    assert host.arch == "aarch64"
    assert host.kvm_device is True
    assert host.rmi_parameters == {"kvm_cap_arm_rmi": "1", "kvm_cap_arm_rme": None}
    assert host.rmi_abi_line == "[    0.2] kvm [1]: RMI ABI version 1.0"
    assert host.kernel_log_read is True


def test_empty_tree(tmp_path: Path) -> None:
    host = probe_host(tmp_path)
    assert host.arch == os.uname().machine  # no proc/sys/kernel/arch: the running kernel's
    assert host.kvm_device is False
    assert host.rmi_parameters == {"kvm_cap_arm_rmi": None, "kvm_cap_arm_rme": None}
    assert host.rmi_abi_line is None
    assert host.kernel_log_read is False


def test_kernel_log_without_rmi_line(tmp_path: Path) -> None:
    root = tree(tmp_path, {"var/log/kern.log": "kernel: booted\n"})
    host = probe_host(root)
    assert host.kernel_log_read is True and host.rmi_abi_line is None


def test_kmsg_file_in_fake_tree_is_read_first(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {"dev/kmsg": "6,1,2,-;RMI ABI version 1.0 from kmsg\n", "var/log/dmesg": "nothing\n"},
    )
    assert probe_host(root).rmi_abi_line is not None


def test_unreadable_files_become_notes_not_exceptions(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads any file whatever its mode: use a directory where a file is expected
        (tmp_path / "sys/module/kvm/parameters/kvm_cap_arm_rmi").mkdir(parents=True)
        (tmp_path / "var/log/dmesg").mkdir(parents=True)
    else:
        root = tree(
            tmp_path, {"sys/module/kvm/parameters/kvm_cap_arm_rmi": "1", "var/log/dmesg": "x"}
        )
        (root / "sys/module/kvm/parameters/kvm_cap_arm_rmi").chmod(0)
        (root / "var/log/dmesg").chmod(0)
    host = probe_host(tmp_path)
    assert host.rmi_parameters["kvm_cap_arm_rmi"] is None
    assert any("kvm_cap_arm_rmi" in n for n in host.notes)
    assert any("dmesg" in n for n in host.notes)


@pytest.mark.skipif(not Path("/dev/kmsg").exists(), reason="no /dev/kmsg on this machine")
def test_real_kmsg_does_not_block() -> None:
    """On the real machine the probe reads the ring buffer without waiting for new records."""
    host = probe_host("/")
    assert host.arch == os.uname().machine
