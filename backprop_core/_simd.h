/* Kernels compiled per instruction set: finiteness scans, exp, and the element-wise passes.
 *
 * A value is NaN or infinite iff its exponent bits are all ones, that is iff
 * (bits & EXP) + EXP_LSB carries into the sign bit; AND/ADD/OR over an array vectorises (an
 * isfinite() loop with an early exit does not). Portable wheels are built for baseline x86-64
 * (SSE2), where this loop runs at a quarter of its AVX-512 speed, and it runs on every
 * training step (over all gradients), so GCC/clang on x86-64 Linux get AVX2 and AVX-512 clones
 * chosen at load time (ifunc); elsewhere it is the plain loop. bench/NOTES.md has the figures.
 */
#ifndef BACKPROP_SIMD_H
#define BACKPROP_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#  if __has_attribute(target_clones)
/* BP_SIMD_ONLY_*: one clone alone, no load-time choice (setup.py's BACKPROP_SIMD, so that CI
 * runs the kernel tests against each clone on one machine; never for wheels) */
#    if defined(BP_SIMD_ONLY_AVX512F)
#      define BP_CLONES __attribute__((target("avx512f")))
#    elif defined(BP_SIMD_ONLY_AVX2)
#      define BP_CLONES __attribute__((target("avx2")))
#    elif defined(BP_SIMD_ONLY_DEFAULT)
#      define BP_CLONES
#    else
#      define BP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#    endif
#  endif
#endif
#ifndef BP_CLONES
#  define BP_CLONES
#endif
#if defined(__GNUC__)
#  define BP_UNUSED __attribute__((unused))  /* each module uses some of these */
#else
#  define BP_UNUSED
#endif

/* The scans, per precision (BP_T: the element type, BP_U: the unsigned integer of its size,
 * BP_EXP: its exponent mask, BP_LSB: the exponent's lowest bit, BP_S: the name suffix).
 * bp_all_finite: NaN and infinity are the values whose exponent bits are all ones (see above).
 * bp_max_abs_bits: the largest |x[i]| as its bit pattern, for the gradient bound in the
 * executor: the bits of a non-negative float compare as unsigned integers in the same order
 * as the values, and a NaN or an infinity gives a result >= the exponent mask. An unsigned
 * max over masked bits vectorises, like the OR-reduction. */
#define BP_SCANS(BP_T, BP_U, BP_EXP, BP_LSB, BP_S)                                            \
BP_CLONES BP_UNUSED static int bp_all_finite_##BP_S(const BP_T* x, Py_ssize_t n) {            \
    const BP_U* b = (const BP_U*)x;                                                          \
    BP_U bad = 0;                                                                            \
    for (Py_ssize_t i = 0; i < n; i++) bad |= (b[i] & BP_EXP) + BP_LSB;                     \
    return !(bad >> (8 * sizeof(BP_U) - 1));                                                 \
}                                                                                            \
                                                                                             \
BP_CLONES BP_UNUSED static BP_U bp_max_abs_bits_##BP_S(const BP_T* x, Py_ssize_t n) {         \
    const BP_U* b = (const BP_U*)x;                                                          \
    BP_U m = 0;                                                                              \
    for (Py_ssize_t i = 0; i < n; i++) {                                                     \
        BP_U v = b[i] & ~((BP_U)1 << (8 * sizeof(BP_U) - 1));                                \
        m = v > m ? v : m;                                                                   \
    }                                                                                        \
    return m;                                                                                \
}

BP_SCANS(float, uint32_t, 0x7f800000u, 0x00800000u, f32)
BP_SCANS(double, uint64_t, 0x7ff0000000000000ull, 0x0010000000000000ull, f64)
#undef BP_SCANS

/* 1 if some y[i] lies outside [0, k) (k >= 1), else 0. y[i] < 0 sets its sign bit, and for
 * y[i] >= 0, (k - 1) - y[i] is negative (its top bit set) iff y[i] >= k; unsigned arithmetic,
 * so a negative y[i] cannot overflow. OR and SUB only: this vectorises on every clone (a
 * 64-bit comparison loop does not on baseline x86-64 and is emulated on AVX2). */
BP_CLONES BP_UNUSED static int bp_any_label_outside(const int64_t* y, Py_ssize_t n, int64_t k) {
    const uint64_t last = (uint64_t)(k - 1);
    uint64_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= (uint64_t)y[i] | (last - (uint64_t)y[i]);
    return (int)(bad >> 63);
}

/* x[i] := exp(x[i]) for float32, in place (one pointer: no aliasing check), vectorisable
 * (libm's expf is a scalar call, ~3 ns each: the softmax cross-entropy's exponentials were a seventh of a 64-32-10 step). Cephes' expf:
 * x = k ln2 + r with |r| <= ln2/2 (k rounded by the 1.5 * 2**23 trick, r by a two-part ln2),
 * exp(r) by a degree-7 polynomial, 2**k from the exponent bits. x < -87.33654 (ln FLT_MIN) gives 0 (exp
 * underflows there; no subnormals) and x > 88.72283 (ln FLT_MAX) gives inf; NaN gives NaN. */
BP_CLONES BP_UNUSED static void bp_exp_inplace_f32(float* x, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        float v = x[i];
        float c = v < -87.33654f ? -87.33654f : (v > 88.72283f ? 88.72283f : v);
        float k = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
        float r = (c - k * 0.693359375f) - k * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * (r * r) + r + 1.0f;
        /* 2**k as 2**k1 * 2**k2 from exponent bits, k1 + k2 = k: both stay normal for
           k in [-126, 128] (k = 128 near x = 88.72 has no single float exponent) */
        int32_t ki = (int32_t)k, k1 = ki >> 1, k2 = ki - k1;
        union { uint32_t u; float f; } s1, s2;
        s1.u = (uint32_t)(k1 + 127) << 23;
        s2.u = (uint32_t)(k2 + 127) << 23;
        float e = (p * s1.f) * s2.f;
        x[i] = v < -87.33654f ? 0.0f : (v > 88.72283f ? INFINITY : e);
    }
}

/* Element-wise passes of every training step, in both precisions (BP_T: the element type,
 * BP_S: the name suffix), each in the operation order of the plain loop it replaces. Only the
 * vector width changes (SSE2 for a portable wheel's Cython loops, a quarter of AVX-512's
 * speed), except that GCC's avx512f clone contracts a*b+c into one FMA: the update's last bit
 * can differ between an AVX-512 machine and others (within a rounding of each term). */
#define BP_ELEMENTWISE(BP_T, BP_S)                                                           \
/* w -= lr * (g + wd*w), or with momentum mu: d = g + wd*w; v := mu*v + d;                  \
   w -= lr * (d + mu*v if nesterov else v)   (torch.optim.SGD, dampening 0) */              \
BP_CLONES BP_UNUSED static void bp_sgd_##BP_S(BP_T* w, const BP_T* g, BP_T* v, Py_ssize_t n, \
                                              BP_T lr, BP_T mu, int nesterov, BP_T wd,      \
                                              int momentum) {                               \
    Py_ssize_t i;                                                                           \
    if (!momentum) {                                                                        \
        for (i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);                             \
    } else if (nesterov) {                                                                  \
        for (i = 0; i < n; i++) {                                                           \
            BP_T d = g[i] + wd * w[i], vi = mu * v[i] + d;                                  \
            v[i] = vi;                                                                      \
            w[i] -= lr * (d + mu * vi);                                                     \
        }                                                                                   \
    } else {                                                                                \
        for (i = 0; i < n; i++) {                                                           \
            BP_T d = g[i] + wd * w[i], vi = mu * v[i] + d;                                  \
            v[i] = vi;                                                                      \
            w[i] -= lr * vi;                                                                \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
/* Adam: d = g + wd*w; m := b1 m + c1 d; v := b2 v + c2 d^2;                                \
   w -= step * m / (sqrt(v) * inv_sqrt_bc2 + eps) */                                        \
BP_CLONES BP_UNUSED static void bp_adam_##BP_S(BP_T* w, const BP_T* g, BP_T* m, BP_T* v,     \
                                               Py_ssize_t n, BP_T b1, BP_T b2, BP_T c1,     \
                                               BP_T c2, BP_T wd, BP_T step,                 \
                                               BP_T inv_sqrt_bc2, BP_T eps) {               \
    for (Py_ssize_t i = 0; i < n; i++) {                                                    \
        BP_T d = g[i] + wd * w[i];                                                          \
        BP_T mi = b1 * m[i] + c1 * d;                                                       \
        BP_T vi = b2 * v[i] + c2 * d * d;                                                   \
        m[i] = mi;                                                                          \
        v[i] = vi;                                                                          \
        w[i] -= step * mi / (sqrt(vi) * inv_sqrt_bc2 + eps);                                \
    }                                                                                       \
}                                                                                           \
/* A := max(Z, 0) as z <= 0 ? 0 : z: -0 gives 0 and NaN stays NaN (as NumPy's and torch's    \
   relu), so a NaN reaches the loss and the step is refused; A may be Z */                  \
BP_CLONES BP_UNUSED static void bp_relu_##BP_S(const BP_T* Z, BP_T* A, Py_ssize_t n) {       \
    for (Py_ssize_t i = 0; i < n; i++) {                                                    \
        BP_T z = Z[i];                                                                      \
        A[i] = z <= 0 ? 0 : z;                                                              \
    }                                                                                       \
}                                                                                           \
/* dZ := dA where A > 0, else 0; dZ may be dA (loaded before the select: branch-free) */     \
BP_CLONES BP_UNUSED static void bp_relu_backward_##BP_S(const BP_T* A, const BP_T* dA,       \
                                                        BP_T* dZ, Py_ssize_t n) {           \
    for (Py_ssize_t i = 0; i < n; i++) {                                                    \
        BP_T d = dA[i];                                                                     \
        dZ[i] = A[i] > 0 ? d : 0;                                                           \
    }                                                                                       \
}                                                                                           \
/* db := column sums of dY:(n, m). A row-by-row loop runs a short, partly scalar vector loop  \
   per row when m is narrow (m = 10: 2 lanes left over of every 8 or 16), so r rows at a time  \
   are summed as one flat block of L = r*m items, L a multiple of 16 (r = 16/gcd(m, 16)), into \
   L accumulators, which are folded at the end: column j sums its rows i = q mod r in row      \
   order (the last n mod r rows join q = 0), then the r partial sums in order of q.            \
   Deterministic for a given (n, m). */                                                       \
BP_CLONES BP_UNUSED static void bp_colsum_##BP_S(const BP_T* dY, BP_T* db, Py_ssize_t n,     \
                                                 Py_ssize_t m) {                            \
    BP_T acc[512];                                                                          \
    Py_ssize_t i, j, k, q, r = 16, L, blocks;                                               \
    while (m % r) r /= 2;                                                                   \
    r = 16 / r;                                                                             \
    L = r * m;                                                                              \
    if (L > 512 || n < 2 * r) {                                                             \
        for (j = 0; j < m; j++) db[j] = 0;                                                  \
        for (i = 0; i < n; i++)                                                             \
            for (j = 0; j < m; j++) db[j] += dY[i * m + j];                                 \
        return;                                                                             \
    }                                                                                       \
    blocks = n / r;                                                                         \
    for (k = 0; k < L; k++) acc[k] = dY[k];                                                 \
    for (i = 1; i < blocks; i++)                                                            \
        for (k = 0; k < L; k++) acc[k] += dY[i * L + k];                                    \
    for (i = blocks * r; i < n; i++)  /* the last n mod r rows, into the q = 0 slots */      \
        for (j = 0; j < m; j++) acc[j] += dY[i * m + j];                                    \
    for (j = 0; j < m; j++) db[j] = acc[j];                                                 \
    for (q = 1; q < r; q++)                                                                 \
        for (j = 0; j < m; j++) db[j] += acc[q * m + j];                                    \
}                                                                                           \
/* Y[i, :] += b for every row of Y:(n, m), after a small product (_dense_forward) */         \
BP_CLONES BP_UNUSED static void bp_add_rows_##BP_S(BP_T* Y, const BP_T* b, Py_ssize_t n,     \
                                                   Py_ssize_t m) {                          \
    for (Py_ssize_t i = 0; i < n; i++)                                                      \
        for (Py_ssize_t j = 0; j < m; j++) Y[i * m + j] += b[j];                            \
}

BP_ELEMENTWISE(float, f32)
BP_ELEMENTWISE(double, f64)
#undef BP_ELEMENTWISE

/* Bookkeeping for a running product: returns p's mantissa (in [1, 2)) and adds p's exponent
 * to *e. Exact (only exponent bits move); for p normal and positive. The softmax
 * cross-entropy sums log(s_i) over rows as log(prod s_i) = e ln 2 + log(mantissa): one libm
 * log per batch instead of one per row (s_i in [1, m], so a product never overflows when it
 * is renormalised after every factor). */
static inline double bp_renorm(double p, int64_t* e) {
    union { double d; uint64_t u; } b;
    b.d = p;
    *e += (int64_t)(b.u >> 52) - 1023;
    b.u = (b.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    return b.d;
}

#endif
