"""The release workflow (.github/workflows/release.yaml): actionlint finds nothing in it, and it
does what docs/development.md, "Releasing", promises: both architectures, the release YAML naming
the pushed image by digest, the chart with that image as its default.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubevirt_cca.adapters.helm_chart import PUBLISHED_REPOSITORY, chart_metadata
from tests.conftest import ROOT
from tests.helm import HELM_SDK_VERSION, actionlint

WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(actionlint()), "-no-color", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def test_actionlint_finds_nothing() -> None:
    done = lint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_actionlint_checks_the_actions_inputs_and_expressions(tmp_path: Path) -> None:
    """The linter reads this workflow for real: a misspelt input and output are found."""
    broken = (
        WORKFLOW.read_text()
        .replace("platforms: linux/amd64", "platform: linux/amd64")
        .replace("needs.image.outputs.digest", "needs.image.outputs.digests")
    )
    path = tmp_path / "release.yaml"
    path.write_text(broken)
    done = lint(path)
    assert done.returncode == 1
    assert 'input "platform" is not defined in action "docker/build-push-action@v6"' in done.stdout
    assert 'property "digests" is not defined' in done.stdout


def test_it_runs_on_version_tags_only() -> None:
    loaded: dict[Any, Any] = workflow()
    on = loaded[True]  # PyYAML reads the key `on` as a boolean (YAML 1.1)
    assert on == {"push": {"tags": ["v*.*.*"]}}


def test_the_image_is_built_for_both_architectures_and_pushed() -> None:
    build = next(s for s in steps("image") if s.get("id") == "build")
    assert build["uses"].startswith("docker/build-push-action@")
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert build["with"]["file"] == "Containerfile"
    assert workflow()["jobs"]["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"


def test_the_image_goes_where_the_chart_defaults_to() -> None:
    """Run in the project's repository (owner kubevirt-cca, the chart's home), the workflow
    pushes the image the chart and the docs name as the default."""
    image = workflow()["env"]["IMAGE"]
    home = chart_metadata()["home"]
    owner = home.removeprefix("https://github.com/").split("/")[0]
    assert image.replace("${{ github.repository_owner }}", owner) == PUBLISHED_REPOSITORY


def test_the_release_yaml_and_chart_name_the_image_by_digest() -> None:
    published = workflow()["jobs"]["publish"]
    assert published["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    scripts = "\n".join(s.get("run", "") for s in published["steps"])
    by_digest = '--image "${IMAGE}:${VERSION}@${DIGEST}"'
    assert 'image="${IMAGE}:${VERSION}@${DIGEST}"' in scripts
    assert (
        'kubevirt-cca manifests --image "${image}" >"dist/kubevirt-cca-${VERSION}.yaml"' in scripts
    )
    assert f"manifests --write-helm build/kubevirt-cca {by_digest}" in scripts
    assert "helm package build/kubevirt-cca --destination dist" in scripts
    assert 'gh release create "${GITHUB_REF_NAME}" dist/*' in scripts


def test_the_release_uses_the_helm_the_tests_use() -> None:
    assert workflow()["env"]["HELM_VERSION"] == HELM_SDK_VERSION
