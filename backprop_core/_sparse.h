/* First-layer kernels for a CSR input batch: X @ W and the scatter of X.T @ dY into W.
 *
 * X is given by a CSR matrix (indptr: int64, absolute offsets into indices/data; indices:
 * int32 columns) and the batch's rows of it: rows[r] (rows != NULL, a shuffled batch read in
 * place: no gather) or first + r. Duplicate columns in a row are summed, and column order does
 * not matter, as in scipy. Each entry moves one row of W (m items): the inner loops are that row
 * scaled into an output row, vectorised in the clones of _simd.h.
 */
#ifndef BACKPROP_SPARSE_H
#define BACKPROP_SPARSE_H

#include "_simd.h"

/* Rows of W are read in the columns' order, which is random: each is a cache miss the hardware
 * cannot foresee, so the kernels ask for the row BP_AHEAD entries ahead (within a row of X) while
 * they work on this one (8 and 16 entries ahead measured alike here, 32 slower). */
#define BP_AHEAD 16

static inline void bp_prefetch_row(const void* p, size_t bytes, int write) {
    const char* c = (const char*)p;
#if defined(__GNUC__)
    for (size_t i = 0; i < bytes; i += 64) {
        if (write) __builtin_prefetch(c + i, 1, 3);
        else __builtin_prefetch(c + i, 0, 3);
    }
#else
    (void)c; (void)bytes; (void)write;
#endif
}

#define BP_CSR(BP_T, BP_S)                                                                    \
/* Y[r, :] := b + sum over row src(r)'s entries k of data[k] W[indices[k], :]                 \
   Y:(n, m) W:(n_in, m) b:(m,) */                                                             \
BP_CLONES BP_UNUSED static void bp_csr_forward_##BP_S(                                       \
        const int64_t* indptr, const int32_t* indices, const BP_T* data, const int64_t* rows, \
        Py_ssize_t first, Py_ssize_t n, const BP_T* W, const BP_T* b, BP_T* Y, Py_ssize_t m) { \
    for (Py_ssize_t r = 0; r < n; r++) {                                                     \
        int64_t src = rows != NULL ? rows[r] : (int64_t)(first + r);                          \
        BP_T* restrict y = Y + r * m;                                                         \
        const int64_t end = indptr[src + 1];                                                  \
        for (Py_ssize_t j = 0; j < m; j++) y[j] = b[j];                                       \
        for (int64_t k = indptr[src]; k < end; k++) {                                        \
            if (k + BP_AHEAD < end) bp_prefetch_row(W + (Py_ssize_t)indices[k + BP_AHEAD] * m, \
                                                    m * sizeof(BP_T), 0);                     \
            const BP_T v = data[k];                                                           \
            const BP_T* restrict w = W + (Py_ssize_t)indices[k] * m;                          \
            for (Py_ssize_t j = 0; j < m; j++) y[j] += v * w[j];                              \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
/* W[indices[k], :] += alpha data[k] dY[r, :] for every entry k of row src(r): W += alpha X.T dY \
   touching only the rows of W whose columns occur in the batch.  dY:(n, m) W:(n_in, m) */     \
BP_CLONES BP_UNUSED static void bp_csr_scatter_##BP_S(                                       \
        const int64_t* indptr, const int32_t* indices, const BP_T* data, const int64_t* rows, \
        Py_ssize_t first, Py_ssize_t n, const BP_T* dY, BP_T alpha, BP_T* W, Py_ssize_t m) {  \
    for (Py_ssize_t r = 0; r < n; r++) {                                                     \
        int64_t src = rows != NULL ? rows[r] : (int64_t)(first + r);                          \
        const BP_T* restrict dy = dY + r * m;                                                 \
        const int64_t end = indptr[src + 1];                                                  \
        for (int64_t k = indptr[src]; k < end; k++) {                                        \
            if (k + BP_AHEAD < end) bp_prefetch_row(W + (Py_ssize_t)indices[k + BP_AHEAD] * m, \
                                                    m * sizeof(BP_T), 1);                     \
            const BP_T v = alpha * data[k];                                                   \
            BP_T* restrict w = W + (Py_ssize_t)indices[k] * m;                                \
            for (Py_ssize_t j = 0; j < m; j++) w[j] += v * dy[j];                             \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
/* max |data[k]| over the entries of the batch's rows (NaN wins), and *count := how many */  \
BP_UNUSED static double bp_csr_max_abs_##BP_S(                                                \
        const int64_t* indptr, const BP_T* data, const int64_t* rows, Py_ssize_t first,       \
        Py_ssize_t n, int64_t* count) {                                                       \
    double top = 0;                                                                           \
    *count = 0;                                                                               \
    for (Py_ssize_t r = 0; r < n; r++) {                                                     \
        int64_t src = rows != NULL ? rows[r] : (int64_t)(first + r);                          \
        *count += indptr[src + 1] - indptr[src];                                              \
        for (int64_t k = indptr[src]; k < indptr[src + 1]; k++) {                            \
            double a = fabs((double)data[k]);                                                 \
            if (!(a <= top)) top = a;  /* NaN wins, and stays */                              \
            if (top != top) return top;                                                       \
        }                                                                                     \
    }                                                                                         \
    return top;                                                                               \
}

BP_CSR(float, f32)
BP_CSR(double, f64)
#undef BP_CSR

/* Whether (indptr, indices) describe n rows of a CSR matrix with nnz stored entries and n_in
 * columns that the kernels above can read in bounds: 0 <= indptr[0] <= ... <= indptr[n] <= nnz
 * and every column of those rows in [0, n_in). */
BP_UNUSED static int bp_csr_valid(const int64_t* indptr, const int32_t* indices, Py_ssize_t n,
                                  Py_ssize_t nnz, Py_ssize_t n_in) {
    if (indptr[0] < 0 || indptr[n] > nnz) return 0;
    for (Py_ssize_t r = 0; r < n; r++)
        if (indptr[r + 1] < indptr[r]) return 0;
    for (int64_t k = indptr[0]; k < indptr[n]; k++)
        if (indices[k] < 0 || indices[k] >= n_in) return 0;
    return 1;
}

#endif
