"""kubevirt-cca: Arm CCA confidential VMs (Realms) on stock KubeVirt, as VEP 129 describes."""

# The one version source: the package build (pyproject.toml), `--version` and the default image
# tag (constants.DEFAULT_HOOK_IMAGE) all read it.
__version__ = "0.1.0"
