/*
 * GEMM for AArch64 Advanced SIMD (NEON: 32 q registers of 4 floats): the
 * sizes and choices of this ISA; the kernels themselves are
 * kernels/gemm_tmpl.c, over the vectors of kernels/simd.h.
 *
 * Micro-kernel 8 x 12: a tile of C is 8 rows x 3 q registers, 24
 * accumulators; each step of p loads 8 values of the A panel (2 registers)
 * and 12 of the B panel (3 registers) and does 24 FMAs by lane
 * (vfmaq_laneq_f32: acc += b * a[lane]), so A needs no broadcasts: that
 * step is this file's own (fma_lanes below). 24 + 5 registers of the 32;
 * 24 accumulators cover FMA latency 4 x 2 pipes with room to spare. The
 * shape of OpenBLAS's and BLIS's Cortex-A57+ kernels. Packing is the
 * plain C of gemm_tmpl.c (the compiler vectorizes the contiguous case);
 * A is always packed.
 *
 * Small M (M <= 8): no packing, as in the x86 files.
 */
#define TLMI_SIMD_NEON 1
#include "kernels/simd.h"

#define TLMI_ISA_SUFFIX neon
#define TLMI_GEMM_MR 8
#define TLMI_GEMM_NR 12
/* Cache blocking (see gemm.h): K slices of at most KC, A blocks of about
 * A_BLOCK floats (128 KiB) and at most MC rows, B panels of at most NC
 * columns. Typical Arm cores have 64 KiB L1 and 512 KiB - 1 MiB L2; these
 * are educated guesses, not measurements (this file has only run under
 * qemu). */
#define TLMI_GEMM_KC 512
#define TLMI_GEMM_A_BLOCK (32 * 1024)
#define TLMI_GEMM_MC (32 * TLMI_GEMM_MR)
#define TLMI_GEMM_NC 1536
#define TLMI_GEMM_UNROLL_K 1
#define TLMI_GEMM_ROW_VARIANTS(X) X(8)
/* Small M: 8 or 4 vectors of columns, 8 or 4 dot products at a time, up
 * to 4 rows of them. */
#define TLMI_GEMM_SMALL_W(R) ((R) == 1 ? 8 : 4)
#define TLMI_GEMM_SMALL_J(R) ((R) == 1 ? 8 : 4)
#define TLMI_GEMM_SMALL_DOTS_R 4

/* One step of p of the packed kernel, R a multiple of 4: acc[r][v] +=
 * ap[r] * b[v], four values of A per load and one FMA by lane each. */
#define TLMI_GEMM_HAVE_FMA_LANES 1
static inline __attribute__((always_inline)) void
fma_lanes(tlmi_vf acc[][TLMI_GEMM_NR / TLMI_VL], const float *ap,
          const tlmi_vf *b, const int R, const int W) {
    for (int g = 0; g < R; g += 4) {
        const float32x4_t a = vld1q_f32(ap + g);
        for (int v = 0; v < W; v++) {
            acc[g][v] = vfmaq_laneq_f32(acc[g][v], b[v], a, 0);
            acc[g + 1][v] = vfmaq_laneq_f32(acc[g + 1][v], b[v], a, 1);
            acc[g + 2][v] = vfmaq_laneq_f32(acc[g + 2][v], b[v], a, 2);
            acc[g + 3][v] = vfmaq_laneq_f32(acc[g + 3][v], b[v], a, 3);
        }
    }
}

#include "kernels/gemm_tmpl.c"
/* The bf16 products (gemm_bf16.h) on this ISA's float32 kernels. */
#include "kernels/gemm_bf16_round_tmpl.c"
