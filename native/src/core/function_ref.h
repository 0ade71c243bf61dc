// A non-owning reference to a callable, for the thread pool's tasks. std::function copies a callable larger than two
// pointers (any lambda that captures a few locals by reference) to the heap: one allocation per parallel call on the
// decode path. A FunctionRef holds the callable's address and a call stub; the callable must outlive it, which a
// lambda passed straight to a blocking call does.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace moe4j {

template <typename Signature>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
  public:
    template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef> &&
                                                      std::is_invocable_r_v<R, F &, Args...>>>
    FunctionRef(F &&f) noexcept  // NOLINT(google-explicit-constructor): converts like std::function
        : callable_(const_cast<void *>(static_cast<const void *>(std::addressof(f)))),
          call_(&call<std::remove_reference_t<F>>) {}

    R operator()(Args... args) const { return call_(callable_, std::forward<Args>(args)...); }

  private:
    template <typename F>
    static R call(void *f, Args... args) {
        return (*static_cast<F *>(f))(std::forward<Args>(args)...);
    }

    void *callable_;
    R (*call_)(void *, Args...);
};

}  // namespace moe4j
