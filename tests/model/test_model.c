/*
 * Suite "model": the transformer's configuration, parameters and training
 * forward pass (shapes, loss at initialisation, gradients reach every
 * parameter, validation of every bad configuration and batch) and its
 * gradients in each architecture (against differences of the loss and
 * repeated passes).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"
#include "tolerance.h"

static tlm_model_config small_config(void) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 29;
    c.d_model = 24;
    c.n_heads = 3;
    c.d_ff = 40;
    c.n_decoder_layers = 2;
    c.max_context = 16;
    c.init_seed = 5;
    return c;
}

static tlm_tensor *ids_tensor(tlm_context *ctx, int64_t b, int64_t t,
                              int32_t modulo, int32_t offset) {
    const int64_t shape[2] = {b, t};
    tlm_tensor *ids = NULL;
    assert_int_equal(tlm_tensor_create(&ids, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
    int32_t *v = tlm_tensor_data_i32(ids);
    for (int64_t i = 0; i < b * t; i++)
        v[i] = (int32_t)((i * 7 + offset) % modulo);
    return ids;
}

/* Expected parameter count of docs/model.md's layout. */
static int64_t expected_count(const tlm_model_config *c) {
    const int64_t d = c->d_model, inner = (int64_t)c->n_heads * c->head_dim,
                  kv_inner = (int64_t)c->n_kv_heads * c->head_dim,
                  f = c->d_ff, v = c->vocab_size, bias = c->bias;
    const int64_t norm = d + (c->norm == TLM_NORM_LAYER && bias ? d : 0);
    /* q [H*hd, D], k and v [Hkv*hd, D], o [D, H*hd], and their biases. */
    const int64_t attention = (inner * d + bias * inner) +
                              2 * (kv_inner * d + bias * kv_inner) +
                              d * inner + bias * d;
    const int64_t ffn = (c->activation == TLM_ACTIVATION_SWIGLU ? 2 : 1) * (f * d + bias * f) +
                        d * f + bias * d;
    const int seq2seq = c->n_encoder_layers > 0 && c->n_decoder_layers > 0;
    int64_t total = v * d;
    if (c->position == TLM_POSITION_LEARNED)
        total += (int64_t)c->max_context * d;
    total += c->n_encoder_layers * (2 * norm + attention + ffn);
    total += c->n_decoder_layers * (2 * norm + attention + ffn + (seq2seq ? norm + attention : 0));
    if (c->norm_placement == TLM_NORM_PRE)
        total += (c->n_encoder_layers > 0) * norm + (c->n_decoder_layers > 0) * norm;
    if (!c->tied_output)
        total += v * d;
    return total;
}

static void config_defaults_resolve(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = small_config();
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    tlm_model_config got;
    tlm_model_config_init(&got);
    assert_int_equal(tlm_model_get_config(m, &got), TLM_OK);
    assert_int_equal(got.head_dim, 8);
    assert_int_equal(got.d_ff, 40);
    assert_int_equal(got.vocab_size, 29);
    assert_int_equal(tlm_model_parameter_count(m), expected_count(&got));
    tlm_model_free(m);
    tlm_context_free(ctx);
}

/* Every combination of options: names unique, count as documented. */
static void every_option_builds_the_documented_parameters(void **state) {
    (void)state;
    for (int variant = 0; variant < 48; variant++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_config c = small_config();
        c.position = variant % 3;
        c.norm = (variant / 3) % 2;
        c.norm_placement = (variant / 6) % 2;
        c.activation = (variant / 12) % 4;
        c.bias = variant % 2;
        c.tied_output = (variant / 2) % 2;
        c.n_encoder_layers = variant % 3 == 0 ? 1 : (variant % 3 == 1 ? 2 : 0);
        c.n_decoder_layers = variant % 3 == 1 ? 0 : 1;
        c.n_kv_heads = variant % 4 == 3 ? 1 : 0; /* multi-query: k, v narrower */
        if (c.position == TLM_POSITION_ROTARY)
            c.head_dim = 6;
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        tlm_model_config got;
        tlm_model_config_init(&got);
        tlm_model_get_config(m, &got);
        assert_int_equal(tlm_model_parameter_count(m), expected_count(&got));
        int32_t n = tlm_model_parameter_tensor_count(m);
        for (int32_t i = 0; i < n; i++) {
            const char *name = NULL;
            tlm_tensor *t = NULL, *found = NULL;
            assert_int_equal(tlm_model_parameter(m, i, &name, &t), TLM_OK);
            assert_int_equal(tlm_model_find_parameter(m, name, &found), TLM_OK);
            assert_ptr_equal(found, t);
            assert_int_equal(tlm_tensor_requires_grad(t), 1);
        }
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static void initialisation_is_reproducible_and_scaled(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = small_config();
    c.d_model = 64;
    c.n_heads = 4;
    c.d_ff = 256;
    c.n_decoder_layers = 8;
    tlm_model *a = NULL, *b = NULL;
    assert_int_equal(tlm_model_create(&a, ctx, &c), TLM_OK);
    assert_int_equal(tlm_model_create(&b, ctx, &c), TLM_OK);
    tlm_tensor *wa, *wb, *o, *ln;
    assert_int_equal(tlm_model_find_parameter(a, "decoder.layers.3.ffn.up_proj.weight", &wa), TLM_OK);
    assert_int_equal(tlm_model_find_parameter(b, "decoder.layers.3.ffn.up_proj.weight", &wb), TLM_OK);
    assert_memory_equal(tlm_tensor_data_f32(wa), tlm_tensor_data_f32(wb),
                        (size_t)tlm_tensor_numel(wa) * sizeof(float));
    /* Standard deviations: 0.02, and 0.02 / sqrt(2 * 8) for o_proj. */
    assert_int_equal(tlm_model_find_parameter(a, "decoder.layers.0.self_attn.o_proj.weight", &o), TLM_OK);
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < tlm_tensor_numel(wa); i++)
        s1 += (double)tlm_tensor_data_f32(wa)[i] * (double)tlm_tensor_data_f32(wa)[i];
    for (int64_t i = 0; i < tlm_tensor_numel(o); i++)
        s2 += (double)tlm_tensor_data_f32(o)[i] * (double)tlm_tensor_data_f32(o)[i];
    double std1 = sqrt(s1 / (double)tlm_tensor_numel(wa)), std2 = sqrt(s2 / (double)tlm_tensor_numel(o));
    assert_true(fabs(std1 - 0.02) < 0.001);
    assert_true(fabs(std2 - 0.02 / 4.0) < 0.0005);
    assert_int_equal(tlm_model_find_parameter(a, "decoder.final_norm.weight", &ln), TLM_OK);
    tlmt_assert_close(tlm_tensor_data_f32(ln)[0], 1.0f, 0);
    tlm_model_free(a);
    tlm_model_free(b);
    tlm_context_free(ctx);
}

/* Forward and backward of each kind of model: shapes, a loss near log(V)
 * at initialisation, and a gradient for every parameter. */
/* Every parameter is a view into one block the model allocates (so that
 * the weights of a large model sit on 2 MiB pages, see docs/performance.md):
 * in creation order, each starting on a 64-byte boundary right after the
 * previous one's values rounded up to 64 bytes. */
static void parameters_share_one_block(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = small_config();
    c.tied_output = 0;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    const int32_t n = tlm_model_parameter_tensor_count(m);
    assert_true(n > 10);
    uintptr_t expected = 0;
    for (int32_t i = 0; i < n; i++) {
        tlm_tensor *t = NULL;
        assert_int_equal(tlm_model_parameter(m, i, NULL, &t), TLM_OK);
        const uintptr_t at = (uintptr_t)(void *)tlm_tensor_data_f32(t);
        assert_int_equal(at % 64, 0);
        if (i > 0)
            assert_true(at == expected);
        const uintptr_t bytes = (uintptr_t)tlm_tensor_numel(t) * sizeof(float);
        expected = at + (bytes + 63) / 64 * 64;
    }
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void forward_backward_each_kind(void **state) {
    (void)state;
    const int kinds[3][2] = {{0, 2}, {2, 0}, {1, 2}}; /* encoder, decoder layers */
    for (int k = 0; k < 3; k++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_config c = small_config();
        c.n_encoder_layers = kinds[k][0];
        c.n_decoder_layers = kinds[k][1];
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        tlm_batch batch;
        tlm_batch_init(&batch);
        batch.ids = ids_tensor(ctx, 3, 7, 29, 1);
        batch.targets = ids_tensor(ctx, 3, 7, 29, 4);
        tlm_tensor_data_i32(batch.targets)[5] = -1; /* ignored */
        if (k == 1) { /* encoder-only: the last position is padding */
            batch.mask = ids_tensor(ctx, 3, 7, 1, 0);
            for (int i = 0; i < 21; i++)
                tlm_tensor_data_i32(batch.mask)[i] = i % 7 < 6;
        }
        if (k == 2) {
            batch.src_ids = ids_tensor(ctx, 3, 5, 29, 2);
            batch.src_mask = ids_tensor(ctx, 3, 5, 1, 0);
            for (int i = 0; i < 15; i++)
                tlm_tensor_data_i32(batch.src_mask)[i] = i % 5 != 4 || i < 5;
        }
        tlm_tensor *logits = NULL, *loss = NULL;
        assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_OK);
        int64_t shape[4];
        assert_int_equal(tlm_tensor_shape(logits, shape, 4), 3);
        assert_int_equal(shape[0], 3);
        assert_int_equal(shape[1], 7);
        assert_int_equal(shape[2], 29);
        float l = tlm_tensor_data_f32(loss)[0];
        printf("kind %d: loss at init %.4f (log V = %.4f)\n", k, (double)l, log(29.0));
        assert_true(fabs((double)l - log(29.0)) < 0.1);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        int32_t n = tlm_model_parameter_tensor_count(m);
        for (int32_t i = 0; i < n; i++) {
            const char *name;
            tlm_tensor *t;
            tlm_model_parameter(m, i, &name, &t);
            const float *g = tlm_tensor_grad_data_f32(t);
            assert_non_null(g);
            double norm = 0;
            for (int64_t j = 0; j < tlm_tensor_numel(t); j++)
                norm += fabs((double)g[j]);
            /* Every parameter influences the loss, except the biases of
             * k_proj (softmax ignores a shift common to all keys). */
            if (strstr(name, "k_proj.bias") == NULL && !(norm > 0)) {
                fail_msg("%s has a zero gradient", name);
            }
        }
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static void bad_configurations_are_named(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = (tlm_model *)ctx;
    tlm_model_config c;
#define EXPECT_BAD(statement, word)                                           \
    do {                                                                      \
        c = small_config();                                                   \
        statement;                                                            \
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_E_INVALID);       \
        assert_null(m);                                                       \
        if (strstr(tlm_last_error(), word) == NULL)                           \
            fail_msg("'%s' does not mention %s", tlm_last_error(), word);     \
    } while (0)
    EXPECT_BAD(c.vocab_size = 0, "vocab_size");
    EXPECT_BAD(c.d_model = 0, "d_model");
    EXPECT_BAD(c.n_heads = 5, "n_heads");
    EXPECT_BAD(c.n_heads = 0, "n_heads");
    EXPECT_BAD(c.head_dim = -1, "head_dim");
    EXPECT_BAD(c.d_ff = -3, "d_ff");
    EXPECT_BAD((c.n_decoder_layers = 0, c.n_encoder_layers = 0), "n_decoder_layers");
    EXPECT_BAD(c.n_encoder_layers = -1, "n_encoder_layers");
    EXPECT_BAD(c.max_context = 0, "max_context");
    EXPECT_BAD(c.position = 7, "position");
    EXPECT_BAD((c.position = TLM_POSITION_ROTARY, c.head_dim = 5), "head_dim");
    EXPECT_BAD((c.position = TLM_POSITION_SINUSOIDAL, c.d_model = 21), "d_model");
    EXPECT_BAD(c.norm = 2, "norm");
    EXPECT_BAD(c.norm_placement = -1, "norm_placement");
    EXPECT_BAD(c.activation = 9, "activation");
    EXPECT_BAD(c.bias = 2, "bias");
    EXPECT_BAD(c.tied_output = -1, "tied_output");
    EXPECT_BAD(c.embedding_dropout = 1.0f, "embedding_dropout");
    EXPECT_BAD(c.residual_dropout = NAN, "residual_dropout");
    EXPECT_BAD(c.norm_eps = 0, "norm_eps");
    EXPECT_BAD(c.rope_base = INFINITY, "rope_base");
    EXPECT_BAD(c.struct_size = 1, "struct_size");
#undef EXPECT_BAD
    assert_int_equal(tlm_model_create(&m, ctx, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_model_create(&m, NULL, &c), TLM_E_INVALID);
    assert_int_equal(tlm_model_create(NULL, ctx, &c), TLM_E_INVALID);
    tlm_context_free(ctx);
}

static void bad_batches_are_named(void **state) {
    (void)state;
    tlm_context *ctx = NULL, *other = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    assert_int_equal(tlm_context_create(&other, NULL), TLM_OK);
    tlm_model_config c = small_config();
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    tlm_batch batch;
    tlm_tensor *logits = NULL, *loss = NULL;
    tlm_batch_init(&batch);
    assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "ids"));
    batch.ids = ids_tensor(ctx, 2, 17, 29, 0); /* longer than max_context */
    assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_E_RANGE);
    assert_non_null(strstr(tlm_last_error(), "max_context"));
    batch.ids = ids_tensor(ctx, 2, 5, 29, 0);
    batch.targets = ids_tensor(ctx, 2, 6, 29, 0);
    assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_E_SHAPE);
    assert_non_null(strstr(tlm_last_error(), "targets"));
    batch.targets = ids_tensor(other, 2, 5, 29, 0);
    assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_E_INVALID);
    batch.targets = NULL;
    batch.src_ids = ids_tensor(ctx, 2, 5, 29, 0);
    assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "src_ids"));
    batch.src_ids = NULL;
    /* An id outside the vocabulary is found by the embedding. */
    batch.ids = ids_tensor(ctx, 2, 5, 29, 0);
    tlm_tensor_data_i32(batch.ids)[3] = 29;
    assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_E_RANGE);
    assert_null(logits);
    assert_int_equal(tlm_model_forward(NULL, &batch, &logits, &loss), TLM_E_INVALID);
    assert_int_equal(tlm_model_forward(m, NULL, &logits, &loss), TLM_E_INVALID);
    assert_int_equal(tlm_model_forward(m, &batch, NULL, &loss), TLM_E_INVALID);
    tlm_model_free(m);
    tlm_context_free(ctx);
    tlm_context_free(other);
}

/* The training graph's memory savings (docs/autodiff.md: pooled
 * gradients, recomputed norms and activations, in-place residual adds and
 * dropout) in each architecture: tiny models whose gradients are checked
 * against differences of the loss and against repeated passes. */
enum { N_GRAPH_VARIANTS = 6 };

static tlm_model_config graph_variant(int v) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 11;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 12;
    c.max_context = 8;
    c.n_decoder_layers = 2;
    c.init_seed = 3;
    switch (v) {
    case 0: /* GPT, pre-norm, dropout everywhere */
        c.embedding_dropout = 0.1f;
        c.residual_dropout = 0.2f;
        break;
    case 1: /* post-norm, exact GELU, untied */
        c.norm_placement = TLM_NORM_POST;
        c.activation = TLM_ACTIVATION_GELU_EXACT;
        c.tied_output = 0;
        c.residual_dropout = 0.1f;
        break;
    case 2: /* llama: rotary, RMS norm, SwiGLU, no bias, grouped keys */
        c.position = TLM_POSITION_ROTARY;
        c.norm = TLM_NORM_RMS;
        c.activation = TLM_ACTIVATION_SWIGLU;
        c.bias = 0;
        c.tied_output = 0;
        c.n_kv_heads = 1;
        break;
    case 3: /* encoder-decoder, cross-attention, dropout */
        c.n_encoder_layers = 2;
        c.residual_dropout = 0.1f;
        break;
    case 4: /* encoder-decoder, post-norm, sinusoidal, RMS, SwiGLU */
        c.n_encoder_layers = 1;
        c.norm_placement = TLM_NORM_POST;
        c.position = TLM_POSITION_SINUSOIDAL;
        c.norm = TLM_NORM_RMS;
        c.activation = TLM_ACTIVATION_SWIGLU;
        c.bias = 0;
        break;
    default: /* encoder-only with padding */
        c.n_encoder_layers = 2;
        c.n_decoder_layers = 0;
        c.residual_dropout = 0.1f;
        break;
    }
    return c;
}

/* A batch of 2 rows of 5 tokens (an encoder-decoder's sources: 4). */
static tlm_batch graph_batch(tlm_context *ctx, const tlm_model_config *c) {
    tlm_batch b;
    tlm_batch_init(&b);
    b.ids = ids_tensor(ctx, 2, 5, c->vocab_size, 1);
    b.targets = ids_tensor(ctx, 2, 5, c->vocab_size, 4);
    tlm_tensor_data_i32(b.targets)[3] = -1;
    if (c->n_encoder_layers > 0 && c->n_decoder_layers > 0) {
        b.src_ids = ids_tensor(ctx, 2, 4, c->vocab_size, 2);
        b.src_mask = ids_tensor(ctx, 2, 4, 1, 0);
        for (int i = 0; i < 8; i++)
            tlm_tensor_data_i32(b.src_mask)[i] = i != 7;
    } else if (c->n_decoder_layers == 0) {
        b.mask = ids_tensor(ctx, 2, 5, 1, 0);
        for (int i = 0; i < 10; i++)
            tlm_tensor_data_i32(b.mask)[i] = i != 9;
    }
    return b;
}

/* Mean cross-entropy of the batch in double, from a forward pass without
 * gradients; dropout draws the same masks as the pass that was
 * differentiated (same seed). */
static double graph_loss(tlm_model *m, const tlm_batch *b) {
    tlm_context *ctx = tlm_model_context(m);
    assert_int_equal(tlm_context_set_seed(ctx, 17), TLM_OK);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 0), TLM_OK);
    tlm_tensor *logits = NULL;
    assert_int_equal(tlm_model_forward(m, b, &logits, NULL), TLM_OK);
    const float *z = tlm_tensor_data_f32(logits);
    const int32_t *targets = tlm_tensor_data_i32(b->targets);
    const int64_t rows = tlm_tensor_numel(b->targets);
    const int64_t v = tlm_tensor_dim(logits, 2);
    double sum = 0;
    int64_t counted = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] < 0)
            continue;
        double top = (double)z[r * v];
        for (int64_t j = 1; j < v; j++)
            top = fmax(top, (double)z[r * v + j]);
        double total = 0;
        for (int64_t j = 0; j < v; j++)
            total += exp((double)z[r * v + j] - top);
        sum += top + log(total) - (double)z[r * v + targets[r]];
        counted++;
    }
    /* Drop the logits (grad-disabled results stay on the tape). */
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 1), TLM_OK);
    return sum / (double)counted;
}

/* +1 or -1, a fixed pseudo-random direction per element. */
static double direction(int32_t tensor, int64_t j) {
    const uint32_t h = (uint32_t)(tensor * 40503 + j) * 2654435761u;
    return (h >> 15) & 1 ? 1.0 : -1.0;
}

/* For each parameter tensor, the derivative of the loss along a direction
 * over its elements (central difference, the loss summed in double) agrees
 * with the gradient's dot product with it. A wrong value in a recomputed
 * buffer, a gradient taken from the pool with stale contents or a result
 * written over while still needed shows up as a tensor that disagrees. */
static void gradients_match_loss_differences(void **state) {
    (void)state;
    for (int v = 0; v < N_GRAPH_VARIANTS; v++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_config c = graph_variant(v);
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        tlm_batch b = graph_batch(ctx, &c);
        tlm_tensor *logits = NULL, *loss = NULL;
        assert_int_equal(tlm_context_set_seed(ctx, 17), TLM_OK);
        assert_int_equal(tlm_model_forward(m, &b, &logits, &loss), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        const int32_t n = tlm_model_parameter_tensor_count(m);
        double worst = 0;
        for (int32_t i = 0; i < n; i++) {
            const char *name = NULL;
            tlm_tensor *p = NULL;
            assert_int_equal(tlm_model_parameter(m, i, &name, &p), TLM_OK);
            float *w = tlm_tensor_data_f32(p);
            const float *g = tlm_tensor_grad_data_f32(p);
            assert_non_null(g);
            const int64_t numel = tlm_tensor_numel(p);
            double dot = 0;
            for (int64_t j = 0; j < numel; j++)
                dot += (double)g[j] * direction(i, j);
            const float eps = 5e-4f;
            double side[2];
            for (int s = 0; s < 2; s++) {
                float *saved = malloc((size_t)numel * sizeof *saved);
                assert_non_null(saved);
                memcpy(saved, w, (size_t)numel * sizeof *saved);
                for (int64_t j = 0; j < numel; j++)
                    w[j] += (s ? -eps : eps) * (float)direction(i, j);
                side[s] = graph_loss(m, &b);
                memcpy(w, saved, (size_t)numel * sizeof *saved);
                free(saved);
            }
            const double numeric = (side[0] - side[1]) / (2.0 * (double)eps);
            const double error = fabs(numeric - dot) / (1e-3 + fabs(dot));
            worst = tlmt_worst(worst, error);
            if (!(error <= 0.05))
                fail_msg("variant %d, %s: gradient along a direction %g, "
                         "difference of the loss %g", v, name, dot, numeric);
        }
        printf("variant %d: worst relative error %.2e over %d tensors\n", v,
               worst, (int)n);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

/* Copies every parameter's gradient, one after another. */
static float *copy_gradients(tlm_model *m, int64_t total) {
    float *all = malloc((size_t)total * sizeof *all);
    assert_non_null(all);
    int64_t at = 0;
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(m); i++) {
        const char *name = NULL;
        tlm_tensor *p = NULL;
        assert_int_equal(tlm_model_parameter(m, i, &name, &p), TLM_OK);
        const int64_t numel = tlm_tensor_numel(p);
        memcpy(all + at, tlm_tensor_grad_data_f32(p), (size_t)numel * sizeof *all);
        at += numel;
    }
    assert_int_equal(at, total);
    return all;
}

/* The pool and the shared buffers serve more than one pass: a second
 * backward pass over the same graph, the tape run again with
 * tlm_context_forward, and each of two forward passes made before a
 * backward pass all give exactly the gradients of one pass (a parameter's
 * gradient sums its uses in a fixed order, so each is compared from zero;
 * the sum of the two passes' losses gives twice them, up to rounding). */
static void repeated_passes_give_the_same_gradients(void **state) {
    (void)state;
    for (int v = 0; v < N_GRAPH_VARIANTS; v++) {
        tlm_context_params params;
        tlm_context_params_init(&params);
        params.n_threads = 1 + v % 2;
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
        tlm_model_config c = graph_variant(v);
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        const int64_t total = tlm_model_parameter_count(m);
        const size_t bytes = (size_t)total * sizeof(float);
        tlm_batch b = graph_batch(ctx, &c);
        tlm_tensor *logits = NULL, *loss = NULL, *other = NULL, *sum = NULL;

        assert_int_equal(tlm_context_set_seed(ctx, 17), TLM_OK);
        assert_int_equal(tlm_model_forward(m, &b, &logits, &loss), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        float *once = copy_gradients(m, total);
        assert_int_equal(tlmt_first_non_finite_f32(once, total), -1);

        /* The same graph again. */
        assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        float *again = copy_gradients(m, total);
        assert_memory_equal(again, once, bytes);
        free(again);

        /* The tape run again (same seed: the same dropout masks). */
        assert_int_equal(tlm_context_set_seed(ctx, 17), TLM_OK);
        assert_int_equal(tlm_context_forward(ctx), TLM_OK);
        assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        float *rerun = copy_gradients(m, total);
        assert_memory_equal(rerun, once, bytes);
        free(rerun);

        /* Two forward passes of the batch before any backward pass: each
         * loss's gradients, then their sum's. */
        assert_int_equal(tlm_context_reset(ctx), TLM_OK);
        assert_int_equal(tlm_context_set_seed(ctx, 17), TLM_OK);
        assert_int_equal(tlm_model_forward(m, &b, &logits, &loss), TLM_OK);
        assert_int_equal(tlm_context_set_seed(ctx, 17), TLM_OK);
        assert_int_equal(tlm_model_forward(m, &b, &logits, &other), TLM_OK);
        assert_int_equal(tlm_add(&sum, loss, other), TLM_OK);
        tlm_tensor *const losses[3] = {other, loss, sum};
        for (int k = 0; k < 3; k++) {
            assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
            assert_int_equal(tlm_backward(losses[k]), TLM_OK);
            float *got = copy_gradients(m, total);
            for (int64_t j = 0; j < total; j++) {
                const double want = (k == 2 ? 2.0 : 1.0) * (double)once[j];
                const double bound = k == 2 ? 1e-6 * (1 + fabs(want)) : 0;
                if (!(fabs((double)got[j] - want) <= bound))
                    fail_msg("variant %d, two forward passes, loss %d: "
                             "element %lld is %.9g, not %.9g", v, k,
                             (long long)j, (double)got[j], want);
            }
            free(got);
        }
        free(once);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_defaults_resolve),
        cmocka_unit_test(every_option_builds_the_documented_parameters),
        cmocka_unit_test(initialisation_is_reproducible_and_scaled),
        cmocka_unit_test(parameters_share_one_block),
        cmocka_unit_test(forward_backward_each_kind),
        cmocka_unit_test(bad_configurations_are_named),
        cmocka_unit_test(bad_batches_are_named),
        cmocka_unit_test(gradients_match_loss_differences),
        cmocka_unit_test(repeated_passes_give_the_same_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
