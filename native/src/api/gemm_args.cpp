#include "gemm_args.h"

#include <algorithm>
#include <string>

#include "../core/context.h"

namespace moe4j {

moe4j_status check_k(const ArgCheck &check, const moe4j_tensor &t, const char *name, int64_t *k) {
    *k = t.shape[t.rank - 1];
    if (*k <= 0 || *k % kScaleBlock != 0)
        return check.invalid(std::string("argument '") + name + "': K = " + std::to_string(*k) +
                             " is not a positive multiple of 128 (scales cover 128 K elements each)");
    return MOE4J_OK;
}

moe4j_status check_output(const ArgCheck &check, const moe4j_tensor &d,
                          std::initializer_list<std::pair<const moe4j_tensor *, const char *>> inputs) {
    for (const auto &[t, name] : inputs) {
        if (t == nullptr) continue;
        if (std::string(name) == "c" && same_view(*t, d)) continue;  // in-place accumulation
        if (moe4j_status s = check.no_overlap(d, "d", *t, name)) return s;
    }
    return MOE4J_OK;
}

moe4j_status check_weight_groups(const ArgCheck &check, const moe4j_fp8_weight_groups *w, const char *name, int64_t k,
                                 int64_t expected_count, int64_t expected_n, const char *n_why, int64_t *count,
                                 int64_t *n) {
    // Messages are built only on failure.
    const auto arg = [&] { return check.argument(name); };
    if (w == nullptr) return check.invalid(arg() + " is null");
    if (w->count < 1 || w->count > MOE4J_MAX_WEIGHT_GROUPS)
        return check.invalid(arg() + ": count " + std::to_string(w->count) + " is outside [1, " +
                             std::to_string(MOE4J_MAX_WEIGHT_GROUPS) + "]");
    if (expected_count != -1 && w->count != expected_count)
        return check.invalid(arg() + ": count " + std::to_string(w->count) + " differs from the " +
                             std::to_string(expected_count) + " groups of the other operands");
    if (w->weights == nullptr) return check.invalid(arg() + ": 'weights' array is null");
    if (w->scales == nullptr) return check.invalid(arg() + ": 'scales' array is null");
    *count = w->count;
    *n = expected_n;
    for (int64_t g = 0; g < w->count; ++g) {
        const ArgCheck weights = check.group(g), scales = check.group(g, "scales");
        const moe4j_tensor &b = w->weights[g];
        if (moe4j_status s = weights.tensor(&b, {name, {MOE4J_E4M3, MOE4J_E4M3_P32}, 2, Layout::RowsDense})) return s;
        if (*n == -1) {
            *n = b.shape[0];
            n_why = "[N, K] with the K of the activations";
        }
        if (moe4j_status s = weights.shape(b, name, {*n, k}, g == 0 ? n_why : "[N, K] as group 0")) return s;
        const moe4j_tensor &sf = w->scales[g];
        if (moe4j_status s = scales.tensor(&sf, {name, {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s =
                scales.shape(sf, name, {ceil_div(*n, kScaleBlock), k / kScaleBlock}, "[ceil(N/128), K/128]"))
            return s;
    }
    return MOE4J_OK;
}

moe4j_status check_output_groups(const ArgCheck &check, const moe4j_tensor &d, const moe4j_fp8_weight_groups &w,
                                 const char *name) {
    for (int64_t g = 0; g < w.count; ++g) {
        if (moe4j_status s = check.group(g).no_overlap(d, "d", w.weights[g], name)) return s;
        if (moe4j_status s = check.group(g, "scales").no_overlap(d, "d", w.scales[g], name)) return s;
    }
    return MOE4J_OK;
}

Span<cpu::GemmGroup> weight_groups(moe4j_context *ctx, const moe4j_fp8_weight_groups &w) {
    cpu::GemmGroup *groups = ctx->workspace.take<cpu::GemmGroup>(w.count, "the call's weight groups");
    for (int64_t g = 0; g < w.count; ++g) {
        const moe4j_tensor &b = w.weights[g], &sf = w.scales[g];
        groups[g] = {static_cast<const uint8_t *>(b.data),
                     b.strides[0],
                     static_cast<const float *>(sf.data),
                     sf.strides[0],
                     sf.strides[1],
                     {},
                     b.dtype == MOE4J_E4M3_P32};
    }
    return {groups, w.count};
}

int64_t *row_list(moe4j_context *ctx, int64_t count) {
    return ctx->workspace.take<int64_t>(count, "the call's row lists");
}

int32_t read_i32(const moe4j_tensor &t, int64_t i) { return static_cast<const int32_t *>(t.data)[i * t.strides[0]]; }

moe4j_status check_alignment(const ArgCheck &check, int64_t rows, int32_t alignment, const char *rows_arg) {
    if (alignment <= 0) return check.invalid("argument 'alignment': " + std::to_string(alignment) + " is not positive");
    if (rows % alignment != 0)
        return check.invalid("argument '" + std::string(rows_arg) + "': " + std::to_string(rows) +
                             " rows are not a multiple of the alignment " + std::to_string(alignment));
    return MOE4J_OK;
}

moe4j_status read_contiguous_layout(moe4j_context *ctx, const ArgCheck &check, const moe4j_tensor &layout,
                                    int32_t alignment, cpu::Fp8GemmArgs *args) {
    const int64_t rows = layout.shape[0], groups = args->groups.size();
    // Rows per group (padding last), then each group's rows in order, all in one list.
    int64_t *const counts = row_list(ctx, groups + 1);
    std::fill_n(counts, groups + 1, int64_t{0});
    for (int64_t block = 0; block < rows; block += alignment) {
        int32_t block_group = -1;
        for (int64_t r = block; r < block + alignment; ++r) {
            const int32_t g = read_i32(layout, r);
            if (g < -1 || g >= groups)
                return check.invalid("argument 'grouped_layout': row " + std::to_string(r) + " has group " +
                                     std::to_string(g) + ", outside [-1, " + std::to_string(groups) + ")");
            if (g == -1) {
                ++counts[groups];
                continue;
            }
            if (block_group != -1 && g != block_group)
                return check.invalid("argument 'grouped_layout': rows " + std::to_string(block) + ".." +
                                     std::to_string(block + alignment - 1) +
                                     " form one alignment block but hold groups " + std::to_string(block_group) +
                                     " and " + std::to_string(g) + " (row " + std::to_string(r) + ")");
            block_group = g;
            ++counts[g];
        }
    }
    int64_t *const list = row_list(ctx, rows);
    int64_t start = 0;
    for (int64_t g = 0; g <= groups; ++g) {
        const int64_t count = counts[g];
        counts[g] = start;  // from here on: where group g's next row goes
        (g < groups ? args->groups[g].rows : args->zero_rows) = {list + start, count};
        start += count;
    }
    for (int64_t r = 0; r < rows; ++r) {
        const int32_t g = read_i32(layout, r);
        list[counts[g < 0 ? groups : g]++] = r;
    }
    return MOE4J_OK;
}

}  // namespace moe4j
