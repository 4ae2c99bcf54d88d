"""Every key, name and path that kubevirt-cca shares with KubeVirt, libvirt or itself.

One place, so the webhook, the hook, the labeller and the docs can never disagree on a spelling.
"""

from typing import Final

# --- The API a VM owner uses (DESIGN.md, "The API") -------------------------------------------
# Every key kubevirt-cca reads or writes starts with this; any other key under it is a mistake.
KEY_PREFIX: Final = "cca.kubevirt.io/"
ENABLED_LABEL: Final = "cca.kubevirt.io/enabled"
ENABLED_VALUE: Final = "true"
LAUNCH_SECURITY_ANNOTATION: Final = "cca.kubevirt.io/launch-security"
# What admission decided, recorded on the admitted VMI (dialect, firmware, parameters).
RESOLVED_ANNOTATION: Final = "cca.kubevirt.io/resolved"

# The keys VEP 129's CCA struct has, in the order the docs list them.
MEASUREMENT_ALGO_KEY: Final = "measurementAlgo"
MEASUREMENT_LOG_KEY: Final = "measurementLog"
PERSONALIZATION_VALUE_KEY: Final = "personalizationValue"
CCA_PARAMETER_KEYS: Final = (MEASUREMENT_ALGO_KEY, MEASUREMENT_LOG_KEY, PERSONALIZATION_VALUE_KEY)
MEASUREMENT_ALGORITHMS: Final = ("sha256", "sha512")
PERSONALIZATION_VALUE_BYTES: Final = 64

# --- Feature gates (KubeVirt CR, spec.configuration.developerConfiguration) -------------------
CCA_FEATURE_GATE: Final = "WorkloadEncryptionCCA"  # the RFC code's name (the canonical one)
# The same switch under the names other trees use (issue 15): VEP 129's tracking issue, and
# NVIDIA's VEP 338. Any one of them turns kubevirt-cca on (docs/admin.md, "Feature gates").
ENABLE_CCA_FEATURE_GATE: Final = "EnableCCA"
ENABLE_ARM_CCA_FEATURE_GATE: Final = "EnableARMCCA"
CCA_FEATURE_GATE_NAMES: Final = (CCA_FEATURE_GATE, ENABLE_CCA_FEATURE_GATE,
                                 ENABLE_ARM_CCA_FEATURE_GATE)
SIDECAR_FEATURE_GATE: Final = "Sidecar"
PLUGINS_FEATURE_GATE: Final = "Plugins"

# KubeVirt's own VMI schema carries this field once KubeVirt implements CCA itself.
NATIVE_CCA_SCHEMA_PATH: Final = ("spec", "domain", "launchSecurity", "cca")
KUBEVIRT_VMI_CRD: Final = "virtualmachineinstances.kubevirt.io"

# --- Node labels and annotations (DESIGN.md, "Node labels") ------------------------------------
NODE_CCA_LABEL: Final = "kubevirt.io/cca"
NODE_ALGO_LABEL_PREFIX: Final = "cca.kubevirt.io/measurement-algo-"
# The algorithms a node label may name (Arm's RMM knows these three); libvirt naming another
# gets no label, so the labeller's keys are a fixed, known set (its policy allows only them).
NODE_MEASUREMENT_ALGORITHMS: Final = ("sha256", "sha384", "sha512")
NODE_DETECTION_ANNOTATION: Final = "cca.kubevirt.io/detection"
# The reasons of the labeller's Node Events (its Events policy allows only these).
LABELLER_EVENT_REASONS: Final = ("CCACapable", "CCANotCapable", "CCAAlgorithmsChanged")
KUBEVIRT_SKIP_NODE_ANNOTATION: Final = "node-labeller.kubevirt.io/skip-node"

# --- KubeVirt hook sidecars --------------------------------------------------------------------
HOOK_SIDECARS_ANNOTATION: Final = "hooks.kubevirt.io/hookSidecars"
HOOK_SOCKET_DIR: Final = "/var/run/kubevirt-hooks"
HOOK_SOCKET_NAME: Final = "kubevirt-cca.sock"
HOOK_NAME: Final = "kubevirt-cca"
ON_DEFINE_DOMAIN: Final = "OnDefineDomain"

# --- KubeVirt migration refusal (same reason string as the upstream RFC) -----------------------
NOT_MIGRATABLE_REASON: Final = "CCANotLiveMigratable"

# --- Installation ------------------------------------------------------------------------------
INSTALL_NAMESPACE: Final = "kubevirt-cca"
CONFIG_MAP_NAME: Final = "kubevirt-cca-config"

# --- Host and libvirt --------------------------------------------------------------------------
DEFAULT_CCA_FIRMWARE: Final = "/usr/share/AAVMF/AAVMF_CODE.cca.fd"
DEFAULT_DOMCAPS_COMMAND: Final = (
    "virsh", "domcapabilities", "--machine", "virt", "--arch", "aarch64", "--virttype", "kvm",
)
QEMU_NAMESPACE: Final = "http://libvirt.org/schemas/domain/qemu/1.0"
KVM_RMI_PARAMETERS: Final = (
    "sys/module/kvm/parameters/kvm_cap_arm_rmi",
    "sys/module/kvm/parameters/kvm_cap_arm_rme",
)
RMI_ABI_LOG_MARKER: Final = "RMI ABI version"

# --- The hook sidecar image and entry ----------------------------------------------------------
# Admins set the real image in kubevirt-cca-config (hookImage) or with `manifests --image`.
DEFAULT_HOOK_IMAGE: Final = "kubevirt-cca:0.1.0"
HOOK_COMMAND: Final = "hook"  # the subcommand the sidecar entry's args start with

# --- KubeVirt Plugins path (VEP 190) -----------------------------------------------------------
# Written by the mutating webhook on a CCA VMI admitted in plugin mode: the Realm set-up comes
# from the injected plugin container, not a hook sidecar entry (the CEL backstop reads it).
INTEGRATION_ANNOTATION: Final = "cca.kubevirt.io/integration"
