/*
 * GEMM for AVX-512F (32 zmm registers of 16 floats): the sizes and
 * choices of this ISA; the kernels themselves are kernels/gemm_tmpl.c,
 * over the vectors of kernels/simd.h, compiled with this file's flags.
 *
 * Micro-kernel 14 x 32: a tile of C is 14 rows x 2 zmm, 28 accumulators;
 * each step of p loads 2 vectors of the B panel and broadcasts 14 values
 * of the A panel (folded into the FMAs as {1to16} memory operands), for
 * 28 FMAs. Why this shape: the tile must hold at least latency x
 * throughput = 4 x 2 = 8 independent accumulators, and the larger it is
 * the fewer loads per FMA (16 per 28 here, 14 per 24 for 12 x 32, 10 per
 * 12 for AVX2's 6 x 16). 14 x 32 keeps 28 of the 32 registers for C, 2
 * for the B vectors and 1 for the broadcast. Measured on the benchmark's
 * training shapes (Zen 5), 12 x 32 is as fast within 1% either way. The
 * kernel alone, on packed data in cache, does about 226 GFLOP/s there;
 * the whole GEMM reaches 80-95% of that.
 * Narrower variants (12, 10, 8, 7 or 4 rows, 16 columns, or vectors down
 * the rows for up to 4 columns) serve the tiles on the edges of C; lane
 * masks store their edges.
 *
 * Cache blocks (tuned on the same machine, see docs/performance.md): K
 * slices up to KC = 1024 deep (fewer passes over C; a 128 KiB B
 * micro-panel, which streams from L2 as well as it would sit in L1), A
 * blocks of about 256 KiB (L2), B panels up to NC = 2048 columns (8 MiB
 * at most, L3). The workspace is at most about 8.3 MiB whatever the sizes.
 *
 * A read in place, not transposed and transposed, for tiles of more than
 * 4 columns (the column kernel reads a packed panel); B too, read with
 * masks, for products of at most 256 rows.
 *
 * Small M (M <= 8): no packing, like AVX2, with masked loads and stores
 * for the edges.
 */
#define TLMI_SIMD_AVX512 1
#include "kernels/simd.h"
#include "pack_x86.h"

#define TLMI_ISA_SUFFIX avx512
#define TLMI_GEMM_MR 14
#define TLMI_GEMM_NR 32
/* Cache blocking (see gemm.h): K slices of at most KC, A blocks of about
 * A_BLOCK floats and at most MC rows, B panels of at most NC columns. */
#define TLMI_GEMM_KC 1024
#define TLMI_GEMM_A_BLOCK (64 * 1024)
#define TLMI_GEMM_MC (36 * TLMI_GEMM_MR)
#define TLMI_GEMM_NC 2048
#define TLMI_GEMM_UNROLL_K 2
/* Rows of the kernel's variants: the last tile of M = 64 has 8 rows. */
#define TLMI_GEMM_ROW_VARIANTS(X) X(4) X(7) X(8) X(10) X(12) X(14)
#define TLMI_GEMM_COLUMNS 4
#define TLMI_GEMM_DIRECT_ROWS 1
#define TLMI_GEMM_DIRECT_COLS 1
#define TLMI_GEMM_ROWS_MAX_NC 512
#define TLMI_GEMM_COLS_MAX_NC 256
#define TLMI_GEMM_DIRECT_MIN_NR 4
#define TLMI_GEMM_B_IN_PLACE_MAX_M 256
#define TLMI_GEMM_B_IN_PLACE_MAX_N INT64_MAX
#define TLMI_GEMM_B_IN_PLACE_MIN_NR 4
/* Small M: R x W <= 24 accumulators; 8, 6 or 4 dot products at a time. */
#define TLMI_GEMM_SMALL_W(R) ((R) <= 2 ? 8 : 6)
#define TLMI_GEMM_SMALL_J(R) ((R) == 1 ? 1 : (R) == 2 ? 6 : 4)

#include "kernels/gemm_tmpl.c"
/* The bf16 products (gemm_bf16.h) on this ISA's float32 kernels. */
#include "kernels/gemm_bf16_round_tmpl.c"
