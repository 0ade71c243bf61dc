// MoE expert weights for the benchmarks that stream them (expert, step): model shapes and a pool of distinct
// experts with random e4m3 weights and block scales, optionally packed as the library's models hold them on CPUs.
#pragma once

#include <cstdint>
#include <vector>

#include "buffers.h"
#include "moe4j_util.h"

namespace bench {

struct ModelShape {
    const char *name;
    int64_t hidden, inter, experts;
};

inline constexpr ModelShape kV2Lite{"v2lite", 2048, 1408, 64};
inline constexpr ModelShape kV3{"v3", 7168, 2048, 256};
// V2-Lite's dense MLP (layer 0) as one expert, as --quantize runs it: 10944 padded to 11008 (86 blocks of 128).
inline constexpr ModelShape kV2LiteDense{"v2lite-dense", 2048, 11008, 1};

// One expert's e4m3 weights with their 128x128 block scales: gate and up [I, H], down [H, I].
struct ExpertWeights {
    moe4j_tensor gate, up, down, gate_s, up_s, down_s;
};

// A pool of distinct experts, at least pool_bytes of weights and at least min_count experts, in one allocation;
// packed in panels (moe4j_pack_fp8_weights) on `pack` when it is not null.
struct ExpertPool {
    ModelShape m;
    int64_t count, matrix_bytes, scale_floats_gu, scale_floats_d;
    AlignedBuffer weights, scales;
    std::vector<ExpertWeights> experts;

    ExpertPool(const ModelShape &shape, int64_t min_count, int64_t pool_bytes, const Context *pack);

    // Weight and scale bytes of one expert's three matrices.
    double expert_bytes() const;
};

}  // namespace bench
