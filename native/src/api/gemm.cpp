// FP8 GEMM entry points (plain, grouped contiguous, grouped masked): validation shared by all backends, then
// dispatch. On the CPU every layout is reduced to groups of rows sharing one weight matrix, read from the host tables;
// CUDA takes the layout tables as they are (in device memory) and its kernels check them.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/fp8_gemm.h"
#include "../cpu/gemm.h"
#include "gemm_args.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

moe4j_status run_cpu(const char *fn, moe4j_context *ctx, const cpu::Fp8GemmArgs &args) {
    count_cpu(ctx, fn, CpuCode::EveryPath, cpu::fp8_gemm(ctx, args));
    return MOE4J_OK;
}

}  // namespace

extern "C" moe4j_status moe4j_pack_fp8_weights(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *packed) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0;
        if (moe4j_status s = check.tensor(w, {"w", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *w, "w", &k)) return s;
        const int64_t n = w->shape[0];
        if (n % 32 != 0)
            return check.invalid("argument 'w': N = " + std::to_string(n) +
                                 " is not a multiple of 32, the rows of a panel");
        if (moe4j_status s = check.tensor(packed, {"packed", {MOE4J_E4M3_P32}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*packed, "packed", {n, k}, "the shape of 'w'")) return s;
        if (moe4j_status s = check.no_overlap(*packed, "packed", *w, "w")) return s;
        count_cpu(ctx, fn, CpuCode::EveryPath,
                  cpu::fp8_pack_weights(ctx, static_cast<const uint8_t *>(w->data), w->strides[0], n, k,
                                        static_cast<uint8_t *>(packed->data)));
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_fp8_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *sfa,
                                          const moe4j_tensor *b, const moe4j_tensor *sfb, const moe4j_tensor *c,
                                          moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *a, "a", &k)) return s;
        if (moe4j_status s = check.tensor(b, {"b", {MOE4J_E4M3, MOE4J_E4M3_P32}, 2, Layout::RowsDense})) return s;
        const int64_t m = a->shape[0], n = b->shape[0], kb = k / kScaleBlock;
        if (moe4j_status s = check.shape(*b, "b", {n, k}, "[N, K] with the K of 'a'")) return s;
        if (moe4j_status s = check.tensor(sfa, {"sfa", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfa, "sfa", {m, kb}, "[M, K/128]")) return s;
        if (moe4j_status s = check.tensor(sfb, {"sfb", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfb, "sfb", {ceil_div(n, kScaleBlock), kb}, "[ceil(N/128), K/128]")) return s;
        if (c != nullptr) {
            if (moe4j_status s = check.tensor(c, {"c", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
            if (moe4j_status s = check.shape(*c, "c", {m, n}, "[M, N]")) return s;
        }
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {m, n}, "[M, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {sfa, "sfa"}, {b, "b"}, {sfb, "sfb"}, {c, "c"}}))
            return s;

#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            const cuda::Fp8GemmCall call{a, sfa, c, d, n, k, b, sfb, 1, cuda::RowLayout::Plain, nullptr, 0, nullptr};
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::fp8_gemm(on, call); });
        }
#endif
        const moe4j_fp8_weight_groups one{1, b, sfb};
        cpu::Fp8GemmArgs args{a, sfa, c, d, n, k, weight_groups(ctx, one), {}};
        int64_t *rows = row_list(ctx, m);
        for (int64_t r = 0; r < m; ++r) rows[r] = r;
        args.groups[0].rows = {rows, m};
        return run_cpu(fn, ctx, args);
    });
}

extern "C" moe4j_status moe4j_grouped_fp8_gemm_contiguous(moe4j_context *ctx, const moe4j_tensor *a,
                                                          const moe4j_tensor *sfa, const moe4j_fp8_weight_groups *b,
                                                          const moe4j_tensor *grouped_layout, int32_t alignment,
                                                          moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0, groups = 0, n = 0;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *a, "a", &k)) return s;
        const int64_t rows = a->shape[0];
        if (moe4j_status s = check.tensor(sfa, {"sfa", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfa, "sfa", {rows, k / kScaleBlock}, "[sum M, K/128]")) return s;
        if (moe4j_status s = check_weight_groups(check, b, "b", k, -1, -1, "", &groups, &n)) return s;
        if (moe4j_status s = check.tensor(grouped_layout, {"grouped_layout", {MOE4J_I32}, 1, Layout::Strided}))
            return s;
        if (moe4j_status s = check.shape(*grouped_layout, "grouped_layout", {rows}, "one group id per row of 'a'"))
            return s;
        if (moe4j_status s = check_alignment(check, rows, alignment, "a")) return s;
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {rows, n}, "[sum M, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {sfa, "sfa"}, {grouped_layout, "grouped_layout"}}))
            return s;
        if (moe4j_status s = check_output_groups(check, *d, *b, "b")) return s;

#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            const cuda::Fp8GemmCall call{a,
                                         sfa,
                                         nullptr,
                                         d,
                                         n,
                                         k,
                                         b->weights,
                                         b->scales,
                                         groups,
                                         cuda::RowLayout::Contiguous,
                                         grouped_layout,
                                         alignment,
                                         nullptr};
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::fp8_gemm(on, call); });
        }
#endif
        cpu::Fp8GemmArgs args{a, sfa, nullptr, d, n, k, weight_groups(ctx, *b), {}};
        if (moe4j_status s = read_contiguous_layout(ctx, check, *grouped_layout, alignment, &args)) return s;
        return run_cpu(fn, ctx, args);
    });
}

extern "C" moe4j_status moe4j_grouped_fp8_gemm_masked(moe4j_context *ctx, const moe4j_tensor *a,
                                                      const moe4j_tensor *sfa, const moe4j_fp8_weight_groups *b,
                                                      const moe4j_tensor *masked_m, moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t k = 0, groups = 0, n = 0;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_E4M3}, 3, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *a, "a", &k)) return s;
        if (moe4j_status s = check_weight_groups(check, b, "b", k, a->shape[0], -1, "", &groups, &n)) return s;
        const int64_t m_max = a->shape[1];
        if (moe4j_status s = check.tensor(sfa, {"sfa", {MOE4J_F32}, 3, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfa, "sfa", {groups, m_max, k / kScaleBlock}, "[G, M_max, K/128]")) return s;
        if (moe4j_status s = check.tensor(masked_m, {"masked_m", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*masked_m, "masked_m", {groups}, "one row count per group")) return s;
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 3, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {groups, m_max, n}, "[G, M_max, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {sfa, "sfa"}, {masked_m, "masked_m"}})) return s;
        if (moe4j_status s = check_output_groups(check, *d, *b, "b")) return s;

#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            const cuda::Fp8GemmCall call{
                a, sfa, nullptr, d, n, k, b->weights, b->scales, groups, cuda::RowLayout::Masked, nullptr, 0, masked_m};
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::fp8_gemm(on, call); });
        }
#endif
        cpu::Fp8GemmArgs args{a, sfa, nullptr, d, n, k, weight_groups(ctx, *b), {}};
        int64_t *rows = row_list(ctx, groups * m_max);
        for (int64_t g = 0; g < groups; ++g) {
            const int32_t count = read_i32(*masked_m, g);
            if (count < 0 || count > m_max)
                return check.invalid("argument 'masked_m': group " + std::to_string(g) + " has " +
                                     std::to_string(count) + " rows, outside [0, " + std::to_string(m_max) + "]");
            for (int64_t i = 0; i < count; ++i) rows[g * m_max + i] = g * m_max + i;
            args.groups[g].rows = {rows + g * m_max, count};
        }
        return run_cpu(fn, ctx, args);
    });
}

extern "C" moe4j_status moe4j_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *b,
                                      const moe4j_tensor *c, moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (a != nullptr && a->rank != 2 && a->rank != 3)
            return check.invalid("argument 'a': rank " + std::to_string(a->rank) +
                                 ", expected 2 ([M, K]) or 3 ([B, M, K], a batch)");
        const int32_t rank = a != nullptr ? a->rank : 2;
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_F32, MOE4J_BF16}, rank, Layout::RowsDense})) return s;
        const bool batched = rank == 3;
        const int64_t batch = batched ? a->shape[0] : 1, m = a->shape[rank - 2], k = a->shape[rank - 1];
        if (k <= 0) return check.invalid("argument 'a': K = " + std::to_string(k) + " must be positive");
        // The shape [B, rows, cols], or [rows, cols] for rank 2.
        const auto expect = [&](const moe4j_tensor &t, const char *name, int64_t rows, int64_t cols,
                                const char *why) -> moe4j_status {
            return batched ? check.shape(t, name, {batch, rows, cols}, why) : check.shape(t, name, {rows, cols}, why);
        };
        // b must have a's dtype and rank: the rule below accepts exactly those.
        if (moe4j_status s = check.tensor(b, {"b", {a->dtype}, rank, Layout::RowsDense})) return s;
        const int64_t n = b->shape[rank - 2];
        if (moe4j_status s =
                expect(*b, "b", n, k, batched ? "[B, N, K] with the B and K of 'a'" : "[N, K] with the K of 'a'"))
            return s;
        if (c != nullptr) {
            if (moe4j_status s = check.tensor(c, {"c", {MOE4J_F32}, rank, Layout::RowsDense})) return s;
            if (moe4j_status s = expect(*c, "c", m, n, batched ? "[B, M, N]" : "[M, N]")) return s;
        }
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, rank, Layout::RowsDense})) return s;
        if (moe4j_status s = expect(*d, "d", m, n, batched ? "[B, M, N]" : "[M, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {b, "b"}, {c, "c"}})) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::gemm_nt(on, *a, *b, c, *d); });
#endif
        cpu::gemm_nt(ctx, *a, *b, c, *d);
        count_cpu(ctx, fn, CpuCode::EveryPath);
        return MOE4J_OK;
    });
}
