"""Keys for tokens built in the tests (generated, so no test here needs ../shared for them)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.attestation.builder import TokenSpec, new_key


@pytest.fixture(scope="session")
def platform_key() -> ec.EllipticCurvePrivateKey:
    return new_key()


@pytest.fixture(scope="session")
def realm_key() -> ec.EllipticCurvePrivateKey:
    return new_key()


@pytest.fixture(scope="session")
def other_key() -> ec.EllipticCurvePrivateKey:
    return new_key()


@pytest.fixture(scope="session")
def spec(
    platform_key: ec.EllipticCurvePrivateKey, realm_key: ec.EllipticCurvePrivateKey
) -> TokenSpec:
    return TokenSpec(platform_key=platform_key, realm_key=realm_key)
