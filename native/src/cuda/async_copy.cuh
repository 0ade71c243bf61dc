// Asynchronous global -> shared copies (cp.async, sm_80 and newer) for the tuned kernels' multi-stage pipelines.
#pragma once

#include <cstdint>

namespace moe4j::cuda {

// The shared-memory address of a generic pointer into shared memory, as PTX instructions take it.
__device__ inline uint32_t shared_address(const void *p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// Copies 16 bytes (both addresses 16-byte aligned), or writes 16 zero bytes when !valid (src is then not read).
__device__ inline void copy_16_async(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}

// Closes the group of copies issued since the last commit.
__device__ inline void commit_copies() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ inline void wait_copies() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

}  // namespace moe4j::cuda
