// Cold-cache timing: evicts the last-level cache between timed calls.
#pragma once

#include <cstddef>

#include "buffers.h"
#include "machine.h"
#include "timing.h"

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

// Calls this long get one warm-up call and at least 3 timed ones (not 10).
constexpr double kSlowCallSeconds = 0.05;

// Warms up (thread pools, first touch of the outputs, code), then times repeated calls, each after a cache
// flush: at least 10 and 0.25 s, or for slow calls one warm-up call and at least 3 timed ones; fixed_reps > 0
// fixes the count.
template <typename Fn>
Stats time_cold(int fixed_reps, const CacheFlusher &flush, Fn &&fn) {
    const Timer first;
    fn();
    const double first_seconds = first.seconds();
    if (first_seconds < kSlowCallSeconds) fn();
    RepPolicy policy;
    policy.fixed_reps = fixed_reps;
    if (first_seconds >= kSlowCallSeconds) policy.min_reps = 3;
    return summarize(time_calls(policy, flush, fn));
}

}  // namespace bench
