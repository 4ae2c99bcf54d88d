"""The Plugins path's old import paths (core/plugin.py, core/plugin_hook.py, core/hook.py) still
name the very objects that moved in issue 16 item 4, so branches written against them keep
working until they are merged and the re-exports are removed."""

from __future__ import annotations

from kubevirt_cca import constants
from kubevirt_cca.core import hook, plugin, plugin_hook
from kubevirt_cca.core.admission import launcher_pod
from kubevirt_cca.core.hook import decision, sidecar
from kubevirt_cca.core.hook import plugin as hook_plugin
from kubevirt_cca.core.install import plugin as install_plugin


def test_core_plugin_names_the_moved_objects() -> None:
    assert plugin.plugin_object is install_plugin.plugin_object
    assert plugin.PLUGIN_CONDITION == install_plugin.PLUGIN_CONDITION
    assert plugin.pod_patch is launcher_pod.pod_patch
    assert plugin.plugin_container is launcher_pod.plugin_container
    assert plugin.is_cca_launcher_pod is launcher_pod.is_cca_launcher_pod
    assert plugin.PLUGIN_SOCKET == constants.PLUGIN_SOCKET == (
        "/var/run/kubevirt-plugin/kubevirt-cca/kubevirt-cca.sock")


def test_core_plugin_hook_and_core_hook_name_the_moved_decisions() -> None:
    assert plugin_hook.mutate_domain is hook_plugin.mutate_domain
    assert plugin_hook.MutateCall is hook_plugin.MutateCall
    assert hook.define_domain is decision.define_domain
    assert hook.on_define_domain is sidecar.on_define_domain
