#include "variants.h"

#include <cstring>

#include "context.h"

namespace moe4j {

void VariantCounts::count(std::string_view kernel, std::string_view variant, std::string_view reason) {
    for (Entry &e : entries_)
        if (e.kernel == kernel && e.variant == variant && e.reason == reason) {
            ++e.calls;
            return;
        }
    entries_.push_back({std::string(kernel), std::string(variant), std::string(reason), 1});
}

std::string kernel_name(const char *function, const char *stage) {
    constexpr std::string_view kPrefix = "moe4j_";
    std::string_view name(function);
    if (name.substr(0, kPrefix.size()) == kPrefix) name.remove_prefix(kPrefix.size());
    std::string kernel(name);
    if (stage != nullptr) kernel.append(":").append(stage);
    return kernel;
}

const char *cpu_variant(int32_t isa, CpuCode code) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16: return "avx512_bf16";
        case MOE4J_ISA_AVX512: return code == CpuCode::EveryPath ? "avx512" : "avx2";
        case MOE4J_ISA_AVX2: return "avx2";
        default: return "scalar";
    }
}

const char *cpu_fallback_reason(int32_t isa, CpuCode code) {
    return isa == MOE4J_ISA_AVX512 && code == CpuCode::NoAvx512F ? "no AVX-512F code of its own: the AVX2 path" : "";
}

void count_cpu(moe4j_context *ctx, const char *function, CpuCode code, const char *detail, const char *stage) {
    const char *fallback = cpu_fallback_reason(ctx->isa, code);
    std::string reason = detail != nullptr ? detail : "";
    if (*fallback != '\0') reason = reason.empty() ? std::string(fallback) : reason + "; " + fallback;
    ctx->variants.count(kernel_name(function, stage), cpu_variant(ctx->isa, code), reason);
}

}  // namespace moe4j
