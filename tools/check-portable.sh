#!/usr/bin/env bash
# Checks that native libraries run on any x86-64 CPU: no AVX, AVX2, FMA, F16C or AVX-512 instruction outside the
# functions that are only reached after the run-time CPU check. Usage: tools/check-portable.sh LIB.so...
#
# How the allowed functions are recognised: every SIMD path of the CPU kernels is compiled under a
# `#pragma GCC target(...)` section and named after its instruction set (silu_mul_avx2, encode_avx512<float>,
# Avx2Path::dot<4, 1>, Avx512Bf16Path::panel_tile<2>, a lambda inside such a function, a driver template instantiated
# on such a path type: Driver<Avx512Path>::execute); native/src/cpu/*.cpp reach them only through a switch on
# the ISA that core/cpu_features.cpp detected (the *_path(int isa) functions). So the demangled name of a function
# tells which instructions it may hold:
#   - it names avx512 (any case): VEX- and EVEX-encoded instructions (AVX, AVX2, FMA, F16C, AVX-512);
#   - it names avx2 but not avx512: VEX-encoded only; an AVX-512 instruction there would fault on an AVX2 CPU;
#   - anything else (scalar paths, validation, the thread pool, the ISA switches, the CPU detection, static
#     initialisers, the C++ runtime linked in): baseline x86-64 only.
# The CPU detection and start-up code are checked by name as well, whatever they are called: detect_cpu_isa,
# available_cpu_isa, the _GLOBAL__sub_I_* static initialisers, _init and the functions .init_array points at must
# hold no VEX or EVEX instruction.
#
# Instructions are classified by their encoding, read from the raw bytes objdump prints: after any segment or
# address-size prefix, 0x62 starts an EVEX instruction (AVX-512) and 0xC4/0xC5 a VEX one (AVX, AVX2, FMA, F16C,
# BMI1/2); in 64-bit mode these bytes are no legacy opcode, so the test has no false positives. As a second,
# independent test, the operands are read too: zmm registers, mask registers k0-k7 and xmm16-31/ymm16-31 are
# AVX-512, ymm registers and v-prefixed mnemonics AVX.
#
# A library is refused if it holds no allowed AVX-512 code at all: that means the dispatch paths are gone or the
# disassembly was not read, and the check would pass for the wrong reason.
set -euo pipefail

[ $# -gt 0 ] || {
  echo "usage: tools/check-portable.sh LIB.so..." >&2
  exit 2
}
command -v objdump >/dev/null || {
  echo "check-portable: objdump (binutils) is needed" >&2
  exit 2
}

check_one() {
  local lib=$1 init_targets
  [ -f "$lib" ] || {
    echo "check-portable: $lib: no such file" >&2
    return 1
  }
  # The addresses .init_array holds (8-byte little-endian pointers): code that runs when the library is loaded.
  init_targets=$(objdump -s -j .init_array "$lib" 2>/dev/null | awk '
    /^ [0-9a-f]+ / {
      hex = ""
      for (i = 2; i <= 5 && $i ~ /^[0-9a-f]+$/; i++) hex = hex $i
      for (p = 1; p + 15 <= length(hex); p += 16) {
        addr = ""
        for (b = 14; b >= 0; b -= 2) addr = addr substr(hex, p + b, 2)
        sub(/^0+/, "", addr)
        print addr
      }
    }' | tr '\n' ' ')
  objdump -d -C -w --insn-width=15 "$lib" | awk -v lib="$lib" -v init_targets="$init_targets" '
    BEGIN {
      n = split(init_targets, t, " ")
      for (i = 1; i <= n; i++) init[t[i]] = 1
      bad = 0; allowed512 = 0; allowedvex = 0; scanned = 0
    }
    /^[0-9a-f]+ <.*>:$/ {
      addr = $1; sub(/^0+/, "", addr)
      name = $0; sub(/^[0-9a-f]+ </, "", name); sub(/>:$/, "", name)
      lower = tolower(name)
      startup = (addr in init) || name ~ /^_GLOBAL__sub_I/ || name == "_init" || name ~ /(^|::)(detect_cpu_isa|available_cpu_isa)\(/
      if (startup) may512 = mayvex = 0
      else if (index(lower, "avx512")) { may512 = 1; mayvex = 1 }
      else if (index(lower, "avx2")) { may512 = 0; mayvex = 1 }
      else may512 = mayvex = 0
      next
    }
    /^ +[0-9a-f]+:\t/ {
      split($0, field, "\t")
      nb = split(field[2], bytes, " ")
      insn = field[3]
      if (insn == "") next
      scanned++
      first = ""
      for (i = 1; i <= nb; i++) if (bytes[i] !~ /^(26|2e|36|3e|64|65|67)$/) { first = bytes[i]; break }
      evex = first == "62" || insn ~ /%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])/
      vex = first == "c4" || first == "c5" || insn ~ /%ymm/ || insn ~ /^v[a-z]/
      if (!evex && !vex) next
      if (evex && may512) { allowed512++; next }
      if (!evex && mayvex) { allowedvex++; next }
      bad++
      if (bad <= 20) printf "  %s: %s in %s\n      %s\n", lib, evex ? "AVX-512" : "AVX/AVX2/FMA", (startup ? "start-up code " : "") name, insn
    }
    END {
      if (scanned == 0) { printf "  %s: objdump printed no instructions\n", lib; exit 1 }
      if (bad > 0) {
        if (bad > 20) printf "  ... and %d more\n", bad - 20
        printf "%s: %d instruction(s) beyond baseline x86-64 outside the run-time dispatched ISA functions\n", lib, bad
        exit 1
      }
      if (allowed512 == 0) {
        printf "%s: no AVX-512 code in the ISA functions at all: the dispatch paths are missing or the disassembly was not read\n", lib
        exit 1
      }
      printf "%s: portable (%d instructions; AVX-512 only in ISA functions: %d; AVX/AVX2 only in ISA functions: %d)\n", lib, scanned, allowed512, allowedvex
    }'
}

status=0
for lib in "$@"; do check_one "$lib" || status=1; done
exit $status
