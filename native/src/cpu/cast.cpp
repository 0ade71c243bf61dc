#include "cast.h"

#include <cstring>
#include <vector>

#include "../core/context.h"
#include "../core/views.h"
#include "row_codec.h"

namespace moe4j::cpu {

namespace {

// Converts one row; pairs without a direct primitive go through an fp32 row.
void cast_row(const RowCodec &codec, int32_t from, const void *src, int32_t to, void *dst, int64_t n, float *staging) {
    if (from == to) {
        std::memcpy(dst, src, static_cast<size_t>(n * dtype_size(from)));
        return;
    }
    const float *f32 = nullptr;
    switch (from) {
        case MOE4J_F32: f32 = static_cast<const float *>(src); break;
        case MOE4J_BF16:
            if (to == MOE4J_E4M3)
                return codec.encode_bf16(static_cast<const uint16_t *>(src), n, 1.0f, static_cast<uint8_t *>(dst));
            codec.bf16_to_f32(static_cast<const uint16_t *>(src), n, staging);
            f32 = staging;
            break;
        case MOE4J_E4M3:
            if (to == MOE4J_BF16)
                return codec.decode_bf16(static_cast<const uint8_t *>(src), n, 1.0f, static_cast<uint16_t *>(dst));
            codec.decode_f32(static_cast<const uint8_t *>(src), n, 1.0f, staging);
            f32 = staging;
            break;
    }
    switch (to) {
        case MOE4J_F32: std::memcpy(dst, f32, static_cast<size_t>(n) * sizeof(float)); break;
        case MOE4J_BF16: codec.f32_to_bf16(f32, n, static_cast<uint16_t *>(dst)); break;
        case MOE4J_E4M3: codec.encode_f32(f32, n, 1.0f, static_cast<uint8_t *>(dst)); break;
    }
}

}  // namespace

void cast(moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &dst) {
    const RowView in(src), out(dst);
    const RowCodec &codec = row_codec(ctx->isa);
    const auto staging = ctx->worker_scratch_for(static_cast<size_t>(in.length), "cast's rows as floats");
    parallel_for(*ctx->pool, in.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(in.length, 1)),
                 [&](int64_t begin, int64_t end, int worker) {
                     for (int64_t r = begin; r < end; ++r)
                         cast_row(codec, in.dtype, in.row<char>(r), out.dtype, out.row<char>(r), in.length,
                                  staging.of(worker));
                 });
}

}  // namespace moe4j::cpu
