"""``attest node-profile`` (the admin) and ``attest reference --vmi / --node-profile`` (the VM
owner), through the command line.

The oracle is ``attest reference`` with the node's own files (``--profile --firmware --dtb
--memory``), whose RIM tests/attestation/test_reference.py and the realm lane check: a node
profile must give the very same RIM without the firmware file, and the VMI's memory and vCPUs
must pick what the flags would have said.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.attestation.test_cli import attest
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT

PROFILES = ROOT / "examples" / "attest-profiles"
EXAMPLE_VM = ROOT / "examples" / "vm-cca-params.yaml"  # sha512, 2 cores, 2Gi
PREFIX = "kubevirt-cca attest: error: "


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    """A node's files: firmware (code, then 0xFF padding), two DTBs, and profiles."""
    paths = {
        "firmware": tmp_path / "AAVMF_CODE.cca.fd",
        "dtb-2-2Gi": tmp_path / "vm-2-2Gi.dtb",
        "dtb-1-1Gi": tmp_path / "vm-1-1Gi.dtb",
        "sha512": PROFILES / "rmm-1.0-sha512-sve.yaml",
        "sha256": PROFILES / "rmm-1.0-sha256.yaml",
        "rmm2": PROFILES / "rmm-2.0-sha384.yaml",
    }
    paths["firmware"].write_bytes(bytes(range(256)) * 48 + b"\xff" * 4096 * 40 + b"tail")
    paths["dtb-2-2Gi"].write_bytes(b"\xd0\x0d\xfe\xed" + b"2" * 3000)
    paths["dtb-1-1Gi"].write_bytes(b"\xd0\x0d\xfe\xed" + b"1" * 2000)
    return paths


def publish(node: dict[str, Path], tmp_path: Path, profile: str = "sha512") -> Path:
    code, out, err = attest(
        "node-profile",
        "--profile",
        node[profile],
        "--firmware",
        node["firmware"],
        "--shape",
        "2",
        "2Gi",
        node["dtb-2-2Gi"],
        "--shape",
        "1",
        "1Gi",
        node["dtb-1-1Gi"],
        "--node-type",
        "test-node",
    )
    assert code == 0, err
    path = tmp_path / f"node-profile-{profile}.json"
    path.write_text(out)
    return path


def rim_of(*args: str | Path) -> str:
    code, out, err = attest("reference", *args, "--output", "json")
    assert code == 0, err
    rim: str = json.loads(out)["rim"]
    return rim


def direct_rim(node: dict[str, Path], profile: str, dtb: str, memory: str) -> str:
    return rim_of(
        "--profile", node[profile], "--firmware", node["firmware"], "--dtb", node[dtb],
        "--memory", memory,
    )  # fmt: skip


def vm(tmp_path: Path, *, name: str = "vm.yaml", **changes: Any) -> Path:
    """The example VM (sha512, 2 cores, 2Gi) with changes to its template's domain."""
    manifest = yaml.safe_load(EXAMPLE_VM.read_text())
    domain = manifest["spec"]["template"]["spec"]["domain"]
    for key, value in changes.items():
        if value is None:
            domain.pop(key, None)
        else:
            domain[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(manifest))
    return path


def error(*args: str | Path) -> str:
    code, out, err = attest("reference", *args)
    assert code == 2 and out == "", (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    return lines[0]


# --- the owner gets the node's RIM without the node's files --------------------------------------


@pytest.mark.parametrize(("profile", "algo"), [("sha512", "sha512"), ("rmm2", "sha384")])
def test_a_node_profile_gives_the_rim_of_the_nodes_own_files(
    node: dict[str, Path], tmp_path: Path, profile: str, algo: str
) -> None:
    published = publish(node, tmp_path, profile)
    expected = direct_rim(node, profile, "dtb-2-2Gi", "2Gi")
    manifest = EXAMPLE_VM if algo == "sha512" else vm(tmp_path)
    if algo != "sha512":  # the example asks for sha512: ask for the profile's algorithm
        data = yaml.safe_load(manifest.read_text())
        notes = data["spec"]["template"]["metadata"]["annotations"]
        notes["cca.kubevirt.io/launch-security"] = json.dumps({"measurementAlgo": algo})
        manifest.write_text(yaml.safe_dump(data))
    assert rim_of("--vmi", manifest, "--node-profile", published) == expected
    # Without a VMI, the shape from the flags.
    assert rim_of("--node-profile", published, "--memory", "2Gi", "--cpus", "2") == expected


def test_the_vmi_shape_picks_memory_and_dtb(node: dict[str, Path], tmp_path: Path) -> None:
    published = publish(node, tmp_path)
    small = vm(tmp_path, cpu={"cores": 1}, memory={"guest": "1Gi"})
    assert rim_of("--vmi", small, "--node-profile", published) == direct_rim(
        node, "sha512", "dtb-1-1Gi", "1Gi"
    )
    # No memory.guest: the memory request, as KubeVirt (and kubevirt-cca render) read it.
    requested = vm(
        tmp_path,
        name="requested.yaml",
        cpu={"sockets": 1, "cores": 1, "threads": 1},
        memory=None,
        resources={"requests": {"memory": "1Gi"}},
    )
    assert rim_of("--vmi", requested, "--node-profile", published) == direct_rim(
        node, "sha512", "dtb-1-1Gi", "1Gi"
    )
    # --vmi without a node profile: the node's files, the VMI's memory.
    assert rim_of(
        "--vmi", small, "--profile", node["sha512"], "--firmware", node["firmware"],
        "--dtb", node["dtb-1-1Gi"],
    ) == direct_rim(node, "sha512", "dtb-1-1Gi", "1Gi")  # fmt: skip


def test_a_shape_the_admin_did_not_publish_names_what_there_is(
    node: dict[str, Path], tmp_path: Path
) -> None:
    published = publish(node, tmp_path)
    line = error("--vmi", vm(tmp_path, cpu={"cores": 4}), "--node-profile", published)
    assert "--node-profile: has no DTB for 4 vCPUs with 2147483648 bytes" in line
    assert "1 vCPUs with 1073741824 bytes, 2 vCPUs with 2147483648 bytes" in line
    # A DTB the owner dumped stands in for a missing shape.
    rim = rim_of(
        "--vmi", vm(tmp_path, cpu={"cores": 4}), "--node-profile", published,
        "--dtb", node["dtb-2-2Gi"],
    )  # fmt: skip
    assert rim == direct_rim(node, "sha512", "dtb-2-2Gi", "2Gi")


def test_the_configmap_the_admin_creates_is_read_as_well(
    node: dict[str, Path], tmp_path: Path
) -> None:
    published = publish(node, tmp_path)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cca-node-profile-test", "namespace": "kubevirt-cca"},
        "data": {"node-profile.json": published.read_text()},
    }
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(configmap))
    assert rim_of("--vmi", EXAMPLE_VM, "--node-profile", path) == rim_of(
        "--vmi", EXAMPLE_VM, "--node-profile", published
    )
    del configmap["data"]
    path.write_text(yaml.safe_dump(configmap))
    assert "the ConfigMap has no data key node-profile.json" in error(
        "--vmi", EXAMPLE_VM, "--node-profile", path
    )


def test_the_firmware_is_published_as_runs_of_granule_digests(
    node: dict[str, Path], tmp_path: Path
) -> None:
    data = json.loads(publish(node, tmp_path).read_text())
    assert data["kind"] == "CCANodeProfile" and data["schemaVersion"] == 1
    assert data["nodeType"] == "test-node"
    firmware = data["firmware"]
    size = node["firmware"].stat().st_size
    assert firmware["bytes"] == size
    counts = [count for _, count in firmware["granules"]]
    assert sum(counts) == -(-size // 4096)
    assert 40 in counts  # the 0xFF padding: one digest, counted 40 times
    assert all(len(bytes.fromhex(digest)) == 64 for digest, _ in firmware["granules"])  # sha512
    assert [(d["cpus"], d["memory"]) for d in data["dtbs"]] == [(1, 2**30), (2, 2 * 2**30)]


def test_the_node_profile_command_as_a_process(node: dict[str, Path]) -> None:
    result = kubevirt_cca(
        "attest", "node-profile", "--profile", str(node["sha256"]),
        "--firmware", str(node["firmware"]), "--shape", "2", "2Gi", str(node["dtb-2-2Gi"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hostProfile"]["measurementAlgo"] == "sha256"


# --- what the VMI says must fit, or the owner is told why -----------------------------------------


def test_a_kernel_boot_vmi_needs_its_own_dtb(node: dict[str, Path], tmp_path: Path) -> None:
    published = publish(node, tmp_path)
    boot = {"kernelBoot": {"kernelArgs": "console=ttyAMA0", "container": {"image": "k:1"}}}
    manifest = vm(tmp_path, firmware=boot)
    line = error("--vmi", manifest, "--node-profile", published)
    assert "--dtb: required" in line and "spec.domain.firmware.kernelBoot" in line
    # With its DTB: still firmware boot (KubeVirt starts the kernel through the CCA firmware).
    rim = rim_of("--vmi", manifest, "--node-profile", published, "--dtb", node["dtb-1-1Gi"])
    assert rim == direct_rim(node, "sha512", "dtb-1-1Gi", "2Gi")


def test_an_algorithm_the_profile_does_not_measure_with_is_refused(
    node: dict[str, Path], tmp_path: Path
) -> None:
    published = publish(node, tmp_path, "sha256")
    line = error("--vmi", EXAMPLE_VM, "--node-profile", published)
    assert f"{EXAMPLE_VM}: measurementAlgo: the VM asks for sha512" in line
    assert "the profile measures with sha256" in line


def test_a_vmi_that_asks_for_no_realm_or_is_invalid(node: dict[str, Path], tmp_path: Path) -> None:
    published = publish(node, tmp_path)
    data = yaml.safe_load(EXAMPLE_VM.read_text())
    plain = copy.deepcopy(data)
    del plain["spec"]["template"]["metadata"]["labels"]
    del plain["spec"]["template"]["metadata"]["annotations"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    assert "does not ask for a Realm" in error(
        "--vmi", tmp_path / "plain.yaml", "--node-profile", published
    )
    bad = copy.deepcopy(data)
    bad["spec"]["template"]["metadata"]["annotations"]["cca.kubevirt.io/launch-security"] = (
        '{"measurementAlgo": "md5"}'
    )
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    line = error("--vmi", tmp_path / "bad.yaml", "--node-profile", published)
    assert "launch-security].measurementAlgo" in line
    assert "missing.yaml: no such file" in error(
        "--vmi", tmp_path / "missing.yaml", "--node-profile", published
    )
    memory = vm(tmp_path, name="m.yaml", memory={"guest": "lots"})
    assert "spec.template.spec.domain.memory.guest: expected a memory quantity" in error(
        "--vmi", memory, "--node-profile", published
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--kernel", "k"], "--kernel: not with --vmi or --node-profile"),
        (["--payload", "p"], "--payload: not with --vmi or --node-profile"),
        (["--memory", "1Gi"], "--memory: not with --vmi"),
        (["--cpus", "2"], "--cpus: not with --vmi"),
        (["--profile", "p.yaml"], "--profile: not with --node-profile"),
        (["--firmware", "f"], "--firmware: not with --node-profile"),
    ],
)
def test_inputs_that_would_contradict_the_vmi_or_node_profile(
    node: dict[str, Path], tmp_path: Path, extra: list[str], field: str
) -> None:
    published = publish(node, tmp_path)
    assert field in error("--vmi", EXAMPLE_VM, "--node-profile", published, *extra)


def test_the_classic_form_still_names_what_it_lacks(node: dict[str, Path], tmp_path: Path) -> None:
    assert "--profile: required (or --node-profile)" in error(
        "--firmware", node["firmware"], "--dtb", node["dtb-1-1Gi"], "--memory", "1Gi"
    )
    assert "--memory: required (or --vmi)" in error(
        "--profile", node["sha256"], "--firmware", node["firmware"], "--dtb", node["dtb-1-1Gi"]
    )
    assert "--firmware/--kernel/--payload: give one (or --node-profile)" in error(
        "--profile", node["sha256"], "--dtb", node["dtb-1-1Gi"], "--memory", "1Gi"
    )
    assert "--cpus: only with --node-profile" in error(
        "--profile", node["sha256"], "--firmware", node["firmware"], "--dtb", node["dtb-1-1Gi"],
        "--memory", "1Gi", "--cpus", "2",
    )  # fmt: skip
    published = publish(node, tmp_path)
    assert "--memory/--cpus: required with --node-profile" in error(
        "--node-profile", published, "--memory", "1Gi"
    )
    assert "--cpus: expected a positive count, got 0" in error(
        "--node-profile", published, "--memory", "1Gi", "--cpus", "0"
    )
    assert "--node-profile missing.json: no such file" in error(
        "--node-profile", "missing.json", "--memory", "1Gi", "--cpus", "1"
    )


# --- a damaged node profile ----------------------------------------------------------------------


def _damage(data: dict[str, Any], how: str) -> Any:
    if how == "kind":
        data["kind"] = "Other"
    elif how == "unknown key":
        data["extra"] = 1
    elif how == "schema":
        data["schemaVersion"] = 2
    elif how == "profile":
        data["hostProfile"]["ipaBits"] = 99
    elif how == "too few granules":
        data["firmware"]["granules"].pop()
    elif how == "too many granules":
        data["firmware"]["granules"][0][1] += 1
    elif how == "short digest":
        data["firmware"]["granules"][0][0] = "00" * 32  # a sha256 digest in a sha512 profile
    elif how == "sha256":
        data["firmware"]["sha256"] = "xyz"
    elif how == "dtb base64":
        data["dtbs"][0]["dtb"] = "not base64!"
    elif how == "dtb memory":
        data["dtbs"][0]["memory"] = 1000
    elif how == "not a map":
        return [data]
    return data


@pytest.mark.parametrize(
    ("how", "field"),
    [
        ("kind", "kind: expected a CCANodeProfile object"),
        ("not a map", "kind: expected a CCANodeProfile object"),
        ("unknown key", "extra: unknown key"),
        ("schema", "schemaVersion: expected 1, got 2"),
        ("profile", "hostProfile.ipaBits: expected an integer 32 to 48"),
        ("too few granules", "firmware.granules: cover"),
        ("too many granules", "firmware.granules[2]: expected [HEX, COUNT] with 1 to 44"),
        ("short digest", "firmware.granules[0] (sha512): expected 64 bytes of hex"),
        ("sha256", "firmware.sha256: expected 32 bytes of hex"),
        ("dtb base64", "dtbs[0].dtb: expected standard base64"),
        ("dtb memory", "dtbs[0] memory: expected a positive multiple of 4Ki"),
    ],
)
def test_a_damaged_node_profile_names_the_field(
    node: dict[str, Path], tmp_path: Path, how: str, field: str
) -> None:
    published = publish(node, tmp_path)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(_damage(json.loads(published.read_text()), how)))
    line = error("--vmi", EXAMPLE_VM, "--node-profile", damaged)
    assert f"--node-profile {damaged}: {field}" in line, line


def test_a_node_profile_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "np.json").write_text("{unclosed: [")
    message = error("--vmi", EXAMPLE_VM, "--node-profile", tmp_path / "np.json")
    assert f"--node-profile {tmp_path / 'np.json'}: not valid JSON: " in message


def test_a_node_profile_is_read_like_every_manifest(tmp_path: Path) -> None:
    """The project's reader: a key given twice, or an integer too long to read, is named."""
    (tmp_path / "twice.yaml").write_text("hostProfile: {}\nhostProfile: {}\n")
    message = error("--vmi", EXAMPLE_VM, "--node-profile", tmp_path / "twice.yaml")
    assert 'mapping key "hostProfile" already defined at line 1' in message
    (tmp_path / "long.json").write_text('{"x": ' + "9" * 5000 + "}")
    message = error("--vmi", EXAMPLE_VM, "--node-profile", tmp_path / "long.json")
    assert "an integer of 5000 digits is too long to read" in message


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (["two", "2Gi", "D"], "--shape: CPUS: expected a count, got 'two'"),
        (["0", "2Gi", "D"], "--shape: CPUS: expected a count, got '0'"),
        (["2", "lots", "D"], "--shape MEMORY: expected a memory quantity"),
        (["2", "2Gi", "missing.dtb"], "missing.dtb: no such file"),
    ],
)
def test_the_node_profile_command_names_a_bad_shape(
    node: dict[str, Path], tmp_path: Path, shape: list[str], message: str
) -> None:
    args: list[str | Path] = [
        node["dtb-1-1Gi"] if part == "D" else (tmp_path / part if part.endswith(".dtb") else part)
        for part in shape
    ]
    code, out, err = attest(
        "node-profile", "--profile", node["sha256"], "--firmware", node["firmware"],
        "--shape", *args,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith(PREFIX) and message in err, err


def test_the_node_profile_command_refuses_twice_the_same_shape_and_empty_firmware(
    node: dict[str, Path], tmp_path: Path
) -> None:
    shape = ["--shape", "1", "1Gi", str(node["dtb-1-1Gi"])]
    code, _, err = attest(
        "node-profile", "--profile", node["sha256"], "--firmware", node["firmware"], *shape, *shape
    )
    assert code == 2 and "given twice" in err
    (tmp_path / "empty.fd").write_bytes(b"")
    code, _, err = attest(
        "node-profile", "--profile", node["sha256"], "--firmware", tmp_path / "empty.fd"
    )
    assert code == 2 and "--firmware: the file is empty" in err


def test_a_node_profile_too_large_for_a_configmap_is_written_with_a_warning(
    node: dict[str, Path], tmp_path: Path
) -> None:
    # 40 MiB of distinct granules: about 1.4 MB of sha512 digests.
    big = b"".join(hashlib.sha512(i.to_bytes(4, "big")).digest() * 64 for i in range(10240))
    (tmp_path / "big.fd").write_bytes(big)
    code, out, err = attest(
        "node-profile", "--profile", node["sha512"], "--firmware", tmp_path / "big.fd"
    )
    assert code == 0
    assert len(out) > 1024 * 1024 and json.loads(out)["firmware"]["bytes"] == len(big)
    assert "warning: the node profile is" in err and "more than a ConfigMap holds" in err
    code, out, err = attest(
        "node-profile", "--profile", node["sha256"], "--firmware", node["firmware"]
    )
    assert code == 0 and err == ""
