// Expert-parallel dispatch (gather) and combine entry points: validation shared by all backends, then dispatch. Index
// values are checked on the host for a CPU context and by the kernels for a CUDA one (the index stays on the GPU).
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/dispatch.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

// Every value of a host index lies in [-1, limit); `what` names what the values count.
moe4j_status check_index(const ArgCheck &check, const moe4j_tensor &index, int64_t limit, const char *what) {
    const auto *ids = static_cast<const int32_t *>(index.data);
    const int64_t cols = index.rank == 2 ? index.shape[1] : 1;
    for (int64_t i = 0; i < index.shape[0]; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            const int32_t id = ids[i * index.strides[0] + (index.rank == 2 ? j * index.strides[1] : 0)];
            if (id < -1 || id >= limit)
                return check.invalid("argument 'index': entry " + std::to_string(i) +
                                     (index.rank == 2 ? ", " + std::to_string(j) : std::string()) + " is " +
                                     std::to_string(id) + ", outside [-1, " + std::to_string(limit) + ") " + what);
        }
    return MOE4J_OK;
}

}  // namespace

extern "C" moe4j_status moe4j_gather_rows(moe4j_context *ctx, const moe4j_tensor *src, const moe4j_tensor *index,
                                          moe4j_tensor *dst) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        const std::initializer_list<int32_t> any = {MOE4J_F32, MOE4J_BF16, MOE4J_F16, MOE4J_E4M3,
                                                    MOE4J_I32, MOE4J_I64,  MOE4J_U8};
        if (moe4j_status s = check.tensor(src, {"src", any, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.tensor(dst, {"dst", any, 2, Layout::RowsDense})) return s;
        if (dst->dtype != src->dtype)
            return check.invalid(std::string("argument 'dst': dtype ") + dtype_name(dst->dtype) + ", 'src' has " +
                                 dtype_name(src->dtype));
        const int64_t rows = dst->shape[0];
        if (moe4j_status s = check.shape(*dst, "dst", {rows, src->shape[1]}, "[R, C] with the C of 'src'")) return s;
        if (moe4j_status s = check.tensor(index, {"index", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*index, "index", {rows}, "one source row per row of 'dst'")) return s;
        if (moe4j_status s = check.no_overlap(*dst, "dst", *src, "src")) return s;
        if (moe4j_status s = check.no_overlap(*dst, "dst", *index, "index")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::gather_rows(on, *src, *index, *dst); });
#endif
        if (moe4j_status s = check_index(check, *index, src->shape[0], "(rows of 'src')")) return s;
        cpu::gather_rows(ctx, *src, *index, *dst);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_combine_rows(moe4j_context *ctx, const moe4j_tensor *rows, const moe4j_tensor *index,
                                           const moe4j_tensor *weights, const moe4j_tensor *base, moe4j_tensor *out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(rows, {"rows", {MOE4J_BF16, MOE4J_F32}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.tensor(out, {"out", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
        const int64_t tokens = out->shape[0], hidden = rows->shape[1];
        if (moe4j_status s = check.shape(*out, "out", {tokens, hidden}, "[T, H] with the H of 'rows'")) return s;
        if (moe4j_status s = check.tensor(index, {"index", {MOE4J_I32}, 2, Layout::Strided})) return s;
        const int64_t k = index->shape[1];
        if (moe4j_status s = check.shape(*index, "index", {tokens, k}, "[T, k]: one row per token and rank")) return s;
        if (moe4j_status s = check.tensor(weights, {"weights", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*weights, "weights", {tokens, k}, "[T, k] like 'index'")) return s;
        if (base != nullptr) {
            if (moe4j_status s = check.tensor(base, {"base", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
            if (moe4j_status s = check.shape(*base, "base", {tokens, hidden}, "[T, H] like 'out'")) return s;
            if (moe4j_status s = check.no_overlap(*out, "out", *base, "base")) return s;
        }
        if (moe4j_status s = check.no_overlap(*out, "out", *rows, "rows")) return s;
        if (moe4j_status s = check.no_overlap(*out, "out", *index, "index")) return s;
        if (moe4j_status s = check.no_overlap(*out, "out", *weights, "weights")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) {
                return cuda::combine_rows(on, *rows, *index, *weights, base, *out);
            });
#endif
        if (moe4j_status s = check_index(check, *index, rows->shape[0], "(rows of 'rows')")) return s;
        cpu::combine_rows(ctx, *rows, *index, *weights, base, *out);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}
