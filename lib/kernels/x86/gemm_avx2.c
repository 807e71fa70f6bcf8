/*
 * GEMM for AVX2 + FMA (16 ymm registers of 8 floats): the sizes and
 * choices of this ISA; the kernels themselves are kernels/gemm_tmpl.c,
 * over the vectors of kernels/simd.h, compiled with this file's flags.
 *
 * Micro-kernel 6 x 16: a tile of C is 6 rows x 2 ymm, 12 accumulators;
 * each step of p loads 2 vectors of the B panel and broadcasts 6 values of
 * the A panel, for 12 FMAs. 12 independent accumulators cover the FMA
 * latency (4-5 cycles) at 2 FMAs per cycle; the 3 registers left hold the
 * B vectors and the broadcast. This is BLIS's Haswell shape.
 *
 * The kernel alone, on packed data in cache, does about 118 GFLOP/s on
 * the benchmark machine (Zen 5); the whole GEMM reaches 80-95% of that.
 * Narrower variants (4 or 2 rows, 8 columns, or vectors down the rows for
 * up to 2 columns) serve the tiles on the edges of C.
 *
 * Cache blocks as for AVX-512 (see that file) but K slices up to KC = 512,
 * so that a B micro-panel (KC x 16 floats, 32 KiB) stays in L1: the
 * kernel alone loses 5% when it streams a 64 KiB one from L2, and whole
 * products measured 1-2% faster than with KC = 1024. A blocks of about
 * 256 KiB, B panels up to NC = 2048 columns; the optimum is flat around
 * these values.
 *
 * A read in place when not transposed, for tiles of more than 8 columns
 * (the narrower kernels read a packed panel). A transposed is always
 * packed: reading it in place measured no faster with AVX2 (0.97-1.04x
 * on the training step's products). B is read in place too (no packing
 * at all) for products of at most 256 x 256 whose tiles are all 16
 * columns wide.
 *
 * Small M (M <= 8, decoding one or a few tokens): no packing; B is
 * streamed once per group of up to 4 rows, straight from memory.
 */
#define TLMI_SIMD_AVX2 1
#include "kernels/simd.h"
#include "pack_x86.h"

#define TLMI_ISA_SUFFIX avx2
#define TLMI_GEMM_MR 6
#define TLMI_GEMM_NR 16
/* Cache blocking (see gemm.h): K slices of at most KC, A blocks of about
 * A_BLOCK floats and at most MC rows, B panels of at most NC columns. */
#define TLMI_GEMM_KC 512
#define TLMI_GEMM_A_BLOCK (64 * 1024)
#define TLMI_GEMM_MC (84 * TLMI_GEMM_MR)
#define TLMI_GEMM_NC 2048
#define TLMI_GEMM_UNROLL_K 4
/* Rows of the kernel's variants: M = 64 ends with a tile of 4 rows. */
#define TLMI_GEMM_ROW_VARIANTS(X) X(2) X(4) X(6)
#define TLMI_GEMM_COLUMNS 2
#define TLMI_GEMM_DIRECT_ROWS 1
#define TLMI_GEMM_ROWS_MAX_NC 512
#define TLMI_GEMM_DIRECT_MIN_NR 8
#define TLMI_GEMM_B_IN_PLACE_MAX_M 256
#define TLMI_GEMM_B_IN_PLACE_MAX_N 256
#define TLMI_GEMM_B_IN_PLACE_MIN_NR TLMI_GEMM_NR
/* Small M: R x W <= 12 accumulators; 8, 4 or 3 dot products at a time. */
#define TLMI_GEMM_SMALL_W(R) ((R) == 1 ? 8 : (R) == 2 ? 6 : (R) == 3 ? 4 : 3)
#define TLMI_GEMM_SMALL_J(R) ((R) == 1 ? 1 : (R) == 2 ? 4 : 3)

#include "kernels/gemm_tmpl.c"
/* The bf16 products (gemm_bf16.h) on this ISA's float32 kernels. */
#include "kernels/gemm_bf16_round_tmpl.c"
