// A std::vector whose storage starts on a cache line.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace moe4j {

// Allocates on cache-line (64-byte) boundaries. Rows of a multiple of 16 floats (or 32 bf16) then each start on a
// cache line and a 64-byte (AVX-512) load of one never splits a line; malloc's 16-byte alignment would split three
// loads in four.
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    static constexpr std::align_val_t kAlignment{64};
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U> &) {}
    T *allocate(size_t n) { return static_cast<T *>(::operator new(n * sizeof(T), kAlignment)); }
    void deallocate(T *p, size_t) { ::operator delete(p, kAlignment); }
    friend bool operator==(const CacheLineAllocator &, const CacheLineAllocator &) { return true; }
    friend bool operator!=(const CacheLineAllocator &, const CacheLineAllocator &) { return false; }
};

template <typename T>
using LineVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace moe4j
