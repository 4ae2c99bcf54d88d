"""Every key, name and path that kubevirt-cca shares with KubeVirt, libvirt or itself.

One place, so the webhook, the hook, the labeller and the docs can never disagree on a spelling.
"""

from typing import Final

from kubevirt_cca import __version__

# --- The API a VM owner uses (docs/vm-owners.md) --------------------------------------------------
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
# Every algorithm some CCA stack knows: sha256 and sha512 (RMM 1.0, QEMU's older rme-guest), sha384
# (RMM 2.0, RMI_HASH_SHA_384). A request may name any of them; only nodes that report it get it.
MEASUREMENT_ALGORITHMS: Final = ("sha256", "sha384", "sha512")
PERSONALIZATION_VALUE_BYTES: Final = 64

# --- Feature gates (KubeVirt CR, spec.configuration.developerConfiguration) -------------------
CCA_FEATURE_GATE: Final = "WorkloadEncryptionCCA"  # the RFC code's name (the canonical one)
# The same switch under the names other trees use (issue 15): VEP 129's tracking issue, and
# NVIDIA's VEP 338. Any one of them turns kubevirt-cca on (docs/admin.md, "Feature gates").
ENABLE_CCA_FEATURE_GATE: Final = "EnableCCA"
ENABLE_ARM_CCA_FEATURE_GATE: Final = "EnableARMCCA"
CCA_FEATURE_GATE_NAMES: Final = (
    CCA_FEATURE_GATE,
    ENABLE_CCA_FEATURE_GATE,
    ENABLE_ARM_CCA_FEATURE_GATE,
)
SIDECAR_FEATURE_GATE: Final = "Sidecar"
PLUGINS_FEATURE_GATE: Final = "Plugins"

# KubeVirt's own VMI schema carries this field once KubeVirt implements CCA itself.
NATIVE_CCA_SCHEMA_PATH: Final = ("spec", "domain", "launchSecurity", "cca")
KUBEVIRT_VMI_CRD: Final = "virtualmachineinstances.kubevirt.io"

# --- Node labels and annotations (docs/node-labels.md) --------------------------------------------
NODE_CCA_LABEL: Final = "kubevirt.io/cca"
NODE_ALGO_LABEL_PREFIX: Final = "cca.kubevirt.io/measurement-algo-"
# What the node's libvirt honours besides the algorithm (docs/node-labels.md).
NODE_PERSONALIZATION_VALUE_LABEL: Final = "cca.kubevirt.io/personalization-value"
NODE_MEASUREMENT_LOG_LABEL: Final = "cca.kubevirt.io/measurement-log"
# What the virt-launcher image's QEMU accepts on `-object rme-guest` (the qemu-commandline dialect).
NODE_RME_GUEST_ALGO_LABEL_PREFIX: Final = "cca.kubevirt.io/rme-guest-measurement-algo-"
NODE_RME_GUEST_PERSONALIZATION_VALUE_LABEL: Final = (
    "cca.kubevirt.io/rme-guest-personalization-value"
)
NODE_RME_GUEST_MEASUREMENT_LOG_LABEL: Final = "cca.kubevirt.io/rme-guest-measurement-log"
# The labeller's owned label keys, one tuple (as KubeVirt's node labeller lists its own). An
# entry ending in "-" is a prefix: it owns every key that starts with it.
LABELLER_OWNED_LABELS: Final = (
    NODE_CCA_LABEL,
    NODE_ALGO_LABEL_PREFIX,
    NODE_PERSONALIZATION_VALUE_LABEL,
    NODE_MEASUREMENT_LOG_LABEL,
    NODE_RME_GUEST_ALGO_LABEL_PREFIX,
    NODE_RME_GUEST_PERSONALIZATION_VALUE_LABEL,
    NODE_RME_GUEST_MEASUREMENT_LOG_LABEL,
)
NODE_DETECTION_ANNOTATION: Final = "cca.kubevirt.io/detection"
# Set by the cluster admin, never by the labeller: the VEP 129 parameters a node's libvirt passes
# on although its domain capabilities cannot say so (NVIDIA's libvirt; docs/node-labels.md).
NODE_HONOURS_OVERRIDE_ANNOTATION: Final = "cca.kubevirt.io/libvirt-honours"
# The reasons of the labeller's Node Events (its Events policy allows only these).
LABELLER_EVENT_REASONS: Final = (
    "CCACapable",
    "CCANotCapable",
    "CCAAlgorithmsChanged",
    "CCAParametersChanged",
)
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
    "virsh",
    "domcapabilities",
    "--machine",
    "virt",
    "--arch",
    "aarch64",
    "--virttype",
    "kvm",
)
QEMU_NAMESPACE: Final = "http://libvirt.org/schemas/domain/qemu/1.0"
KVM_RMI_PARAMETERS: Final = (
    "sys/module/kvm/parameters/kvm_cap_arm_rmi",
    "sys/module/kvm/parameters/kvm_cap_arm_rme",
)
RMI_ABI_LOG_MARKER: Final = "RMI ABI version"
# The QEMU object a Realm is (Linaro's series), and how the labeller asks QEMU for its properties.
RME_GUEST_OBJECT: Final = "rme-guest"
RME_GUEST_HELP_ARGS: Final = ("-object", "rme-guest,help")
# QEMU binaries a virt-launcher image may carry, in the order they are tried.
QEMU_BINARIES: Final = ("/usr/libexec/qemu-kvm", "/usr/bin/qemu-system-aarch64")
# openEuler's virtCCA (HiSilicon TMM) marks its <cca> with this name; it is not Arm RME.
VIRTCCA_MARKER: Final = "hisi-cca-enable"

# --- The hook sidecar image and entry ----------------------------------------------------------
# Admins set the real image in kubevirt-cca-config (hookImage) or with `manifests --image`.
DEFAULT_HOOK_IMAGE: Final = f"kubevirt-cca:{__version__}"
HOOK_COMMAND: Final = "hook"  # the subcommand the sidecar entry's args start with

# --- KubeVirt Plugins path (VEP 190) -----------------------------------------------------------
# The Plugin object's name, and the socket its domain hook dials: KubeVirt mounts its
# kubevirt-plugin-sockets volume in virt-launcher, our container mounts it with subPath PLUGIN_NAME.
PLUGIN_NAME: Final = "kubevirt-cca"
PLUGIN_SOCKET_ROOT: Final = "/var/run/kubevirt-plugin"
PLUGIN_SOCKET_DIR: Final = f"{PLUGIN_SOCKET_ROOT}/{PLUGIN_NAME}"
PLUGIN_SOCKET: Final = f"{PLUGIN_SOCKET_DIR}/{PLUGIN_NAME}.sock"
PLUGIN_SOCKETS_VOLUME: Final = "kubevirt-plugin-sockets"
PLUGIN_CONTAINER: Final = "kubevirt-cca-plugin"  # the container injected into virt-launcher
# The label KubeVirt puts on every virt-launcher pod.
LAUNCHER_LABEL: Final = "kubevirt.io"
LAUNCHER_LABEL_VALUE: Final = "virt-launcher"
# Written by the mutating webhook on a CCA VMI admitted in plugin mode: the Realm set-up comes
# from the injected plugin container, not a hook sidecar entry (the CEL backstop reads it).
INTEGRATION_ANNOTATION: Final = "cca.kubevirt.io/integration"
