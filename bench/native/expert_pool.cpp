#include "expert_pool.h"

#include <algorithm>
#include <cstring>

namespace bench {

ExpertPool::ExpertPool(const ModelShape &shape, int64_t min_count, int64_t pool_bytes, const Context *pack)
    : m(shape),
      count(std::max<int64_t>(min_count, ceil_div(pool_bytes, 3 * shape.hidden * shape.inter))),
      matrix_bytes(shape.hidden * shape.inter),
      scale_floats_gu(ceil_div(shape.inter, kBlock) * (shape.hidden / kBlock)),
      scale_floats_d(ceil_div(shape.hidden, kBlock) * (shape.inter / kBlock)),
      weights(static_cast<size_t>(count * 3 * matrix_bytes), 4096),
      scales(static_cast<size_t>(count * (2 * scale_floats_gu + scale_floats_d)) * sizeof(float)) {
    fill_random_e4m3(weights.as<uint8_t>(), weights.size(), 7);
    fill_random_range_f32(scales.as<float>(), scales.size() / sizeof(float), 8, kScaleLo, kScaleHi);
    for (int64_t e = 0; e < count; ++e) {
        uint8_t *w = weights.as<uint8_t>() + e * 3 * matrix_bytes;
        float *s = scales.as<float>() + e * (2 * scale_floats_gu + scale_floats_d);
        const int64_t ib = ceil_div(m.inter, kBlock), hb = ceil_div(m.hidden, kBlock);
        experts.push_back({host_tensor(w, MOE4J_E4M3, {m.inter, m.hidden}),
                           host_tensor(w + matrix_bytes, MOE4J_E4M3, {m.inter, m.hidden}),
                           host_tensor(w + 2 * matrix_bytes, MOE4J_E4M3, {m.hidden, m.inter}),
                           host_tensor(s, MOE4J_F32, {ib, m.hidden / kBlock}),
                           host_tensor(s + scale_floats_gu, MOE4J_F32, {ib, m.hidden / kBlock}),
                           host_tensor(s + 2 * scale_floats_gu, MOE4J_F32, {hb, m.inter / kBlock})});
    }
    if (pack == nullptr) return;
    // Packed in place through one scratch matrix: the pool's memory then holds E4M3_P32 panels.
    AlignedBuffer scratch(static_cast<size_t>(matrix_bytes), 4096);
    for (ExpertWeights &e : experts)
        for (moe4j_tensor *t : {&e.gate, &e.up, &e.down}) {
            std::memcpy(scratch.data(), t->data, static_cast<size_t>(matrix_bytes));
            const moe4j_tensor from = host_tensor(scratch.data(), MOE4J_E4M3, {t->shape[0], t->shape[1]});
            t->dtype = MOE4J_E4M3_P32;
            check(moe4j_pack_fp8_weights(pack->get(), &from, t), "moe4j_pack_fp8_weights");
        }
}

double ExpertPool::expert_bytes() const {
    return 3.0 * static_cast<double>(matrix_bytes) +
           sizeof(float) * static_cast<double>(2 * scale_floats_gu + scale_floats_d);
}

}  // namespace bench
