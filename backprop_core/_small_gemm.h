/* Small products without BLAS: C := alpha * op(A) @ B + beta * C, row-major, op(A) = A or
 * A.T, for the sizes of small networks (S: 32x64x32), where a BLAS call spends as long in its
 * fixed cost and packing as in its kernel (bench/NOTES.md, 2026-12-02 19:30).
 *
 * Tiles of 4 rows by 2 vectors of C (16 floats, 8 doubles) live in 8 accumulators across the
 * whole inner dimension: per k, two loads of B, four broadcasts of op(A) and eight
 * multiply-adds. The columns past the last whole vector of B are first copied into a zeroed
 * (k, 1 vector) panel, so every tile runs the same code and stores only its live columns.
 * GCC's vector extensions, not intrinsics: the same source is the FMA clone (AVX + FMA3),
 * the AVX-512 clone and the baseline SSE2 one, chosen at load time like _simd.h's.
 */
#ifndef BACKPROP_SMALL_GEMM_H
#define BACKPROP_SMALL_GEMM_H

#include <stddef.h>
#include <string.h>

#include "_simd.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#  if __has_attribute(target_clones)
#    if defined(BP_SIMD_ONLY_AVX512F)
#      define BP_CLONES_FMA __attribute__((target("avx512f")))
#    elif defined(BP_SIMD_ONLY_AVX2)
#      define BP_CLONES_FMA __attribute__((target("avx2,fma")))
#    elif defined(BP_SIMD_ONLY_DEFAULT)
#      define BP_CLONES_FMA
#    else
/* "fma" (which implies AVX), not "avx2": the kernel needs 256-bit floats and fused
 * multiply-adds, and GCC's "avx2" target does not enable FMA3 */
#      define BP_CLONES_FMA __attribute__((target_clones("avx512f", "fma", "default")))
#    endif
#  endif
#endif
#ifndef BP_CLONES_FMA
#  define BP_CLONES_FMA
#endif

/* the longest inner dimension the kernel takes: the tail panel (k x 1 vector) is on the stack */
#define BP_SMALL_GEMM_K_MAX 512

#define BP_SMALL_GEMM(BP_T, BP_W, BP_S)                                                      \
typedef BP_T bp_vec_##BP_S __attribute__((vector_size(32)));                                 \
                                                                                             \
/* one tile: rows r0 .. r0+rows-1 (rows <= 4) of op(A) times the panel P:(k, 2 vectors) with \
 * row stride ldp; C's columns j0 .. j0+cols-1 (cols <= 2 vectors) are written */              \
static inline __attribute__((always_inline)) void bp_tile_##BP_S(                          \
        Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t k, BP_T alpha, const BP_T* A,           \
        Py_ssize_t a_i, Py_ssize_t a_p, const BP_T* P, Py_ssize_t ldp, BP_T beta, BP_T* C,   \
        Py_ssize_t ldc) {                                                                    \
    bp_vec_##BP_S c[4][2];                                                                   \
    memset(c, 0, sizeof(c));                                                                 \
    for (Py_ssize_t p = 0; p < k; p++) {                                                     \
        bp_vec_##BP_S b0, b1;                                                                \
        memcpy(&b0, P + p * ldp, sizeof(b0));                                                \
        memcpy(&b1, P + p * ldp + BP_W, sizeof(b1));                                         \
        const BP_T* a = A + p * a_p;                                                         \
        /* rows past `rows` read row 0 again: their sums are never stored */                 \
        BP_T a0 = a[0], a1 = a[(rows > 1) * a_i], a2 = a[(rows > 2) * 2 * a_i],              \
             a3 = a[(rows > 3) * 3 * a_i];                                                   \
        c[0][0] += a0 * b0; c[0][1] += a0 * b1;                                              \
        c[1][0] += a1 * b0; c[1][1] += a1 * b1;                                              \
        c[2][0] += a2 * b0; c[2][1] += a2 * b1;                                              \
        c[3][0] += a3 * b0; c[3][1] += a3 * b1;                                              \
    }                                                                                        \
    for (Py_ssize_t r = 0; r < rows; r++) {                                                  \
        BP_T out[2 * BP_W];                                                                  \
        memcpy(out, c[r], sizeof(out));                                                      \
        BP_T* dst = C + r * ldc;                                                             \
        if (beta == 0) {                                                                     \
            for (Py_ssize_t j = 0; j < cols; j++) dst[j] = alpha * out[j];                   \
        } else {                                                                             \
            for (Py_ssize_t j = 0; j < cols; j++) dst[j] = alpha * out[j] + beta * dst[j];   \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
                                                                                             \
/* C:(m, n) := alpha * op(A) @ B + beta * C (beta == 0: C is not read), B:(k, n) with row   \
 * stride ldb; op(A)[i, p] is A[i * lda + p], or A[p * lda + i] when trans_a. k <=          \
 * BP_SMALL_GEMM_K_MAX. */                                                                   \
BP_CLONES_FMA BP_UNUSED static void bp_small_gemm_##BP_S(                                    \
        int trans_a, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, BP_T alpha, const BP_T* A,    \
        Py_ssize_t lda, const BP_T* B, Py_ssize_t ldb, BP_T beta, BP_T* C, Py_ssize_t ldc) { \
    const Py_ssize_t a_i = trans_a ? 1 : lda, a_p = trans_a ? lda : 1;                       \
    /* the columns past the last whole pair of vectors, zero-padded to a pair */             \
    BP_T panel[BP_SMALL_GEMM_K_MAX * 2 * BP_W];                                              \
    const Py_ssize_t whole = n - n % (2 * BP_W), rest = n - whole;                           \
    if (rest) {                                                                              \
        memset(panel, 0, (size_t)k * 2 * BP_W * sizeof(BP_T));                               \
        for (Py_ssize_t p = 0; p < k; p++)                                                   \
            memcpy(panel + p * 2 * BP_W, B + p * ldb + whole, (size_t)rest * sizeof(BP_T));  \
    }                                                                                        \
    for (Py_ssize_t i = 0; i < m; i += 4) {                                                  \
        const Py_ssize_t rows = m - i < 4 ? m - i : 4;                                       \
        for (Py_ssize_t j = 0; j < whole; j += 2 * BP_W)                                     \
            bp_tile_##BP_S(rows, 2 * BP_W, k, alpha, A + i * a_i, a_i, a_p, B + j, ldb,      \
                           beta, C + i * ldc + j, ldc);                                      \
        if (rest)                                                                            \
            bp_tile_##BP_S(rows, rest, k, alpha, A + i * a_i, a_i, a_p, panel, 2 * BP_W,     \
                           beta, C + i * ldc + whole, ldc);                                  \
    }                                                                                        \
}

BP_SMALL_GEMM(float, 8, f32)
BP_SMALL_GEMM(double, 4, f64)
#undef BP_SMALL_GEMM

#endif
