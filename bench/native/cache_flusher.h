// Cold-cache timing: evicts the last-level cache between timed calls.
#pragma once

#include <cstddef>

#include "buffers.h"
#include "machine.h"

namespace bench {

// Evicts the last-level cache by reading a buffer several times its size, so that the next call finds its
// operands in memory, as a model's layers do when their weights do not all fit in cache. Off: does nothing.
class CacheFlusher {
  public:
    explicit CacheFlusher(bool enabled);

    void operator()() const;
    size_t bytes() const { return floats_ * sizeof(float); }

  private:
    size_t floats_;
    AlignedBuffer buffer_;
    SimdWidth width_;
};

}  // namespace bench
