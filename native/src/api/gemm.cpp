// FP8 GEMM entry points (plain, grouped contiguous, grouped masked): validation shared by all backends,
// then dispatch. Every layout is reduced to groups of rows sharing one weight matrix.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../cpu/fp8_gemm.h"
#include "../cpu/gemm.h"

using namespace moe4j;

namespace {

constexpr int64_t kBlock = 128;

// Checks K of a (its innermost extent) and returns it through k.
moe4j_status check_k(const ArgCheck &check, const moe4j_tensor &a, int64_t *k) {
    *k = a.shape[a.rank - 1];
    if (*k <= 0 || *k % kBlock != 0)
        return check.invalid("argument 'a': K = " + std::to_string(*k) +
                             " is not a positive multiple of 128 (scales cover 128 K elements each)");
    return MOE4J_OK;
}

// d must not overlap any input; c may be d itself (same F32 memory and layout) for in-place accumulation.
moe4j_status check_output(const ArgCheck &check, const moe4j_tensor &d,
                          std::initializer_list<std::pair<const moe4j_tensor *, const char *>> inputs) {
    for (const auto &[t, name] : inputs) {
        if (t == nullptr) continue;
        const bool same = std::string(name) == "c" && t->data == d.data && t->dtype == d.dtype && t->rank == d.rank &&
                          t->strides[0] == d.strides[0] && t->strides[1] == d.strides[1];
        if (!same)
            if (moe4j_status s = check.no_overlap(d, "d", *t, name)) return s;
    }
    return MOE4J_OK;
}

int32_t read_i32(const moe4j_tensor &t, int64_t i) { return static_cast<const int32_t *>(t.data)[i * t.strides[0]]; }

moe4j_status dispatch(const ArgCheck &check, moe4j_context *ctx, const cpu::Fp8GemmArgs &args) {
    if (ctx->backend == MOE4J_BACKEND_CUDA) return check.unsupported("not yet implemented for the CUDA backend");
    cpu::fp8_gemm(ctx, args);
    return MOE4J_OK;
}

}  // namespace

extern "C" moe4j_status moe4j_fp8_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *sfa,
                                          const moe4j_tensor *b, const moe4j_tensor *sfb, const moe4j_tensor *c,
                                          moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *a, &k)) return s;
        if (moe4j_status s = check.tensor(b, {"b", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        const int64_t m = a->shape[0], n = b->shape[0], kb = k / kBlock;
        if (moe4j_status s = check.shape(*b, "b", {n, k}, "[N, K] with the K of 'a'")) return s;
        if (moe4j_status s = check.tensor(sfa, {"sfa", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfa, "sfa", {m, kb}, "[M, K/128]")) return s;
        if (moe4j_status s = check.tensor(sfb, {"sfb", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfb, "sfb", {ceil_div(n, kBlock), kb}, "[ceil(N/128), K/128]")) return s;
        if (c != nullptr) {
            if (moe4j_status s = check.tensor(c, {"c", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
            if (moe4j_status s = check.shape(*c, "c", {m, n}, "[M, N]")) return s;
        }
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {m, n}, "[M, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {sfa, "sfa"}, {b, "b"}, {sfb, "sfb"}, {c, "c"}}))
            return s;

        cpu::Fp8GemmArgs args{a, sfa, c, d, n, k, {}, {}};
        cpu::GemmGroup group{static_cast<const uint8_t *>(b->data),
                             b->strides[0],
                             static_cast<const float *>(sfb->data),
                             sfb->strides[0],
                             sfb->strides[1],
                             {}};
        for (int64_t r = 0; r < m; ++r) group.rows.push_back(r);
        args.groups.push_back(std::move(group));
        return dispatch(check, ctx, args);
    });
}

namespace {

// The weights of group g of b [G, N, K] and sfb [G, ceil(N/128), K/128].
cpu::GemmGroup group_weights(const moe4j_tensor &b, const moe4j_tensor &sfb, int64_t g) {
    return {static_cast<const uint8_t *>(b.data) + g * b.strides[0],
            b.strides[1],
            static_cast<const float *>(sfb.data) + g * sfb.strides[0],
            sfb.strides[1],
            sfb.strides[2],
            {}};
}

// b [G, N, K] and sfb [G, ceil(N/128), K/128]; returns G and N.
moe4j_status check_grouped_weights(const ArgCheck &check, const moe4j_tensor *b, const moe4j_tensor *sfb, int64_t k,
                                   int64_t *groups, int64_t *n) {
    if (moe4j_status s = check.tensor(b, {"b", {MOE4J_E4M3}, 3, Layout::RowsDense})) return s;
    *groups = b->shape[0];
    *n = b->shape[1];
    if (moe4j_status s = check.shape(*b, "b", {*groups, *n, k}, "[G, N, K] with the K of 'a'")) return s;
    if (moe4j_status s = check.tensor(sfb, {"sfb", {MOE4J_F32}, 3, Layout::Strided})) return s;
    return check.shape(*sfb, "sfb", {*groups, ceil_div(*n, kBlock), k / kBlock}, "[G, ceil(N/128), K/128]");
}

}  // namespace

extern "C" moe4j_status moe4j_grouped_fp8_gemm_contiguous(moe4j_context *ctx, const moe4j_tensor *a,
                                                          const moe4j_tensor *sfa, const moe4j_tensor *b,
                                                          const moe4j_tensor *sfb, const moe4j_tensor *grouped_layout,
                                                          int32_t alignment, moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0, groups = 0, n = 0;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *a, &k)) return s;
        const int64_t rows = a->shape[0];
        if (moe4j_status s = check.tensor(sfa, {"sfa", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfa, "sfa", {rows, k / kBlock}, "[sum M, K/128]")) return s;
        if (moe4j_status s = check_grouped_weights(check, b, sfb, k, &groups, &n)) return s;
        if (moe4j_status s = check.tensor(grouped_layout, {"grouped_layout", {MOE4J_I32}, 1, Layout::Strided}))
            return s;
        if (moe4j_status s = check.shape(*grouped_layout, "grouped_layout", {rows}, "one group id per row of 'a'"))
            return s;
        if (alignment <= 0)
            return check.invalid("argument 'alignment': " + std::to_string(alignment) + " is not positive");
        if (rows % alignment != 0)
            return check.invalid("argument 'a': " + std::to_string(rows) +
                                 " rows are not a multiple of the alignment " + std::to_string(alignment));
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {rows, n}, "[sum M, N]")) return s;
        if (moe4j_status s = check_output(
                check, *d, {{a, "a"}, {sfa, "sfa"}, {b, "b"}, {sfb, "sfb"}, {grouped_layout, "grouped_layout"}}))
            return s;

        cpu::Fp8GemmArgs args{a, sfa, nullptr, d, n, k, {}, {}};
        for (int64_t g = 0; g < groups; ++g) args.groups.push_back(group_weights(*b, *sfb, g));
        for (int64_t block = 0; block < rows; block += alignment) {
            int32_t block_group = -1;
            for (int64_t r = block; r < block + alignment; ++r) {
                const int32_t g = read_i32(*grouped_layout, r);
                if (g < -1 || g >= groups)
                    return check.invalid("argument 'grouped_layout': row " + std::to_string(r) + " has group " +
                                         std::to_string(g) + ", outside [-1, " + std::to_string(groups) + ")");
                if (g == -1) {
                    args.zero_rows.push_back(r);
                    continue;
                }
                if (block_group != -1 && g != block_group)
                    return check.invalid("argument 'grouped_layout': rows " + std::to_string(block) + ".." +
                                         std::to_string(block + alignment - 1) +
                                         " form one alignment block but hold groups " + std::to_string(block_group) +
                                         " and " + std::to_string(g) + " (row " + std::to_string(r) + ")");
                block_group = g;
                args.groups[g].rows.push_back(r);
            }
        }
        return dispatch(check, ctx, args);
    });
}

extern "C" moe4j_status moe4j_grouped_fp8_gemm_masked(moe4j_context *ctx, const moe4j_tensor *a,
                                                      const moe4j_tensor *sfa, const moe4j_tensor *b,
                                                      const moe4j_tensor *sfb, const moe4j_tensor *masked_m,
                                                      moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0, groups = 0, n = 0;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_E4M3}, 3, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *a, &k)) return s;
        if (moe4j_status s = check_grouped_weights(check, b, sfb, k, &groups, &n)) return s;
        const int64_t m_max = a->shape[1];
        if (moe4j_status s = check.shape(*a, "a", {groups, m_max, k}, "[G, M_max, K] with the G of 'b'")) return s;
        if (moe4j_status s = check.tensor(sfa, {"sfa", {MOE4J_F32}, 3, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfa, "sfa", {groups, m_max, k / kBlock}, "[G, M_max, K/128]")) return s;
        if (moe4j_status s = check.tensor(masked_m, {"masked_m", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*masked_m, "masked_m", {groups}, "one row count per group")) return s;
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 3, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {groups, m_max, n}, "[G, M_max, N]")) return s;
        if (moe4j_status s =
                check_output(check, *d, {{a, "a"}, {sfa, "sfa"}, {b, "b"}, {sfb, "sfb"}, {masked_m, "masked_m"}}))
            return s;

        cpu::Fp8GemmArgs args{a, sfa, nullptr, d, n, k, {}, {}};
        for (int64_t g = 0; g < groups; ++g) {
            const int32_t count = read_i32(*masked_m, g);
            if (count < 0 || count > m_max)
                return check.invalid("argument 'masked_m': group " + std::to_string(g) + " has " +
                                     std::to_string(count) + " rows, outside [0, " + std::to_string(m_max) + "]");
            cpu::GemmGroup group = group_weights(*b, *sfb, g);
            for (int64_t i = 0; i < count; ++i) group.rows.push_back(g * m_max + i);
            args.groups.push_back(std::move(group));
        }
        return dispatch(check, ctx, args);
    });
}

extern "C" moe4j_status moe4j_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *b,
                                      const moe4j_tensor *c, moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        const int64_t m = a->shape[0], k = a->shape[1];
        if (k <= 0) return check.invalid("argument 'a': K = " + std::to_string(k) + " must be positive");
        // b must have a's dtype: the rule below accepts exactly that one.
        if (moe4j_status s = check.tensor(b, {"b", {a->dtype}, 2, Layout::RowsDense})) return s;
        const int64_t n = b->shape[0];
        if (moe4j_status s = check.shape(*b, "b", {n, k}, "[N, K] with the K of 'a'")) return s;
        if (c != nullptr) {
            if (moe4j_status s = check.tensor(c, {"c", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
            if (moe4j_status s = check.shape(*c, "c", {m, n}, "[M, N]")) return s;
        }
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {m, n}, "[M, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {b, "b"}, {c, "c"}})) return s;
        if (ctx->backend == MOE4J_BACKEND_CUDA) return check.unsupported("not yet implemented for the CUDA backend");
        cpu::gemm_nt(ctx, *a, *b, c, *d);
        return MOE4J_OK;
    });
}
