// Argument checks shared by the GEMM-family entry points (FP8 GEMMs, the fused expert FFN).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "../core/validate.h"
#include "../cpu/fp8_gemm.h"
#include "moe4j.h"

namespace moe4j {

constexpr int64_t kScaleBlock = 128;

// The innermost extent of `t` (named `name`): a positive multiple of 128, returned through k.
moe4j_status check_k(const ArgCheck &check, const moe4j_tensor &t, const char *name, int64_t *k);

// d must not overlap any input; an input named "c" may be d itself (same F32 memory and layout), which is
// in-place accumulation. Null inputs are skipped.
moe4j_status check_output(const ArgCheck &check, const moe4j_tensor &d,
                          std::initializer_list<std::pair<const moe4j_tensor *, const char *>> inputs);

// Stacked expert weights w [G, N, K] (E4M3) with scales [G, ceil(N/128), K/128], K given; returns G and N.
moe4j_status check_grouped_weights(const ArgCheck &check, const moe4j_tensor *w, const char *w_name,
                                   const moe4j_tensor *scales, const char *scales_name, int64_t k, int64_t *groups,
                                   int64_t *n);

// Group g of stacked weights, with no rows yet.
cpu::GemmGroup group_weights(const moe4j_tensor &w, const moe4j_tensor &scales, int64_t g);

// Reads a contiguous grouped layout (I32 [S], -1 = padding) into args: each row joins its group's row list
// (args->groups must hold one entry per group), padding rows go to args->zero_rows. Rejects ids outside
// [-1, G), alignment <= 0, S not a multiple of the alignment, and alignment blocks that mix groups.
moe4j_status read_contiguous_layout(const ArgCheck &check, const moe4j_tensor &layout, int32_t alignment,
                                    cpu::Fp8GemmArgs *args);

int32_t read_i32(const moe4j_tensor &t, int64_t i);

}  // namespace moe4j
