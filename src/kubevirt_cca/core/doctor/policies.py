"""Whether the admission policies pin what kubevirt-cca-config says (issue 21 item 6).

The hook image and integration mode are rendered into two policies at install time
(``core/install/policy_values.py``); they no longer read the ConfigMap. A ConfigMap edited
afterwards without rendering and applying the install again leaves them apart: with another
``hookImage`` the webhook writes an entry the policy refuses (every CCA VMI is refused), with
another ``integrationMode`` the backstop judges the other mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevirt_cca.constants import CONFIG_MAP_NAME, DEFAULT_HOOK_IMAGE
from kubevirt_cca.core.cluster.integration import INTEGRATION_MODE_KEY, IntegrationMode
from kubevirt_cca.core.cluster.settings import HOOK_IMAGE_KEY
from kubevirt_cca.core.doctor.model import Read, Snapshot, mapping
from kubevirt_cca.core.install.policy_values import POLICY_KIND, RENDERED_POLICIES, rendered_values
from kubevirt_cca.core.wire.objects import dig


@dataclass(frozen=True)
class PinProblems:
    """What differs: ``refusing`` blocks CCA VMIs that should pass, ``weaker`` only the backstop."""

    refusing: tuple[str, ...] = ()
    weaker: tuple[str, ...] = ()


def pin_problems(snapshot: Snapshot) -> PinProblems:
    """Each rendered policy's values against the ConfigMap's (the webhook's defaults when unset).
    Without the ConfigMap the webhook uses its defaults, so those are compared; nothing is said
    while the ConfigMap or a policy cannot be read (other checks say that)."""
    config = snapshot.config_map
    if config.error:
        return PinProblems()
    data = mapping(dig(config.value, "data"))
    wanted = {
        HOOK_IMAGE_KEY: str(data.get(HOOK_IMAGE_KEY, DEFAULT_HOOK_IMAGE)),
        INTEGRATION_MODE_KEY: str(data.get(INTEGRATION_MODE_KEY, IntegrationMode.AUTO.value)),
    }
    refusing: list[str] = []
    weaker: list[str] = []
    for name in RENDERED_POLICIES:
        read = snapshot.policies.get((POLICY_KIND, name), Read())
        if read.error or not isinstance(read.value, dict):
            continue
        pinned = rendered_values(read.value)
        for key, value in wanted.items():
            if pinned[key] == value:
                continue
            line = (
                f"{POLICY_KIND} {name} was rendered with {key} {pinned[key]!r}, "
                f"{CONFIG_MAP_NAME} says {value!r}"
            )
            # Another image: the webhook's entry is refused. Rendered for sidecar mode while the
            # config allows plugin mode: plugin-mode VMIs and pods are refused. Otherwise the
            # backstop only judges a mode the cluster does not use.
            if key == HOOK_IMAGE_KEY or pinned[key] == IntegrationMode.SIDECAR.value:
                refusing.append(line)
            else:
                weaker.append(line)
    return PinProblems(tuple(refusing), tuple(weaker))


def re_render_fix(namespace: str, snapshot: Snapshot) -> str:
    """How to bring the policies to the ConfigMap's values."""
    data = mapping(dig(snapshot.config_map.value, "data"))
    image = data.get(HOOK_IMAGE_KEY, DEFAULT_HOOK_IMAGE)
    mode = data.get(INTEGRATION_MODE_KEY, IntegrationMode.AUTO.value)
    return (
        "render and apply the install again with the ConfigMap's values: "
        f"kubevirt-cca manifests --image {image} --integration-mode {mode} --namespace {namespace} "
        "[your other options] | kubectl apply -f - (docs/admin.md, "
        "'Changing the hook image or the integration mode')"
    )
