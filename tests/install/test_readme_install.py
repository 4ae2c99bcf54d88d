"""The README's install commands and docs/install.md's overlay, run as written with an image name.

Only what would reach a cluster is stood in for: ``kubectl apply -f -`` saves what it is given
(there is no cluster here); ``kubevirt-cca`` is this checkout's CLI run as a process, and
``kubectl kustomize`` is the real one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.core.install.policy_values import RENDERED_POLICIES, rendered_values
from tests.conftest import ROOT
from tests.install.support import DEPLOY, kustomize

README = ROOT / "README.md"
INSTALL_GUIDE = ROOT / "docs" / "install.md"
# Names no default, no example and no placeholder in the repository uses.
MY_IMAGE = "images.test.invalid/team-a/kubevirt-cca:7.7.7"
MY_LAUNCHER = "images.test.invalid/team-a/virt-launcher:v7.7"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{1,3} ", text[start + len(heading) :], flags=re.MULTILINE)
    return text[start : start + len(heading) + (following.start() if following else len(text))]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _images(objects: list[dict[str, Any]]) -> list[str]:
    """Every image an object names: containers, init containers, and the hook image setting."""
    found: list[str] = []
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for key in ("initContainers", "containers"):
            found += [c["image"] for c in pod.get(key, [])]
        if obj["kind"] == "ConfigMap" and "hookImage" in obj.get("data", {}):
            found.append(obj["data"]["hookImage"])
        if obj["kind"] == "ValidatingAdmissionPolicy" and obj["metadata"]["name"] in (
            RENDERED_POLICIES
        ):
            found.append(str(rendered_values(obj)["hookImage"]))
    return found


def _assert_only_my_images(objects: list[dict[str, Any]]) -> None:
    images = _images(objects)
    assert images, "no object names an image"
    assert set(images) == {MY_IMAGE, MY_LAUNCHER}, images
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["hookImage"] == MY_IMAGE
    pinned = [
        rendered_values(o)["hookImage"]
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] in RENDERED_POLICIES
    ]
    assert pinned == [MY_IMAGE, MY_IMAGE], "both policies pin the reader's image"
    text = yaml.safe_dump_all(objects)
    assert "kubevirt-cca:0.1.0" not in text


def _shims(folder: Path, applied: Path) -> dict[str, str]:
    """PATH with ``kubevirt-cca`` (this checkout) and ``kubectl`` (apply saved, rest real)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the development and CI machines have it)")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubevirt-cca").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m kubevirt_cca "$@"\n'
    )
    (bin_dir / "kubectl").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = apply ] && [ "$2" = -f ] && [ "$3" = - ]; then\n'
        f'  cat >>"{applied}"; exit 0\n'
        "fi\n"
        f'exec "{kubectl}" "$@"\n'
    )
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_readme_install_commands_give_objects_naming_the_readers_image(tmp_path: Path) -> None:
    section = _section(README.read_text(), "## Install on a cluster")
    blocks = [b for b in _blocks(section, "sh") if "kubectl apply" in b]
    assert len(blocks) == 1, "the README's install section has one block of install commands"
    script = blocks[0]
    # The reader puts their own names in the two assignments; everything else runs as written.
    script, images_set = re.subn(r"^IMAGE=\S+", f"IMAGE={MY_IMAGE}", script, flags=re.MULTILINE)
    script, launchers_set = re.subn(
        r"^LAUNCHER=\S+", f"LAUNCHER={MY_LAUNCHER}", script, flags=re.MULTILINE
    )
    assert (images_set, launchers_set) == (1, 1), "the block sets IMAGE and LAUNCHER once each"
    applied = tmp_path / "applied.yaml"
    env = _shims(tmp_path, applied)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    objects = [d for d in yaml.safe_load_all(applied.read_text()) if d]
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "DaemonSet",
        "ConfigMap",
        "MutatingWebhookConfiguration",
    }
    _assert_only_my_images(objects)


def test_the_install_guides_overlay_gives_objects_naming_the_readers_image(tmp_path: Path) -> None:
    """docs/install.md's kustomize overlay, with the reader's names, over the checkout's deploy/."""
    guide = INSTALL_GUIDE.read_text()
    overlays = [b for b in _blocks(guide, "yaml") if b.startswith("# my-cluster/kustomization")]
    assert len(overlays) == 1, "docs/install.md shows one overlay (my-cluster/kustomization.yaml)"
    overlay = overlays[0]
    my_name, my_tag = MY_IMAGE.rsplit(":", 1)
    launcher_name, launcher_tag = MY_LAUNCHER.rsplit(":", 1)
    replacements = {
        "newName: registry.example/kubevirt-cca\n": f"newName: {my_name}\n",
        "newTag: 0.1.0\n": f"newTag: {my_tag}\n",
        "newName: registry.example/kubevirt/virt-launcher\n": f"newName: {launcher_name}\n",
        "newTag: v1.8.0\n": f"newTag: {launcher_tag}\n",
        "hookImage: registry.example/kubevirt-cca:0.1.0": f"hookImage: {MY_IMAGE}",
        """value: '"registry.example/kubevirt-cca:0.1.0"'""": f"""value: '"{MY_IMAGE}"'""",
    }
    for example, mine in replacements.items():
        assert overlay.count(example) == 1, f"the overlay no longer has {example!r}"
        overlay = overlay.replace(example, mine)
    (tmp_path / "deploy").symlink_to(DEPLOY)
    (tmp_path / "my-cluster").mkdir()
    (tmp_path / "my-cluster" / "kustomization.yaml").write_text(overlay)
    assert re.search(r"^kubectl apply -k my-cluster/$", guide, flags=re.MULTILINE)
    _assert_only_my_images(kustomize(tmp_path / "my-cluster"))
