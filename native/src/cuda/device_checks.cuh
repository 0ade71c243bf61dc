// Argument checks that kernels make on index tables in device memory. Each context owns one DeviceFault in device
// memory; the first kernel to find a bad entry claims it (atomicCAS on `fault`) and records what and where, later
// faults are dropped until the host has reported it (moe4j.h, "Execution"). A kernel that flags an entry never
// dereferences it: it skips or zeroes what the entry would have addressed.
#pragma once

#include <cstdint>

namespace moe4j::cuda {

// What was wrong; the host turns it into the message the host-side validation of a CPU context gives.
enum class Fault : int32_t {
    None = 0,
    GatherIndex,       // v: entry, value, limit
    CombineIndex,      // v: token, rank, value, limit
    LayoutGroup,       // v: row, group, groups
    LayoutMixed,       // v: block start, alignment, row, group; v[4]: the block's earlier group
    MaskedCount,       // v: group, count, M_max
    SeqlenNegative,    // v: sequence, length
    SeqlenTooLong,     // v: sequence, length, max_blocks
    BlockId,           // v: sequence, entry, block, num_blocks
    SlotRange,         // v: token, slot, slots
    SlotTwice,         // v: slot, first token, second token
    PositionNegative,  // v: entry, value
};

struct DeviceFault {
    int32_t fault;  // a Fault; None while nothing was found
    int32_t reserved;
    uint64_t function;  // the entry point's name (a pointer to static storage), as an integer
    int64_t v[5];
};

// What a kernel needs to record a fault: the context's record and the name of the call that launched the kernel.
struct FaultSink {
    DeviceFault *record;
    uint64_t function;
};

__device__ inline void report(const FaultSink &sink, Fault fault, int64_t v0, int64_t v1 = 0, int64_t v2 = 0,
                              int64_t v3 = 0, int64_t v4 = 0) {
    if (atomicCAS(&sink.record->fault, 0, static_cast<int32_t>(fault)) != 0) return;
    sink.record->function = sink.function;
    sink.record->v[0] = v0;
    sink.record->v[1] = v1;
    sink.record->v[2] = v2;
    sink.record->v[3] = v3;
    sink.record->v[4] = v4;
}

}  // namespace moe4j::cuda
