#!/usr/bin/env bash
# Regenerate micronets/compiler/std_names.txt: every identifier (not starting with '_', which the
# compiler refuses anyway) that <stdint.h>, <string.h> and <math.h> declare or define as a macro,
# with the host g++, arm-none-eabi-g++ and xtensa-lx106-elf-g++, in C++98, C++11 and C++17. A
# generated class must not be named like any of them (a macro or a function of that name would
# break the header).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(mktemp --suffix=.cpp)
trap 'rm -f "$src"' EXIT
printf '#include <stdint.h>\n#include <string.h>\n#include <math.h>\n' > "$src"
{
  echo "# identifiers declared or defined by <stdint.h> <string.h> <math.h>: scripts/std_names.sh"
  for cc in "g++" "arm-none-eabi-g++" "xtensa-lx106-elf-g++ -isystem /usr/include/newlib"; do
    for std in c++98 c++11 c++17; do
      $cc -std=$std -E -P "$src" 2>/dev/null | sed 's/"[^"]*"//g' | grep -oE '\b[A-Za-z_][A-Za-z0-9_]*\b' || true
      $cc -std=$std -dM -E "$src" 2>/dev/null | awk '{print $2}' | sed 's/(.*//' || true
    done
  done | grep -v '^_' | sort -u
} > micronets/compiler/std_names.txt
