"""The Containerfile: what the manifests rely on (no container engine runs in CI, so this reads
the file; the image build itself is in docs/install.md)."""

from __future__ import annotations

import fnmatch
import json
import re

from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import NONROOT_UID
from tests.conftest import ROOT

TEXT = (ROOT / "Containerfile").read_text()
INSTRUCTIONS = [
    line
    for line in re.sub(r"\\\n", " ", TEXT).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _final_stage() -> list[str]:
    starts = [i for i, line in enumerate(INSTRUCTIONS) if line.startswith("FROM ")]
    return INSTRUCTIONS[starts[-1] :]


def test_it_is_multi_stage_and_the_last_stage_copies_only_the_environment() -> None:
    froms = [line for line in INSTRUCTIONS if line.startswith("FROM ")]
    assert len(froms) >= 2
    copies = [line for line in _final_stage() if line.startswith("COPY ")]
    assert copies == ["COPY --from=build /opt/kubevirt-cca /opt/kubevirt-cca"]


def test_the_image_runs_kubevirt_cca_as_the_non_root_user_the_manifests_expect() -> None:
    final = _final_stage()
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users == [f"{NONROOT_UID}:{NONROOT_UID}"]
    entrypoint = [
        json.loads(line.removeprefix("ENTRYPOINT "))
        for line in final
        if line.startswith("ENTRYPOINT ")
    ]
    assert entrypoint == [["kubevirt-cca"]]
    deployment = next(o for o in install_objects(InstallOptions()) if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == NONROOT_UID
    # Every container passes a subcommand as args, relying on the entrypoint.
    for obj in install_objects(InstallOptions()):
        if obj["kind"] in ("Deployment", "DaemonSet"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                assert "command" not in container
                assert container["args"][0] in ("webhook", "labeller")


def test_virsh_is_installed_in_the_final_image() -> None:
    assert any("apt-get install" in line and "libvirt-clients" in line for line in _final_stage())


def test_the_build_context_holds_everything_the_build_copies() -> None:
    patterns = [
        p
        for p in (ROOT / ".containerignore").read_text().splitlines()
        if p and not p.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    sources = [
        line.split()[1]
        for line in INSTRUCTIONS
        if line.startswith("COPY ") and "--from" not in line
    ]
    sources += [
        s
        for line in INSTRUCTIONS
        if line.startswith("COPY ") and "--from" not in line
        for s in line.split()[2:-1]
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert included(source.rstrip("/")), f"{source} is excluded by .containerignore"


def test_every_python_package_comes_from_the_hash_pinned_requirements() -> None:
    """requirements/ is the only source of versions: each pip install reads a requirements file
    with --require-hashes and --no-deps, or installs the wheel just built without an index."""
    installs = [
        command
        for line in INSTRUCTIONS
        if line.startswith("RUN ")
        for command in line.split("&&")
        if " install " in command and "pip" in command
    ]
    assert installs
    for install in installs:
        words = install.split()
        if "-r" in words:
            assert words[words.index("-r") + 1].startswith("requirements/"), install
            assert "--require-hashes" in words and "--no-deps" in words, install
        else:
            assert words[-1] == "/dist/*.whl", install
            assert "--no-index" in words and "--no-deps" in words, install
    text = " ".join(INSTRUCTIONS)
    assert "uv pip" not in text and "uv build" not in text
    assert "==" not in text, "no version is written in the Containerfile"


def test_the_runtime_environment_is_made_without_pip() -> None:
    assert any("python -m venv --without-pip /opt/kubevirt-cca" in line for line in INSTRUCTIONS)
