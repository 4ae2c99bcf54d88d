/* Entry of the Realm payload (pc = the start of RAM): a stack, then payload_main. */
	.section .text.start, "ax"
	.global _start
_start:
	adrp	x9, payload_stack
	add	x9, x9, :lo12:payload_stack
	add	x9, x9, #4096
	mov	sp, x9
	bl	payload_main
1:	wfi
	b	1b
