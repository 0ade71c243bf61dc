// Aligned host buffers and random test data.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bench {

// An uninitialized, aligned heap buffer. Throws std::bad_alloc when the allocation fails. From 2 MiB on it is aligned
// to 2 MiB and advised for transparent huge pages, as a model's weights are on the CPU (moe4j_alloc from 8 MiB on, the
// model's weight arena cutting smaller matrices from such blocks): weights and the read-bandwidth probe then stream
// memory through the pages the library's models read. Software prefetches a page ahead, say, behave differently on
// 4 KiB pages.
class AlignedBuffer {
  public:
    explicit AlignedBuffer(size_t bytes, size_t alignment = 64);
    ~AlignedBuffer();
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;

    size_t size() const { return bytes_; }
    void *data() const { return data_; }
    template <typename T>
    T *as() const {
        return static_cast<T *>(data_);
    }

  private:
    void *data_;
    size_t bytes_;
};

// Uniform values in [-range, range) from a fixed seed; bf16 values are fp32 ones rounded to nearest even.
void fill_random_f32(float *out, size_t n, uint64_t seed, float range = 4.0f);
void fill_random_bf16(uint16_t *out, size_t n, uint64_t seed, float range = 4.0f);

// The float a bf16 bit pattern stands for.
float bf16_to_f32(uint16_t bits);
// Uniform values in [lo, hi) from a fixed seed.
void fill_random_range_f32(float *out, size_t n, uint64_t seed, float lo, float hi);
// Random positive block scales for e4m3 data (amax 0.5 .. 1.5): products stay in a bf16/f32 output's comfortable
// range.
inline constexpr float kScaleLo = 0.5f / 448, kScaleHi = 1.5f / 448;
// Uniformly random e4m3 codes: every byte except the NaN codes 0x7F and 0xFF.
void fill_random_e4m3(uint8_t *out, size_t n, uint64_t seed);

}  // namespace bench
