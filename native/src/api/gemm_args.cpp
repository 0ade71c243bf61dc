#include "gemm_args.h"

#include <string>

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
        const bool in_place = std::string(name) == "c" && t->data == d.data && t->dtype == d.dtype &&
                              t->rank == d.rank && t->strides[0] == d.strides[0] && t->strides[1] == d.strides[1];
        if (in_place) continue;
        if (moe4j_status s = check.no_overlap(d, "d", *t, name)) return s;
    }
    return MOE4J_OK;
}

moe4j_status check_grouped_weights(const ArgCheck &check, const moe4j_tensor *w, const char *w_name,
                                   const moe4j_tensor *scales, const char *scales_name, int64_t k, int64_t *groups,
                                   int64_t *n) {
    if (moe4j_status s = check.tensor(w, {w_name, {MOE4J_E4M3}, 3, Layout::RowsDense})) return s;
    *groups = w->shape[0];
    *n = w->shape[1];
    if (moe4j_status s = check.shape(*w, w_name, {*groups, *n, k}, "[G, N, K] with the K of the activations")) return s;
    if (moe4j_status s = check.tensor(scales, {scales_name, {MOE4J_F32}, 3, Layout::Strided})) return s;
    return check.shape(*scales, scales_name, {*groups, ceil_div(*n, kScaleBlock), k / kScaleBlock},
                       "[G, ceil(N/128), K/128]");
}

cpu::GemmGroup group_weights(const moe4j_tensor &w, const moe4j_tensor &scales, int64_t g) {
    return {static_cast<const uint8_t *>(w.data) + g * w.strides[0],
            w.strides[1],
            static_cast<const float *>(scales.data) + g * scales.strides[0],
            scales.strides[1],
            scales.strides[2],
            {}};
}

int32_t read_i32(const moe4j_tensor &t, int64_t i) { return static_cast<const int32_t *>(t.data)[i * t.strides[0]]; }

moe4j_status read_contiguous_layout(const ArgCheck &check, const moe4j_tensor &layout, int32_t alignment,
                                    cpu::Fp8GemmArgs *args) {
    const int64_t rows = layout.shape[0], groups = static_cast<int64_t>(args->groups.size());
    if (alignment <= 0) return check.invalid("argument 'alignment': " + std::to_string(alignment) + " is not positive");
    if (rows % alignment != 0)
        return check.invalid("argument 'grouped_layout': " + std::to_string(rows) +
                             " rows are not a multiple of the alignment " + std::to_string(alignment));
    for (int64_t block = 0; block < rows; block += alignment) {
        int32_t block_group = -1;
        for (int64_t r = block; r < block + alignment; ++r) {
            const int32_t g = read_i32(layout, r);
            if (g < -1 || g >= groups)
                return check.invalid("argument 'grouped_layout': row " + std::to_string(r) + " has group " +
                                     std::to_string(g) + ", outside [-1, " + std::to_string(groups) + ")");
            if (g == -1) {
                args->zero_rows.push_back(r);
                continue;
            }
            if (block_group != -1 && g != block_group)
                return check.invalid("argument 'grouped_layout': rows " + std::to_string(block) + ".." +
                                     std::to_string(block + alignment - 1) +
                                     " form one alignment block but hold groups " + std::to_string(block_group) +
                                     " and " + std::to_string(g) + " (row " + std::to_string(r) + ")");
            block_group = g;
            args->groups[g].rows.push_back(r);
        }
    }
    return MOE4J_OK;
}

}  // namespace moe4j
