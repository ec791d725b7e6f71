/* Finiteness scans, compiled per instruction set.
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
#    define BP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
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

BP_CLONES BP_UNUSED static int bp_all_finite_f32(const float* x, Py_ssize_t n) {
    const uint32_t* b = (const uint32_t*)x;
    uint32_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= (b[i] & 0x7f800000u) + 0x00800000u;
    return !(bad >> 31);
}

BP_CLONES BP_UNUSED static int bp_all_finite_f64(const double* x, Py_ssize_t n) {
    const uint64_t* b = (const uint64_t*)x;
    uint64_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        bad |= (b[i] & 0x7ff0000000000000ull) + 0x0010000000000000ull;
    return !(bad >> 63);
}

/* Largest |x[i]| as its bit pattern, for the gradient bound in the executor: the bits of a
 * non-negative float compare as unsigned integers in the same order as the values, and a NaN
 * or an infinity gives a result >= the exponent mask (0x7f800000 / 0x7ff0000000000000). An
 * unsigned max over masked bits vectorises, like the scans above. */
BP_CLONES BP_UNUSED static uint32_t bp_max_abs_bits_f32(const float* x, Py_ssize_t n) {
    const uint32_t* b = (const uint32_t*)x;
    uint32_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t v = b[i] & 0x7fffffffu;
        m = v > m ? v : m;
    }
    return m;
}

BP_CLONES BP_UNUSED static uint64_t bp_max_abs_bits_f64(const double* x, Py_ssize_t n) {
    const uint64_t* b = (const uint64_t*)x;
    uint64_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t v = b[i] & 0x7fffffffffffffffull;
        m = v > m ? v : m;
    }
    return m;
}

/* x[i] := exp(x[i]) for float32, in place (one pointer: no aliasing check), vectorisable (libm's expf is a scalar call, ~3 ns each:
 * the softmax cross-entropy's exponentials were a seventh of a 64-32-10 step). Cephes' expf:
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

#endif
