// Definitions behind the test Arduino.h shim (see there): Serial prints to stdout (or, built with
// -DMICRONETS_SHIM_SEMIHOSTING, through the micronets QEMU harness's semihosting), time is a fake
// microsecond counter, and main() runs setup() and then loop() MICRONETS_SHIM_LOOPS times.
// Numbers are formatted by hand the way the Arduino core's Print class does it (no printf), so
// the output is the same on the host and on a bare-metal target.
#include "Arduino.h"

#include <string.h>

#ifdef MICRONETS_SHIM_SEMIHOSTING
#include "semihosting.h"
#else
#include <stdio.h>
#endif

#ifndef MICRONETS_SHIM_LOOPS
#define MICRONETS_SHIM_LOOPS 1
#endif

HardwareSerial Serial;

static unsigned long fake_us = 0;

unsigned long micros(void) { return fake_us += 1u; }
unsigned long millis(void) { return fake_us / 1000u; }
void delay(unsigned long ms) { fake_us += ms * 1000u; }

void HardwareSerial::begin(unsigned long baud) { (void)baud; }

static size_t put_text(const char* s)
{
#ifdef MICRONETS_SHIM_SEMIHOSTING
    mn_write0(s);
#else
    fputs(s, stdout);
#endif
    return strlen(s);
}

static size_t put_ulong(unsigned long v, int base)
{
    char buf[8 * sizeof(long) + 1];
    char* p = buf + sizeof(buf) - 1;
    *p = 0;
    if (base < 2 || base > 16)
        base = DEC;
    do {
        const unsigned d = (unsigned)(v % (unsigned long)base);
        *--p = (char)(d < 10u ? '0' + d : 'a' + d - 10u);
        v /= (unsigned long)base;
    } while (v != 0u);
    return put_text(p);
}

static size_t put_long(long v, int base)
{
    if (base == DEC && v < 0)
        return put_text("-") + put_ulong(0ul - (unsigned long)v, DEC);
    return put_ulong((unsigned long)v, base);
}

// as Arduino's Print::printFloat: round half up at the last digit, then digit by digit
static size_t put_double(double v, int digits)
{
    if (v != v)
        return put_text("nan");
    if (v > 4294967040.0 || v < -4294967040.0)
        return put_text("ovf");
    size_t n = 0;
    if (v < 0.0) {
        n += put_text("-");
        v = -v;
    }
    double rounding = 0.5;
    for (int i = 0; i < digits; ++i)
        rounding /= 10.0;
    v += rounding;
    const unsigned long whole = (unsigned long)v;
    double rest = v - (double)whole;
    n += put_ulong(whole, DEC);
    if (digits > 0)
        n += put_text(".");
    while (digits-- > 0) {
        rest *= 10.0;
        const unsigned d = (unsigned)rest;
        n += put_ulong(d, DEC);
        rest -= d;
    }
    return n;
}

size_t HardwareSerial::print(const char* s) { return put_text(s); }
size_t HardwareSerial::print(char c)
{
    const char s[2] = {c, 0};
    return put_text(s);
}
size_t HardwareSerial::print(unsigned char v, int base) { return put_ulong(v, base); }
size_t HardwareSerial::print(int v, int base) { return put_long(v, base); }
size_t HardwareSerial::print(unsigned int v, int base) { return put_ulong(v, base); }
size_t HardwareSerial::print(long v, int base) { return put_long(v, base); }
size_t HardwareSerial::print(unsigned long v, int base) { return put_ulong(v, base); }
size_t HardwareSerial::print(double v, int digits) { return put_double(v, digits); }
size_t HardwareSerial::println(const char* s) { return print(s) + println(); }
size_t HardwareSerial::println(char c) { return print(c) + println(); }
size_t HardwareSerial::println(unsigned char v, int base) { return print(v, base) + println(); }
size_t HardwareSerial::println(int v, int base) { return print(v, base) + println(); }
size_t HardwareSerial::println(unsigned int v, int base) { return print(v, base) + println(); }
size_t HardwareSerial::println(long v, int base) { return print(v, base) + println(); }
size_t HardwareSerial::println(unsigned long v, int base) { return print(v, base) + println(); }
size_t HardwareSerial::println(double v, int digits) { return print(v, digits) + println(); }
size_t HardwareSerial::println(void) { return put_text("\r\n"); }

int main(void)
{
    setup();
    for (int i = 0; i < MICRONETS_SHIM_LOOPS; ++i) {
        loop();
    }
    return 0;
}
