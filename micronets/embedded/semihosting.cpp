/* micronets bare-metal harness: ARM semihosting via BKPT 0xAB (M-profile). */
#include "semihosting.h"

namespace {

enum {
    SYS_WRITEC = 0x03,
    SYS_WRITE0 = 0x04,
    SYS_EXIT = 0x18,
    SYS_EXIT_EXTENDED = 0x20,
    ADP_STOPPED_APPLICATION_EXIT = 0x20026,
    ADP_STOPPED_RUNTIME_ERROR_UNKNOWN = 0x20023
};

inline uint32_t semihost_call(uint32_t op, const void* arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void* r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

}  // namespace

extern "C" void mn_write0(const char* s)
{
    semihost_call(SYS_WRITE0, s);
}

extern "C" void mn_writec(char c)
{
    semihost_call(SYS_WRITEC, &c);
}

extern "C" void mn_exit(int status)
{
    /* SYS_EXIT_EXTENDED takes {reason, subcode}; QEMU exits with `subcode` for ApplicationExit. */
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    semihost_call(SYS_EXIT_EXTENDED, block);
    /* Fallback for hosts without SYS_EXIT_EXTENDED: plain SYS_EXIT (status 0 or 1 only). */
    semihost_call(SYS_EXIT, (const void*)(uintptr_t)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                                   : ADP_STOPPED_RUNTIME_ERROR_UNKNOWN));
    for (;;) {
    }
}
