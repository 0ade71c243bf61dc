// Wall-clock timing and summaries of repeated measurements.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace bench {

class Timer {
  public:
    Timer() : start_(std::chrono::steady_clock::now()) {}
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

  private:
    std::chrono::steady_clock::time_point start_;
};

struct Stats {
    double best = 0;    // smallest sample
    double median = 0;  // middle sample (mean of the two middle ones for an even count)
    int count = 0;
};

inline Stats summarize(std::vector<double> samples) {
    Stats s;
    s.count = static_cast<int>(samples.size());
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    const size_t n = samples.size();
    s.best = samples.front();
    s.median = n % 2 == 1 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
    return s;
}

// How many times to run a timed call: exactly `fixed_reps` when non-zero, otherwise at least
// `min_reps` and then more until `min_seconds` have been spent, up to `max_reps`.
struct RepPolicy {
    int fixed_reps = 0;
    int min_reps = 10;
    int max_reps = 20000;
    double min_seconds = 0.25;
};

// Times fn() repeatedly and returns each call's duration in seconds. before() runs ahead of every call,
// untimed (to evict caches, say); min_seconds counts the time it takes too.
template <typename Before, typename Fn>
std::vector<double> time_calls(const RepPolicy &policy, Before &&before, Fn &&fn) {
    std::vector<double> samples;
    const Timer total;
    for (;;) {
        const int done = static_cast<int>(samples.size());
        if (policy.fixed_reps > 0
                ? done >= policy.fixed_reps
                : done >= policy.max_reps || (done >= policy.min_reps && total.seconds() >= policy.min_seconds))
            break;
        before();
        const Timer t;
        fn();
        samples.push_back(t.seconds());
    }
    return samples;
}

template <typename Fn>
std::vector<double> time_calls(const RepPolicy &policy, Fn &&fn) {
    const auto nothing = [] {};
    return time_calls(policy, nothing, fn);
}

}  // namespace bench
