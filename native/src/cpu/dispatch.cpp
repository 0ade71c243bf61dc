#include "dispatch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/context.h"
#include "../core/validate.h"
#include "../core/views.h"
#include "row_codec.h"

namespace moe4j::cpu {

void gather_rows(moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &index, const moe4j_tensor &dst) {
    const RowView from(src), to(dst);
    const auto *ids = static_cast<const int32_t *>(index.data);
    const size_t bytes = static_cast<size_t>(to.length * dtype_size(to.dtype));
    parallel_for(*ctx->pool, to.rows, std::max<int64_t>(1, 65536 / std::max<size_t>(bytes, 1)),
                 [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) {
                         const int32_t id = ids[r * index.strides[0]];
                         if (id < 0)
                             std::memset(to.row<char>(r), 0, bytes);
                         else
                             std::memcpy(to.row<char>(r), from.row<char>(id), bytes);
                     }
                 });
}

void combine_rows(moe4j_context *ctx, const moe4j_tensor &rows, const moe4j_tensor &index, const moe4j_tensor &weights,
                  const moe4j_tensor *base, const moe4j_tensor &out) {
    const RowView in(rows), result(out), start(base != nullptr ? *base : out);
    const auto *ids = static_cast<const int32_t *>(index.data);
    const auto *w = static_cast<const float *>(weights.data);
    const int64_t tokens = out.shape[0], k = index.shape[1], hidden = out.shape[1];
    const RowCodec &codec = row_codec(ctx->isa);
    // per thread: the token's sum, a BF16 row as floats
    const auto scratch = ctx->worker_scratch_for(static_cast<size_t>(2 * hidden), "the combine's rows as floats");
    const auto row_bytes = static_cast<size_t>(hidden) * sizeof(float);
    parallel_for(*ctx->pool, tokens, std::max<int64_t>(1, 4096 / std::max<int64_t>(hidden * k, 1)),
                 [&](int64_t begin, int64_t end, int worker) {
                     float *const acc = scratch.of(worker), *const row = acc + hidden;
                     for (int64_t t = begin; t < end; ++t) {
                         if (base != nullptr)
                             std::memcpy(acc, start.row<float>(t), row_bytes);
                         else
                             std::fill(acc, acc + hidden, 0.0f);
                         for (int64_t j = 0; j < k; ++j) {
                             const int32_t id = ids[t * index.strides[0] + j * index.strides[1]];
                             if (id < 0) continue;
                             const float weight = w[t * weights.strides[0] + j * weights.strides[1]];
                             const float *values = in.row<float>(id);
                             if (in.dtype == MOE4J_BF16) {
                                 codec.bf16_to_f32(in.row<uint16_t>(id), hidden, row);
                                 values = row;
                             }
                             for (int64_t c = 0; c < hidden; ++c) acc[c] = std::fma(weight, values[c], acc[c]);
                         }
                         std::memcpy(result.row<float>(t), acc, row_bytes);
                     }
                 });
}

}  // namespace moe4j::cpu
