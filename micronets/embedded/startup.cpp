/* micronets bare-metal harness: vector table and reset handler for a Cortex-M4F (mps2-an386).
 * Reset: enable the FPU (CPACR), copy .data from its load image, zero .bss, run static
 * constructors, call main(), and report main's return value through semihosting. */
#include <stdint.h>

#include "semihosting.h"

extern "C" {
extern uint32_t __data_start__, __data_end__, __data_load__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_top__;
typedef void (*mn_init_fn)(void);
extern mn_init_fn __preinit_array_start[], __preinit_array_end[];
extern mn_init_fn __init_array_start[], __init_array_end[];

int main(void);
void mn_reset_handler(void) __attribute__((noreturn));
void mn_fault_handler(void) __attribute__((noreturn));
void mn_default_handler(void) __attribute__((noreturn));
}

extern "C" void mn_reset_handler(void)
{
    /* CPACR: full access to CP10 and CP11 (the FPU), before any floating-point instruction. */
    volatile uint32_t* const cpacr = (volatile uint32_t*)0xE000ED88u;
    *cpacr |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");

    const uint32_t* src = &__data_load__;
    for (uint32_t* dst = &__data_start__; dst < &__data_end__;) {
        *dst++ = *src++;
    }
    for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0u;
    }
    for (mn_init_fn* f = __preinit_array_start; f < __preinit_array_end; ++f) {
        (*f)();
    }
    for (mn_init_fn* f = __init_array_start; f < __init_array_end; ++f) {
        (*f)();
    }
    mn_exit(main());
}

extern "C" void mn_fault_handler(void)
{
    mn_write0("MN_FAULT hard fault\n");
    mn_exit(3);
}

extern "C" void mn_default_handler(void)
{
    mn_write0("MN_FAULT unexpected exception\n");
    mn_exit(4);
}

/* Cortex-M vector table: initial stack pointer, then the 15 system exception handlers. The
 * harness enables no peripheral interrupts, so no IRQ entries are needed. */
typedef void (*mn_vector)(void);
extern "C" const mn_vector mn_vectors[16] __attribute__((section(".isr_vector"), used)) = {
    (mn_vector)(uintptr_t)&__stack_top__,
    mn_reset_handler,
    mn_default_handler, /* NMI */
    mn_fault_handler,   /* HardFault */
    mn_fault_handler,   /* MemManage */
    mn_fault_handler,   /* BusFault */
    mn_fault_handler,   /* UsageFault */
    0, 0, 0, 0,
    mn_default_handler, /* SVCall */
    mn_default_handler, /* DebugMonitor */
    0,
    mn_default_handler, /* PendSV */
    mn_default_handler, /* SysTick */
};
