// The int8 GEMM of the LM head (moe4j_q8_gemm_nt) and the quantization of its weights (moe4j_quantize_q8_weights).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "moe4j.h"

namespace moe4j::cpu {

// The Q8_P16 layout: byte (n / 16) * 16 * K + (k / 4) * 64 + (n % 16) * 4 + k % 4 holds code(n, k) + 128.
inline int64_t q8_offset(int64_t n, int64_t k, int64_t width) {
    return (n / 16) * 16 * width + (k / 4) * 64 + (n % 16) * 4 + k % 4;
}

// The int8 codes of x[0, n) and their scale, as both entry points quantize (values read through get(i), codes given to
// put(i, code)): amax = max |x|; codes rint(x * (127 / amax)) in [-127, 127] and scale amax / 127 (float operations);
// amax 0: codes 0, scale 0; a NaN or an infinity: codes 0, scale NaN (so that every product with it is NaN).
template <typename Get, typename Put>
float quantize_q8(int64_t n, Get get, Put put) {
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < n; ++i) {
        const float v = get(i);
        finite &= std::isfinite(v);
        amax = std::max(amax, std::fabs(v));
    }
    if (!finite || amax == 0.0f) {
        for (int64_t i = 0; i < n; ++i) put(i, 0);
        return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    }
    const float inv = 127.0f / amax;
    for (int64_t i = 0; i < n; ++i) {
        put(i, static_cast<int>(std::clamp(std::nearbyint(get(i) * inv), -127.0f, 127.0f)));
    }
    return amax / 127.0f;
}

// Arguments validated: w F32/BF16 [N, K] rows; codes Q8_P16 [N, K] contiguous (N a multiple of 16, K of 4);
// scales F32 [N] contiguous.
void quantize_q8_weights(moe4j_context *ctx, const moe4j_tensor &w, const moe4j_tensor &codes,
                         const moe4j_tensor &scales);

// Arguments validated: a F32/BF16 [M, K] rows (K a multiple of 128); b Q8_P16 [N, K] contiguous (N a multiple of 16);
// sfb F32 [N] contiguous; d F32 [M, N] rows.
void q8_gemm(moe4j_context *ctx, const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor &sfb,
             const moe4j_tensor &d);

}  // namespace moe4j::cpu
