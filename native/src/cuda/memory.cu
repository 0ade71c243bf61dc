// Device memory and copies for CUDA contexts.
#include <cuda_runtime.h>

#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "cuda_backend.h"
#include "cuda_state.h"

namespace moe4j::cuda {

moe4j_status alloc(const Call &call, int64_t bytes, void **out) {
    const cudaError_t err = cudaMalloc(out, static_cast<size_t>(bytes));
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        *out = nullptr;
        return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(call.function()) + ": cannot allocate " +
                                                   std::to_string(bytes) + " bytes on CUDA device " +
                                                   std::to_string(call.ctx()->device));
    }
    return check(call.function(), err);
}

moe4j_status free(const Call &call, void *ptr) {
    // Work of this context enqueued earlier may still use the memory. (cudaFree waits for the device too; this says so
    // explicitly and covers this context's stream whatever the runtime does.)
    if (moe4j_status s = check(call.function(), cudaStreamSynchronize(stream(call)))) return s;
    return check(call.function(), cudaFree(ptr));
}

// Enables peer access from the context's device to `peer` once; a pair that cannot is copied through host memory by
// cudaMemcpyPeerAsync itself.
// Failures are not errors of the copy (it stages instead): they are cleared, so that the launch-error check after the
// call does not see them.
static void enable_peer(int device, int peer) {
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, device, peer) == cudaSuccess && can) cudaDeviceEnablePeerAccess(peer, 0);
    cudaGetLastError();
}

// Whether CUDA reads `p` asynchronously in a host-to-device copy: page-locked (cudaMallocHost, cudaHostRegister)
// memory is read by the DMA engine later; pageable memory is staged into CUDA's own buffers before cudaMemcpyAsync
// returns.
static bool page_locked(const void *p) {
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
        cudaGetLastError();
        return true;  // unknown: assume the worst and wait
    }
    return attributes.type == cudaMemoryTypeHost;
}

moe4j_status copy(const Call &call, void *dst, int32_t dst_device, const void *src, int32_t src_device, int64_t bytes) {
    const int device = call.ctx()->device;
    const size_t n = static_cast<size_t>(bytes);
    cudaError_t err;
    if (dst_device >= 0 && src_device >= 0 && dst_device != src_device) {
        enable_peer(device, dst_device == device ? src_device : dst_device);
        err = cudaMemcpyPeerAsync(dst, dst_device, src, src_device, n, stream(call));
    } else {
        err = cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream(call));
    }
    if (moe4j_status s = check(call.function(), err)) return s;
    // To host memory: the caller reads dst when we return, so wait (and report what earlier calls left behind).
    if (dst_device == MOE4J_HOST_MEMORY) return wait_and_report(call);
    // From page-locked host memory: the caller may reuse src when we return, so wait until CUDA has read it.
    if (src_device == MOE4J_HOST_MEMORY && page_locked(src))
        return check(call.function(), cudaStreamSynchronize(stream(call)));
    return MOE4J_OK;
}

moe4j_status synchronize(const Call &call) { return wait_and_report(call); }

}  // namespace moe4j::cuda
