#pragma once

#include "moe4j.h"

namespace moe4j {

// Best CPU path the machine supports (with OS register-state support), before any cap.
int detect_cpu_isa();

// detect_cpu_isa() capped by the MOE4J_MAX_ISA environment variable (scalar | avx2 | avx512 | avx512_bf16).
// An unrecognised value is an error, not silently ignored.
moe4j_status available_cpu_isa(const char *function, int *isa);

const char *isa_name(int isa);

}  // namespace moe4j
