/* micronets bare-metal harness: the few ARM semihosting calls the harness needs. */
#ifndef MICRONETS_SEMIHOSTING_H
#define MICRONETS_SEMIHOSTING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write a NUL-terminated string to the host's stdout (SYS_WRITE0). */
void mn_write0(const char* s);
/* Write one character (SYS_WRITEC). */
void mn_writec(char c);
/* Stop the emulator with an exit status (SYS_EXIT_EXTENDED, ADP_Stopped_ApplicationExit). */
void mn_exit(int status) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif
