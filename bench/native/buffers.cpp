#include "buffers.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace bench {

namespace {

// splitmix64: fast, and good enough for test data.
uint64_t next_random(uint64_t &state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [-range, range) from the top 24 bits of a random word.
float to_uniform(uint64_t bits, float range) {
    const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);
    return (2.0f * unit - 1.0f) * range;
}

uint16_t bf16_round(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace

AlignedBuffer::AlignedBuffer(size_t bytes, size_t alignment) : bytes_(bytes) {
    constexpr size_t kHugePage = size_t{2} << 20;
    const bool huge = bytes >= kHugePage && alignment <= kHugePage;
    if (huge) alignment = kHugePage;
    const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    data_ = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
    if (data_ == nullptr) throw std::bad_alloc();
    if (huge) madvise(data_, rounded, MADV_HUGEPAGE);  // advice: without huge pages the buffer works as it is
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

void fill_random_f32(float *out, size_t n, uint64_t seed, float range) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; ++i) out[i] = to_uniform(next_random(state), range);
}

void fill_random_bf16(uint16_t *out, size_t n, uint64_t seed, float range) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; ++i) out[i] = bf16_round(to_uniform(next_random(state), range));
}

void fill_random_range_f32(float *out, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t state = seed;
    const float half = 0.5f * (hi - lo), mid = 0.5f * (hi + lo);
    for (size_t i = 0; i < n; ++i) out[i] = mid + to_uniform(next_random(state), half);
}

void fill_random_e4m3(uint8_t *out, size_t n, uint64_t seed) {
    uint64_t state = seed;
    size_t i = 0;
    while (i < n) {
        // Eight codes per random word; a NaN code is dropped and the next byte takes its place.
        uint64_t bits = next_random(state);
        for (int b = 0; b < 8 && i < n; ++b, bits >>= 8) {
            const uint8_t code = static_cast<uint8_t>(bits);
            if ((code & 0x7F) != 0x7F) out[i++] = code;
        }
    }
}

float bf16_to_f32(uint16_t bits) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &wide, sizeof value);
    return value;
}

}  // namespace bench
