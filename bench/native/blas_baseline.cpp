#include "blas_baseline.h"

#include <stdexcept>

#if MOE4J_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace bench::blas {

#if MOE4J_BENCH_OPENBLAS

bool available() { return true; }

void set_threads(int threads) { openblas_set_num_threads(threads); }

std::string summary() {
    return std::string(openblas_get_config()) + "  core=" + openblas_get_corename() +
           "  threads=" + std::to_string(openblas_get_num_threads());
}

void sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *w, int64_t ldw, float *d,
              int64_t ldd) {
    const auto i = [](int64_t v) { return static_cast<blasint>(v); };
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i(m), i(n), i(k), 1.0f, a, i(lda), w, i(ldw), 0.0f, d, i(ldd));
}

#else

namespace {

[[noreturn]] void missing() { throw std::logic_error("moe4j_bench was built without OpenBLAS"); }

}  // namespace

bool available() { return false; }
void set_threads(int) { missing(); }
std::string summary() { missing(); }
void sgemm_nt(int64_t, int64_t, int64_t, const float *, int64_t, const float *, int64_t, float *, int64_t) {
    missing();
}

#endif

}  // namespace bench::blas
