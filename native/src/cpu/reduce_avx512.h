// The sums of sixteen AVX-512 vectors at once, each in the order of _mm512_reduce_add_ps.
#pragma once

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

namespace moe4j::cpu {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

// The sums of 16 vectors' lanes, sum i in lane i, each added as _mm512_reduce_add_ps adds one vector's lanes (lane
// l + lane l + 8, then + 4, + 2, + 1, GCC's order), so each sum is bitwise that of the one-vector reduction; 15
// additions for the 16 where the one-vector form takes 4 each, and no scalar code.
__attribute__((always_inline)) inline __m512 reduce16_avx512(const __m512 (&v)[16]) {
    __m512 w[8], u[4], s[2];
    for (int p = 0; p < 8; ++p)  // w[p]: lanes 0-7 sum pairs of v[2p] (l, l + 8), lanes 8-15 those of v[2p + 1]
        w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)));
    for (int q = 0; q < 4; ++q)  // u[q]: 128-bit quarter c holds sum 4q + c, four partial sums (l, l + 4)
        u[q] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], _MM_SHUFFLE(3, 1, 3, 1)),
                             _mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], _MM_SHUFFLE(2, 0, 2, 0)));
    for (int r = 0; r < 2; ++r)  // s[r], quarter c: two partials (l, l + 2) of sum 8r + c, then two of 8r + 4 + c
        s[r] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * r], u[2 * r + 1], _MM_SHUFFLE(3, 2, 3, 2)),
                             _mm512_shuffle_ps(u[2 * r], u[2 * r + 1], _MM_SHUFFLE(1, 0, 1, 0)));
    // quarter c, lane t: sum 4t + c; the permutation puts sum i in lane i
    const __m512 sums = _mm512_add_ps(_mm512_shuffle_ps(s[0], s[1], _MM_SHUFFLE(3, 1, 3, 1)),
                                      _mm512_shuffle_ps(s[0], s[1], _MM_SHUFFLE(2, 0, 2, 0)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), sums);
}

#pragma GCC pop_options

}  // namespace moe4j::cpu
