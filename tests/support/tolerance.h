/* Tolerance checks that NaN cannot pass. A check written as
 * `if (error > worst) worst = error` or `if (error > tol) fail` is false for
 * a NaN error, so a NaN output would count as error 0; every check here is
 * `!(error <= bound)`, and every maximum keeps a NaN once it has seen one. */
#ifndef TLM_TESTS_TOLERANCE_H
#define TLM_TESTS_TOLERANCE_H

#include <stdint.h>

/* The worse of a running maximum and a new error: NaN if either is NaN. */
double tlmt_worst(double worst, double error);

/* max |x[i]| over n elements (0 for n = 0); NaN if any element is NaN. */
double tlmt_max_abs_f32(const float *x, int64_t n);

/* max |a[i] - b[i]| (0 for n = 0); NaN if any difference is NaN (a NaN in
 * either array, or infinities of the same sign). */
double tlmt_max_abs_diff_f32(const float *a, const float *b, int64_t n);

/* The first i at which !(|got[i] - want[i]| <= atol + rtol |want[i]|),
 * or -1 when every element is within its bound. NaN in either array is
 * out of bounds. */
int64_t tlmt_first_beyond(const float *got, const double *want, int64_t n,
                          double atol, double rtol);

/* The first i at which x[i] is NaN or infinite, or -1. Checks of bitwise
 * equality need it: two runs that both give NaN agree bit for bit. */
int64_t tlmt_first_non_finite_f32(const float *x, int64_t n);

/* The scale of a float32 matrix product's rounding error, for the GEMM
 * tests' bounds: an m x n array (malloc'd; NULL when out of memory) of
 *   S[i * n + j] = sum over p = 0, 1, ..., k - 1 of |op(A)[i, p] op(B)[p, j]|
 * in double, summed in that order, where op(A) is A (m x k, row-major) or,
 * with ta, A stored k x m transposed, and op(B) is B (k x n) or, with tb,
 * B stored n x k. Each product of two floats is exact in double, so this
 * is bit for bit the naive triple loop over op(A) and op(B); it reads
 * contiguous copies of |op(A)| and |op(B)| instead, several times fewer
 * instructions (those tests spend most of their time here under valgrind
 * and qemu). */
double *tlmt_abs_product_sums(const float *a, const float *b, int64_t m,
                              int64_t n, int64_t k, int ta, int tb);

/* 1 when |got - want| <= tol, 0 otherwise: a NaN on either side is 0. */
int tlmt_close(double got, double want, double tol);

/* Fails the current cmocka test unless tlmt_close(got, want, tol).
 * (cmocka 1.1's assert_float_equal passes a NaN.) */
#define tlmt_assert_close(got, want, tol)                                  \
    tlmt_assert_close_at((double)(got), (double)(want), (double)(tol), #got, \
                         __FILE__, __LINE__)
void tlmt_assert_close_at(double got, double want, double tol,
                          const char *what, const char *file, int line);

#endif
