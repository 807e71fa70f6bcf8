/* Gradient cases of the sequence operations: embedding, sinusoidal
 * positions, RoPE, dropout and cross-entropy. Integer inputs (ids,
 * targets) are never checked; every float input is. */
#include "grad_check.h"

static int build_embedding(tlm_tensor **out, tlm_tensor **in) {
    return tlm_embedding(out, in[0], in[1]);
}

/* A table that is itself a result: rows of in[0] gathered by in[1] form
 * the table that in[2] indexes, so gradients flow through two lookups. */
static int build_embedding_chain(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *table = NULL;
    int status = tlm_embedding(&table, in[0], in[1]);
    return status ? status : tlm_embedding(out, table, in[2]);
}

static int build_sinusoidal_0(tlm_tensor **out, tlm_tensor **in) {
    return tlm_add_sinusoidal_positions(out, in[0], 0);
}
static int build_sinusoidal_5(tlm_tensor **out, tlm_tensor **in) {
    return tlm_add_sinusoidal_positions(out, in[0], 5);
}
static int build_sinusoidal_1000(tlm_tensor **out, tlm_tensor **in) {
    return tlm_add_sinusoidal_positions(out, in[0], 1000);
}

static int build_rope_0(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rope(out, in[0], 0, 10000.0f);
}
static int build_rope_3(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rope(out, in[0], 3, 10000.0f);
}
static int build_rope_1000_base_500(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rope(out, in[0], 1000, 500.0f);
}

static int build_dropout_0(tlm_tensor **out, tlm_tensor **in) {
    return tlm_dropout(out, in[0], 0.0f);
}
static int build_dropout_01(tlm_tensor **out, tlm_tensor **in) {
    return tlm_dropout(out, in[0], 0.1f);
}
static int build_dropout_03(tlm_tensor **out, tlm_tensor **in) {
    return tlm_dropout(out, in[0], 0.3f);
}
static int build_dropout_05(tlm_tensor **out, tlm_tensor **in) {
    return tlm_dropout(out, in[0], 0.5f);
}
static int build_dropout_09(tlm_tensor **out, tlm_tensor **in) {
    return tlm_dropout(out, in[0], 0.9f);
}

static int build_ce(tlm_tensor **out, tlm_tensor **in) {
    return tlm_cross_entropy(out, in[0], in[1], -100);
}
static int build_ce_ignore_minus_1(tlm_tensor **out, tlm_tensor **in) {
    return tlm_cross_entropy(out, in[0], in[1], -1);
}
/* ignore_index inside 0..V-1: class 0 is never counted. */
static int build_ce_ignore_0(tlm_tensor **out, tlm_tensor **in) {
    return tlm_cross_entropy(out, in[0], in[1], 0);
}

/* Rows 1 to 4 of 6 ignored: a padded batch, with a large tensor but few
 * rows in the mean (see the note on the table). */
static int build_ce_mostly_ignored(tlm_tensor **out, tlm_tensor **in) {
    int32_t *targets = tlm_tensor_data_i32(in[1]);
    for (int r = 1; r < 5; r++)
        targets[r] = -1;
    return tlm_cross_entropy(out, in[0], in[1], -1);
}

/*
 * A note on the cross-entropy cases. Its result is one float32 number, the
 * mean loss (about log V with random logits), while each logit's gradient
 * is about 1 / (rows * V): the rounding of the loss to float32 (up to
 * 6e-8 of it, 1.2e-7 for a loss near 2.5) divided by the step 2h reaches
 * 1e-3 of the smaller gradients once rows * sqrt(V) * log(V) grows past
 * about 10 (observed: 1.2e-3 on [3, 13] and 2.3e-3 on [2, 3, 33] with
 * standard normal logits, noise and not a wrong gradient). The cases
 * therefore keep few rows in the mean (many rows only when most are
 * ignored), and most draw logits in [3, 6] or [-6, -3]: the loss does not
 * change when every logit moves by the same amount, and the harness's step
 * grows with |x|, which divides that rounding noise by about four. The
 * gradient itself is also checked against its closed form in double
 * precision, on larger shapes, in tests/ops/test_values_sequence.c.
 */
static const grad_case cases[] = {
    {"tlm_embedding", "table 1x1, ids [1]", 2, {F32(1, 1), IDS(0, 0, 1)}, build_embedding, 0, 0},
    {"tlm_embedding", "table 7x3, ids [13] (repeats)", 2, {F32(7, 3), IDS(0, 6, 13)}, build_embedding, 0, 0},
    {"tlm_embedding", "table 5x9, ids [2, 3]", 2, {F32(5, 9), IDS(0, 4, 2, 3)}, build_embedding, 0, 0},
    {"tlm_embedding", "table 4x33, ids [2, 3, 5] -> 4-D", 2, {F32(4, 33), IDS(0, 3, 2, 3, 5)}, build_embedding, 0, 0},
    {"tlm_embedding", "table of a lookup: 6x7 -> [5, 7] -> [3, 2, 7]", 3, {F32(6, 7), IDS(0, 5, 5), IDS(0, 4, 3, 2)}, build_embedding_chain, 0, 0},

    {"tlm_add_sinusoidal_positions", "[1, 2], offset 0", 1, {F32(1, 2)}, build_sinusoidal_0, 0, 0},
    {"tlm_add_sinusoidal_positions", "[7, 6], offset 5", 1, {F32(7, 6)}, build_sinusoidal_5, 0, 0},
    {"tlm_add_sinusoidal_positions", "[2, 13, 14], offset 1000", 1, {F32(2, 13, 14)}, build_sinusoidal_1000, 0, 0},
    {"tlm_add_sinusoidal_positions", "[2, 3, 5, 34], offset 0", 1, {F32(2, 3, 5, 34)}, build_sinusoidal_0, 0, 0},

    {"tlm_rope", "[1, 2], offset 0", 1, {F32(1, 2)}, build_rope_0, 0, 0},
    {"tlm_rope", "[7, 6], offset 3", 1, {F32(7, 6)}, build_rope_3, 0, 0},
    {"tlm_rope", "[2, 13, 34], offset 1000, base 500", 1, {F32(2, 13, 34)}, build_rope_1000_base_500, 0, 0},
    {"tlm_rope", "[2, 3, 5, 14], offset 3", 1, {F32(2, 3, 5, 14)}, build_rope_3, 0, 0},

    {"tlm_dropout", "p 0.5, [1]", 1, {F32(1)}, build_dropout_05, 0, 0},
    {"tlm_dropout", "p 0.5, [13]", 1, {F32(13)}, build_dropout_05, 0, 0},
    {"tlm_dropout", "p 0.1, [7, 33]", 1, {F32(7, 33)}, build_dropout_01, 0, 0},
    {"tlm_dropout", "p 0.9, [3, 3, 7]", 1, {F32(3, 3, 7)}, build_dropout_09, 0, 0},
    {"tlm_dropout", "p 0 (identity), [3, 5]", 1, {F32(3, 5)}, build_dropout_0, 0, 0},
    {"tlm_dropout", "p 0.3, eval mode (identity), [2, 3, 7]", 1, {F32(2, 3, 7)}, build_dropout_03, 0, 1},

    {"tlm_cross_entropy", "logits [1, 1] (V = 1)", 2, {F32(1, 1), IDS(0, 0, 1)}, build_ce, 0, 0},
    {"tlm_cross_entropy", "logits [7] 1-D, targets [1]", 2, {F32(7), IDS(0, 6, 1)}, build_ce, 0, 0},
    {"tlm_cross_entropy", "logits [3, 13] in [3, 6]", 2, {F32_RANGE(3, 6, 3, 13), IDS(0, 12, 3)}, build_ce, 0, 0},
    {"tlm_cross_entropy", "logits [1, 33] in [3, 6]", 2, {F32_RANGE(3, 6, 1, 33), IDS(0, 32, 1)}, build_ce, 0, 0},
    {"tlm_cross_entropy", "logits [2, 3, 7] in [-6, -3], some ignored (-1)", 2, {F32_RANGE(-6, -3, 2, 3, 7), IDS(-1, 6, 2, 3)}, build_ce_ignore_minus_1, 0, 0},
    {"tlm_cross_entropy", "logits [2, 1, 3, 7] in [3, 6], ignore_index 0", 2, {F32_RANGE(3, 6, 2, 1, 3, 7), IDS(0, 6, 2, 1, 3)}, build_ce_ignore_0, 0, 0},
    {"tlm_cross_entropy", "logits [2, 3, 13] in [3, 6], 4 of 6 rows ignored", 2, {F32_RANGE(3, 6, 2, 3, 13), IDS(0, 12, 2, 3)}, build_ce_mostly_ignored, 0, 0},
    {"tlm_cross_entropy", "logits [5, 9], all ignored", 2, {F32(5, 9), IDS(-1, -1, 5)}, build_ce_ignore_minus_1, 0, 0},
    {"tlm_cross_entropy", "logits [2, 5] in [-8, 8] (peaked)", 2, {F32_RANGE(-8, 8, 2, 5), IDS(0, 4, 2)}, build_ce, 0, 0},
};

const grad_case_group grad_cases_sequence = {"sequence", cases,
                                             sizeof cases / sizeof cases[0]};
