// Thread-local error reporting: the only mutable state moe4j keeps outside a context.
#pragma once

#include <memory>
#include <new>
#include <string>

#include "moe4j.h"

namespace moe4j {

// Records message as the calling thread's last error and returns status, so a check reads
// `return fail(MOE4J_ERROR_INVALID_ARGUMENT, ...)`.
moe4j_status fail(moe4j_status status, const std::string &message);

// Clears the calling thread's last error; every entry point calls it first.
void clear_error();

// A failed allocation that says what was being allocated: thrown where moe4j allocates on its own (a context's scratch)
// and by injected faults. A std::bad_alloc, so code that handles allocation failure in general handles it too.
class OutOfMemory : public std::bad_alloc {
  public:
    explicit OutOfMemory(const std::string &what) : what_(std::make_shared<const std::string>(what)) {}
    const char *what() const noexcept override { return what_->c_str(); }

  private:
    std::shared_ptr<const std::string> what_;  // shared: copying the exception cannot throw
};

// Runs body(function), turning any escaping C++ exception into a status with a message: nothing throws
// across the ABI. The body gets the entry point's name for its messages (__func__ inside a lambda is
// "operator()"). An exception thrown by a task of the context's thread pool arrives here too: the pool rethrows a
// task's exception on the calling thread once its workers are idle (core/thread_pool.h).
template <typename Body>
moe4j_status guarded(const char *function, Body &&body) {
    clear_error();
    try {
        return body(function);
    } catch (const OutOfMemory &e) {
        return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(function) + ": out of host memory: " + e.what());
    } catch (const std::bad_alloc &) {
        return fail(MOE4J_ERROR_OUT_OF_MEMORY, std::string(function) + ": out of host memory");
    } catch (const std::exception &e) {
        return fail(MOE4J_ERROR_INTERNAL, std::string(function) + ": internal error: " + e.what());
    } catch (...) {
        return fail(MOE4J_ERROR_INTERNAL, std::string(function) + ": internal error: an unknown exception");
    }
}

}  // namespace moe4j
