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

// Weight groups `w` (named `name`), validated before any descriptor behind it is used: not null, count in
// [1, MOE4J_MAX_WEIGHT_GROUPS] and equal to expected_count when that is not -1, non-null arrays, then each group's
// weights E4M3 [N, K] with contiguous rows and scales F32 [ceil(N/128), K/128] on the call's device. N is group 0's
// unless expected_n is not -1 (`n_why` says where that comes from). Returns the count and N.
moe4j_status check_weight_groups(const ArgCheck &check, const moe4j_fp8_weight_groups *w, const char *name, int64_t k,
                                 int64_t expected_count, int64_t expected_n, const char *n_why, int64_t *count,
                                 int64_t *n);

// d must not overlap any group's weights or scales of validated weight groups w.
moe4j_status check_output_groups(const ArgCheck &check, const moe4j_tensor &d, const moe4j_fp8_weight_groups &w,
                                 const char *name);

// The validated weight groups w as the CPU kernels take them, in the context's workspace, with no rows yet.
Span<cpu::GemmGroup> weight_groups(moe4j_context *ctx, const moe4j_fp8_weight_groups &w);

// Room for `count` row indices in the context's workspace.
int64_t *row_list(moe4j_context *ctx, int64_t count);

// Rejects an alignment of a contiguous grouped layout that is not positive or does not divide its `rows` rows (those of
// argument `rows_arg`).
moe4j_status check_alignment(const ArgCheck &check, int64_t rows, int32_t alignment, const char *rows_arg);

// Reads a contiguous grouped layout (I32 [S], -1 = padding) into args, row lists in the context's workspace: each
// group's rows (args->groups must hold one entry per group) in order, padding rows in args->zero_rows. The alignment
// has passed check_alignment; rejects ids outside [-1, G) and alignment blocks that mix groups.
moe4j_status read_contiguous_layout(moe4j_context *ctx, const ArgCheck &check, const moe4j_tensor &layout,
                                    int32_t alignment, cpu::Fp8GemmArgs *args);

int32_t read_i32(const moe4j_tensor &t, int64_t i);

}  // namespace moe4j
