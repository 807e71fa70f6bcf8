/*
 * Fused attention of one head for any SIMD ISA, written once over the
 * vector layer of kernels/simd.h, a template in the protocol simd.h
 * describes: each ISA's file (x86/attention_avx2.c, x86/attention_avx512.c,
 * arm/attention_neon.c) defines TLMI_SIMD_<ISA> and TLMI_ISA_SUFFIX, then
 * includes this file, which is compiled with that file's flags.
 * Everything here is static except the entries
 * tlmi_attention_{forward,backward,workspace,exp2}_<isa> and
 * tlmi_attention_{forward,backward}_bf16_<isa>.
 *
 * Tuning macros the including file may define: TLMI_ATTN_QB (query rows
 * per block, 4 by default), TLMI_ATTN_FEW_ROWS (up to how many query rows
 * the in-place path for decoding runs, 2 by default; see "Few query
 * rows"), and TLMI_ATTN_HAVE_TRANSPOSE with
 *   vf_transpose(dst, ldd, src, lds)   a W x W transpose (key packing)
 * (it includes kernels/simd.h itself first, for the vector types).
 *
 * The algorithm (flash-style, in float):
 *
 * Forward. The keys are packed once per call into panels of NW = 2W keys
 * (kp[panel][d][NW]: the panel's keys side by side for each d) and the
 * values into rows padded to a multiple of W (vp[key][Dvp]; read in place
 * when v_dim is a multiple of W and no padding mask is given); keys a
 * padding flag hides, and the padding keys, are zeros there and get a
 * score bias of -inf. Every array is read and written at its row stride
 * (ld_q, ld_k, ld_v, ld_out). Queries go QB at a time (4 on NEON, 6 on
 * AVX2, 8 on AVX-512; 1 when a single row is left, as in decoding), over
 * the keys the block's last row sees:
 *   S [QB, n] = q . k^T * scale log2(e) + bias   (attn_scores: QB rows x
 *       2 vectors of keys = 2 QB accumulators, each step over d loads 2
 *       key vectors and broadcasts QB query values for 2 QB FMAs)
 *   causal: keys past each row's limit -> -inf
 *   softmax per row, in base 2: m = max_j S, P = 2^(S - m), l = sum P
 *   acc [QB, Dvp] = P . V                   (rows_acc: QB rows x 2
 *       vectors of output columns, each key loads 2 value vectors,
 *       broadcasts QB probabilities)
 * then out = acc / l, lse = (m + log2 l) ln 2. The block's scores are a
 * strip of QB rows over the keys, not a T x T matrix: memory O((QB + D)
 * * tk) per call. Against the online softmax of FlashAttention, which
 * keeps only a block of KB keys, the strip has one max, one sum and no
 * rescaling per row, and adds V in one pass: on a CPU the strip stays in
 * the L1 or L2 cache (12 KB for 512 keys with AVX2), where a GPU's
 * shared memory could not hold it.
 *
 * Backward (probabilities recomputed from lse). Keys packed as panels
 * (for S), values as panels (for dP = dout . V^T), keys as padded rows
 * (for dq; read in place when dim is a multiple of W and no padding mask
 * is given); dk and dv accumulate in padded float rows of the workspace
 * and are added into (accumulate 1) or stored into (accumulate 0) the
 * caller's at the end, dq per query block. Per block of BQ = 32 query rows
 * (a multiple of QB) and KB keys, each group of QB rows only up to the
 * last key panel one of its rows sees:
 *   P = 2^(S log2(e) - lse log2(e)), dP = dout . v^T,
 *   dS = P * (dP - drow) * scale with
 *   drow_i = dout_i . out_i;
 *   dv[j] += sum_r P[r, j] dout_r,  dk[j] += sum_r dS[r, j] q_r
 *       (rows_acc on the transposed block: KG keys x 2 vectors held in
 *       registers over the block's queries, from the first that sees
 *       them),
 *   dq_r += sum_j dS[r, j] k_j (rows_acc, QB rows).
 *
 * bf16 products (the _bf16 entries, issue #22's mixed-precision
 * training): the same code with one rounding step, each operand of the
 * six products rounded to bf16 (nearest even, vf_round_bf16) in the
 * workspace once, before the product reads it: q, k and v as they are
 * packed (so v and the keys as rows are never read in place, and the
 * few-rows path, which reads them in place, is not taken), dout's rows
 * per block, P once the row's sum l (forward) or dS (backward) has been
 * taken from the float32 P, and dS once computed. A product of two bf16
 * values is exact in float32, so the FMAs then sum exact products in
 * float32: the definition of kernels/gemm_bf16.h. The softmax, its max,
 * sum and lse, the scale, drow = dout . out and the final sums stay
 * float32. Rounding costs one pass over data already in the cache, next
 * to the products' O(D) operations per element.
 *
 * exp2 (vf_exp2 below): n = round(x), r = x - n exact, a degree-6
 * polynomial (TLMI_EXP2_* in kernels/attention.h), times 2^n built in the
 * exponent bits; x <= -127 gives the bits of 0, so masked scores (-inf) get
 * exactly 0. Measured maximal relative error 7.7e-8 (under 1 ulp) over
 * [-125, 100] against double exp2 (tests/kernels/test_attention.c checks
 * < 2.5e-7).
 */
#ifndef TLMI_ISA_SUFFIX
#error "define TLMI_ISA_SUFFIX and TLMI_SIMD_<ISA> before including this file"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"
#include "simd.h"
#include "base/layout.h"

/* Short names for the vector layer's: the vector, its lanes. */
typedef tlmi_vf VF;
#define W TLMI_VL

#if defined(__GNUC__)
#define TLMI_ATTN_INLINE static inline __attribute__((always_inline))
#else
#define TLMI_ATTN_INLINE static inline
#endif

/* Query rows per block: 4 by default (8 accumulators in the inner
 * kernels), TLMI_ATTN_QB when the ISA has the registers for more. */
#if defined(TLMI_ATTN_QB)
#define QB TLMI_ATTN_QB
#else
#define QB 4
#endif
#define NW (2 * W)    /* keys per packed panel */
#define KB 64         /* keys per block: a multiple of NW for W <= 32 */
/* backward: query rows per block, the multiple of QB from 32 up */
#define BQ ((32 + QB - 1) / QB * QB)
/* backward: keys per group in the sums over queries (dk, dv): QB when it
 * divides a panel, else 4 */
#define KG (NW % QB == 0 ? QB : 4)

/* ---- Workspace layout ------------------------------------------------- */

typedef struct attn_layout {
    int64_t tkp;  /* tk rounded up to NW */
    int64_t dp;   /* dim rounded up to W */
    int64_t dvp;  /* v_dim rounded up to W */
    /* Offsets in floats; each at a multiple of 16 floats (64 bytes). */
    size_t kp;    /* [tkp / NW][dim][NW] keys as panels */
    size_t vp;    /* forward: [tkp][dvp] values as rows */
    size_t bias;  /* [tkp] 0 or -inf */
    size_t qb;    /* [QB or BQ][dp] the block's query rows, padded */
    size_t s;     /* forward [QB][tkp], backward [BQ][KB]: scores, then
                     probabilities */
    size_t acc;   /* forward: [QB][dvp] running output rows */
    size_t vt;    /* backward: [tkp / NW][v_dim][NW] values as panels */
    size_t kr;    /* backward: [tkp][dp] keys as rows */
    size_t dk;    /* backward: [tkp][dp] */
    size_t dv;    /* backward: [tkp][dvp] */
    size_t dob;   /* backward: [BQ][dvp] the block's dout rows */
    size_t ds;    /* backward: [BQ][KB] dP, then dS */
    size_t dq;    /* backward: [BQ][dp] */
    size_t floats; /* total; SIZE_MAX when it overflows */
} attn_layout;

/* Takes a x b floats from `layout` (measuring from offset 0); their
 * offset in floats, each at a multiple of 16 floats (64 bytes). */
static size_t attn_take(tlmi_layout *layout, int64_t a, int64_t b) {
    if (a < 0 || b < 0) {
        layout->overflow = 1;
        return 0;
    }
    const size_t count = tlmi_layout_mul(layout, (size_t)a, (size_t)b);
    return tlmi_layout_offset(layout, count, sizeof(float)) / sizeof(float);
}

static void attn_layout_make(attn_layout *L, int64_t tq, int64_t tk,
                             int64_t dim, int64_t v_dim, int backward) {
    (void)tq;
    memset(L, 0, sizeof *L);
    L->floats = SIZE_MAX;
    if (tk < 1 || dim < 1 || v_dim < 1 || tk > INT64_MAX - NW ||
        dim > INT64_MAX - W || v_dim > INT64_MAX - W)
        return;
    L->tkp = (tk + NW - 1) / NW * NW;
    L->dp = (dim + W - 1) / W * W;
    L->dvp = (v_dim + W - 1) / W * W;
    tlmi_layout layout;
    tlmi_layout_init(&layout, NULL);
    L->kp = attn_take(&layout, L->tkp, dim);
    L->bias = attn_take(&layout, L->tkp, 1);
    const int64_t rows = backward ? BQ : QB;
    L->qb = attn_take(&layout, rows, L->dp);
    L->s = attn_take(&layout, rows, backward ? KB : L->tkp);
    if (!backward) {
        L->vp = attn_take(&layout, L->tkp, L->dvp);
        L->acc = attn_take(&layout, QB, L->dvp);
    } else {
        L->vt = attn_take(&layout, L->tkp, v_dim);
        L->kr = attn_take(&layout, L->tkp, L->dp);
        L->dk = attn_take(&layout, L->tkp, L->dp);
        L->dv = attn_take(&layout, L->tkp, L->dvp);
        L->dob = attn_take(&layout, BQ, L->dvp);
        L->ds = attn_take(&layout, BQ, KB);
        L->dq = attn_take(&layout, BQ, L->dp);
    }
    /* The workspace ends with the last buffer, and stays within half of
     * size_t's range. */
    const size_t end = tlmi_layout_end(&layout);
    if (end != SIZE_MAX && end / sizeof(float) <= SIZE_MAX / sizeof(float) / 2)
        L->floats = end / sizeof(float);
}

size_t TLMI_ISA_NAME(tlmi_attention_workspace)(int64_t tq, int64_t tk,
                                               int64_t dim, int64_t v_dim,
                                               int backward) {
    attn_layout fwd, bwd;
    attn_layout_make(&fwd, tq, tk, dim, v_dim, 0);
    size_t floats = fwd.floats;
    if (backward) {
        attn_layout_make(&bwd, tq, tk, dim, v_dim, 1);
        if (bwd.floats > floats)
            floats = bwd.floats;
    }
    return floats > SIZE_MAX / sizeof(float) ? SIZE_MAX
                                             : floats * sizeof(float);
}

/* ---- exp2 ------------------------------------------------------------- */

/* 2^x for x < 128 (TLMI_EXP2_* in kernels/attention.h): n = round(x),
 * r = x - n, the polynomial, times 2^n; n = -127 (x <= -127, -inf) makes
 * the exponent bits of 0. max(MIN, x) in this order keeps a NaN x (the
 * x86 max returns its second operand then). */
TLMI_ATTN_INLINE VF vf_exp2(VF x) {
    x = vf_max(vf_set1(TLMI_EXP2_MIN), x);
    const VF n = vf_round(x);
    const VF r = vf_sub(x, n);
    VF p = vf_set1(TLMI_EXP2_C6);
    p = vf_fmadd(p, r, vf_set1(TLMI_EXP2_C5));
    p = vf_fmadd(p, r, vf_set1(TLMI_EXP2_C4));
    p = vf_fmadd(p, r, vf_set1(TLMI_EXP2_C3));
    p = vf_fmadd(p, r, vf_set1(TLMI_EXP2_C2));
    p = vf_fmadd(p, r, vf_set1(TLMI_EXP2_C1));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    return vf_mul(p, vf_pow2i(n));
}

/* ---- Packing ---------------------------------------------------------- */

static int attn_visible(const unsigned char *visible, int64_t j) {
    return visible == NULL || visible[j] != 0;
}

/* dst[panel][d][c] = x[panel * NW + c][d] (x rows at stride ldx); zero
 * for hidden or padding keys (j >= n). A group of W keys that are all
 * there is transposed W x W at a time when the ISA has vf_transpose
 * (dst[d * ldd + r] = src[r * lds + d], r, d < W). */
static void attn_pack_panels(float *dst, const float *x, int64_t ldx,
                             int64_t n, int64_t cols, int64_t tkp,
                             const unsigned char *visible) {
    for (int64_t p0 = 0; p0 < tkp; p0 += NW) {
        float *panel = dst + p0 * cols;
        for (int64_t g = 0; g < NW; g += W) {
            int all = p0 + g + W <= n;
            for (int64_t c = g; all && visible != NULL && c < g + W; c++)
                all = visible[p0 + c] != 0;
            int64_t d0 = 0;
#if defined(TLMI_ATTN_HAVE_TRANSPOSE)
            if (all)
                for (; d0 + W <= cols; d0 += W)
                    vf_transpose(panel + d0 * NW + g, NW,
                                 x + (p0 + g) * ldx + d0, ldx);
#endif
            for (int64_t c = g; c < g + W; c++) {
                const int64_t j = p0 + c;
                if (j < n && attn_visible(visible, j)) {
                    const float *row = x + j * ldx;
                    for (int64_t d = d0; d < cols; d++)
                        panel[d * NW + c] = row[d];
                } else {
                    for (int64_t d = d0; d < cols; d++)
                        panel[d * NW + c] = 0.0f;
                }
            }
        }
    }
}

/* dst[c] = src[c], c < n: vector copies inline (rows are short, and a
 * call to memcpy per row cost more than the copy). */
TLMI_ATTN_INLINE void attn_copy(float *dst, const float *src, int64_t n) {
    int64_t c = 0;
    for (; c + W <= n; c += W)
        vf_store(dst + c, vf_load(src + c));
    for (; c < n; c++)
        dst[c] = src[c];
}

/* x[i] = bf16(x[i]) for i < n (vf_round_bf16: nearest even), in place:
 * what the bf16 entries do to each operand of a product once it is in
 * the workspace (see "bf16 products" at the top). */
static void attn_round_bf16(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W)
        vf_store(x + i, vf_round_bf16(vf_load(x + i)));
    if (i < n)
        vf_store_part(x + i, vf_round_bf16(vf_load_part(x + i, n - i, 0.0f)),
                      n - i);
}

/* dst[j][c] = x[j][c] for c < cols (x rows at stride ldx), zero up to
 * ldd and for hidden or padding rows (j >= n), rows j < rows. */
static void attn_pack_rows(float *dst, int64_t ldd, const float *x,
                           int64_t ldx, int64_t n, int64_t cols,
                           int64_t rows, const unsigned char *visible) {
    for (int64_t j = 0; j < rows; j++) {
        float *out = dst + j * ldd;
        int64_t c = 0;
        if (j < n && attn_visible(visible, j)) {
            attn_copy(out, x + j * ldx, cols);
            c = cols;
        }
        for (; c < ldd; c++)
            out[c] = 0.0f;
    }
}

/* ---- Inner kernels ----------------------------------------------------- */

/* s[r][p * NW + c] = (x_r . key) * scale + bias[p * NW + c] for r < rows
 * (s rows at stride lds), the n_panels panels of `panels` (each cols x
 * NW). x rows at stride ldx; bias may be NULL (zero). */
TLMI_ATTN_INLINE void attn_scores(float *s, int64_t lds, const float *x,
                             int64_t ldx, const float *panels,
                             int64_t n_panels, int64_t cols, float scale,
                             const float *bias, const int rows) {
    const VF vscale = vf_set1(scale);
    for (int64_t p = 0; p < n_panels; p++) {
        const float *kp = panels + p * cols * NW;
        VF acc[QB][2];
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++)
            acc[r][0] = acc[r][1] = vf_zero();
#pragma GCC unroll 2
        for (int64_t d = 0; d < cols; d++) {
            const VF k0 = vf_load(kp + d * NW);
            const VF k1 = vf_load(kp + d * NW + W);
#pragma GCC unroll 8
            for (int r = 0; r < rows; r++) {
                const VF xr = vf_set1(x[r * ldx + d]);
                acc[r][0] = vf_fmadd(xr, k0, acc[r][0]);
                acc[r][1] = vf_fmadd(xr, k1, acc[r][1]);
            }
        }
        VF b0 = vf_zero(), b1 = vf_zero();
        if (bias != NULL) {
            b0 = vf_load(bias + p * NW);
            b1 = vf_load(bias + p * NW + W);
        }
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            vf_store(s + r * lds + p * NW, vf_fmadd(acc[r][0], vscale, b0));
            vf_store(s + r * lds + p * NW + W, vf_fmadd(acc[r][1], vscale, b1));
        }
    }
}

/* acc[r][c] += sum over j < n of pr[r * prs + j * prj] * x[j][c],
 * r < rows, c < cols (a multiple of W); acc rows at stride lda, x rows at
 * stride ldx. pr is a block of probabilities (prs = KB, prj = 1) or its
 * transpose (prs = 1, prj = KB: the rows are keys, the sum over queries). */
TLMI_ATTN_INLINE void attn_rows_acc(float *acc, int64_t lda, const float *pr,
                               int64_t prs, int64_t prj, const float *x,
                               int64_t ldx, int64_t n, int64_t cols,
                               const int rows) {
    int64_t c = 0;
    for (; c + 2 * W <= cols; c += 2 * W) {
        VF a[QB][2];
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            a[r][0] = vf_load(acc + r * lda + c);
            a[r][1] = vf_load(acc + r * lda + c + W);
        }
#pragma GCC unroll 2
        for (int64_t j = 0; j < n; j++) {
            const VF x0 = vf_load(x + j * ldx + c);
            const VF x1 = vf_load(x + j * ldx + c + W);
#pragma GCC unroll 8
            for (int r = 0; r < rows; r++) {
                const VF p = vf_set1(pr[r * prs + j * prj]);
                a[r][0] = vf_fmadd(p, x0, a[r][0]);
                a[r][1] = vf_fmadd(p, x1, a[r][1]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            vf_store(acc + r * lda + c, a[r][0]);
            vf_store(acc + r * lda + c + W, a[r][1]);
        }
    }
    if (c < cols) {
        VF a[QB];
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++)
            a[r] = vf_load(acc + r * lda + c);
#pragma GCC unroll 2
        for (int64_t j = 0; j < n; j++) {
            const VF x0 = vf_load(x + j * ldx + c);
#pragma GCC unroll 8
            for (int r = 0; r < rows; r++)
                a[r] = vf_fmadd(vf_set1(pr[r * prs + j * prj]), x0, a[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++)
            vf_store(acc + r * lda + c, a[r]);
    }
}

/* The kernels for QB rows and for 1 (decoding), so that the row loops
 * unroll into registers; s rows at stride lds. The row stride of x is a
 * constant for the usual head sizes (x is a padded block then), which
 * puts every broadcast of a step over d at a fixed offset from one
 * pointer. */
static void attn_scores_n(float *s, int64_t lds, const float *x,
                          int64_t ldx, const float *panels, int64_t n_panels,
                          int64_t cols, float scale, const float *bias,
                          int rows) {
#define TLMI_ATTN_SCORES_LDX(ldx_)                                          \
    attn_scores(s, lds, x, ldx_, panels, n_panels, cols, scale, bias, QB)
    if (rows == 1)
        attn_scores(s, lds, x, ldx, panels, n_panels, cols, scale, bias, 1);
    else if (ldx == 64)
        TLMI_ATTN_SCORES_LDX(64);
    else if (ldx == 32)
        TLMI_ATTN_SCORES_LDX(32);
    else if (ldx == 128)
        TLMI_ATTN_SCORES_LDX(128);
    else
        TLMI_ATTN_SCORES_LDX(ldx);
#undef TLMI_ATTN_SCORES_LDX
}

/* The backward's pr is a block of KB columns read by rows (prs = KB, prj
 * = 1) or by columns (prs = 1, prj = KB): with the strides constant,
 * every broadcast of a key step is at a fixed offset from one pointer.
 * The forward's is a strip of rows at any stride. */
#define TLMI_ATTN_ROWS_ACC_STRIDES(prs_, prj_)                              \
    do {                                                                    \
        if (rows == 1)                                                      \
            attn_rows_acc(acc, lda, pr, prs_, prj_, x, ldx, n, cols, 1);    \
        else if (QB != 4 && rows == 4)                                      \
            attn_rows_acc(acc, lda, pr, prs_, prj_, x, ldx, n, cols, 4);    \
        else                                                                \
            attn_rows_acc(acc, lda, pr, prs_, prj_, x, ldx, n, cols, QB);   \
    } while (0)

static void attn_rows_acc_n(float *acc, int64_t lda, const float *pr,
                            int64_t prs, int64_t prj, const float *x,
                            int64_t ldx, int64_t n, int64_t cols, int rows) {
    if (prs == KB && prj == 1)
        TLMI_ATTN_ROWS_ACC_STRIDES(KB, 1);
    else if (prs == 1 && prj == KB)
        TLMI_ATTN_ROWS_ACC_STRIDES(1, KB);
    else
        TLMI_ATTN_ROWS_ACC_STRIDES(prs, prj);
}

/* ---- Shared pieces of both passes ------------------------------------- */

static int64_t attn_key_limit(int64_t i, int64_t tq, int64_t tk,
                              int causal) {
    if (!causal)
        return tk;
    const int64_t limit = i + (tk - tq) + 1;
    return limit < 0 ? 0 : limit > tk ? tk : limit;
}

/* bias[j] = 0 for a visible key j < tk, -inf otherwise (j < tkp). */
static void attn_bias(float *bias, const unsigned char *visible, int64_t tk,
                      int64_t tkp) {
    for (int64_t j = 0; j < tkp; j++)
        bias[j] = j < tk && attn_visible(visible, j) ? 0.0f : -INFINITY;
}

/* The block's query rows i0 .. i0 + nr - 1 of x [.., cols] (stride ldx)
 * into dst [rows][ld], zero-padded (columns past cols, rows past nr). */
static void attn_rows_in(float *dst, int64_t ld, const float *x,
                         int64_t ldx, int64_t i0, int64_t nr, int64_t cols,
                         int64_t rows) {
    attn_pack_rows(dst, ld, x + i0 * ldx, ldx, nr, cols, rows, NULL);
}

/* Row r of a block of scores: keys at or past `limit` (relative to the
 * block) get -inf, up to n. */
static void attn_mask_tail(float *sr, int64_t limit, int64_t n) {
    for (int64_t j = limit < 0 ? 0 : limit; j < n; j++)
        sr[j] = -INFINITY;
}

/* ---- Few query rows: decoding ------------------------------------------
 *
 * A decoding step asks for one query row (or, with grouped-query
 * attention, the few query heads of a key/value group) over the whole
 * cache. Packing every key into panels and every value into padded rows,
 * as the blocked path does, costs more than the product then (for head
 * size 8, a third of a 260K-parameter model's decoding time): with
 * tq <= TLMI_ATTN_FEW_ROWS the keys and values are read in place at their
 * row strides instead, one query row at a time, in two passes over the
 * keys it sees (the strip of scores stays in the workspace, as in the
 * blocked path):
 *   s_j = (q . k_j) * scale log2(e)    (a dot product over a contiguous
 *                                       row of k, -inf for hidden keys)
 *   m = max_j s_j, p_j = 2^(s_j - m), l = sum p_j
 *   out = (sum_j p_j v_j) / l          (rows of v, W columns at a time)
 * The crossover (Zen 4, both x86 paths of this template, not causal,
 * head sizes 8, 48, 64, 128 over 64 to 1024 keys; docs/performance.md):
 * in place is 1.3-2.7x faster at 1 and 2 rows on AVX2 and 1.7-7x on
 * AVX-512; at 3 rows 1.1-3.3x faster on AVX-512 but 0.84-1.4x on AVX2;
 * from 4 rows on the blocked path wins but for head size 8 on AVX-512
 * (its register tiles load each key once for QB rows). So 2 by default
 * (NEON unmeasured), 3 where the ISA file says so (AVX-512). */
#if !defined(TLMI_ATTN_FEW_ROWS)
#define TLMI_ATTN_FEW_ROWS 2
#endif

/* x . y over n floats. */
TLMI_ATTN_INLINE float attn_dot(const float *x, const float *y, int64_t n) {
    int64_t d = 0;
    VF a0 = vf_zero(), a1 = vf_zero();
    for (; d + 2 * W <= n; d += 2 * W) {
        a0 = vf_fmadd(vf_load(x + d), vf_load(y + d), a0);
        a1 = vf_fmadd(vf_load(x + d + W), vf_load(y + d + W), a1);
    }
    if (d + W <= n) {
        a0 = vf_fmadd(vf_load(x + d), vf_load(y + d), a0);
        d += W;
    }
#if defined(TLMI_VF_MASKED)
    if (d < n) {
        const tlmi_vm m = vf_lanes(n - d);
        a1 = vf_fmadd(vf_load_mask(m, x + d), vf_load_mask(m, y + d), a1);
        d = n;
    }
#endif
    float sum = d > 0 ? vf_hsum(vf_add(a0, a1)) : 0.0f;
    for (; d < n; d++)
        sum += x[d] * y[d];
    return sum;
}

/* s[j] = (q . k_j) * scale for the keys j < n (rows of k at stride ldk),
 * -inf for hidden ones; returns the largest score (-inf when there is
 * none; a NaN score is passed over here, and makes p_j, l and the row NaN
 * later). */
static float attn_score_row(float *s, const float *q, const float *k,
                            int64_t ldk, int64_t n, int64_t dim, float scale,
                            const unsigned char *visible) {
    float m = -INFINITY;
#if defined(TLMI_VF_MASKED)
    if (dim <= W) {
        /* A head no wider than a vector (8 in stories260K): q loaded once,
         * each key one masked load. */
        const tlmi_vm mask = vf_lanes(dim);
        const VF vq = vf_load_mask(mask, q);
        for (int64_t j = 0; j < n; j++) {
            const float sj =
                attn_visible(visible, j)
                    ? vf_hsum(vf_mul(vq, vf_load_mask(mask, k + j * ldk))) * scale
                    : -INFINITY;
            s[j] = sj;
            m = sj > m ? sj : m;
        }
        return m;
    }
#endif
    for (int64_t j = 0; j < n; j++) {
        const float sj = attn_visible(visible, j)
                             ? attn_dot(q, k + j * ldk, dim) * scale
                             : -INFINITY;
        s[j] = sj;
        m = sj > m ? sj : m;
    }
    return m;
}

/* Column c0 .. c0 + W of v (rows at stride ldv) loaded whole, or its
 * first `lanes` columns (the others 0) where the ISA has masked loads. */
#if defined(TLMI_VF_MASKED)
#define ATTN_LOAD_COLS(x, full, mask) ((full) ? vf_load(x) : vf_load_mask(mask, x))
#else
#define ATTN_LOAD_COLS(x, full, mask) ((void)(full), (void)(mask), vf_load(x))
#endif

/* sum_j p[j] v[j][c0 ..] over the visible keys j < n, W columns (full) or
 * the first `lanes` (masked ISAs only). Four keys at a time into four
 * sums: one sum would wait for the FMA before it on every key. A hidden
 * key's value may be anything, even NaN, and is not read. */
TLMI_ATTN_INLINE VF attn_weighted_cols(const float *p, const float *v,
                                       int64_t ldv, int64_t n,
                                       const unsigned char *visible,
                                       const int full, int64_t lanes) {
#if defined(TLMI_VF_MASKED)
    const tlmi_vm mask = vf_lanes(lanes);
#else
    const int mask = 0;
    (void)lanes;
#endif
    VF a0 = vf_zero(), a1 = vf_zero(), a2 = vf_zero(), a3 = vf_zero();
    int64_t j = 0;
    if (visible == NULL)
        for (; j + 4 <= n; j += 4) {
            const float *row = v + j * ldv;
            a0 = vf_fmadd(vf_set1(p[j]), ATTN_LOAD_COLS(row, full, mask), a0);
            a1 = vf_fmadd(vf_set1(p[j + 1]),
                          ATTN_LOAD_COLS(row + ldv, full, mask), a1);
            a2 = vf_fmadd(vf_set1(p[j + 2]),
                          ATTN_LOAD_COLS(row + 2 * ldv, full, mask), a2);
            a3 = vf_fmadd(vf_set1(p[j + 3]),
                          ATTN_LOAD_COLS(row + 3 * ldv, full, mask), a3);
        }
    for (; j < n; j++)
        if (attn_visible(visible, j))
            a0 = vf_fmadd(vf_set1(p[j]), ATTN_LOAD_COLS(v + j * ldv, full, mask),
                          a0);
    return vf_add(vf_add(a0, a1), vf_add(a2, a3));
}

/* out[c] = inv * sum_j p[j] v[j][c] for c < cols over the keys j < n that
 * are visible (rows of v at stride ldv). */
static void attn_weighted_sum(float *out, const float *p, const float *v,
                              int64_t ldv, int64_t n, int64_t cols,
                              float inv, const unsigned char *visible) {
    const VF vinv = vf_set1(inv);
    int64_t c = 0;
    for (; c + W <= cols; c += W)
        vf_store(out + c,
                 vf_mul(attn_weighted_cols(p, v + c, ldv, n, visible, 1, W),
                        vinv));
    if (c == cols)
        return;
#if defined(TLMI_VF_MASKED)
    vf_store_mask(out + c, vf_lanes(cols - c),
                  vf_mul(attn_weighted_cols(p, v + c, ldv, n, visible, 0,
                                            cols - c),
                         vinv));
#else
    /* The last cols - c < W columns, each its own sum. */
    float tail[W];
    const int64_t rest = cols - c;
    for (int64_t t = 0; t < rest; t++)
        tail[t] = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        if (!attn_visible(visible, j))
            continue;
        const float *row = v + j * ldv + c;
        for (int64_t t = 0; t < rest; t++)
            tail[t] += p[j] * row[t];
    }
    for (int64_t t = 0; t < rest; t++)
        out[c + t] = tail[t] * inv;
#endif
}

#undef ATTN_LOAD_COLS

/* The forward pass for tq <= TLMI_ATTN_FEW_ROWS (see above); `s` is the
 * workspace's strip of scores (at least tk rounded up to NW floats). */
static void attn_forward_few(float *out, float *lse, const float *q,
                             const float *k, const float *v,
                             const unsigned char *visible,
                             const tlmi_attention_dims *dims, float *s) {
    const int64_t tq = dims->tq, tk = dims->tk, dim = dims->dim,
                  v_dim = dims->v_dim;
    const float scale2 = (float)(1.0 / sqrt((double)dim) / log(2.0));
    for (int64_t i = 0; i < tq; i++) {
        const float *qi = q + i * dims->ld_q;
        float *out_i = out + i * dims->ld_out;
        const int64_t limit = attn_key_limit(i, tq, tk, dims->causal);
        const float m = attn_score_row(s, qi, k, dims->ld_k, limit, dim,
                                       scale2, visible);
        /* The strip is padded with -inf (p = 0) to whole vectors. */
        const int64_t n = (limit + W - 1) / W * W;
        for (int64_t j = limit; j < n; j++)
            s[j] = -INFINITY;
        /* A row that sees no key gets l = 0; 2^(-inf - 0) = 0. */
        const VF vm = vf_set1(m == -INFINITY ? 0.0f : m);
        VF sum = vf_zero();
        for (int64_t j = 0; j < n; j += W) {
            const VF pj = vf_exp2(vf_sub(vf_load(s + j), vm));
            vf_store(s + j, pj);
            sum = vf_add(sum, pj);
        }
        const float l = vf_hsum(sum);
        if (l != 0.0f) {
            attn_weighted_sum(out_i, s, v, dims->ld_v, limit, v_dim, 1.0f / l,
                              visible);
        } else {
            for (int64_t c = 0; c < v_dim; c++)
                out_i[c] = 0.0f;
        }
        if (lse != NULL)
            lse[i] = l != 0.0f ? (float)((double)m * log(2.0) + log((double)l))
                               : -INFINITY;
    }
}

/* ---- Forward ---------------------------------------------------------- */

/* Both forward entries: bf16 0 (float32) or 1 (bf16 products). */
static void attn_forward(float *out, float *lse, const float *q,
                         const float *k, const float *v,
                         const unsigned char *visible,
                         const tlmi_attention_dims *dims, void *workspace,
                         const int bf16) {
    const int64_t tq = dims->tq, tk = dims->tk, dim = dims->dim,
                  v_dim = dims->v_dim, ld_q = dims->ld_q, ld_k = dims->ld_k,
                  ld_v = dims->ld_v, ld_out = dims->ld_out;
    const int causal = dims->causal;
    attn_layout L;
    attn_layout_make(&L, tq, tk, dim, v_dim, 0);
    float *ws = workspace;
    /* (It reads q, k and v in place: the bf16 products take the blocked
     * path, which rounds them as it packs them.) */
    if (tq <= TLMI_ATTN_FEW_ROWS && !bf16) {
        attn_forward_few(out, lse, q, k, v, visible, dims, ws + L.s);
        return;
    }
    float *kp = ws + L.kp, *vp = ws + L.vp, *bias = ws + L.bias,
          *qb = ws + L.qb, *s = ws + L.s, *acc = ws + L.acc;
    const int64_t dvp = L.dvp, dp = L.dp, lds = L.tkp;
    /* Scores in base 2: s log2(e), so that P = 2^(s - m). */
    const float scale2 = (float)(1.0 / sqrt((double)dim) / log(2.0));

    /* Only the keys some query may see are packed. */
    const int64_t tk_seen = attn_key_limit(tq - 1, tq, tk, causal);
    const int64_t tk_pad = (tk_seen + NW - 1) / NW * NW;
    attn_pack_panels(kp, k, ld_k, tk_seen, dim, tk_pad, visible);
    if (bf16)
        attn_round_bf16(kp, tk_pad * dim);
    /* Values are read in place when their rows need no padding (v_dim a
     * multiple of W, no hidden key to zero) nor rounding. */
    const int direct_v = visible == NULL && v_dim % W == 0 && !bf16;
    const float *vr = direct_v ? v : vp;
    const int64_t ld_vr = direct_v ? ld_v : dvp;
    if (!direct_v)
        attn_pack_rows(vp, dvp, v, ld_v, tk_seen, v_dim, tk_pad, visible);
    if (bf16)
        attn_round_bf16(vp, tk_pad * dvp);
    attn_bias(bias, visible, tk, L.tkp);

    for (int64_t i0 = 0; i0 < tq; i0 += QB) {
        const int64_t nr = tq - i0 < QB ? tq - i0 : QB;
        const int rows = nr == 1 ? 1 : QB;
        attn_rows_in(qb, dp, q, ld_q, i0, nr, dim, QB);
        if (bf16)
            attn_round_bf16(qb, QB * dp);
        int64_t limit[QB]; /* keys row r sees (none past nr) */
        int64_t j_end = 0;  /* keys any row of the block sees */
        for (int r = 0; r < QB; r++) {
            limit[r] = r < nr ? attn_key_limit(i0 + r, tq, tk, causal) : 0;
            if (limit[r] > j_end)
                j_end = limit[r];
        }
        const int64_t n_panels = (j_end + NW - 1) / NW;
        const int64_t n = n_panels * NW; /* a multiple of 2W */
        attn_scores_n(s, lds, qb, dp, kp, n_panels, dim, scale2, bias, rows);
        float m[QB], l[QB];
        for (int r = 0; r < rows; r++) {
            float *sr = s + r * lds;
            attn_mask_tail(sr, limit[r], n);
            VF vmax0 = vf_set1(-INFINITY), vmax1 = vmax0;
            for (int64_t j = 0; j < n; j += 2 * W) {
                vmax0 = vf_max(vmax0, vf_load(sr + j));
                vmax1 = vf_max(vmax1, vf_load(sr + j + W));
            }
            m[r] = vf_hmax(vf_max(vmax0, vmax1));
            /* A row that sees no key gets p = 0 everywhere (and l = 0);
             * 2^(-inf - 0) = 0. */
            const VF vm = vf_set1(m[r] == -INFINITY ? 0.0f : m[r]);
            VF sum0 = vf_zero(), sum1 = vf_zero();
            for (int64_t j = 0; j < n; j += 2 * W) {
                VF p0 = vf_exp2(vf_sub(vf_load(sr + j), vm));
                VF p1 = vf_exp2(vf_sub(vf_load(sr + j + W), vm));
                sum0 = vf_add(sum0, p0);
                sum1 = vf_add(sum1, p1);
                /* bf16: P rounded for P . V, l the sum of the float32
                 * P. */
                if (bf16) {
                    p0 = vf_round_bf16(p0);
                    p1 = vf_round_bf16(p1);
                }
                vf_store(sr + j, p0);
                vf_store(sr + j + W, p1);
            }
            l[r] = vf_hsum(vf_add(sum0, sum1));
        }
        memset(acc, 0, (size_t)(QB * dvp) * sizeof(float));
        /* Keys past j_end have p = 0 (and may not exist). */
        attn_rows_acc_n(acc, dvp, s, lds, 1, vr, ld_vr, j_end, dvp, rows);
        for (int64_t r = 0; r < nr; r++) {
            float *out_i = out + (i0 + r) * ld_out;
            const float *ar = acc + r * dvp;
            /* l = 0: the row sees no key; NaN: a score was NaN, and the
             * row is NaN too. */
            if (l[r] != 0.0f) {
                const float inv = 1.0f / l[r];
                const VF vinv = vf_set1(inv);
                int64_t c = 0;
                for (; c + W <= v_dim; c += W)
                    vf_store(out_i + c, vf_mul(vf_load(ar + c), vinv));
                for (; c < v_dim; c++)
                    out_i[c] = ar[c] * inv;
            } else {
                for (int64_t c = 0; c < v_dim; c++)
                    out_i[c] = 0.0f;
            }
            /* Back to base e: lse = (m + log2 l) ln 2. */
            if (lse != NULL)
                lse[i0 + r] = l[r] != 0.0f
                                  ? (float)((double)m[r] * log(2.0) +
                                            log((double)l[r]))
                                  : -INFINITY;
        }
    }
}

/* ---- Backward --------------------------------------------------------- */

/* dst[c] (+)= src[c], c < n: added when accumulate, else stored. */
static void attn_row_out(float *dst, const float *src, int64_t n,
                         int accumulate) {
    if (accumulate) {
        int64_t c = 0;
        for (; c + W <= n; c += W)
            vf_store(dst + c, vf_add(vf_load(dst + c), vf_load(src + c)));
        for (; c < n; c++)
            dst[c] += src[c];
    } else
        attn_copy(dst, src, n);
}

/* Both backward entries: bf16 0 (float32) or 1 (bf16 products). */
static void attn_backward(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const float *out, const float *lse,
                          const unsigned char *visible,
                          const tlmi_attention_dims *dims, int accumulate,
                          void *workspace, const int bf16) {
    const int64_t tq = dims->tq, tk = dims->tk, dim = dims->dim,
                  v_dim = dims->v_dim, ld_q = dims->ld_q, ld_k = dims->ld_k,
                  ld_v = dims->ld_v, ld_out = dims->ld_out;
    const int causal = dims->causal;
    if (dq == NULL && dk == NULL && dv == NULL)
        return;
    attn_layout L;
    attn_layout_make(&L, tq, tk, dim, v_dim, 1);
    float *ws = workspace;
    float *kp = ws + L.kp, *bias = ws + L.bias, *qb = ws + L.qb,
          *s = ws + L.s, *vt = ws + L.vt, *kr = ws + L.kr, *dkw = ws + L.dk,
          *dvw = ws + L.dv, *dob = ws + L.dob, *ds = ws + L.ds,
          *dqw = ws + L.dq;
    const int64_t dp = L.dp, dvp = L.dvp;
    const int want_ds = dq != NULL || dk != NULL;
    const float scale = (float)(1.0 / sqrt((double)dim));
    /* Scores in base 2, as in the forward: P = 2^(s log2(e) - lse log2(e)). */
    const float scale2 = (float)(1.0 / sqrt((double)dim) / log(2.0));

    const int64_t tk_seen = attn_key_limit(tq - 1, tq, tk, causal);
    const int64_t tk_pad = (tk_seen + NW - 1) / NW * NW;
    attn_pack_panels(kp, k, ld_k, tk_seen, dim, tk_pad, visible);
    if (bf16)
        attn_round_bf16(kp, tk_pad * dim);
    attn_bias(bias, visible, tk, L.tkp);
    if (want_ds) {
        attn_pack_panels(vt, v, ld_v, tk_seen, v_dim, tk_pad, visible);
        if (bf16)
            attn_round_bf16(vt, tk_pad * v_dim);
    }
    /* Keys as rows (for dq) in place when they need no padding nor
     * rounding. */
    const int direct_k = visible == NULL && dim % W == 0 && !bf16;
    const float *krow = direct_k ? k : kr;
    const int64_t ld_kr = direct_k ? ld_k : dp;
    if (dq != NULL && !direct_k) {
        attn_pack_rows(kr, dp, k, ld_k, tk_seen, dim, tk_pad, visible);
        if (bf16)
            attn_round_bf16(kr, tk_pad * dp);
    }
    if (dk != NULL)
        memset(dkw, 0, (size_t)(tk_pad * dp) * sizeof(float));
    if (dv != NULL)
        memset(dvw, 0, (size_t)(tk_pad * dvp) * sizeof(float));

    for (int64_t i0 = 0; i0 < tq; i0 += BQ) {
        const int64_t nr = tq - i0 < BQ ? tq - i0 : BQ;
        attn_rows_in(qb, dp, q, ld_q, i0, nr, dim, BQ);
        attn_rows_in(dob, dvp, dout, ld_out, i0, nr, v_dim, BQ);
        if (bf16) {
            attn_round_bf16(qb, BQ * dp);
            attn_round_bf16(dob, BQ * dvp);
        }
        float row_lse[BQ], drow[BQ];
        int64_t limit[BQ];
        int64_t j_end = 0;
        for (int r = 0; r < BQ; r++) {
            limit[r] = r < nr ? attn_key_limit(i0 + r, tq, tk, causal) : 0;
            if (limit[r] > j_end)
                j_end = limit[r];
            /* In base 2; a row that saw no key (lse -inf) gets
             * p = 2^(s - inf) = 0. */
            row_lse[r] = r < nr && lse[i0 + r] != -INFINITY
                             ? (float)((double)lse[i0 + r] / log(2.0))
                             : INFINITY;
            drow[r] = 0.0f;
            if (r < nr) {
                const float *o = out + (i0 + r) * ld_out;
                const float *g = dout + (i0 + r) * ld_out;
                VF sum = vf_zero();
                int64_t c = 0;
                for (; c + W <= v_dim; c += W)
                    sum = vf_fmadd(vf_load(g + c), vf_load(o + c), sum);
                float d = vf_hsum(sum);
                for (; c < v_dim; c++)
                    d += g[c] * o[c];
                drow[r] = d;
            }
        }
        if (dq != NULL)
            memset(dqw, 0, (size_t)(BQ * dp) * sizeof(float));
        /* Row groups of QB (1 when a single row is left). */
        const int64_t n_groups = (nr + QB - 1) / QB;
        for (int64_t j0 = 0; j0 < j_end; j0 += KB) {
            const int64_t n_panels =
                ((j_end - j0 < KB ? j_end - j0 : KB) + NW - 1) / NW;
            const int64_t n = n_panels * NW;
            /* P = 2^(S - lse) (base 2) and dS = P (dP - drow) scale, [BQ][n]:
             * each group of rows only up to the panel of the last key one
             * of its rows sees (g_n[g] keys; causal blocks on the diagonal
             * are triangles). */
            int64_t g_n[BQ / QB + 1];
            for (int64_t g = 0; g < n_groups; g++) {
                const int64_t r0 = g * QB;
                const int rows = nr - r0 == 1 ? 1 : QB;
                int64_t seen = 0;
                for (int64_t r = r0; r < r0 + rows && r < nr; r++)
                    if (limit[r] - j0 > seen)
                        seen = limit[r] - j0;
                const int64_t g_panels =
                    ((seen < n ? seen : n) + NW - 1) / NW;
                g_n[g] = g_panels * NW;
                if (g_panels == 0)
                    continue;
                const int64_t gn = g_n[g];
                float *sg = s + r0 * KB, *dsg = ds + r0 * KB;
                attn_scores_n(sg, KB, qb + r0 * dp, dp, kp + j0 * dim, g_panels,
                              dim, scale2, bias + j0, rows);
                for (int r = 0; r < rows; r++) {
                    float *sr = sg + r * KB;
                    if (limit[r0 + r] - j0 < gn)
                        attn_mask_tail(sr, limit[r0 + r] - j0, gn);
                    const VF vl = vf_set1(row_lse[r0 + r]);
                    for (int64_t j = 0; j < gn; j += W)
                        vf_store(sr + j,
                                 vf_exp2(vf_sub(vf_load(sr + j), vl)));
                }
                if (!want_ds) {
                    /* bf16: P rounded for dv = P^T dout. */
                    for (int r = 0; r < rows && bf16; r++)
                        attn_round_bf16(sg + r * KB, gn);
                    continue;
                }
                attn_scores_n(dsg, KB, dob + r0 * dvp, dvp, vt + j0 * v_dim,
                              g_panels, v_dim, 1.0f, NULL, rows);
                const VF vscale = vf_set1(scale);
                for (int r = 0; r < rows; r++) {
                    float *dsr = dsg + r * KB;
                    float *pr = sg + r * KB;
                    const VF vd = vf_set1(drow[r0 + r]);
                    if (!bf16) {
                        for (int64_t j = 0; j < gn; j += W) {
                            const VF p = vf_mul(vf_load(pr + j), vscale);
                            vf_store(dsr + j,
                                     vf_mul(p, vf_sub(vf_load(dsr + j), vd)));
                        }
                        continue;
                    }
                    /* bf16: dS (from the float32 P), then P, rounded for
                     * the products that take them. */
                    for (int64_t j = 0; j < gn; j += W) {
                        const VF pf = vf_load(pr + j);
                        const VF p = vf_mul(pf, vscale);
                        vf_store(dsr + j,
                                 vf_round_bf16(vf_mul(
                                     p, vf_sub(vf_load(dsr + j), vd))));
                        vf_store(pr + j, vf_round_bf16(pf));
                    }
                }
            }
            /* dv[j] += sum_r P[r][j] dout_r, dk[j] += sum_r dS[r][j] q_r
             * (KG keys at a time), from the first row that sees key j
             * (the limits grow with r; earlier rows have P = 0 there, and
             * their groups may not have computed it), to nr (rows past nr
             * hold garbage when rows == 1). */
            int64_t r_first = 0;
            for (int64_t jj = 0; jj < n; jj += KG) {
                while (r_first < nr && limit[r_first] <= j0 + jj)
                    r_first++;
                if (r_first == nr)
                    break;
                if (dv != NULL)
                    attn_rows_acc_n(dvw + (j0 + jj) * dvp, dvp,
                                    s + r_first * KB + jj, 1, KB,
                                    dob + r_first * dvp, dvp, nr - r_first,
                                    dvp, KG);
                if (dk != NULL)
                    attn_rows_acc_n(dkw + (j0 + jj) * dp, dp,
                                    ds + r_first * KB + jj, 1, KB,
                                    qb + r_first * dp, dp, nr - r_first, dp,
                                    KG);
            }
            /* dq_r += sum_j dS[r][j] k_j over the keys that exist. */
            if (dq != NULL)
                for (int64_t g = 0; g < n_groups; g++) {
                    const int64_t r0 = g * QB;
                    const int64_t keys = j_end - j0 < g_n[g] ? j_end - j0
                                                             : g_n[g];
                    if (keys > 0)
                        attn_rows_acc_n(dqw + r0 * dp, dp, ds + r0 * KB, KB,
                                        1, krow + j0 * ld_kr, ld_kr, keys, dp,
                                        nr - r0 == 1 ? 1 : QB);
                }
        }
        if (dq != NULL)
            for (int64_t r = 0; r < nr; r++)
                attn_row_out(dq + (i0 + r) * ld_q, dqw + r * dp, dim,
                             accumulate);
    }
    for (int64_t j = 0; j < tk_seen; j++) {
        if (dk != NULL)
            attn_row_out(dk + j * ld_k, dkw + j * dp, dim, accumulate);
        if (dv != NULL)
            attn_row_out(dv + j * ld_v, dvw + j * dvp, v_dim, accumulate);
    }
    /* Keys no query sees: no gradient (zero when overwriting). */
    for (int64_t j = tk_seen; j < tk && !accumulate; j++) {
        if (dk != NULL)
            memset(dk + j * ld_k, 0, (size_t)dim * sizeof(float));
        if (dv != NULL)
            memset(dv + j * ld_v, 0, (size_t)v_dim * sizeof(float));
    }
}

/* ---- Entries ---------------------------------------------------------- */

void TLMI_ISA_NAME(tlmi_attention_forward)(float *out, float *lse,
                                           const float *q, const float *k,
                                           const float *v,
                                           const unsigned char *visible,
                                           const tlmi_attention_dims *dims,
                                           void *workspace) {
    attn_forward(out, lse, q, k, v, visible, dims, workspace, 0);
}

void TLMI_ISA_NAME(tlmi_attention_forward_bf16)(
    float *out, float *lse, const float *q, const float *k, const float *v,
    const unsigned char *visible, const tlmi_attention_dims *dims,
    void *workspace) {
    attn_forward(out, lse, q, k, v, visible, dims, workspace, 1);
}

void TLMI_ISA_NAME(tlmi_attention_backward)(
    float *dq, float *dk, float *dv, const float *dout, const float *q,
    const float *k, const float *v, const float *out, const float *lse,
    const unsigned char *visible, const tlmi_attention_dims *dims,
    int accumulate, void *workspace) {
    attn_backward(dq, dk, dv, dout, q, k, v, out, lse, visible, dims,
                  accumulate, workspace, 0);
}

void TLMI_ISA_NAME(tlmi_attention_backward_bf16)(
    float *dq, float *dk, float *dv, const float *dout, const float *q,
    const float *k, const float *v, const float *out, const float *lse,
    const unsigned char *visible, const tlmi_attention_dims *dims,
    int accumulate, void *workspace) {
    attn_backward(dq, dk, dv, dout, q, k, v, out, lse, visible, dims,
                  accumulate, workspace, 1);
}

void TLMI_ISA_NAME(tlmi_attention_exp2)(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W)
        vf_store(y + i, vf_exp2(vf_load(x + i)));
    if (i < n) {
        float in[W], res[W];
        for (int j = 0; j < W; j++)
            in[j] = i + j < n ? x[i + j] : 0.0f;
        vf_store(res, vf_exp2(vf_load(in)));
        for (int64_t j = 0; i + j < n; j++)
            y[i + j] = res[j];
    }
}

#undef TLMI_ATTN_INLINE
#undef W
#undef QB
#undef TLMI_ATTN_FEW_ROWS
#undef NW
#undef KB
#undef BQ
#undef KG
