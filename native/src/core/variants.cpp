#include "variants.h"

#include <cstring>

#include "context.h"

namespace moe4j {

void VariantCounts::count(const Pieces &kernel, std::string_view variant, const Pieces &reason) {
    for (Entry &e : entries_)
        if (kernel.equals(e.kernel) && e.variant == variant && reason.equals(e.reason)) {
            ++e.calls;
            return;
        }
    entries_.push_back({kernel.joined(), std::string(variant), reason.joined(), 1});
}

Pieces kernel_name(const char *function, const char *stage) {
    constexpr std::string_view kPrefix = "moe4j_";
    std::string_view name(function);
    if (name.substr(0, kPrefix.size()) == kPrefix) name.remove_prefix(kPrefix.size());
    if (stage == nullptr) return {name};
    return {name, ":", stage};
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
    const std::string_view fallback = cpu_fallback_reason(ctx->isa, code), sub = detail != nullptr ? detail : "";
    const Pieces reason =
        sub.empty() || fallback.empty() ? Pieces(sub.empty() ? fallback : sub) : Pieces(sub, "; ", fallback);
    ctx->variants.count(kernel_name(function, stage), cpu_variant(ctx->isa, code), reason);
}

}  // namespace moe4j
