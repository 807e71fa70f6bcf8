/* Gradient cases of the fused attention: causal and not, with and without
 * a padding mask (f32 and i32), Tq == Tk, Tq < Tk (cross-attention, a KV
 * cache) and Tq > Tk, key counts spanning several blocks of
 * TLMI_ATTENTION_BLOCK (32), D != Dv, size-1 dimensions, one tensor used
 * as q, k and v, gradients asked of only some inputs, and grouped-query
 * attention (Hkv = H/2 and Hkv = 1 key/value heads, whose gradients sum
 * over the query heads of their group).
 *
 * Inputs: in[0] = q [B, H, Tq, D], in[1] = k [B, Hkv, Tk, D],
 * in[2] = v [B, Hkv, Tk, Dv], in[3] = key_mask [B, Tk] when present.
 *
 * Why some cases check only some inputs, and three use 3e-3: with many
 * keys each key's softmax weight is about 1/Tk, so the gradients of k
 * (and, when few queries share a key, of v) are small next to the
 * outputs, while the harness's finite differences carry the float32
 * rounding of every output a key touches (about 1e-6 absolute once divided
 * by h). That is a floor of the method, not of the kernel (whose forward
 * pass accumulates in double so as to reach it): emulating the harness
 * with outputs computed exactly in double and only then rounded to float,
 * over 30 random draws and every element, gives worst scaled errors of
 * 1.3e-3 for k at Tq = Tk = 70, 1.4e-3 for k at Tq = Tk = 33 (D 8),
 * 2.6e-3 for k at Tq = 16, Tk = 70, and 8.5e-3 for k at Tq = 1, Tk = 37
 * (all causal), while the truncation error of the differences stays below 1e-6. So q and
 * v are checked at the default bound, k with many keys (and the KV-cache
 * case) at 3e-3, and neither k nor v where even that is out of reach (one
 * query over 37 keys: v's gradient is then p_j dout, tiny for most j). */
#include "grad_check.h"

/* See the comment above: the float32 rounding floor of the method. */
#define MANY_KEYS_TOLERANCE 3e-3

static int build_plain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_attention(out, in[0], in[1], in[2], NULL, 0);
}
static int build_causal(tlm_tensor **out, tlm_tensor **in) {
    return tlm_attention(out, in[0], in[1], in[2], NULL, TLM_ATTENTION_CAUSAL);
}
static int build_mask(tlm_tensor **out, tlm_tensor **in) {
    return tlm_attention(out, in[0], in[1], in[2], in[3], 0);
}
static int build_mask_causal(tlm_tensor **out, tlm_tensor **in) {
    return tlm_attention(out, in[0], in[1], in[2], in[3], TLM_ATTENTION_CAUSAL);
}
/* Self-attention on one tensor: its gradient sums the q, k and v shares. */
static int build_self_causal(tlm_tensor **out, tlm_tensor **in) {
    return tlm_attention(out, in[0], in[0], in[0], NULL, TLM_ATTENTION_CAUSAL);
}

/* tlm_multi_head_attention: the heads packed in the last dimension,
 * in[0] = q [B, Tq, H*D], in[1] = k [B, Tk, H*D], in[2] = v [B, Tk, H*Dv]. */
static int build_packed_2(tlm_tensor **out, tlm_tensor **in) {
    return tlm_multi_head_attention(out, in[0], in[1], in[2], NULL, 2, 0);
}
static int build_packed_causal_3(tlm_tensor **out, tlm_tensor **in) {
    return tlm_multi_head_attention(out, in[0], in[1], in[2], NULL, 3,
                                    TLM_ATTENTION_CAUSAL);
}
static int build_packed_mask_causal_2(tlm_tensor **out, tlm_tensor **in) {
    return tlm_multi_head_attention(out, in[0], in[1], in[2], in[3], 2,
                                    TLM_ATTENTION_CAUSAL);
}
static int build_packed_self_2(tlm_tensor **out, tlm_tensor **in) {
    return tlm_multi_head_attention(out, in[0], in[0], in[0], NULL, 2,
                                    TLM_ATTENTION_CAUSAL);
}
/* Grouped-query attention, packed: H query heads over Hkv key/value heads
 * (the H passed; Hkv from k's width). */
static int build_packed_4(tlm_tensor **out, tlm_tensor **in) {
    return tlm_multi_head_attention(out, in[0], in[1], in[2], NULL, 4, 0);
}
static int build_packed_mask_causal_3(tlm_tensor **out, tlm_tensor **in) {
    return tlm_multi_head_attention(out, in[0], in[1], in[2], in[3], 3,
                                    TLM_ATTENTION_CAUSAL);
}
/* Multi-query attention on projections of one x: the shared k and v
 * gradients meet the q gradient in the product's backward. */
static int build_packed_projected_mqa(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *x, *q, *k, *v;
    int s = tlm_scale(&x, in[0], 1.5f);
    s = s ? s : tlm_matmul(&q, x, in[1], NULL, 0);
    s = s ? s : tlm_matmul(&k, x, in[2], NULL, 0);
    s = s ? s : tlm_matmul(&v, x, in[3], NULL, 0);
    return s ? s : tlm_multi_head_attention(out, q, k, v, NULL, 4,
                                            TLM_ATTENTION_CAUSAL);
}

/* q, k and v from one projection through a shared result: their gradients
 * are first shares (written by the kernels) that then meet in the
 * product's backward. */
static int build_packed_projected(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *x, *q, *k, *v;
    int s = tlm_scale(&x, in[0], 1.5f);
    s = s ? s : tlm_matmul(&q, x, in[1], NULL, 0);
    s = s ? s : tlm_matmul(&k, x, in[2], NULL, 0);
    s = s ? s : tlm_matmul(&v, x, in[3], NULL, 0);
    return s ? s : tlm_multi_head_attention(out, q, k, v, NULL, 2,
                                            TLM_ATTENTION_CAUSAL);
}

static const grad_case cases[] = {
    /* Size 1: one key, so the output is v and q, k get zero gradient. */
    {"tlm_attention", "1x1x1x1, one key", 3,
     {F32(1, 1, 1, 1), F32(1, 1, 1, 1), F32(1, 1, 1, 1)}, build_plain, 0, 0},
    {"tlm_attention", "causal 1x1x1x1", 3,
     {F32(1, 1, 1, 1), F32(1, 1, 1, 1), F32(1, 1, 1, 1)}, build_causal, 0, 0},
    /* One block, every input checked. */
    {"tlm_attention", "2x3x7x5, Dv 3", 3,
     {F32(2, 3, 7, 5), F32(2, 3, 7, 5), F32(2, 3, 7, 3)}, build_plain, 0, 0},
    {"tlm_attention", "causal 1x2x13x4, Dv 7", 3,
     {F32(1, 2, 13, 4), F32(1, 2, 13, 4), F32(1, 2, 13, 7)}, build_causal, 0, 0},
    {"tlm_attention", "cross Tq 5 Tk 9, f32 mask, 2x1, D 4 Dv 3", 4,
     {F32(2, 1, 5, 4), F32(2, 1, 9, 4), F32(2, 1, 9, 3), MASK_F32(2, 9)},
     build_mask, 0, 0},
    {"tlm_attention", "causal Tq 6 > Tk 4 (first rows see nothing)", 3,
     {F32(1, 2, 6, 3), F32(1, 2, 4, 3), F32(1, 2, 4, 2)}, build_causal, 0, 0},
    {"tlm_attention", "self-attention x,x,x causal 1x2x7x4", 1,
     {F32(1, 2, 7, 4)}, build_self_causal, 0, 0},
    {"tlm_attention", "only q checked, 1x1x9x3, Tk 11", 3,
     {F32(1, 1, 9, 3), F32_CONST(1, 1, 11, 3), F32_CONST(1, 1, 11, 2)},
     build_plain, 0, 0},
    {"tlm_attention", "only k and v checked, causal 2x1x7x3, Dv 5", 3,
     {F32_CONST(2, 1, 7, 3), F32(2, 1, 7, 3), F32(2, 1, 7, 5)}, build_causal,
     0, 0},
    /* Several key blocks. */
    {"tlm_attention", "causal + f32 mask 3x1x33x3, Dv 2, rows may see nothing", 4,
     {F32(3, 1, 33, 3), F32(3, 1, 33, 3), F32(3, 1, 33, 2), MASK_F32(3, 33)},
     build_mask_causal, 0, 0},
    {"tlm_attention", "q, v of 1x2x33x8, Dv 5 (2 key blocks)", 3,
     {F32(1, 2, 33, 8), F32_CONST(1, 2, 33, 8), F32(1, 2, 33, 5)},
     build_plain, 0, 0},
    {"tlm_attention", "q, v of causal 1x1x70x3, Dv 2 (3 key blocks)", 3,
     {F32(1, 1, 70, 3), F32_CONST(1, 1, 70, 3), F32(1, 1, 70, 2)},
     build_causal, 0, 0},
    {"tlm_attention", "k of causal 1x1x70x3, Dv 2 (3 key blocks)", 3,
     {F32_CONST(1, 1, 70, 3), F32(1, 1, 70, 3), F32_CONST(1, 1, 70, 2)},
     build_causal, MANY_KEYS_TOLERANCE, 0},
    {"tlm_attention", "k of 1x2x33x8, Dv 5 (2 key blocks)", 3,
     {F32_CONST(1, 2, 33, 8), F32(1, 2, 33, 8), F32_CONST(1, 2, 33, 5)},
     build_plain, MANY_KEYS_TOLERANCE, 0},
    {"tlm_attention", "causal Tq 16 Tk 70 (KV cache), i32 mask 0..3", 4,
     {F32(2, 1, 16, 3), F32(2, 1, 70, 3), F32(2, 1, 70, 2), IDS(0, 3, 2, 70)},
     build_mask_causal, MANY_KEYS_TOLERANCE, 0},
    {"tlm_attention", "q of causal Tq 3 Tk 70 (KV cache), i32 mask 0..1", 4,
     {F32(2, 2, 3, 5), F32_CONST(2, 2, 70, 5), F32_CONST(2, 2, 70, 3),
      IDS(0, 1, 2, 70)},
     build_mask_causal, 0, 0},
    {"tlm_attention", "q of causal Tq 1 Tk 37 (a decode step), D 1", 3,
     {F32(1, 3, 1, 1), F32_CONST(1, 3, 37, 1), F32_CONST(1, 3, 37, 4)},
     build_causal, 0, 0},
    /* Grouped-query attention: H query heads over Hkv = H/2 or 1. */
    {"tlm_attention", "GQA H 4 Hkv 2, 2x4x5x3, Tk 7, Dv 2", 3,
     {F32(2, 4, 5, 3), F32(2, 2, 7, 3), F32(2, 2, 7, 2)}, build_plain, 0, 0},
    {"tlm_attention", "GQA causal H 6 Hkv 3, 1x6x9x2, Dv 3", 3,
     {F32(1, 6, 9, 2), F32(1, 3, 9, 2), F32(1, 3, 9, 3)}, build_causal, 0, 0},
    {"tlm_attention", "MQA causal + f32 mask H 3 Hkv 1, 2x3x7x3, Dv 5", 4,
     {F32(2, 3, 7, 3), F32(2, 1, 7, 3), F32(2, 1, 7, 5), MASK_F32(2, 7)},
     build_mask_causal, 0, 0},
    {"tlm_attention", "MQA cross, i32 mask, H 5 Hkv 1, Tq 3 Tk 11, D 4 Dv 1", 4,
     {F32(2, 5, 3, 4), F32(2, 1, 11, 4), F32(2, 1, 11, 1), IDS(0, 1, 2, 11)},
     build_mask, 0, 0},
    {"tlm_attention", "only k and v of GQA causal H 4 Hkv 2, 1x4x6x3", 3,
     {F32_CONST(1, 4, 6, 3), F32(1, 2, 6, 3), F32(1, 2, 6, 3)}, build_causal,
     0, 0},
    {"tlm_multi_head_attention", "2 heads, 2x5x(2x3), Tk 7, Dv 2", 3,
     {F32(2, 5, 6), F32(2, 7, 6), F32(2, 7, 4)}, build_packed_2, 0, 0},
    {"tlm_multi_head_attention", "causal 3 heads, 1x9x(3x2), Dv 3", 3,
     {F32(1, 9, 6), F32(1, 9, 6), F32(1, 9, 9)}, build_packed_causal_3, 0, 0},
    {"tlm_multi_head_attention", "causal + f32 mask, 2 heads, 2x6x(2x3)", 4,
     {F32(2, 6, 6), F32(2, 6, 6), F32(2, 6, 4), MASK_F32(2, 6)},
     build_packed_mask_causal_2, 0, 0},
    {"tlm_multi_head_attention", "self-attention x,x,x causal 1x7x(2x4)", 1,
     {F32(1, 7, 8)}, build_packed_self_2, 0, 0},
    {"tlm_multi_head_attention", "q, k, v projected from one x, 2x5x6", 4,
     {F32(2, 5, 6), F32(6, 4), F32(6, 4), F32(6, 6)}, build_packed_projected,
     0, 0},
    {"tlm_multi_head_attention", "GQA 4 heads over 2, 2x5x(4x3), Tk 7, Dv 2", 3,
     {F32(2, 5, 12), F32(2, 7, 6), F32(2, 7, 4)}, build_packed_4, 0, 0},
    {"tlm_multi_head_attention", "MQA causal + f32 mask, 3 heads over 1, "
     "2x6x(3x3), Dv 5", 4,
     {F32(2, 6, 9), F32(2, 6, 3), F32(2, 6, 5), MASK_F32(2, 6)},
     build_packed_mask_causal_3, 0, 0},
    {"tlm_multi_head_attention", "MQA q, k, v projected from one x, 4 heads "
     "of 2 over 1, 2x5x6", 4,
     {F32(2, 5, 6), F32(6, 8), F32(6, 2), F32(6, 3)},
     build_packed_projected_mqa, 0, 0},
};

const grad_case_group grad_cases_attention = {"attention", cases,
                                              sizeof cases / sizeof cases[0]};
