// Device memory and copies for CUDA contexts.
#include <cuda_runtime.h>

#include <cstring>
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

// The staging ring's size; copies up to a quarter of it are staged.
constexpr size_t kStagingBytes = size_t{4} << 20;
// Regions in flight at most: past this many the oldest is waited for (in steady decode it finished long ago).
constexpr size_t kMaxStagedRegions = 256;

void release_staged(DeviceState &s) {
    for (const auto &r : s.staged) s.spare_events.push_back(r.event);
    s.staged.clear();
}

// Waits until no region in flight overlaps [begin, end): for the newest that does, and so for all before it (the
// copies run in stream order); their events go back for reuse.
static moe4j_status wait_for_staged(const Call &call, size_t begin, size_t end) {
    DeviceState &s = state(call);
    size_t last = s.staged.size();
    for (size_t i = 0; i < s.staged.size(); ++i)
        if (s.staged[i].begin < end && begin < s.staged[i].end) last = i;
    if (s.staged.size() >= kMaxStagedRegions && last == s.staged.size()) last = 0;
    if (last == s.staged.size()) return MOE4J_OK;
    if (moe4j_status st = check(call.function(), cudaEventSynchronize(s.staged[last].event))) return st;
    for (size_t i = 0; i <= last; ++i) s.spare_events.push_back(s.staged[i].event);
    s.staged.erase(s.staged.begin(), s.staged.begin() + static_cast<std::ptrdiff_t>(last) + 1);
    return MOE4J_OK;
}

moe4j_status copy_to_device(const Call &call, void *dst, const void *src, size_t bytes) {
    DeviceState &s = state(call);
    const char *fn = call.function();
    if (bytes == 0) return MOE4J_OK;
    if (s.staging == nullptr && bytes <= kStagingBytes / 4 &&
        cudaMallocHost(reinterpret_cast<void **>(&s.staging), kStagingBytes) != cudaSuccess) {
        cudaGetLastError();  // no page-locked memory to be had: copy directly, as CUDA does
        s.staging = nullptr;
    }
    if (s.staging == nullptr || bytes > kStagingBytes / 4)
        return check(fn, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream(call)));
    size_t begin = (s.staging_head + 255) / 256 * 256;
    if (begin + bytes > kStagingBytes) begin = 0;
    if (moe4j_status st = wait_for_staged(call, begin, begin + bytes)) return st;
    cudaEvent_t event = nullptr;
    if (!s.spare_events.empty()) {
        event = s.spare_events.back();
        s.spare_events.pop_back();
    } else if (moe4j_status st = check(fn, cudaEventCreateWithFlags(&event, cudaEventDisableTiming))) {
        return st;
    }
    std::memcpy(s.staging + begin, src, bytes);
    cudaError_t err = cudaMemcpyAsync(dst, s.staging + begin, bytes, cudaMemcpyHostToDevice, stream(call));
    if (err == cudaSuccess) err = cudaEventRecord(event, stream(call));
    if (err != cudaSuccess) {
        s.spare_events.push_back(event);
        return check(fn, err);
    }
    s.staged.push_back({begin, begin + bytes, event});
    s.staging_head = begin + bytes;
    return MOE4J_OK;
}

moe4j_status copy(const Call &call, void *dst, int32_t dst_device, const void *src, int32_t src_device, int64_t bytes) {
    const int device = call.ctx()->device;
    const size_t n = static_cast<size_t>(bytes);
    cudaError_t err;
    if (dst_device >= 0 && src_device >= 0 && dst_device != src_device) {
        enable_peer(device, dst_device == device ? src_device : dst_device);
        err = cudaMemcpyPeerAsync(dst, dst_device, src, src_device, n, stream(call));
    } else if (src_device == MOE4J_HOST_MEMORY && dst_device >= 0 && !page_locked(src)) {
        return copy_to_device(call, dst, src, n);
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
