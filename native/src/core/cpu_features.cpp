#include "cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "error.h"

namespace moe4j {

int detect_cpu_isa() {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16") &&
        __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni"))
        return MOE4J_ISA_AVX512_BF16;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return MOE4J_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return MOE4J_ISA_AVX2;
#endif
    return MOE4J_ISA_SCALAR;
}

moe4j_status available_cpu_isa(const char *function, int *isa) {
    *isa = detect_cpu_isa();
    const char *cap = std::getenv("MOE4J_MAX_ISA");
    if (cap == nullptr || *cap == '\0') return MOE4J_OK;
    for (int candidate = MOE4J_ISA_SCALAR; candidate <= MOE4J_ISA_AVX512_BF16; ++candidate) {
        if (std::strcmp(cap, isa_name(candidate)) == 0) {
            if (candidate < *isa) *isa = candidate;
            return MOE4J_OK;
        }
    }
    return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(function) + ": environment variable MOE4J_MAX_ISA='" + cap +
                                                  "' is not one of scalar, avx2, avx512, avx512_bf16");
}

const char *isa_name(int isa) {
    switch (isa) {
        case MOE4J_ISA_SCALAR: return "scalar";
        case MOE4J_ISA_AVX2: return "avx2";
        case MOE4J_ISA_AVX512: return "avx512";
        case MOE4J_ISA_AVX512_BF16: return "avx512_bf16";
        default: return "unknown";
    }
}

}  // namespace moe4j
