// Row-wise conversion primitives between F32, BF16 and E4M3, one implementation per CPU path.
// Every path is bit-identical to the scalar codecs in core/fp8.h; kernels pick a path once per call.
#pragma once

#include <cstdint>

namespace moe4j::cpu {

struct RowCodec {
    // max |x| over n elements; NaN if any element is NaN (torch.amax semantics).
    float (*amax_f32)(const float *x, int64_t n);
    float (*amax_bf16)(const uint16_t *x, int64_t n);
    // q[i] = e4m3(x[i] * mul)
    void (*encode_f32)(const float *x, int64_t n, float mul, uint8_t *q);
    void (*encode_bf16)(const uint16_t *x, int64_t n, float mul, uint8_t *q);
    // out[i] = value(q[i]) * scale, rounded to the output type
    void (*decode_f32)(const uint8_t *q, int64_t n, float scale, float *out);
    void (*decode_bf16)(const uint8_t *q, int64_t n, float scale, uint16_t *out);
    void (*f32_to_bf16)(const float *x, int64_t n, uint16_t *out);
    void (*bf16_to_f32)(const uint16_t *x, int64_t n, float *out);
};

// The codec of a moe4j_isa path; the caller guarantees the CPU supports it.
const RowCodec &row_codec(int isa);

}  // namespace moe4j::cpu
