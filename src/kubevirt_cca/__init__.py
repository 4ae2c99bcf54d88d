"""kubevirt-cca: Arm CCA confidential VMs (Realms) on stock KubeVirt, as VEP 129 describes."""

__version__ = "0.1.0"
