/*
 * tlm_model_attention_weights: probabilities (rows sum to 1 within 1e-5),
 * causal zeros (exactly 0), agreement with a reimplementation in double
 * from the public parameters (within 1e-4), independence of later tokens,
 * allocation failures, and the error cases.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"
#include "tolerance.h"

enum { V = 13, D = 16, H = 2, HD = 8, CTX = 12, N = 9 };

static const int32_t ids[N] = {1, 5, 2, 9, 12, 0, 3, 3, 7};

/* kv_heads 0: one key/value head per query head; 1 (multi-query): both
 * query heads share one. */
static tlm_model *make_model_kv(tlm_context *ctx, int32_t position,
                                int32_t layers, int32_t kv_heads) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = V;
    c.d_model = D;
    c.n_heads = H;
    c.d_ff = 32;
    c.n_decoder_layers = layers;
    c.max_context = CTX;
    c.position = position;
    c.n_kv_heads = kv_heads;
    c.init_seed = 42;
    tlm_model *m = NULL;
    if (tlm_model_create(&m, ctx, &c) != TLM_OK)
        fail_msg("create: %s", tlm_last_error());
    /* Larger query weights make the attention far from uniform. */
    tlm_tensor *wq = NULL;
    assert_int_equal(tlm_model_find_parameter(m, "decoder.layers.0.self_attn.q_proj.weight", &wq), TLM_OK);
    float *data = tlm_tensor_data_f32(wq);
    for (int64_t i = 0; i < tlm_tensor_numel(wq); i++)
        data[i] *= 8.0f;
    return m;
}

static tlm_model *make_model(tlm_context *ctx, int32_t position, int32_t layers) {
    return make_model_kv(ctx, position, layers, 0);
}

static const float *param(tlm_model *m, const char *name) {
    tlm_tensor *t = NULL;
    if (tlm_model_find_parameter(m, name, &t) != TLM_OK)
        return NULL; /* absent (no bias, no learned positions) */
    return tlm_tensor_data_f32(t);
}

/* Layer 0's probabilities in double: embedding (+ learned positions),
 * LayerNorm, q and k projections (k of `kv` heads, query head h using
 * key head h / (H / kv)), RoPE when asked, softmax. */
static void reference(tlm_model *m, int rotary, int kv, double *probs) {
    const float *emb = param(m, "token_embedding.weight");
    const float *pos = param(m, "position_embedding.weight");
    const float *nw = param(m, "decoder.layers.0.self_attn_norm.weight");
    const float *nb = param(m, "decoder.layers.0.self_attn_norm.bias");
    const float *wq = param(m, "decoder.layers.0.self_attn.q_proj.weight");
    const float *bq = param(m, "decoder.layers.0.self_attn.q_proj.bias");
    const float *wk = param(m, "decoder.layers.0.self_attn.k_proj.weight");
    const float *bk = param(m, "decoder.layers.0.self_attn.k_proj.bias");
    double x[N][D], q[N][H * HD], k[N][H * HD];
    for (int t = 0; t < N; t++) {
        double mean = 0, var = 0;
        for (int d = 0; d < D; d++) {
            x[t][d] = (double)emb[ids[t] * D + d] + (pos ? (double)pos[t * D + d] : 0.0);
            mean += x[t][d] / D;
        }
        for (int d = 0; d < D; d++)
            var += (x[t][d] - mean) * (x[t][d] - mean) / D;
        for (int d = 0; d < D; d++)
            x[t][d] = (x[t][d] - mean) / sqrt(var + 1e-5) * (double)nw[d] + (nb ? (double)nb[d] : 0.0);
        for (int o = 0; o < H * HD; o++) {
            double sq = bq ? (double)bq[o] : 0.0;
            for (int d = 0; d < D; d++)
                sq += x[t][d] * (double)wq[o * D + d];
            q[t][o] = sq;
        }
        for (int o = 0; o < kv * HD; o++) {
            double sk = bk ? (double)bk[o] : 0.0;
            for (int d = 0; d < D; d++)
                sk += x[t][d] * (double)wk[o * D + d];
            k[t][o] = sk;
        }
        if (rotary)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < HD / 2; i++) {
                    const double angle = t * pow(10000.0, -2.0 * i / HD);
                    double *a = &q[t][h * HD + 2 * i];
                    const double a0 = a[0], a1 = a[1];
                    a[0] = a0 * cos(angle) - a1 * sin(angle);
                    a[1] = a0 * sin(angle) + a1 * cos(angle);
                    if (h >= kv)
                        continue;
                    double *b = &k[t][h * HD + 2 * i];
                    const double b0 = b[0], b1 = b[1];
                    b[0] = b0 * cos(angle) - b1 * sin(angle);
                    b[1] = b0 * sin(angle) + b1 * cos(angle);
                }
    }
    for (int h = 0; h < H; h++)
        for (int i = 0; i < N; i++) {
            double *row = probs + (h * N + i) * N, max = -(double)INFINITY, sum = 0;
            for (int j = 0; j < N; j++) {
                row[j] = 0;
                if (j > i)
                    continue;
                for (int d = 0; d < HD; d++)
                    row[j] += q[i][h * HD + d] * k[j][h / (H / kv) * HD + d];
                row[j] /= sqrt((double)HD);
                max = fmax(max, row[j]);
            }
            for (int j = 0; j <= i; j++)
                sum += (row[j] = exp(row[j] - max));
            for (int j = 0; j <= i; j++)
                row[j] /= sum;
        }
}

static void check_probabilities(const float *w, int n) {
    for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int j = 0; j < n; j++) {
                const float p = w[(h * n + i) * n + j];
                if (j > i)
                    assert_true(p == 0.0f);
                assert_true(p >= 0.0f && p <= 1.0f);
                sum += (double)p;
            }
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
}

static void agrees_with_reference(void **state) {
    (void)state;
    const int32_t positions[] = {TLM_POSITION_LEARNED, TLM_POSITION_ROTARY};
    /* p 0, 1: multi-head; 2, 3: multi-query (both heads over one). */
    for (int p = 0; p < 4; p++) {
        const int kv = p < 2 ? H : 1;
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model *m = make_model_kv(ctx, positions[p % 2], 2, p < 2 ? 0 : 1);
        float w[H * N * N];
        double ref[H * N * N];
        assert_int_equal(tlm_model_attention_weights(m, ids, N, 0, w), TLM_OK);
        check_probabilities(w, N);
        reference(m, positions[p % 2] == TLM_POSITION_ROTARY, kv, ref);
        double worst = 0, spread = 0;
        for (int i = 0; i < H * N * N; i++) {
            worst = tlmt_worst(worst, fabs((double)w[i] - ref[i]));
            spread = fmax(spread, ref[i]);
        }
        assert_true(worst < 1e-4);
        /* The attention is not uniform: some row puts > 0.5 on one key
         * that is not its only one. */
        assert_true(spread > 0.5);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

/* A deeper layer: probabilities, causal, and a prefix of the sequence
 * gives the top-left corner of the full map (later tokens change nothing
 * before them), for every position encoding. */
static void deeper_layer_is_causal(void **state) {
    (void)state;
    const int32_t positions[] = {TLM_POSITION_LEARNED, TLM_POSITION_ROTARY,
                                 TLM_POSITION_SINUSOIDAL};
    for (int p = 0; p < 3; p++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model *m = make_model(ctx, positions[p], 3);
        float full[H * N * N], part[H * 5 * 5];
        assert_int_equal(tlm_model_attention_weights(m, ids, N, 2, full), TLM_OK);
        check_probabilities(full, N);
        assert_int_equal(tlm_model_attention_weights(m, ids, 5, 2, part), TLM_OK);
        check_probabilities(part, 5);
        for (int h = 0; h < H; h++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++)
                    assert_true(fabsf(part[(h * 5 + i) * 5 + j] - full[(h * N + i) * N + j]) < 1e-5f);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static void allocation_failures_are_clean(void **state) {
    (void)state;
    counting_allocator counter;
    memset(&counter, 0, sizeof counter);
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    tlm_model *m = make_model(ctx, TLM_POSITION_LEARNED, 2);
    const uint64_t live = counter.live_bytes;
    float w[H * N * N];
    int status = TLM_E_NOMEM;
    const int64_t base = (int64_t)counter.calls;
    int64_t n;
    for (n = 1; status == TLM_E_NOMEM; n++) {
        counter.fail_at = base + n; /* fail the n-th allocation of the call */
        counter.calls = (uint64_t)base;
        status = tlm_model_attention_weights(m, ids, N, 1, w);
        counter.fail_at = 0;
        if (status == TLM_E_NOMEM) {
            assert_non_null(strstr(tlm_context_last_error(ctx), "tlm_model_attention_weights"));
            assert_int_equal(counter.live_bytes, live);
        }
    }
    assert_int_equal(status, TLM_OK);
    assert_true(n >= 2);
    assert_int_equal(counter.live_bytes, live);
    tlm_model_free(m);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

static void errors_name_the_problem(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, TLM_POSITION_LEARNED, 2);
    float w[H * CTX * CTX];
    int32_t long_ids[CTX + 1] = {0};
    assert_int_equal(tlm_model_attention_weights(m, long_ids, CTX + 1, 0, w), TLM_E_RANGE);
    assert_non_null(strstr(tlm_context_last_error(ctx), "max_context"));
    assert_int_equal(tlm_model_attention_weights(m, long_ids, CTX, 0, w), TLM_OK);
    assert_int_equal(tlm_model_attention_weights(m, ids, 0, 0, w), TLM_E_RANGE);
    assert_int_equal(tlm_model_attention_weights(m, ids, N, 2, w), TLM_E_RANGE);
    assert_non_null(strstr(tlm_context_last_error(ctx), "layer 2"));
    assert_int_equal(tlm_model_attention_weights(m, ids, N, -1, w), TLM_E_RANGE);
    const int32_t bad[2] = {3, V};
    assert_int_equal(tlm_model_attention_weights(m, bad, 2, 0, w), TLM_E_RANGE);
    assert_non_null(strstr(tlm_context_last_error(ctx), "ids[1]"));
    assert_int_equal(tlm_model_attention_weights(m, NULL, 2, 0, w), TLM_E_INVALID);
    assert_int_equal(tlm_model_attention_weights(m, ids, 2, 0, NULL), TLM_E_INVALID);
    tlm_model_free(m);
    /* An encoder-decoder model has no map of this kind. */
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = V;
    c.d_model = D;
    c.n_heads = H;
    c.n_encoder_layers = 1;
    c.n_decoder_layers = 1;
    c.max_context = CTX;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    assert_int_equal(tlm_model_attention_weights(m, ids, 2, 0, w), TLM_E_STATE);
    assert_non_null(strstr(tlm_context_last_error(ctx), "decoder-only"));
    tlm_model_free(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(agrees_with_reference),
        cmocka_unit_test(deeper_layer_is_causal),
        cmocka_unit_test(allocation_failures_are_clean),
        cmocka_unit_test(errors_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
