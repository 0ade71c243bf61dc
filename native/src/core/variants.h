// Which kernel variant each call of a context ran (moe4j_context_kernel_variants): counts per (kernel, variant,
// reason), kept in first-seen order. A context runs one call at a time, so the counts need no lock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moe4j.h"

namespace moe4j {

// A string given in up to three pieces: the kernel and the reason of a count are made of the entry point's name, a
// stage, a sub-kernel and a fallback. Compared piece by piece and joined only when an entry is first made, so that
// counting a call allocates nothing once its entry exists.
struct Pieces {
    std::string_view a, b, c;
    Pieces(const char *s) : a(s) {}         // NOLINT(google-explicit-constructor): a plain string is one piece
    Pieces(const std::string &s) : a(s) {}  // NOLINT(google-explicit-constructor)
    Pieces(std::string_view a, std::string_view b = {}, std::string_view c = {}) : a(a), b(b), c(c) {}

    bool equals(std::string_view s) const {
        return s.size() == a.size() + b.size() + c.size() && s.substr(0, a.size()) == a &&
               s.substr(a.size(), b.size()) == b && s.substr(a.size() + b.size()) == c;
    }
    std::string joined() const { return std::string(a).append(b).append(c); }
};

class VariantCounts {
  public:
    struct Entry {
        std::string kernel, variant, reason;
        int64_t calls;
    };

    // One more call of `kernel` that ran `variant` (reason: why a fallback ran, or which sub-kernel; may be "").
    void count(const Pieces &kernel, std::string_view variant, const Pieces &reason);
    const std::vector<Entry> &entries() const { return entries_; }
    void reset() { entries_.clear(); }

  private:
    std::vector<Entry> entries_;
};

// The entry point's name without the "moe4j_" prefix ("fp8_gemm_nt" for moe4j_fp8_gemm_nt), plus ":stage" when
// stage is not null: the `kernel` of a count. The pieces point into function and stage.
Pieces kernel_name(const char *function, const char *stage = nullptr);

// What the CPU code of a kernel family runs at a context's ISA level.
enum class CpuCode {
    // Its own code on every path (the FP8 GEMMs and the expert FFN's GEMMs, the F32/BF16 GEMM, MLA decode, the logits
    // statistics; RMSNorm, RoPE and SiLU, whose AVX-512 code needs only AVX-512 F/BW/VL/DQ)
    EveryPath,
    // scalar, AVX2 and AVX512_BF16 code; at MOE4J_ISA_AVX512 its AVX2 code (everything else)
    NoAvx512F
};

// The variant name of the path `code` takes at ISA level `isa` ("scalar", "avx2", "avx512", "avx512_bf16").
const char *cpu_variant(int32_t isa, CpuCode code);
// "" or, where the path is below the context's level, why.
const char *cpu_fallback_reason(int32_t isa, CpuCode code);

// Counts a CPU call of `function` (optionally one stage of it) at the context's ISA level; detail (may be null) names
// the sub-kernel where the ISA path alone does not say what ran.
void count_cpu(moe4j_context *ctx, const char *function, CpuCode code, const char *detail = nullptr,
               const char *stage = nullptr);

}  // namespace moe4j
