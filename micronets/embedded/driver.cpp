/* micronets bare-metal harness: runs a generated model on inputs embedded at build time and
 * prints every result over semihosting in a line format that micronets.embedded.qemu parses.
 *
 * mn_config.h (generated per build) either defines MN_NO_MODEL (the "empty firmware" used as a
 * size baseline) or includes the model header and defines MN_CLASS, MN_NUM_SAMPLES,
 * MN_SAMPLE_TYPE (float, uint8_t or int8_t), MN_INPUT_SIZE (every input's values),
 * MN_PREDICT_ARGS (predict()'s arguments: one pointer per input into `sample`), MN_SAMPLE_SIZE and either
 * mn_samples[MN_NUM_SAMPLES][MN_SAMPLE_SIZE] or MN_SIZE_ONLY (predict() linked but never run:
 * the firmware whose size, minus the empty firmware's, is the model's footprint), and may define
 * MN_FOR_EACH_OUTPUT(X) as X(outputs, numOutputs) X(outputs1, numOutputs1) ... for a model of
 * several outputs: every output array is printed, back to back (by default the first alone).
 *
 * Floats are printed as their 32-bit patterns in hex so the host recovers them bit for bit.
 * Time comes from the CMSDK dual timer (25 MHz, counting down); under `-icount shift=N` QEMU
 * advances virtual time by 2^N ns per instruction, so instructions = ticks * 40 / 2^N. */
#include <stdint.h>
#include <string.h>

#include "mn_config.h"
#include "semihosting.h"

extern "C" uint32_t __stack_limit__, __stack_top__;

namespace {

/* CMSDK APB dual timer, timer 1 */
volatile uint32_t* const TIMER1_LOAD = (volatile uint32_t*)0x40002000u;
volatile uint32_t* const TIMER1_VALUE = (volatile uint32_t*)0x40002004u;
volatile uint32_t* const TIMER1_CONTROL = (volatile uint32_t*)0x40002008u;

const uint32_t STACK_PATTERN = 0xC5AC5AC5u;
const uint32_t STACK_PAINT_BYTES = 256u * 1024u;
const uint32_t CAL_ITERATIONS = 100000u;

class Line {
public:
    Line() : n_(0) { buf_[0] = 0; }
    Line& str(const char* s)
    {
        while (*s != 0 && n_ < sizeof(buf_) - 2) {
            buf_[n_++] = *s++;
        }
        buf_[n_] = 0;
        return *this;
    }
    Line& dec(uint32_t v)
    {
        char tmp[11];
        unsigned i = 0;
        do {
            tmp[i++] = (char)('0' + v % 10u);
            v /= 10u;
        } while (v != 0u);
        while (i > 0u && n_ < sizeof(buf_) - 2) {
            buf_[n_++] = tmp[--i];
        }
        buf_[n_] = 0;
        return *this;
    }
    Line& hex(uint32_t v)
    {
        static const char digits[] = "0123456789abcdef";
        for (int shift = 28; shift >= 0 && n_ < sizeof(buf_) - 2; shift -= 4) {
            buf_[n_++] = digits[(v >> shift) & 0xFu];
        }
        buf_[n_] = 0;
        return *this;
    }
    Line& bits(float f)
    {
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        return hex(u);
    }
    void flush()
    {
        buf_[n_++] = '\n';
        buf_[n_] = 0;
        mn_write0(buf_);
        n_ = 0;
        buf_[0] = 0;
    }

private:
    char buf_[256];
    unsigned n_;
};

void timer_start()
{
    *TIMER1_CONTROL = 0u;
    *TIMER1_LOAD = 0xFFFFFFFFu;
    *TIMER1_CONTROL = 0x82u; /* enable, 32-bit counter, free-running, no interrupt, prescale 1 */
}

inline uint32_t timer_now()
{
    return *TIMER1_VALUE;
}

__attribute__((noinline)) void stack_paint()
{
    uint32_t here;
    uint32_t* const limit = (uint32_t*)((uintptr_t)&here - 128u);
    uint32_t* p = &__stack_limit__;
    if ((uintptr_t)&__stack_top__ - (uintptr_t)p > STACK_PAINT_BYTES) {
        p = (uint32_t*)((uintptr_t)&__stack_top__ - STACK_PAINT_BYTES);
    }
    for (; p < limit; ++p) {
        *(volatile uint32_t*)p = STACK_PATTERN;
    }
}

uint32_t stack_used()
{
    const uint32_t* p = &__stack_limit__;
    if ((uintptr_t)&__stack_top__ - (uintptr_t)p > STACK_PAINT_BYTES) {
        p = (const uint32_t*)((uintptr_t)&__stack_top__ - STACK_PAINT_BYTES);
    }
    while (p < &__stack_top__ && *(const volatile uint32_t*)p == STACK_PATTERN) {
        ++p;
    }
    return (uint32_t)((uintptr_t)&__stack_top__ - (uintptr_t)p);
}

__attribute__((noinline)) void calibration_loop(uint32_t n)
{
    /* exactly 2 instructions per iteration */
    __asm__ volatile(
        "1:\n\t"
        "subs %0, %0, #1\n\t"
        "bne 1b\n\t"
        : "+r"(n)
        :
        : "cc");
}

#ifndef MN_NO_MODEL
#ifndef MN_FOR_EACH_OUTPUT
#define MN_FOR_EACH_OUTPUT(X) X(outputs, numOutputs)
#endif
#define MN_OUTPUT_COUNT(array, count) +(uint32_t)MN_CLASS::count
#define MN_OUTPUT_VALUES (0u MN_FOR_EACH_OUTPUT(MN_OUTPUT_COUNT))

MN_CLASS net;
#ifdef MN_SIZE_ONLY
volatile uint32_t mn_num_samples = 0u;
const MN_SAMPLE_TYPE* volatile mn_no_sample = 0;
#else
const uint32_t mn_num_samples = MN_NUM_SAMPLES;
#endif
#endif

}  // namespace

int main(void)
{
    stack_paint();
    timer_start();

    Line line;
#ifndef MN_NO_MODEL
    line.str("MN_BEGIN samples=").dec(mn_num_samples).str(" outputs=").dec(MN_OUTPUT_VALUES)
        .str(" inputs=").dec((uint32_t)MN_INPUT_SIZE).str(" sizeof=").dec((uint32_t)sizeof(net));
#else
    line.str("MN_BEGIN samples=0 outputs=0 inputs=0 sizeof=0");
#endif
    line.flush();

    uint32_t t0 = timer_now();
    uint32_t t1 = timer_now();
    line.str("MN_NULL ticks=").dec(t0 - t1).flush();

    t0 = timer_now();
    calibration_loop(CAL_ITERATIONS);
    t1 = timer_now();
    line.str("MN_CAL iterations=").dec(CAL_ITERATIONS).str(" instructions=").dec(2u * CAL_ITERATIONS)
        .str(" ticks=").dec(t0 - t1).flush();

#ifndef MN_NO_MODEL
    if ((uint32_t)MN_INPUT_SIZE != (uint32_t)MN_SAMPLE_SIZE) {
        line.str("MN_ERROR input size mismatch").flush();
        return 2;
    }
    for (uint32_t i = 0; i < mn_num_samples; ++i) {
#ifdef MN_SIZE_ONLY
        /* never runs (mn_num_samples is a volatile 0): keeps predict() linked without any inputs */
        const MN_SAMPLE_TYPE* const sample = mn_no_sample;
#else
        const MN_SAMPLE_TYPE* const sample = mn_samples[i];
#endif
        t0 = timer_now();
        const uint16_t cls = net.predict(MN_PREDICT_ARGS); /* one pointer per input, into the sample */
        t1 = timer_now();
        line.str("MN_RUN i=").dec(i).str(" ticks=").dec(t0 - t1).str(" cls=").dec(cls)
            .str(" output=").dec(net.output).str(" proba=").bits(net.proba).flush();
        /* (one array: main's code as it was before MN_FOR_EACH_OUTPUT, which matters: GCC inlines
         * predict() into main, and how much of the kernels it inlines there depends on main's
         * size; a helper function here moved some nets' instruction counts by 13%) */
#define MN_PRINT_OUTPUT(array, count)                                                      \
        line.str("MN_OUT i=").dec(i).str(" ");                                            \
        for (uint32_t k = 0; k < (uint32_t)MN_CLASS::count; ++k) {                        \
            line.bits(net.array[k]);                                                       \
            if ((k % 16u) == 15u && k + 1u < (uint32_t)MN_CLASS::count) {                 \
                line.flush();                                                              \
                line.str("MN_OUT i=").dec(i).str(" ");                                    \
            } else if (k + 1u < (uint32_t)MN_CLASS::count) {                              \
                line.str(",");                                                             \
            }                                                                              \
        }                                                                                  \
        line.flush();
        MN_FOR_EACH_OUTPUT(MN_PRINT_OUTPUT)
    }
#endif
    line.str("MN_STACK bytes=").dec(stack_used()).flush();
    line.str("MN_END").flush();
    return 0;
}
