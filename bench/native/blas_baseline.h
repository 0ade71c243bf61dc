// OpenBLAS as a reference point for the GEMM benchmark. Only moe4j_bench links it, never libmoe4j; without it
// (MOE4J_BENCH_OPENBLAS=0 at build time) available() is false and the other calls must not be made.
#pragma once

#include <cstdint>
#include <string>

namespace bench::blas {

bool available();
// Runs OpenBLAS with this many threads.
void set_threads(int threads);
// One line: OpenBLAS version and build options, kernel family, threads.
std::string summary();
// d[m, n] = a[m, k] * w[n, k]^T in fp32, all row-major with leading dimensions lda, ldw, ldd
// (cblas_sgemm with CblasRowMajor, CblasNoTrans, CblasTrans, alpha 1, beta 0).
void sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *w, int64_t ldw, float *d,
              int64_t ldd);

}  // namespace bench::blas
