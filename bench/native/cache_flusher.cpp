#include "cache_flusher.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace bench {
namespace {

volatile float sink = 0;  // keeps the reads from being optimized away

// The largest cache sysfs lists for cpu0 (what this machine, virtual or not, has). sysconf comes second:
// under a hypervisor glibc may report the host's whole L3.
size_t llc_bytes() {
    size_t largest = 0;
    for (int index = 0; index < 8; ++index) {
        const std::string path = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size";
        std::FILE *file = std::fopen(path.c_str(), "r");
        if (file == nullptr) break;
        unsigned long long size = 0;
        char unit = 0;
        const int fields = std::fscanf(file, "%llu%c", &size, &unit);
        std::fclose(file);
        if (fields >= 1) largest = std::max<size_t>(largest, size << (unit == 'K' ? 10 : unit == 'M' ? 20 : 0));
    }
#ifdef _SC_LEVEL3_CACHE_SIZE
    if (largest == 0) largest = static_cast<size_t>(std::max(sysconf(_SC_LEVEL3_CACHE_SIZE), 0L));
#endif
    return largest;
}

// 4x the last-level cache, within [64 MiB, 512 MiB], a whole number of sum_floats blocks.
size_t flush_bytes() {
    const size_t block = kSumBlockFloats * sizeof(float);
    const size_t bytes = std::clamp<size_t>(4 * llc_bytes(), size_t{64} << 20, size_t{512} << 20);
    return bytes / block * block;
}

}  // namespace

CacheFlusher::CacheFlusher(bool enabled)
    : floats_(enabled ? flush_bytes() / sizeof(float) : 0),
      buffer_(std::max<size_t>(floats_, 1) * sizeof(float)),
      width_(widest_simd_width()) {
    std::fill(buffer_.as<float>(), buffer_.as<float>() + floats_, 1.0f);
}

void CacheFlusher::operator()() const {
    if (floats_ > 0) sink = sum_floats(width_, buffer_.as<float>(), floats_);
}

}  // namespace bench
