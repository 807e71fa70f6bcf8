/*
 * Inference sessions: logits computed incrementally with the KV cache
 * (a prompt, then one token at a time, or in chunks) equal the training
 * forward's logits at every position, for every kind of model and every
 * option; the cache's limits and bad input give statuses.
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

enum { B = 1, T = 11, TS = 7, V = 31 };

static tlm_model_config config_variant(int variant) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = V;
    c.d_model = 24;
    c.n_heads = 2;
    c.head_dim = 10;
    c.d_ff = 36;
    c.n_decoder_layers = 2;
    c.max_context = 16;
    c.position = variant % 3;
    c.norm = (variant / 3) % 2;
    c.norm_placement = (variant / 6) % 2;
    c.activation = variant % 4;
    c.bias = (variant / 2) % 2;
    c.tied_output = (variant / 4) % 2;
    c.init_seed = (uint64_t)variant + 1;
    if (variant >= 12) {
        /* Grouped-query (12, 13: 4 heads over 2) and multi-query (14, 15:
         * over 1) attention, the cache holding only the key/value heads. */
        c.n_heads = 4;
        c.head_dim = 6;
        c.n_kv_heads = variant < 14 ? 2 : 1;
    }
    return c;
}

/* Variants of config_variant: 12 multi-head, then 4 grouped-query. */
enum { N_VARIANTS = 16 };

/* Makes the weights large enough that every part matters to the logits. */
static void scale_parameters(tlm_model *m) {
    int32_t n = tlm_model_parameter_tensor_count(m);
    for (int32_t i = 0; i < n; i++) {
        const char *name;
        tlm_tensor *t;
        tlm_model_parameter(m, i, &name, &t);
        float *w = tlm_tensor_data_f32(t);
        for (int64_t j = 0; j < tlm_tensor_numel(t); j++)
            w[j] = strstr(name, "norm") ? w[j] + 0.1f * (float)((j * 13) % 7 - 3)
                                        : w[j] * 10.0f + 0.01f * (float)((j * 7) % 5 - 2);
    }
}

static void fill_ids(int32_t *ids, int n, int seed) {
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7 + seed * 3 + 1) % V);
}

/* The training forward's logits for ids [1, n] (and a source). */
static void full_forward(tlm_context *ctx, tlm_model *m, const int32_t *ids,
                         int n, const int32_t *src, const int32_t *src_mask,
                         int ns, float *logits) {
    tlm_batch batch;
    tlm_batch_init(&batch);
    const int64_t shape[2] = {1, n}, src_shape[2] = {1, ns};
    assert_int_equal(tlm_tensor_from_i32(&batch.ids, ctx, 2, shape, ids), TLM_OK);
    if (src != NULL) {
        assert_int_equal(tlm_tensor_from_i32(&batch.src_ids, ctx, 2, src_shape, src), TLM_OK);
        if (src_mask != NULL)
            assert_int_equal(tlm_tensor_from_i32(&batch.src_mask, ctx, 2, src_shape, src_mask), TLM_OK);
    }
    tlm_tensor *out = NULL;
    tlm_context_set_grad_enabled(ctx, 0);
    assert_int_equal(tlm_model_forward(m, &batch, &out, NULL), TLM_OK);
    assert_int_equal(tlm_tensor_get_f32(out, logits, (int64_t)n * V), TLM_OK);
    tlm_context_reset(ctx);
    tlm_tensor_free(batch.ids);
    tlm_tensor_free(batch.src_ids);
    tlm_tensor_free(batch.src_mask);
}

static void assert_logits_equal(const float *expected, const float *got,
                                int rows, const char *what) {
    double worst = 0;
    int first_beyond = -1;
    for (int i = 0; i < rows * V; i++) {
        double diff = fabs((double)expected[i] - (double)got[i]) /
                      (1.0 + fabs((double)expected[i]));
        if (first_beyond < 0 && !(diff <= 1e-5))
            first_beyond = i;
        worst = tlmt_worst(worst, diff);
    }
    if (first_beyond >= 0)
        fail_msg("%s: incremental logits differ by %.3g (element %d: %.9g, "
                 "full forward %.9g)", what, worst, first_beyond,
                 (double)got[first_beyond], (double)expected[first_beyond]);
}

static void incremental_equals_full_forward(void **state) {
    (void)state;
    for (int variant = 0; variant < N_VARIANTS; variant++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_config c = config_variant(variant);
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        scale_parameters(m);
        int32_t ids[T];
        fill_ids(ids, T, variant);
        float full[T * V], step[T * V], chunked[T * V], last[V];
        full_forward(ctx, m, ids, T, NULL, NULL, 0, full);

        /* A prompt of 4, then one token at a time. */
        tlm_session *s = NULL;
        assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
        assert_int_equal(tlm_session_decode(s, ids, 4, step, 4), TLM_OK);
        for (int i = 4; i < T; i++)
            assert_int_equal(tlm_session_decode(s, ids + i, 1, step + i * V, 1), TLM_OK);
        assert_int_equal(tlm_session_position(s), T);
        char what[64];
        snprintf(what, sizeof what, "variant %d, token by token", variant);
        assert_logits_equal(full, step, T, what);

        /* The whole sequence with 3-position chunks, then only the last. */
        tlm_session_params params;
        tlm_session_params_init(&params);
        params.chunk_tokens = 3;
        tlm_session *chunks = NULL;
        assert_int_equal(tlm_session_create(&chunks, m, &params), TLM_OK);
        assert_int_equal(tlm_session_decode(chunks, ids, T, chunked, T), TLM_OK);
        snprintf(what, sizeof what, "variant %d, chunks of 3", variant);
        assert_logits_equal(full, chunked, T, what);
        assert_int_equal(tlm_session_reset(chunks), TLM_OK);
        assert_int_equal(tlm_session_decode(chunks, ids, T, last, 1), TLM_OK);
        assert_logits_equal(full + (T - 1) * V, last, 1, "last row only");
        tlm_session_free(s);
        tlm_session_free(chunks);
        if (c.n_kv_heads != 0 && c.n_kv_heads != c.n_heads) {
            /* Sessions of one row (fewer rows than a key/value head's
             * group of query heads, which a one-row pass runs as rows of
             * one call), with 1 and 3 threads. */
            for (int32_t threads = 1; threads <= 3; threads += 2) {
                params.chunk_tokens = 1;
                params.n_threads = threads;
                tlm_session *single = NULL;
                assert_int_equal(tlm_session_create(&single, m, &params), TLM_OK);
                for (int i = 0; i < T; i++)
                    assert_int_equal(tlm_session_decode(single, ids + i, 1,
                                                        step + i * V, 1),
                                     TLM_OK);
                snprintf(what, sizeof what, "variant %d, chunks of 1, %d threads",
                         variant, (int)threads);
                assert_logits_equal(full, step, T, what);
                tlm_session_free(single);
            }
        }
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static void seq2seq_and_encoder_only(void **state) {
    (void)state;
    /* Variants 0..5, and the grouped-query ones (self- and
     * cross-attention both over n_kv_heads). */
    for (int n = 0; n < 10; n++) {
        const int variant = n < 6 ? n : n + 6;
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_config c = config_variant(variant);
        c.n_encoder_layers = 2;
        c.n_decoder_layers = variant % 2; /* encoder-only when 0 */
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        scale_parameters(m);
        int32_t src[TS], mask[TS] = {1, 1, 1, 1, 1, 0, 0}, ids[T];
        fill_ids(src, TS, variant + 5);
        fill_ids(ids, T, variant);
        tlm_session *s = NULL;
        assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
        if (c.n_decoder_layers > 0) {
            float full[T * V], step[T * V];
            full_forward(ctx, m, ids, T, src, mask, TS, full);
            assert_int_equal(tlm_session_decode(s, ids, 1, step, 1), TLM_E_STATE);
            assert_int_equal(tlm_session_encode(s, src, TS, mask, NULL), TLM_OK);
            assert_int_equal(tlm_session_decode(s, ids, 5, step, 5), TLM_OK);
            for (int i = 5; i < T; i++)
                assert_int_equal(tlm_session_decode(s, ids + i, 1, step + i * V, 1), TLM_OK);
            assert_logits_equal(full, step, T, "encoder-decoder");
            float junk[TS * V];
            assert_int_equal(tlm_session_encode(s, src, TS, mask, junk), TLM_E_INVALID);
        } else {
            /* Encoder-only: the session's logits equal the forward's. */
            tlm_batch batch;
            tlm_batch_init(&batch);
            const int64_t shape[2] = {1, TS};
            assert_int_equal(tlm_tensor_from_i32(&batch.ids, ctx, 2, shape, src), TLM_OK);
            assert_int_equal(tlm_tensor_from_i32(&batch.mask, ctx, 2, shape, mask), TLM_OK);
            tlm_tensor *out = NULL;
            assert_int_equal(tlm_model_forward(m, &batch, &out, NULL), TLM_OK);
            float full[TS * V], got[TS * V];
            tlm_tensor_get_f32(out, full, TS * V);
            assert_int_equal(tlm_session_encode(s, src, TS, mask, got), TLM_OK);
            assert_logits_equal(full, got, TS, "encoder-only");
            assert_int_equal(tlm_session_decode(s, ids, 1, got, 1), TLM_E_STATE);
        }
        tlm_session_free(s);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static void limits_and_bad_input(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = config_variant(0);
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    int32_t ids[20];
    fill_ids(ids, 20, 1);
    float logits[20 * V];
    /* Passing max_context is refused and consumes nothing. */
    assert_int_equal(tlm_session_decode(s, ids, 17, logits, 1), TLM_E_RANGE);
    assert_non_null(strstr(tlm_session_last_error(s), "max_context"));
    assert_int_equal(tlm_session_position(s), 0);
    assert_int_equal(tlm_session_decode(s, ids, 16, logits, 1), TLM_OK);
    assert_int_equal(tlm_session_decode(s, ids, 1, logits, 1), TLM_E_RANGE);
    assert_int_equal(tlm_session_position(s), 16);
    assert_int_equal(tlm_session_reset(s), TLM_OK);
    assert_int_equal(tlm_session_position(s), 0);
    ids[2] = V;
    assert_int_equal(tlm_session_decode(s, ids, 3, logits, 1), TLM_E_RANGE);
    assert_non_null(strstr(tlm_session_last_error(s), "ids[2]"));
    ids[2] = -1;
    assert_int_equal(tlm_session_decode(s, ids, 3, logits, 1), TLM_E_RANGE);
    assert_int_equal(tlm_session_position(s), 0);
    fill_ids(ids, 20, 1);
    assert_int_equal(tlm_session_decode(s, ids, 0, logits, 0), TLM_E_RANGE);
    assert_int_equal(tlm_session_decode(s, ids, 3, logits, 2), TLM_E_INVALID);
    assert_int_equal(tlm_session_decode(s, ids, 3, NULL, 1), TLM_E_INVALID);
    assert_int_equal(tlm_session_decode(s, NULL, 3, logits, 1), TLM_E_INVALID);
    assert_int_equal(tlm_session_decode(s, ids, 3, NULL, 0), TLM_OK);
    assert_int_equal(tlm_session_encode(s, ids, 3, NULL, NULL), TLM_E_STATE);
    tlm_session_params params;
    tlm_session_params_init(&params);
    params.chunk_tokens = -2;
    tlm_session *bad = (tlm_session *)ctx;
    assert_int_equal(tlm_session_create(&bad, m, &params), TLM_E_INVALID);
    assert_null(bad);
    /* n_threads outside 0..1024 */
    tlm_session_params_init(&params);
    params.n_threads = -1;
    assert_int_equal(tlm_session_create(&bad, m, &params), TLM_E_INVALID);
    assert_null(bad);
    assert_non_null(strstr(tlm_last_error(), "params.n_threads -1"));
    params.n_threads = 1025;
    assert_int_equal(tlm_session_create(&bad, m, &params), TLM_E_INVALID);
    params.n_threads = 1; /* one thread: never starts a worker (qemu) */
    assert_int_equal(tlm_session_create(&bad, m, &params), TLM_OK);
    tlm_session_free(bad);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(incremental_equals_full_forward),
        cmocka_unit_test(seq2seq_and_encoder_only),
        cmocka_unit_test(limits_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
