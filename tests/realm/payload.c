/*
 * The Realm payload: bare-metal code the launcher copies to the start of the Realm's RAM
 * (0x40000000, where it is linked; see payload.ld) and measures granule by granule.
 *
 * Entered at EL1 with the MMU off (so only aligned accesses, no FP/SIMD: -mstrict-align
 * -mgeneral-regs-only), it makes the RSI 1.0 calls (TF-RMM v0.6.0, lib/smc/include/smc-rsi.h;
 * Arm DEN0137 1.0), reports each result through the launcher's port in the unprotected IPA
 * half, and calls PSCI SYSTEM_OFF. Its buffers are part of the image (section .data), so every
 * page it touches was populated: no stage-2 fault needs the host's help.
 */
#include <stdint.h>

#define RSI_VERSION 0xC4000190UL
#define RSI_MEASUREMENT_READ 0xC4000192UL
#define RSI_ATTEST_TOKEN_INIT 0xC4000194UL
#define RSI_ATTEST_TOKEN_CONTINUE 0xC4000195UL
#define RSI_REALM_CONFIG 0xC4000196UL
#define PSCI_SYSTEM_OFF 0x84000008UL
#define RSI_ABI_1_0 (1UL << 16)
#define RSI_SUCCESS 0
#define RSI_INCOMPLETE 3

#define GRANULE 4096
#define TOKEN_GRANULES 4

/* The launcher's port (launcher.c): offsets from 1 << (ipa_width - 1). */
#define PORT_BEGIN 0x00
#define PORT_DATA 0x08
#define PORT_END 0x10
#define PORT_CHALLENGE 0x18
enum tag { TAG_VERSION = 1, TAG_CONFIG = 2, TAG_RIM = 3, TAG_TOKEN = 4, TAG_ERROR = 5 };

#define DATA __attribute__((section(".data.buffers"), aligned(GRANULE)))
static uint8_t config[GRANULE] DATA;                  /* RsiRealmConfig */
static uint8_t token[TOKEN_GRANULES * GRANULE] DATA;  /* the token, granule after granule */
uint8_t payload_stack[GRANULE] DATA;                  /* start.S sets sp to its end */

struct smc_result {
	uint64_t x[9];
};

/* SMC with x0 = fid, x1..x8 = args; x0..x8 back (the SMCCC registers RSI uses). */
static struct smc_result smc(uint64_t fid, const uint64_t args[8])
{
	register uint64_t x0 __asm__("x0") = fid;
	register uint64_t x1 __asm__("x1") = args[0];
	register uint64_t x2 __asm__("x2") = args[1];
	register uint64_t x3 __asm__("x3") = args[2];
	register uint64_t x4 __asm__("x4") = args[3];
	register uint64_t x5 __asm__("x5") = args[4];
	register uint64_t x6 __asm__("x6") = args[5];
	register uint64_t x7 __asm__("x7") = args[6];
	register uint64_t x8 __asm__("x8") = args[7];
	__asm__ volatile("smc #0"
			 : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x5), "+r"(x6),
			   "+r"(x7), "+r"(x8)
			 :
			 : "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "memory");
	struct smc_result r = {{x0, x1, x2, x3, x4, x5, x6, x7, x8}};
	return r;
}

static uint64_t port;

/* Plain single-register accesses (no writeback), so the abort syndrome is valid (ISV = 1). */
static void port_write(uint64_t offset, uint64_t value)
{
	__asm__ volatile("str %0, [%1]" : : "r"(value), "r"(port + offset) : "memory");
}

static uint64_t port_read(uint64_t offset)
{
	uint64_t value;
	__asm__ volatile("ldr %0, [%1]" : "=r"(value) : "r"(port + offset) : "memory");
	return value;
}

static void send_words(enum tag tag, const uint64_t *words, uint64_t count)
{
	port_write(PORT_BEGIN, tag);
	for (uint64_t i = 0; i < count; i++)
		port_write(PORT_DATA, words[i]);
	port_write(PORT_END, count * 8);
}

static void send_bytes(enum tag tag, const uint8_t *bytes, uint64_t len)
{
	port_write(PORT_BEGIN, tag);
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t word = 0;
		for (uint64_t j = 0; j < 8 && i + j < len; j++)
			word |= (uint64_t)bytes[i + j] << (8 * j);
		port_write(PORT_DATA, word);
	}
	port_write(PORT_END, len);
}

static void power_off(void)
{
	const uint64_t none[8] = {0};
	for (;;)
		smc(PSCI_SYSTEM_OFF, none);
}

void payload_main(void)
{
	uint64_t args[8] = {0};

	/* RSI_REALM_CONFIG first: its ipa_width tells where the unprotected half (the port) is. */
	args[0] = (uint64_t)(uintptr_t)config;
	struct smc_result r = smc(RSI_REALM_CONFIG, args);
	uint64_t ipa_width = *(volatile uint64_t *)config;
	uint64_t hash_algo = config[8];
	if (r.x[0] != RSI_SUCCESS || ipa_width < 32 || ipa_width > 52)
		power_off(); /* nowhere to report to: the launcher sees no records */
	port = 1UL << (ipa_width - 1);
	const uint64_t config_words[3] = {r.x[0], ipa_width, hash_algo};
	send_words(TAG_CONFIG, config_words, 3);

	args[0] = RSI_ABI_1_0;
	r = smc(RSI_VERSION, args);
	send_words(TAG_VERSION, r.x, 3); /* status, lower, higher */

	args[0] = 0; /* the RIM */
	r = smc(RSI_MEASUREMENT_READ, args);
	send_words(TAG_RIM, r.x, 9); /* status, then 64 bytes of measurement */

	for (int i = 0; i < 8; i++)
		args[i] = port_read(PORT_CHALLENGE);
	r = smc(RSI_ATTEST_TOKEN_INIT, args);
	if (r.x[0] != RSI_SUCCESS) {
		const uint64_t error[2] = {RSI_ATTEST_TOKEN_INIT, r.x[0]};
		send_words(TAG_ERROR, error, 2);
		power_off();
	}
	/* TOKEN_CONTINUE(granule IPA, offset, size) until RSI_SUCCESS; RSI_INCOMPLETE means "call
	 * again" (signing not finished, or the buffer is full: then take the next granule). */
	uint64_t total = 0, offset = 0, granule = 0;
	for (;;) {
		if (offset == GRANULE) {
			granule++;
			offset = 0;
		}
		if (granule == TOKEN_GRANULES) {
			const uint64_t error[2] = {RSI_ATTEST_TOKEN_CONTINUE, ~0UL};
			send_words(TAG_ERROR, error, 2);
			power_off();
		}
		uint64_t cont[8] = {(uint64_t)(uintptr_t)(token + granule * GRANULE), offset,
				    GRANULE - offset};
		r = smc(RSI_ATTEST_TOKEN_CONTINUE, cont);
		if (r.x[0] != RSI_SUCCESS && r.x[0] != RSI_INCOMPLETE) {
			const uint64_t error[2] = {RSI_ATTEST_TOKEN_CONTINUE, r.x[0]};
			send_words(TAG_ERROR, error, 2);
			power_off();
		}
		offset += r.x[1];
		total += r.x[1];
		if (r.x[0] == RSI_SUCCESS)
			break;
	}
	send_bytes(TAG_TOKEN, token, total);
	power_off();
}
