/*
 * realm-launcher: creates Arm CCA Realms with KVM on the emulated CCA host of ../shared/cca-emu
 * (TF-RMM v0.6.0 = RMM 1.0, Linux with the Linaro cca/v5 KVM host series) and runs one REC.
 *
 * A Realm gets ram_size bytes of RAM at RAM_BASE (RIPAS RAM, measured), the payload copied to
 * the start of RAM (populated and measured granule by granule), and one runnable REC entered at
 * RAM_BASE with x0..x7 zero. The measurement algorithm, IPA bits, RAM size and personalization
 * value (RPV) come from the arguments. After activation the payload talks to us through the
 * unprotected IPA half (the port below): it reads the challenge and writes records, each printed
 * as a REALM-* line (tests/realm/cases.py reads them).
 *
 * As PID 1 (the initramfs /init) it mounts devtmpfs, runs every Realm listed in /etc/realms
 * ("NAME ALGO IPA_BITS RAM_SIZE RPV_HEX CHALLENGE_HEX" a line) with /payload.bin, each in a child
 * process, prints REALM-LANE-DONE or REALM-LANE-FAIL, and powers the host off. Otherwise:
 *     realm-launcher NAME ALGO IPA_BITS RAM_SIZE RPV_HEX CHALLENGE_HEX PAYLOAD
 *
 * The uAPI is the old, cap-based one of cca/v5 (KVM_CAP_ARM_RME = 300); its constants and the
 * guest_memfd structures are newer than the cross toolchain's Linux 6.1 headers, so they are
 * spelled out here (values from that kernel's include/uapi/linux/kvm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* --- cca/v5 uAPI --------------------------------------------------------------------------- */
#define KVM_CAP_ARM_RME 300
#define KVM_VM_TYPE_ARM_REALM (1UL << 8)
#define KVM_CAP_ARM_RME_CONFIG_REALM 0
#define KVM_CAP_ARM_RME_CREATE_RD 1
#define KVM_CAP_ARM_RME_INIT_IPA_REALM 2
#define KVM_CAP_ARM_RME_POPULATE_REALM 3
#define KVM_CAP_ARM_RME_ACTIVATE_REALM 4
#define KVM_CAP_ARM_RME_CFG_RPV 0
#define KVM_CAP_ARM_RME_CFG_HASH_ALGO 1
#define KVM_CAP_ARM_RME_MEASUREMENT_ALGO_SHA256 0
#define KVM_CAP_ARM_RME_MEASUREMENT_ALGO_SHA512 1
#define KVM_ARM_RME_POPULATE_FLAGS_MEASURE (1U << 0)
#define KVM_ARM_VCPU_REC 8

struct kvm_cap_arm_rme_config_item {
	uint32_t cfg;
	union {
		uint8_t rpv[64];        /* cfg 0 */
		uint32_t hash_algo;     /* cfg 1 */
		uint8_t reserved[256];
	};
};

struct kvm_cap_arm_rme_init_ipa_args {
	uint64_t init_ipa_base;
	uint64_t init_ipa_size;
	uint32_t reserved[4];
};

struct kvm_cap_arm_rme_populate_realm_args {
	uint64_t populate_ipa_base;
	uint64_t populate_ipa_size;
	uint32_t flags;
	uint32_t reserved[3];
};

/* guest_memfd (Linux 6.8), not in the toolchain's headers */
struct cca_create_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct cca_create_guest_memfd)

struct cca_userspace_memory_region2 {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t guest_memfd_offset;
	uint32_t guest_memfd;
	uint32_t pad1;
	uint64_t pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct cca_userspace_memory_region2)
#define KVM_MEM_GUEST_MEMFD (1U << 2)

struct cca_memory_attributes {
	uint64_t address;
	uint64_t size;
	uint64_t attributes;
	uint64_t flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct cca_memory_attributes)
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1UL << 3)

/* --- the Realm's shape (all of it measured; attest reference --payload replays it) --------- */
#define RAM_BASE 0x40000000UL            /* as QEMU's virt machine */
#define GIC_DIST 0x08000000UL
#define GIC_REDIST 0x080a0000UL
#define GRANULE 0x1000UL
#define MAX_PAYLOAD 0x100000UL           /* 1 MiB */
#define MAX_RAM 0x80000000UL             /* 2 GiB (RAM is mapped lazily) */

/* The debug port in the unprotected half (IPA bit ipa_bits-1 set): 8-byte accesses only.
 * The payload finds it from RSI_REALM_CONFIG's ipa_width; see payload.c. */
#define PORT_BEGIN 0x00     /* write: start a record, value = its tag */
#define PORT_DATA 0x08      /* write: 8 more bytes of the record, little-endian */
#define PORT_END 0x10       /* write: end the record, value = its length in bytes */
#define PORT_CHALLENGE 0x18 /* read: the next 8 bytes of the challenge */

#define MAX_EXITS 200000
#define RECORD_MAX 0x8000

static const char *const TAGS[] = {"NONE", "RSI-VERSION", "CONFIG", "RIM", "TOKEN", "ERROR"};
#define NTAGS (sizeof(TAGS) / sizeof(TAGS[0]))

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* exactly 64 bytes of hex into out; 0 on success */
static int parse_hex64(const char *text, uint8_t out[64])
{
	if (strlen(text) != 128)
		return -1;
	for (int i = 0; i < 64; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Let a printed line reach the UART before the next RMI/RSI call: the RMM writes its own log
 * to the same UART, and would otherwise cut into a line still being sent. */
static void drain(void)
{
	fflush(stdout);
	tcdrain(STDOUT_FILENO);
}

/* SHA-256 (FIPS 180-4) of the payload, printed with the launch inputs so that the console alone
 * says which image was measured. */
static const uint32_t SHA256_K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2};

static uint32_t ror(uint32_t x, unsigned int n)
{
	return x >> n | x << (32 - n);
}

static void sha256_block(uint32_t h[8], const uint8_t block[64])
{
	uint32_t w[64], v[8];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
		       (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
	for (int i = 16; i < 64; i++)
		w[i] = w[i - 16] + (ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3) +
		       w[i - 7] + (ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10);
	memcpy(v, h, sizeof(v));
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
			      ((v[4] & v[5]) ^ (~v[4] & v[6])) + SHA256_K[i] + w[i];
		uint32_t t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
			      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof(v[0]));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (int i = 0; i < 8; i++)
		h[i] += v[i];
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	uint8_t tail[128] = {0};
	size_t full = len - len % 64, rest = len - full;
	for (size_t at = 0; at < full; at += 64)
		sha256_block(h, data + at);
	memcpy(tail, data + full, rest);
	tail[rest] = 0x80;
	size_t tail_len = rest < 56 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t at = 0; at < tail_len; at += 64)
		sha256_block(h, tail + at);
	for (int i = 0; i < 32; i++)
		out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void print_hex(const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		printf("%02x", data[i]);
}

/* One named ioctl that must succeed; prints what failed. */
#define CHECK(expr, what)                                                            \
	do {                                                                         \
		if ((expr) < 0) {                                                    \
			printf("REALM-FAIL: %s: %s (errno %d)\n", what, strerror(errno), \
			       errno);                                               \
			return 1;                                                    \
		}                                                                    \
	} while (0)

static int rme_cap(int vm, uint64_t subcmd, void *arg, const char *what)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_ARM_RME};
	cap.args[0] = subcmd;
	cap.args[1] = (uint64_t)(uintptr_t)arg;
	CHECK(ioctl(vm, KVM_ENABLE_CAP, &cap), what);
	return 0;
}

static uint64_t core_reg(unsigned int index)
{
	/* KVM_REG_ARM_CORE id of struct kvm_regs' regs.regs[index] (index 32 = pc) */
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (index * 2);
}

#define ID_AA64DFR0_EL1 ARM64_SYS_REG(3, 0, 0, 5, 0)

struct record {
	uint64_t tag;
	size_t len;
	uint8_t data[RECORD_MAX];
};

static void print_record(const struct record *r, size_t len)
{
	const char *name = r->tag < NTAGS ? TAGS[r->tag] : "UNKNOWN";
	if (len > r->len)
		len = r->len;
	printf("REALM-%s: ", name);
	print_hex(r->data, len);
	printf("\n");
	drain();
}

/* The KVM_RUN loop: the port, then PSCI SYSTEM_OFF. 0 when the Realm powered off. */
static int run_rec(int vcpu, struct kvm_run *run, uint64_t port, const uint8_t challenge[64])
{
	static struct record rec;
	size_t challenge_at = 0;
	for (int exits = 0; exits < MAX_EXITS; exits++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			printf("REALM-FAIL: KVM_RUN: %s\n", strerror(errno));
			return 1;
		}
		if (run->exit_reason == KVM_EXIT_SYSTEM_EVENT) {
			printf("REALM-EXIT: system-event type=%u exits=%d\n",
			       run->system_event.type, exits);
			return run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? 0 : 1;
		}
		if (run->exit_reason != KVM_EXIT_MMIO) {
			printf("REALM-FAIL: unexpected exit reason %u\n", run->exit_reason);
			return 1;
		}
		/* KVM reports the address without the unprotected bit. */
		uint64_t addr = run->mmio.phys_addr & ~port, value = 0;
		if (run->mmio.len != 8 || addr > PORT_CHALLENGE) {
			printf("REALM-FAIL: MMIO at %#llx len %u outside the port\n",
			       (unsigned long long)run->mmio.phys_addr, run->mmio.len);
			return 1;
		}
		if (!run->mmio.is_write) {
			if (addr == PORT_CHALLENGE && challenge_at < 64) {
				memcpy(&value, challenge + challenge_at, 8);
				challenge_at += 8;
			}
			memcpy(run->mmio.data, &value, 8);
			continue;
		}
		memcpy(&value, run->mmio.data, 8);
		switch (addr) {
		case PORT_BEGIN:
			rec.tag = value;
			rec.len = 0;
			break;
		case PORT_DATA:
			if (rec.len + 8 <= RECORD_MAX) {
				memcpy(rec.data + rec.len, &value, 8);
				rec.len += 8;
			}
			break;
		case PORT_END:
			print_record(&rec, value);
			break;
		default:
			break;
		}
	}
	printf("REALM-FAIL: no SYSTEM_OFF after %d exits\n", MAX_EXITS);
	return 1;
}

/* Create, populate, activate and run one Realm. 0 when it ran and powered off. */
static int run_realm(const char *name, uint32_t algo, unsigned int ipa_bits, uint64_t ram_size,
		     const uint8_t rpv[64], const uint8_t challenge[64], const uint8_t *payload,
		     size_t payload_len)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	CHECK(kvm, "open /dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, KVM_VM_TYPE_ARM_REALM | ipa_bits);
	CHECK(vm, "KVM_CREATE_VM(realm)");

	/* 1. Realm parameters, before the RD exists: algorithm, then the RPV. */
	struct kvm_cap_arm_rme_config_item item;
	memset(&item, 0, sizeof(item));
	item.cfg = KVM_CAP_ARM_RME_CFG_HASH_ALGO;
	item.hash_algo = algo;
	if (rme_cap(vm, KVM_CAP_ARM_RME_CONFIG_REALM, &item, "CONFIG_REALM(hash_algo)"))
		return 1;
	memset(&item, 0, sizeof(item));
	item.cfg = KVM_CAP_ARM_RME_CFG_RPV;
	memcpy(item.rpv, rpv, 64);
	if (rme_cap(vm, KVM_CAP_ARM_RME_CONFIG_REALM, &item, "CONFIG_REALM(rpv)"))
		return 1;
	/* 2. vCPU 0 with PSCI 0.2 (RMI_REC_CREATE fails without it). Its KVM_ARM_VCPU_INIT also sets
	 *    the VM's ID registers, which CREATE_RD reads: ID_AA64DFR0_EL1's BRPs/WRPs become
	 *    num_bps/num_wps (with no vCPU initialised yet they read 0 and the RMM refuses the Realm).
	 *    cca/v5 does not accept KVM_ARM_VCPU_REC in features[] yet (-ENOENT: KVM_VCPU_MAX_FEATURES
	 *    was bumped only in v6); every vCPU of a Realm VM becomes a REC at FINALIZE. */
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	CHECK(vcpu, "KVM_CREATE_VCPU");
	struct kvm_vcpu_init vcpu_init;
	memset(&vcpu_init, 0, sizeof(vcpu_init));
	CHECK(ioctl(vm, KVM_ARM_PREFERRED_TARGET, &vcpu_init), "KVM_ARM_PREFERRED_TARGET");
	vcpu_init.features[0] = 1U << KVM_ARM_VCPU_PSCI_0_2;
	CHECK(ioctl(vcpu, KVM_ARM_VCPU_INIT, &vcpu_init), "KVM_ARM_VCPU_INIT");
	/* 3. RMI_REALM_CREATE (measured: s2sz, num_bps/wps, pmu, sve, hash algorithm). */
	if (rme_cap(vm, KVM_CAP_ARM_RME_CREATE_RD, NULL, "CREATE_RD"))
		return 1;

	/* 4. RAM: an anonymous mapping holding the image (the source of POPULATE) backed by a
	 *    guest_memfd (where the Realm's private pages come from), all of it private. */
	uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	if (ram == MAP_FAILED) {
		printf("REALM-FAIL: mmap: %s\n", strerror(errno));
		return 1;
	}
	memcpy(ram, payload, payload_len);
	struct cca_create_guest_memfd gmem = {.size = ram_size};
	int gmem_fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gmem);
	CHECK(gmem_fd, "KVM_CREATE_GUEST_MEMFD");
	struct cca_userspace_memory_region2 region = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = RAM_BASE,
		.memory_size = ram_size,
		.userspace_addr = (uint64_t)(uintptr_t)ram,
		.guest_memfd_offset = 0,
		.guest_memfd = (uint32_t)gmem_fd,
	};
	CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region), "KVM_SET_USER_MEMORY_REGION2");
	struct cca_memory_attributes attrs = {
		.address = RAM_BASE, .size = ram_size, .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE};
	CHECK(ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &attrs), "KVM_SET_MEMORY_ATTRIBUTES");

	/* 5. RIPAS RAM for all of RAM (RMI_RTT_INIT_RIPAS, measured in RMM 1.0), then the payload's
	 *    granules (RMI_DATA_CREATE with their content measured). */
	struct kvm_cap_arm_rme_init_ipa_args init = {.init_ipa_base = RAM_BASE,
						     .init_ipa_size = ram_size};
	if (rme_cap(vm, KVM_CAP_ARM_RME_INIT_IPA_REALM, &init, "INIT_IPA_REALM"))
		return 1;
	size_t populated = (payload_len + GRANULE - 1) & ~(GRANULE - 1);
	struct kvm_cap_arm_rme_populate_realm_args populate = {
		.populate_ipa_base = RAM_BASE,
		.populate_ipa_size = populated,
		.flags = KVM_ARM_RME_POPULATE_FLAGS_MEASURE};
	if (rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, &populate, "POPULATE_REALM"))
		return 1;

	/* The in-kernel GICv3, as for any arm64 VM. */
	struct kvm_create_device gic = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	CHECK(ioctl(vm, KVM_CREATE_DEVICE, &gic), "KVM_CREATE_DEVICE(vgic-v3)");
	uint64_t dist = GIC_DIST, redist = GIC_REDIST;
	struct kvm_device_attr attr = {.group = KVM_DEV_ARM_VGIC_GRP_ADDR,
				       .attr = KVM_VGIC_V3_ADDR_TYPE_DIST,
				       .addr = (uint64_t)(uintptr_t)&dist};
	CHECK(ioctl((int)gic.fd, KVM_SET_DEVICE_ATTR, &attr), "vgic dist address");
	attr.attr = KVM_VGIC_V3_ADDR_TYPE_REDIST;
	attr.addr = (uint64_t)(uintptr_t)&redist;
	CHECK(ioctl((int)gic.fd, KVM_SET_DEVICE_ATTR, &attr), "vgic redist address");

	/* 6. vCPU 0's start state (measured) and RMI_REC_CREATE. */
	uint64_t pc = RAM_BASE, gprs[8] = {0}, dfr0 = 0;
	struct kvm_one_reg reg = {.id = core_reg(32), .addr = (uint64_t)(uintptr_t)&pc};
	CHECK(ioctl(vcpu, KVM_SET_ONE_REG, &reg), "KVM_SET_ONE_REG(pc)");
	for (unsigned int i = 0; i < 8; i++) {
		reg.id = core_reg(i);
		reg.addr = (uint64_t)(uintptr_t)&gprs[i];
		CHECK(ioctl(vcpu, KVM_SET_ONE_REG, &reg), "KVM_SET_ONE_REG(x0..x7)");
	}
	reg.id = ID_AA64DFR0_EL1;
	reg.addr = (uint64_t)(uintptr_t)&dfr0;
	CHECK(ioctl(vcpu, KVM_GET_ONE_REG, &reg), "KVM_GET_ONE_REG(ID_AA64DFR0_EL1)");
	struct kvm_device_attr init_gic = {.group = KVM_DEV_ARM_VGIC_GRP_CTRL,
					   .attr = KVM_DEV_ARM_VGIC_CTRL_INIT};
	CHECK(ioctl((int)gic.fd, KVM_SET_DEVICE_ATTR, &init_gic), "vgic init");
	int feature = KVM_ARM_VCPU_REC;
	CHECK(ioctl(vcpu, KVM_ARM_VCPU_FINALIZE, &feature), "KVM_ARM_VCPU_FINALIZE(REC)");

	/* 7. RMI_REALM_ACTIVATE: from here the Realm's measurement (the RIM) is fixed. */
	if (rme_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM, NULL, "ACTIVATE_REALM"))
		return 1;

	/* The launch inputs, for 'attest reference' (breakpoints = BRPs + 1, watchpoints = WRPs + 1;
	 * KVM gives the RMM a PMU or SVE only for vCPUs initialised with those features). */
	printf("REALM-LAUNCH: name=%s algo=%s ipa_bits=%u ram_base=%#lx ram_size=%#lx "
	       "payload_bytes=%zu populated_bytes=%zu pc=%#lx gprs=",
	       name, algo ? "sha512" : "sha256", ipa_bits, RAM_BASE, (unsigned long)ram_size,
	       payload_len, populated, (unsigned long)pc);
	for (unsigned int i = 0; i < 8; i++)
		printf("%s%#lx", i ? "," : "", (unsigned long)gprs[i]);
	printf(" id_aa64dfr0=%#llx brps=%llu wrps=%llu pmu=%s sve=%s\n", (unsigned long long)dfr0,
	       (unsigned long long)((dfr0 >> 12) & 0xf), (unsigned long long)((dfr0 >> 20) & 0xf),
	       vcpu_init.features[0] & (1U << KVM_ARM_VCPU_PMU_V3) ? "yes" : "no",
	       vcpu_init.features[0] & (1U << KVM_ARM_VCPU_SVE) ? "yes" : "no");
	uint8_t digest[32];
	sha256(payload, payload_len, digest);
	printf("REALM-PAYLOAD-SHA256: ");
	print_hex(digest, sizeof(digest));
	printf("\nREALM-RPV: ");
	print_hex(rpv, 64);
	printf("\nREALM-CHALLENGE: ");
	print_hex(challenge, 64);
	printf("\n");
	drain();

	int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	CHECK(size, "KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		printf("REALM-FAIL: mmap kvm_run: %s\n", strerror(errno));
		return 1;
	}
	return run_rec(vcpu, run, 1UL << (ipa_bits - 1), challenge);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	static uint8_t buffer[MAX_PAYLOAD + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n, total = 0;
	while ((n = read(fd, buffer + total, sizeof(buffer) - (size_t)total)) > 0)
		total += n;
	close(fd);
	if (n < 0 || total == 0 || (size_t)total > MAX_PAYLOAD)
		return NULL;
	*len = (size_t)total;
	return buffer;
}

/* Parse one run's arguments and run it in a child, so each Realm's fds go with it. */
static int launch(const char *name, const char *algo_text, const char *ipa_text,
		  const char *ram_text, const char *rpv_hex,
		  const char *challenge_hex, const char *payload_path)
{
	uint8_t rpv[64], challenge[64];
	uint32_t algo;
	if (strcmp(algo_text, "sha256") == 0)
		algo = KVM_CAP_ARM_RME_MEASUREMENT_ALGO_SHA256;
	else if (strcmp(algo_text, "sha512") == 0)
		algo = KVM_CAP_ARM_RME_MEASUREMENT_ALGO_SHA512;
	else {
		printf("REALM-FAIL: %s: algorithm: expected sha256 or sha512, got %s\n", name, algo_text);
		return 1;
	}
	char *end;
	unsigned long ipa_bits = strtoul(ipa_text, &end, 10);
	if (*end != '\0' || ipa_bits < 32 || ipa_bits > 52) {
		printf("REALM-FAIL: %s: IPA bits: expected 32 to 52, got %s\n", name, ipa_text);
		return 1;
	}
	unsigned long ram_size = strtoul(ram_text, &end, 0);
	if (*end != '\0' || ram_size == 0 || ram_size % GRANULE || ram_size > MAX_RAM) {
		printf("REALM-FAIL: %s: RAM size: expected a multiple of 4096 up to %#lx, got %s\n",
		       name, MAX_RAM, ram_text);
		return 1;
	}
	if (parse_hex64(rpv_hex, rpv) || parse_hex64(challenge_hex, challenge)) {
		printf("REALM-FAIL: %s: RPV and challenge: expected 128 hex digits each\n", name);
		return 1;
	}
	size_t len;
	const uint8_t *payload = read_file(payload_path, &len);
	if (payload == NULL) {
		printf("REALM-FAIL: %s: cannot read the payload %s (1 to %lu bytes)\n", name,
		       payload_path, MAX_PAYLOAD);
		return 1;
	}
	printf("REALM-BEGIN: %s\n", name);
	drain();
	pid_t child = fork();
	if (child == 0) {
		int rc = run_realm(name, algo, (unsigned int)ipa_bits, ram_size, rpv, challenge, payload, len);
		fflush(stdout);
		_exit(rc);
	}
	int status = 0;
	if (child < 0 || waitpid(child, &status, 0) < 0)
		return 1;
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	printf("REALM-END: %s %s\n", name, ok ? "ok" : "failed");
	return ok ? 0 : 1;
}

/* PID 1: every Realm of /etc/realms, then power off. */
static int init_main(void)
{
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	FILE *list = fopen("/etc/realms", "r");
	int failures = 0, runs = 0;
	char line[512], name[64], algo[16], ipa[8], ram[24], rpv[160], challenge[160];
	while (list && fgets(line, sizeof(line), list)) {
		if (sscanf(line, "%63s %15s %7s %23s %159s %159s", name, algo, ipa, ram, rpv,
			   challenge) != 6)
			continue;
		runs++;
		failures += launch(name, algo, ipa, ram, rpv, challenge, "/payload.bin");
	}
	if (list)
		fclose(list);
	printf("%s runs=%d failed=%d\n",
	       runs > 0 && failures == 0 ? "REALM-LANE-DONE" : "REALM-LANE-FAIL", runs, failures);
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}

int main(int argc, char **argv)
{
	if (getpid() == 1)
		return init_main();
	if (argc != 8) {
		fprintf(stderr, "usage: %s NAME sha256|sha512 IPA_BITS RAM_SIZE RPV_HEX CHALLENGE_HEX PAYLOAD\n", argv[0]);
		return 2;
	}
	return launch(argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7]);
}
