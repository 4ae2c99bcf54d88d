"""Where nothing may skip (CI sets KUBEVIRT_CCA_NO_SKIPS=1), a skip of any kind is a failure
that carries the skip's reason: in a test, in a fixture, at collection, by a marker."""

from __future__ import annotations

import pytest

from tests.conftest import NO_SKIPS_SWITCH, ROOT

pytest_plugins = ["pytester"]

SUITE = """
import pytest

pytestmark = []

@pytest.fixture
def lane():
    pytest.skip("the lane's tool is missing")

def test_skips_in_its_body():
    pytest.skip("no /dev/kvm here")

def test_skips_in_a_fixture(lane):
    pass

@pytest.mark.skipif(True, reason="a marker said so")
def test_skipped_by_a_marker():
    pass

@pytest.mark.xfail(reason="known", strict=False)
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    # the project's conftest, as the real suite loads it
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_suite=SUITE)
    module_skip = "import pytest\npytest.skip('module needs ../shared', allow_module_level=True)\n"
    pytester.makepyfile(test_collection=module_skip)
    return pytester


def test_skips_are_skips_by_default(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NO_SKIPS_SWITCH, raising=False)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)


def test_every_skip_fails_where_none_may(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_SKIPS_SWITCH, "1")
    result = suite.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rA", "--continue-on-collection-errors"
    )
    # a skip in the body fails the test; one at set-up (fixture, marker) or collection errors it
    result.assert_outcomes(passed=1, failed=1, errors=3, xfailed=1)
    output = result.stdout.str()
    for reason in (
        "no /dev/kvm here",
        "the lane's tool is missing",
        "a marker said so",
        "module needs ../shared",
    ):
        assert f"{NO_SKIPS_SWITCH}=1, so nothing may skip, but: " in output
        assert reason in output
