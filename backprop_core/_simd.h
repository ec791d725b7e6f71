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

BP_CLONES static int bp_all_finite_f32(const float* x, Py_ssize_t n) {
    const uint32_t* b = (const uint32_t*)x;
    uint32_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= (b[i] & 0x7f800000u) + 0x00800000u;
    return !(bad >> 31);
}

BP_CLONES static int bp_all_finite_f64(const double* x, Py_ssize_t n) {
    const uint64_t* b = (const uint64_t*)x;
    uint64_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        bad |= (b[i] & 0x7ff0000000000000ull) + 0x0010000000000000ull;
    return !(bad >> 63);
}

#endif
