// Definitions behind the test Arduino.h shim (see there): Serial prints to stdout, time is a fake
// microsecond counter, and main() runs setup() and then loop() MICRONETS_SHIM_LOOPS times.
#include "Arduino.h"

#include <stdio.h>

#ifndef MICRONETS_SHIM_LOOPS
#define MICRONETS_SHIM_LOOPS 1
#endif

HardwareSerial Serial;

static unsigned long fake_us = 0;

unsigned long micros(void) { return fake_us += 1u; }
unsigned long millis(void) { return fake_us / 1000u; }
void delay(unsigned long ms) { fake_us += ms * 1000u; }

void HardwareSerial::begin(unsigned long baud) { (void)baud; }

static size_t put_text(const char* s) { return (size_t)printf("%s", s); }

static size_t put_long(long v, int base)
{
    return (size_t)(base == HEX ? printf("%lx", (unsigned long)v) : printf("%ld", v));
}

static size_t put_ulong(unsigned long v, int base) { return (size_t)printf(base == HEX ? "%lx" : "%lu", v); }

size_t HardwareSerial::print(const char* s) { return put_text(s); }
size_t HardwareSerial::print(char c) { return (size_t)printf("%c", c); }
size_t HardwareSerial::print(unsigned char v, int base) { return put_ulong(v, base); }
size_t HardwareSerial::print(int v, int base) { return put_long(v, base); }
size_t HardwareSerial::print(unsigned int v, int base) { return put_ulong(v, base); }
size_t HardwareSerial::print(long v, int base) { return put_long(v, base); }
size_t HardwareSerial::print(unsigned long v, int base) { return put_ulong(v, base); }
size_t HardwareSerial::print(double v, int digits) { return (size_t)printf("%.*f", digits, v); }
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
