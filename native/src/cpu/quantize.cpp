#include "quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/context.h"
#include "../core/fp8.h"
#include "../core/views.h"
#include "row_codec.h"

namespace moe4j::cpu {

namespace {

constexpr int64_t kBlockCols = 128;

float block_amax(const RowCodec &codec, const RowView &x, int64_t row_begin, int64_t row_end, int64_t col, int64_t n) {
    float amax = 0.0f;
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float a = x.dtype == MOE4J_F32 ? codec.amax_f32(x.row<float>(r) + col, n)
                                             : codec.amax_bf16(x.row<uint16_t>(r) + col, n);
        if (std::isnan(a)) return a;
        amax = std::max(amax, a);
    }
    return amax;
}

}  // namespace

void quantize_fp8(moe4j_context *ctx, const moe4j_tensor &x_t, const moe4j_tensor &q_t, const moe4j_tensor &scales_t,
                  int64_t block_rows, bool ue8m0) {
    const RowView x(x_t), q(q_t);
    const ScaleView scales(scales_t);
    const RowCodec &codec = row_codec(ctx->isa);
    const int64_t row_blocks = ceil_div(x.rows, block_rows), col_blocks = ceil_div(x.length, kBlockCols);
    // One task per row block; each walks its rows' column blocks in memory order.
    const int64_t grain = std::max<int64_t>(1, 16384 / (block_rows * std::max<int64_t>(x.length, 1)));
    parallel_for(*ctx->pool, row_blocks, grain, [&](int64_t begin, int64_t end) {
        for (int64_t rb = begin; rb < end; ++rb) {
            const int64_t r0 = rb * block_rows, r1 = std::min(x.rows, r0 + block_rows);
            for (int64_t cb = 0; cb < col_blocks; ++cb) {
                const int64_t col = cb * kBlockCols, n = std::min(kBlockCols, x.length - col);
                const float scale = fp8_scale(block_amax(codec, x, r0, r1, col, n), ue8m0);
                const float mul = 1.0f / scale;
                for (int64_t r = r0; r < r1; ++r) {
                    uint8_t *out = q.row<uint8_t>(r) + col;
                    if (x.dtype == MOE4J_F32)
                        codec.encode_f32(x.row<float>(r) + col, n, mul, out);
                    else
                        codec.encode_bf16(x.row<uint16_t>(r) + col, n, mul, out);
                }
                scales.at(rb, cb) = scale;
            }
        }
    });
}

void dequantize_fp8(moe4j_context *ctx, const moe4j_tensor &q_t, const moe4j_tensor &scales_t, int64_t block_rows,
                    const moe4j_tensor &out_t) {
    const RowView q(q_t), out(out_t);
    const ScaleView scales(scales_t);
    const RowCodec &codec = row_codec(ctx->isa);
    const int64_t col_blocks = ceil_div(q.length, kBlockCols);
    parallel_for(*ctx->pool, q.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(q.length, 1)),
                 [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) {
                         for (int64_t cb = 0; cb < col_blocks; ++cb) {
                             const int64_t col = cb * kBlockCols, n = std::min(kBlockCols, q.length - col);
                             const float scale = scales.at(r / block_rows, cb);
                             const uint8_t *in = q.row<uint8_t>(r) + col;
                             if (out.dtype == MOE4J_F32)
                                 codec.decode_f32(in, n, scale, out.row<float>(r) + col);
                             else
                                 codec.decode_bf16(in, n, scale, out.row<uint16_t>(r) + col);
                         }
                     }
                 });
}

}  // namespace moe4j::cpu
