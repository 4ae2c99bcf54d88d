"""``attest collect`` against a fake configfs-tsm tree (tests/attestation/fakeconfigfs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevirt_cca.adapters.configfs import collect_token
from kubevirt_cca.core.attestation.token import parse_token
from kubevirt_cca.errors import AttestationError, CollectionError
from tests.attestation.builder import TokenSpec, build_token
from tests.attestation.fakeconfigfs import REPORT, FakeTsm
from tests.attestation.test_cli import attest
from tests.cli.run import kubevirt_cca


def rmm(spec: TokenSpec):  # type: ignore[no-untyped-def]
    """What the RMM does: a token whose realm challenge is the nonce, zero-padded."""
    return lambda nonce: build_token(spec.but(nonce=nonce))


def collect(tmp_path: Path, root: Path, out: str = "t.cbor") -> tuple[int, str, str]:
    """``attest collect`` with tmp_path/nonce.bin, writing tmp_path/out, over the guest at root."""
    return attest(
        "collect", "--nonce-file", tmp_path / "nonce.bin", "--out", tmp_path / out, "--root", root
    )


@pytest.mark.parametrize("size", [32, 48, 64])
def test_collect_writes_the_token_for_the_nonce(tmp_path: Path, spec: TokenSpec, size: int) -> None:
    nonce = bytes(range(7, 7 + size))
    (tmp_path / "nonce.bin").write_bytes(nonce)
    root = tmp_path / "guest"
    with FakeTsm(root, respond=rmm(spec)) as tsm:
        code, _, err = collect(tmp_path, root, out="token.cbor")
    assert code == 0, err
    assert tsm.inblobs == [nonce]
    token = parse_token((tmp_path / "token.cbor").read_bytes())
    assert token.realm_claims is not None
    assert token.realm_claims.challenge == nonce + bytes(64 - size)
    assert f"wrote {(tmp_path / 'token.cbor').stat().st_size} bytes" in err
    # The report directory is removed afterwards.
    assert tsm.created and list((root / REPORT).iterdir()) == []


def test_collected_token_verifies(tmp_path: Path, spec: TokenSpec) -> None:
    from tests.attestation.builder import public_pem

    root = tmp_path / "guest"
    nonce = b"\x42" * 64
    (tmp_path / "nonce.bin").write_bytes(nonce)
    (tmp_path / "cpak.pem").write_bytes(public_pem(spec.platform_key))
    import base64

    with FakeTsm(root, respond=rmm(spec)):
        assert collect(tmp_path, root)[0] == 0
    code, out, err = attest(
        "verify",
        tmp_path / "t.cbor",
        "--nonce-file",
        tmp_path / "nonce.bin",
        "--trust-anchor",
        tmp_path / "cpak.pem",
        "--expected-rpv",
        base64.b64encode(spec.rpv).decode(),
    )
    assert code == 0, out + err


def test_older_kernels_without_realm_guest_rely_on_the_provider(
    tmp_path: Path, spec: TokenSpec
) -> None:
    with FakeTsm(tmp_path, realm_guest=None, respond=rmm(spec)):
        token = collect_token(b"\x01" * 32, root=tmp_path)
    assert parse_token(token).realm_claims is not None


@pytest.mark.parametrize("size", [0, 16, 31, 65, 128])
def test_nonce_too_short_or_long_exits_2_and_touches_nothing(tmp_path: Path, size: int) -> None:
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * size)
    root = tmp_path / "guest"
    with FakeTsm(root) as tsm:
        code, _, err = collect(tmp_path, root)
    assert code == 2
    assert f"the nonce is {size} bytes; configfs-tsm takes 32 to 64 bytes" in err
    assert tsm.created == [] and not (tmp_path / "t.cbor").exists()


def test_not_mounted(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/config").mkdir(parents=True)  # the empty mount point
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * 64)
    code, _, err = collect(tmp_path, tmp_path)
    assert code == 1
    assert "configfs is not mounted at /sys/kernel/config" in err
    assert "mount -t configfs configfs /sys/kernel/config" in err


def test_configfs_without_tsm_and_no_realm_guest_is_not_a_realm(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/config/usb_gadget").mkdir(parents=True)
    with pytest.raises(CollectionError, match="not an Arm CCA Realm") as raised:
        collect_token(b"\x01" * 64, root=tmp_path)
    assert "/sys/firmware/cca/realm_guest is absent" in str(raised.value)
    assert "run 'modprobe arm-cca-guest'; Debian's arm64 kernels build it as a module" in str(
        raised.value
    )


def test_configfs_without_tsm_in_a_realm_names_the_kernel_option(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/config/usb_gadget").mkdir(parents=True)
    (tmp_path / "sys/firmware/cca").mkdir(parents=True)
    (tmp_path / "sys/firmware/cca/realm_guest").write_text("1\n")
    with pytest.raises(CollectionError, match="CONFIG_TSM_REPORTS") as raised:
        collect_token(b"\x01" * 64, root=tmp_path)
    assert str(raised.value).startswith(
        "/sys/kernel/config/tsm/report does not exist: the Realm guest driver is not loaded "
        "(run 'modprobe arm-cca-guest'; Debian's arm64 kernels build it as a module)"
    )


def test_collect_on_the_command_line_says_modprobe(tmp_path: Path) -> None:
    """What a Debian guest without the module loaded prints: one line, exit 1, no traceback."""
    (tmp_path / "sys/kernel/config/usb_gadget").mkdir(parents=True)
    (tmp_path / "sys/firmware/cca").mkdir(parents=True)
    (tmp_path / "sys/firmware/cca/realm_guest").write_text("1\n")
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * 64)
    code, _, err = collect(tmp_path, tmp_path)
    assert code == 1
    assert "modprobe arm-cca-guest" in err and "Traceback" not in err


def test_realm_guest_zero_is_not_a_realm(tmp_path: Path, spec: TokenSpec) -> None:
    with (
        FakeTsm(tmp_path, realm_guest="0", respond=None) as tsm,
        pytest.raises(CollectionError, match="realm_guest is 0"),
    ):
        collect_token(b"\x01" * 64, root=tmp_path)
    assert tsm.created == []


@pytest.mark.parametrize("provider", ["tdx_guest", "sev_guest"])
def test_wrong_provider(tmp_path: Path, provider: str) -> None:
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * 64)
    root = tmp_path / "guest"
    with FakeTsm(root, provider=provider, realm_guest=None) as tsm:
        code, _, err = collect(tmp_path, root)
    assert code == 1
    assert f"the TSM provider is '{provider}', not arm_cca_guest" in err
    assert "TDX or AMD SEV-SNP" in err
    assert len(tsm.created) == 1
    # The nonce was never handed to another provider.
    assert not (root / REPORT / tsm.created[0] / "inblob").exists()


def test_an_empty_token_is_an_error(tmp_path: Path) -> None:
    with (
        FakeTsm(tmp_path, respond=lambda nonce: b""),
        pytest.raises(CollectionError, match="empty attestation token"),
    ):
        collect_token(b"\x01" * 64, root=tmp_path)


def test_a_nonce_error_is_attestation_error(tmp_path: Path) -> None:
    with pytest.raises(AttestationError):
        collect_token(b"", root=tmp_path)


# --- issue 21 item 12: every file under the guest's /sys is read with a bound ------------------


def test_realm_guest_pointing_at_dev_zero_is_refused_naming_the_file(
    tmp_path: Path, spec: TokenSpec
) -> None:
    """An unbounded realm_guest (here /dev/zero, which never ends) is read no further than its
    bound: exit 1, the file named, no report directory made."""
    root = tmp_path / "guest"
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * 64)
    with FakeTsm(root, respond=rmm(spec)) as tsm:
        realm_guest = root / "sys/firmware/cca/realm_guest"
        realm_guest.unlink()
        realm_guest.symlink_to("/dev/zero")
        result = kubevirt_cca(
            "attest",
            "collect",
            "--nonce-file",
            str(tmp_path / "nonce.bin"),
            "--out",
            str(tmp_path / "t.cbor"),
            "--root",
            str(root),
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "kubevirt-cca attest: error: /sys/firmware/cca/realm_guest is larger than 16 bytes; "
        "the kernel's file holds 0 or 1: this is not the file it should be\n"
    )
    assert tsm.created == [] and not (tmp_path / "t.cbor").exists()


def test_a_large_realm_guest_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/config/usb_gadget").mkdir(parents=True)  # configfs, without TSM
    (tmp_path / "sys/firmware/cca").mkdir(parents=True)
    (tmp_path / "sys/firmware/cca/realm_guest").write_bytes(b"1" + b" " * 16)
    with pytest.raises(CollectionError, match=r"/sys/firmware/cca/realm_guest is larger than 16"):
        collect_token(b"\x01" * 64, root=tmp_path)
    # Sixteen bytes (the bound) are still read: "1" padded with blanks is a Realm guest.
    (tmp_path / "sys/firmware/cca/realm_guest").write_bytes(b"1" + b" " * 15)
    with pytest.raises(CollectionError, match="CONFIG_TSM_REPORTS"):
        collect_token(b"\x01" * 64, root=tmp_path)


def test_a_provider_larger_than_a_driver_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * 64)
    root = tmp_path / "guest"
    with FakeTsm(root, provider="arm_cca_guest" + " " * 60) as tsm:
        code, out, err = collect(tmp_path, root)
    assert code == 1 and out == ""
    assert f"/{REPORT}/{tsm.created[0]}/provider is larger than 64 bytes" in err
    assert "a driver name such as arm_cca_guest" in err
    assert not (root / REPORT / tsm.created[0] / "inblob").exists()  # the nonce was not given


def test_an_outblob_larger_than_a_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nonce.bin").write_bytes(b"\x01" * 64)
    root = tmp_path / "guest"
    with FakeTsm(root, respond=lambda nonce: b"\x00" * (64 * 1024 + 1)) as tsm:
        code, _, err = collect(tmp_path, root)
    assert code == 1
    assert f"/{REPORT}/{tsm.created[0]}/outblob is larger than 65536 bytes" in err
    assert not (tmp_path / "t.cbor").exists()
