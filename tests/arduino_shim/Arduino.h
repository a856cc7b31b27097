// A minimal stand-in for the Arduino core's <Arduino.h>, for tests only: the part of the Arduino
// API that micronets' sketches use (Serial.begin/print/println with the core's overload set,
// micros, millis, delay, setup/loop). It is NOT an Arduino core: arduino_shim.cpp prints through
// the C library's stdout and counts time in fake microseconds. The overloads mirror the real
// Print class, so a call that is ambiguous or missing on a real core fails here too.
#ifndef MICRONETS_TEST_ARDUINO_SHIM_H
#define MICRONETS_TEST_ARDUINO_SHIM_H

#include <stddef.h>
#include <stdint.h>

#define DEC 10
#define HEX 16

class HardwareSerial {
public:
    void begin(unsigned long baud);
    size_t print(const char* s);
    size_t print(char c);
    size_t print(unsigned char v, int base = DEC);
    size_t print(int v, int base = DEC);
    size_t print(unsigned int v, int base = DEC);
    size_t print(long v, int base = DEC);
    size_t print(unsigned long v, int base = DEC);
    size_t print(double v, int digits = 2);
    size_t println(const char* s);
    size_t println(char c);
    size_t println(unsigned char v, int base = DEC);
    size_t println(int v, int base = DEC);
    size_t println(unsigned int v, int base = DEC);
    size_t println(long v, int base = DEC);
    size_t println(unsigned long v, int base = DEC);
    size_t println(double v, int digits = 2);
    size_t println(void);
};

extern HardwareSerial Serial;

unsigned long micros(void);
unsigned long millis(void);
void delay(unsigned long ms);

// the sketch's two functions, called by the shim's main()
void setup(void);
void loop(void);

#endif
