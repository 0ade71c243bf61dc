// The CUDA FP8 GEMM's pieces shared by the GEMM entry points (gemm.cu) and the fused expert FFN (expert_ffn.cu):
// the device view of the operands and of the row layout, and the host steps of one call (scratch parts, the checked
// layout, the weight-group table, the variant choice, the launch). For .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_checks.cuh"
#include "device_views.cuh"

namespace moe4j::cuda {

constexpr int kGemmBlock = 128;  // K block of the scales, and the simple kernel's columns per thread block

struct GroupWeights {
    const uint8_t *b;  // e4m3, row n at b + n * ldb
    int64_t ldb;
    const float *sfb;
    int64_t sfb_stride0, sfb_stride1;
};

// A 128-row window of the contiguous layout holding rows of one group: one tile row of the tuned kernel's output.
struct WindowGroup {
    int32_t window, group;
};

// Rows with a group of -1 are zeroed (contiguous-layout padding); kUntouched rows are neither read nor written.
constexpr int32_t kUntouched = -2;

// How each row of A (flattened over its leading dimensions) finds its weight group, from tables the kernels checked
// (prepare_rows) rather than the caller's.
struct RowGroups {
    RowLayout layout;
    int64_t rows;              // rows of A and D
    const int32_t *row_group;  // Contiguous: each row's checked group, -1 for padding and for flagged rows
    const int32_t *counts;     // Masked: each group's checked row count (0 for a flagged one)
    int64_t m_max;             // Masked
    // the tuned kernel's tiles: Plain ceil(M/128) windows; Masked G x windows; Contiguous the WindowGroups found
    int64_t windows;
    const WindowGroup *tiles;
    const int32_t *tile_count;
    int64_t tile_capacity;

    __device__ int32_t group_of(int64_t r) const {
        switch (layout) {
            case RowLayout::Plain: return 0;
            case RowLayout::Contiguous: return row_group[r];
            default: {
                const int64_t g = r / m_max;
                return r % m_max < counts[g] ? static_cast<int32_t>(g) : kUntouched;
            }
        }
    }

    // The group and first row of tuned tile `index`; false for a tile without rows.
    __device__ bool tile(int64_t index, int32_t *group, int64_t *first) const {
        switch (layout) {
            case RowLayout::Plain:
                *group = 0;
                *first = index * 128;
                return true;
            case RowLayout::Contiguous: {
                const int64_t found = *tile_count < tile_capacity ? *tile_count : tile_capacity;
                if (index >= found) return false;
                const WindowGroup t = tiles[index];
                *group = t.group;
                *first = static_cast<int64_t>(t.window) * 128;
                return true;
            }
            default: {
                const int64_t g = index / windows, w = index % windows;
                if (w * 128 >= counts[g]) return false;
                *group = static_cast<int32_t>(g);
                *first = g * m_max + w * 128;
                return true;
            }
        }
    }

    // Whether row first + i (i < 128) belongs to the tile (group, first).
    __device__ bool in_tile(int32_t group, int64_t first, int64_t i) const {
        switch (layout) {
            case RowLayout::Plain: return first + i < rows;
            case RowLayout::Contiguous: return first + i < rows && row_group[first + i] == group;
            default: return first - group * m_max + i < counts[group];
        }
    }
};

// The operands as the kernels read them: rows of A, sfa, C and D through their views (any leading strides), the
// weight groups from the uploaded table (or `single` for the plain layout, which uploads nothing).
struct GemmOperands {
    Rows a, sfa, c, d;
    bool has_c;
    int64_t n, k;
    const GroupWeights *groups;
    GroupWeights single;

    __device__ GroupWeights group(int32_t g) const { return groups != nullptr ? groups[g] : single; }
};

// The layout side of one call, shared by all its GEMMs (the expert FFN runs three over one layout).
struct LayoutSpec {
    RowLayout layout;
    int64_t rows;                        // rows of A: M, S or G * M_max
    int64_t groups;                      // G
    const moe4j_tensor *grouped_layout;  // Contiguous
    int32_t alignment;                   // Contiguous
    const moe4j_tensor *masked_m;        // Masked
    int64_t m_max;                       // Masked
};

// Where a call's layout tables live in the scratch: add() them before Scratch::reserve().
struct LayoutParts {
    size_t row_group = 0, counts = 0, tiles = 0, tile_count = 0;
    int64_t tile_capacity = 0;
    void add(Scratch &scratch, const LayoutSpec &spec);
};

// Enqueues the checks of the caller's layout table into the scratch's row groups (and, with `tiles`, the tuned
// kernel's tiles of the contiguous layout), flagging bad entries; out is the kernels' view.
moe4j_status prepare_rows(const Call &call, const LayoutSpec &spec, const Scratch &scratch, const LayoutParts &parts,
                          bool tiles, RowGroups *out);

// The weight groups as the kernels read them: a table uploaded into the scratch (at `offset`, room for spec.groups
// entries, added by the caller) for more than one group, by value for one.
moe4j_status upload_groups(const Call &call, const moe4j_tensor *weights, const moe4j_tensor *scales, int64_t groups,
                           const Scratch &scratch, size_t offset, GemmOperands *op);

// "" where the tuned kernel can take a GEMM of `a` (named a_name) with these weight groups (named b_name); otherwise
// why not, for the variant counts.
std::string tuned_refusal(const Call &call, const moe4j_tensor &a, const char *a_name, const moe4j_tensor *weights,
                          int64_t groups, const char *b_name);

// Enqueues the GEMM: the tuned kernel over the rows' tiles (and the padding rows' zeros) or the simple kernel.
moe4j_status launch_fp8_gemm(const Call &call, const GemmOperands &op, const RowGroups &rows, bool tuned);

// A GEMM's view of validated descriptors (c may be null).
GemmOperands gemm_operands(const moe4j_tensor &a, const moe4j_tensor &sfa, const moe4j_tensor *c, const moe4j_tensor &d,
                           int64_t n, int64_t k);

}  // namespace moe4j::cuda
