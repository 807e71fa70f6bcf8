/*
 * Quantized models (issue #19): tlm_model_quantize to bf16 and int8 and
 * back, their .tlm files (copied and memory-mapped loads), and their
 * sessions' logits against the float32 model's for three shapes: a
 * Llama-shaped decoder (rotary, RMSNorm, SwiGLU, grouped-query attention,
 * untied head), a GPT-2-shaped one (learned positions, tied head, biases)
 * and an encoder-decoder (cross-attention). d_model is 48 and d_ff 80,
 * not multiples of the int8 group of 32, so rows end in padding.
 * Generation, beam search and scoring run on int8 models; training
 * refuses them.
 *
 * How close the logits must be. A bf16 weight is the float32 one rounded
 * to 8 significant bits: relative error <= 2^-9, and a product with
 * vdpbf16ps (or BFDOT) rounds the activations to bf16 too: per product,
 * eps = 2 * 2^-9 relative to sum |a| |w|. An int8 weight is off by at
 * most half a step of its group, max|w_group| / 254, and the session's
 * one-row products quantize the activations the same way (another
 * max|a_group| / 254): eps = 2 / 254 relative to sum |a| |w| over the
 * groups' maxima. The errors of the P products on the
 * way to a logit (embedding, 3 or 4 per sublayer, the head) add up, and
 * norms carry them forward relative to the values, so a logit is off by
 * about P * eps times the logits' scale (max |logit|) times the ratio
 * sum |a w| / |sum a w|, which for these random weights we take as 4. The
 * bound below is that: 4 * P * eps * max|logit|.
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

#include "temp_dir.h"
#include "tlm.h"
#include "tolerance.h"

enum { V = 67, CTX = 24, N = 9, N_SHAPES = 3 };

static char dir[512];

static int setup(void **state) {
    (void)state;
    return temp_dir_create(dir, sizeof dir) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    return 0;
}

static const char *const shape_names[N_SHAPES] = {"llama", "gpt2", "seq2seq"};

static tlm_model_config shape_config(int shape) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = V;
    c.d_model = 48;
    c.n_heads = 4;
    c.d_ff = 80;
    c.n_decoder_layers = 2;
    c.max_context = CTX;
    c.init_seed = 101 + (uint64_t)shape;
    if (shape == 0) {
        c.position = TLM_POSITION_ROTARY;
        c.norm = TLM_NORM_RMS;
        c.activation = TLM_ACTIVATION_SWIGLU;
        c.n_kv_heads = 2;
        c.bias = 0;
        c.tied_output = 0;
    } else if (shape == 2) {
        c.n_encoder_layers = 1;
        c.position = TLM_POSITION_LEARNED;
    }
    return c;
}

/* Matrix products on the way from the ids to a logit (P above). */
static int products_on_path(int shape) {
    const tlm_model_config c = shape_config(shape);
    const int per_layer = 4 + (c.activation == TLM_ACTIVATION_SWIGLU) +
                          (c.n_encoder_layers > 0 ? 4 : 0);
    return 2 + c.n_decoder_layers * per_layer + c.n_encoder_layers * 5;
}

/* A float32 model with weights large enough that every part matters. */
static tlm_model *make_model(tlm_context *ctx, int shape) {
    tlm_model_config c = shape_config(shape);
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(m); i++) {
        const char *name;
        tlm_tensor *t;
        assert_int_equal(tlm_model_parameter(m, i, &name, &t), TLM_OK);
        float *w = tlm_tensor_data_f32(t);
        for (int64_t j = 0; j < tlm_tensor_numel(t); j++)
            w[j] = strstr(name, "norm") ? w[j] + 0.1f * (float)((j * 13) % 7 - 3)
                                        : w[j] * 10.0f + 0.01f * (float)((j * 7) % 5 - 2);
    }
    return m;
}

static const int32_t prompt[N] = {3, 1, 4, 1, 5, 9, 2, 6, 5};

/* Logits [N, V] of the prompt: batched (one decode call) or one token at
 * a time. */
static void session_logits(const tlm_model *m, int shape, int one_by_one,
                           float *logits) {
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    if (shape == 2) {
        const int32_t src[5] = {7, 8, 9, 10, 11};
        assert_int_equal(tlm_session_encode(s, src, 5, NULL, NULL), TLM_OK);
    }
    if (one_by_one) {
        for (int i = 0; i < N; i++)
            assert_int_equal(tlm_session_decode(s, prompt + i, 1, logits + i * V, 1),
                             TLM_OK);
    } else {
        assert_int_equal(tlm_session_decode(s, prompt, N, logits, N), TLM_OK);
    }
    tlm_session_free(s);
}

/* The training graph's logits [N, V] (tlm_model_forward). */
static void graph_logits(tlm_model *m, int shape, float *logits) {
    tlm_context *ctx = tlm_model_context(m);
    tlm_batch batch;
    tlm_batch_init(&batch);
    const int64_t ids_shape[2] = {1, N}, src_shape[2] = {1, 5};
    const int32_t src[5] = {7, 8, 9, 10, 11};
    assert_int_equal(tlm_tensor_from_i32(&batch.ids, ctx, 2, ids_shape, prompt), TLM_OK);
    if (shape == 2)
        assert_int_equal(tlm_tensor_from_i32(&batch.src_ids, ctx, 2, src_shape, src),
                         TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_model_forward(m, &batch, &out, NULL), TLM_OK);
    assert_int_equal(tlm_tensor_get_f32(out, logits, (size_t)N * V), TLM_OK);
    tlm_context_reset(ctx);
    tlm_tensor_free(batch.ids);
    tlm_tensor_free(batch.src_ids);
}

static double format_eps(int32_t format) {
    return format == TLM_WEIGHTS_BF16 ? ldexp(2.0, -9) : 2.0 / 254.0;
}

/* Fails unless |got - want| <= 4 P eps max|want| everywhere; returns the
 * worst difference relative to max|want|. */
static double assert_logits_near(const float *want, const float *got, int shape,
                                 int32_t format, const char *what) {
    const double scale = tlmt_max_abs_f32(want, (int64_t)N * V);
    const double bound = 4.0 * products_on_path(shape) * format_eps(format) * scale;
    const double worst = tlmt_max_abs_diff_f32(want, got, (int64_t)N * V);
    if (!(worst <= bound))
        fail_msg("%s (%s, %s): logits differ by %.4g, bound %.4g (scale %.4g)",
                 what, shape_names[shape],
                 format == TLM_WEIGHTS_BF16 ? "bf16" : "int8", worst, bound, scale);
    return worst / scale;
}

static tlm_model *load(tlm_context *ctx, const char *path, int map) {
    tlm_model_load_params params;
    tlm_model_load_params_init(&params);
    params.memory_map = map;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_load(&m, ctx, path, &params), TLM_OK);
    return m;
}

static long read_file(const char *path, unsigned char **data) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)size);
    assert_non_null(*data);
    assert_int_equal(fread(*data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return size;
}

static void assert_same_files(const char *a, const char *b) {
    unsigned char *da = NULL, *db = NULL;
    const long sa = read_file(a, &da), sb = read_file(b, &db);
    assert_int_equal(sa, sb);
    assert_memory_equal(da, db, (size_t)sa);
    free(da);
    free(db);
}

/* The values of every parameter of `m` as float32 (dequantized), one
 * allocation in parameter order. */
static float *all_values(const tlm_model *m, size_t *count) {
    size_t total = 0;
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(m); i++) {
        tlm_tensor *t;
        assert_int_equal(tlm_model_parameter(m, i, NULL, &t), TLM_OK);
        total += (size_t)tlm_tensor_numel(t);
    }
    float *values = malloc(total * sizeof *values);
    assert_non_null(values);
    size_t at = 0;
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(m); i++) {
        tlm_tensor *t;
        assert_int_equal(tlm_model_parameter(m, i, NULL, &t), TLM_OK);
        assert_int_equal(tlm_tensor_get_f32(t, values + at, (size_t)tlm_tensor_numel(t)),
                         TLM_OK);
        at += (size_t)tlm_tensor_numel(t);
    }
    *count = total;
    return values;
}

/* Matrices take the format's dtype, norms and biases stay f32; a quantized
 * matrix refuses direct float access. */
static void assert_dtypes(const tlm_model *m, int32_t format) {
    const int32_t matrix = format == TLM_WEIGHTS_BF16   ? TLM_DTYPE_BF16
                           : format == TLM_WEIGHTS_INT8 ? TLM_DTYPE_Q8
                                                        : TLM_DTYPE_F32;
    assert_int_equal(tlm_model_weight_format(m), format);
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(m); i++) {
        const char *name;
        tlm_tensor *t;
        assert_int_equal(tlm_model_parameter(m, i, &name, &t), TLM_OK);
        const int32_t want = tlm_tensor_ndim(t) == 2 ? matrix : TLM_DTYPE_F32;
        if (tlm_tensor_dtype(t) != want)
            fail_msg("%s has dtype %d, expected %d", name, tlm_tensor_dtype(t), want);
        if (want != TLM_DTYPE_F32) {
            assert_null(tlm_tensor_data_f32(t));
            assert_non_null(strstr(tlm_last_error(), "dequantize"));
            tlm_tensor *found = NULL;
            assert_int_equal(tlm_model_find_parameter(m, name, &found), TLM_OK);
            assert_ptr_equal(found, t);
        }
    }
}

static void quantized_files_round_trip(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    for (int shape = 0; shape < N_SHAPES; shape++) {
        tlm_model *m = make_model(ctx, shape);
        assert_int_equal(tlm_model_weight_format(m), TLM_WEIGHTS_F32);
        for (int32_t format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8; format++) {
            tlm_model *q = NULL;
            assert_int_equal(tlm_model_quantize(&q, m, format), TLM_OK);
            assert_dtypes(q, format);
            size_t count = 0;
            float *values = all_values(q, &count);
            float logits[N * V], again[N * V];
            session_logits(q, shape, 0, logits);

            char path[600], copy_path[600], map_path[600];
            snprintf(path, sizeof path, "%s/q%d_%d.tlm", dir, shape, (int)format);
            snprintf(copy_path, sizeof copy_path, "%s/q%d_%d_copy.tlm", dir, shape,
                     (int)format);
            snprintf(map_path, sizeof map_path, "%s/q%d_%d_map.tlm", dir, shape,
                     (int)format);
            assert_int_equal(tlm_model_save(q, path), TLM_OK);
            /* Loaded copied and mapped: the same values, logits and bytes
             * when saved again. */
            for (int map = 0; map <= 1; map++) {
                tlm_model *loaded = load(ctx, path, map);
                assert_dtypes(loaded, format);
                size_t loaded_count = 0;
                float *loaded_values = all_values(loaded, &loaded_count);
                assert_int_equal(loaded_count, count);
                assert_memory_equal(loaded_values, values, count * sizeof *values);
                free(loaded_values);
                /* A mapped (read-only, borrowed) model quantizes too. */
                tlm_model *dequantized = NULL;
                assert_int_equal(tlm_model_quantize(&dequantized, loaded, TLM_WEIGHTS_F32),
                                 TLM_OK);
                loaded_values = all_values(dequantized, &loaded_count);
                assert_memory_equal(loaded_values, values, count * sizeof *values);
                free(loaded_values);
                tlm_model_free(dequantized);
                session_logits(loaded, shape, 0, again);
                assert_memory_equal(again, logits, sizeof logits);
                assert_int_equal(tlm_model_save(loaded, map ? map_path : copy_path),
                                 TLM_OK);
                assert_same_files(path, map ? map_path : copy_path);
                tlm_model_free(loaded);
            }
            /* Back to float32: exactly the dequantized values, trainable. */
            tlm_model *f = NULL;
            assert_int_equal(tlm_model_quantize(&f, q, TLM_WEIGHTS_F32), TLM_OK);
            assert_dtypes(f, TLM_WEIGHTS_F32);
            size_t f_count = 0;
            float *f_values = all_values(f, &f_count);
            assert_int_equal(f_count, count);
            assert_memory_equal(f_values, values, count * sizeof *values);
            free(f_values);
            tlm_tensor *first = NULL;
            assert_int_equal(tlm_model_parameter(f, 0, NULL, &first), TLM_OK);
            assert_int_equal(tlm_tensor_requires_grad(first), 1);
            /* Quantizing the quantized model again changes nothing. */
            tlm_model *twice = NULL;
            assert_int_equal(tlm_model_quantize(&twice, q, format), TLM_OK);
            float *twice_values = all_values(twice, &f_count);
            assert_memory_equal(twice_values, values, count * sizeof *values);
            free(twice_values);
            tlm_model_free(twice);
            tlm_model_free(f);
            free(values);
            tlm_model_free(q);
        }
        /* A float32 model's file has no "weights" field. */
        char path[600];
        snprintf(path, sizeof path, "%s/f%d.tlm", dir, shape);
        assert_int_equal(tlm_model_save(m, path), TLM_OK);
        unsigned char *bytes = NULL;
        const long size = read_file(path, &bytes);
        int found = 0;
        for (long i = 0; !found && i + 9 <= size; i++)
            found = memcmp(bytes + i, "\"weights\"", 9) == 0;
        assert_false(found);
        free(bytes);
        tlm_model_free(m);
    }
    tlm_context_free(ctx);
}

static void logits_stay_near_float32(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    for (int shape = 0; shape < N_SHAPES; shape++) {
        tlm_model *m = make_model(ctx, shape);
        float want[N * V], got[N * V], one[N * V], graph[N * V];
        session_logits(m, shape, 0, want);
        for (int32_t format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8; format++) {
            tlm_model *q = NULL;
            assert_int_equal(tlm_model_quantize(&q, m, format), TLM_OK);
            session_logits(q, shape, 0, got);
            const double prefill = assert_logits_near(want, got, shape, format,
                                                      "batched prefill vs float32");
            /* One token at a time (the one-row products) agrees with the
             * batched pass and with float32. */
            session_logits(q, shape, 1, one);
            assert_logits_near(got, one, shape, format, "decode vs prefill");
            const double decode = assert_logits_near(want, one, shape, format,
                                                     "decode vs float32");
            /* The graph forward runs the dequantized weights. */
            graph_logits(q, shape, graph);
            assert_logits_near(got, graph, shape, format, "graph vs session");
            if (shape != 2) {
                /* The attention maps run the quantized session too: rows
                 * are distributions near float32's. */
                float *maps = malloc(2 * 4 * N * N * sizeof *maps);
                assert_non_null(maps);
                assert_int_equal(tlm_model_attention_weights(m, prompt, N, 1, maps),
                                 TLM_OK);
                assert_int_equal(tlm_model_attention_weights(q, prompt, N, 1,
                                                             maps + 4 * N * N),
                                 TLM_OK);
                double row_sum = 0;
                for (int j = 0; j < N; j++)
                    row_sum += (double)maps[4 * N * N + (N - 1) * N + j];
                tlmt_assert_close(row_sum, 1.0, 1e-5);
                const double worst = tlmt_max_abs_diff_f32(maps, maps + 4 * N * N,
                                                           4 * N * N);
                if (!(worst <= 0.1))
                    fail_msg("attention maps differ by %.3g", worst);
                free(maps);
            }
            print_message("%s %s: logits off by %.3g (prefill), %.3g (decode) of "
                          "their scale\n", shape_names[shape],
                          format == TLM_WEIGHTS_BF16 ? "bf16" : "int8", prefill, decode);
            tlm_model_free(q);
        }
        tlm_model_free(m);
    }
    tlm_context_free(ctx);
}

/* An encoder-only model (tlm_session_encode's logits, through the tied
 * head) against float32 and its own graph forward. */
static void encoder_only_logits(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = shape_config(1);
    c.n_encoder_layers = 2;
    c.n_decoder_layers = 0;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    float want[N * V], got[N * V], graph[N * V];
    for (int32_t format = TLM_WEIGHTS_F32; format <= TLM_WEIGHTS_INT8; format++) {
        tlm_model *q = m;
        if (format != TLM_WEIGHTS_F32)
            assert_int_equal(tlm_model_quantize(&q, m, format), TLM_OK);
        tlm_session *s = NULL;
        assert_int_equal(tlm_session_create(&s, q, NULL), TLM_OK);
        assert_int_equal(tlm_session_encode(s, prompt, N, NULL, format ? got : want),
                         TLM_OK);
        tlm_session_free(s);
        if (format != TLM_WEIGHTS_F32) {
            /* Shape 1's path: P = 2 + 2 layers * 4 products. */
            assert_logits_near(want, got, 1, format, "encoder-only vs float32");
            graph_logits(q, 1, graph);
            assert_logits_near(got, graph, 1, format, "encoder-only graph vs session");
            tlm_model_free(q);
        }
    }
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void bad_arguments(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, 1);
    tlm_model *q = (tlm_model *)ctx;
    assert_int_equal(tlm_model_quantize(&q, m, 3), TLM_E_INVALID);
    assert_null(q);
    assert_int_equal(tlm_model_quantize(&q, m, -1), TLM_E_INVALID);
    assert_int_equal(tlm_model_quantize(&q, NULL, TLM_WEIGHTS_INT8), TLM_E_INVALID);
    assert_int_equal(tlm_model_quantize(NULL, m, TLM_WEIGHTS_INT8), TLM_E_INVALID);
    assert_int_equal(tlm_model_weight_format(NULL), -1);
    /* NaN or infinity in a matrix: refused naming the tensor. */
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_model_find_parameter(m, "decoder.layers.1.ffn.up_proj.weight", &t),
                     TLM_OK);
    float *w = tlm_tensor_data_f32(t);
    const float saved = w[100];
    for (int32_t format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8; format++) {
        w[100] = format == TLM_WEIGHTS_BF16 ? INFINITY : NAN;
        assert_int_equal(tlm_model_quantize(&q, m, format), TLM_E_INVALID);
        assert_null(q);
        assert_non_null(strstr(tlm_last_error(), "decoder.layers.1.ffn.up_proj.weight"));
        assert_int_equal(strncmp(tlm_last_error(), "tlm_model_quantize: ", 20), 0);
    }
    w[100] = saved;
    /* No tensors of the quantized dtypes outside a model. */
    const int64_t shape[2] = {2, 32};
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_Q8, 2, shape), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_BF16, 2, shape), TLM_E_INVALID);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void quantized_models_refuse_training(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, 1);
    tlm_model *q = NULL;
    assert_int_equal(tlm_model_quantize(&q, m, TLM_WEIGHTS_INT8), TLM_OK);
    /* The trainer, before it looks at the data. */
    int32_t stream[200];
    for (int i = 0; i < 200; i++)
        stream[i] = (int32_t)(i % 7);
    tlm_dataset *data = NULL;
    assert_int_equal(tlm_dataset_from_ids(&data, ctx, stream, 200, NULL), TLM_OK);
    tlm_trainer *trainer = (tlm_trainer *)ctx;
    assert_int_equal(tlm_trainer_create(&trainer, q, data, NULL), TLM_E_UNSUPPORTED);
    assert_null(trainer);
    assert_non_null(strstr(tlm_last_error(), "dequantize first"));
    assert_non_null(strstr(tlm_last_error(), "int8"));
    /* The optimizer, over a quantized matrix. */
    tlm_tensor *weight = NULL;
    assert_int_equal(tlm_model_find_parameter(q, "token_embedding.weight", &weight), TLM_OK);
    tlm_optimizer *opt = (tlm_optimizer *)ctx;
    assert_int_equal(tlm_optimizer_create(&opt, &weight, 1, NULL), TLM_E_UNSUPPORTED);
    assert_null(opt);
    assert_non_null(strstr(tlm_last_error(), "dequantize first"));
    /* No gradient for a quantized matrix, and no operation takes one. */
    assert_int_equal(tlm_tensor_set_requires_grad(weight, 1), TLM_E_INVALID);
    tlm_tensor *ids = NULL, *out = NULL;
    const int64_t ids_shape[1] = {2};
    const int32_t id_values[2] = {1, 2};
    assert_int_equal(tlm_tensor_from_i32(&ids, ctx, 1, ids_shape, id_values), TLM_OK);
    assert_int_equal(tlm_embedding(&out, weight, ids), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "quantized"));
    tlm_tensor_free(ids);
    tlm_dataset_free(data);
    tlm_model_free(q);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

/* Generation, scoring and beam search on int8 models, next to float32. */
static void int8_models_generate_and_score(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_train(&tok, ctx, NULL, 0, &tp), TLM_OK);
    tlm_model_config c = shape_config(1);
    c.vocab_size = tlm_tokenizer_vocab_size(tok);
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    tlm_model *q = NULL;
    assert_int_equal(tlm_model_quantize(&q, m, TLM_WEIGHTS_INT8), TLM_OK);
    const char text[] = "the cat sat on the mat";
    double scores[2];
    for (int i = 0; i < 2; i++) {
        tlm_session *s = NULL;
        assert_int_equal(tlm_session_create(&s, i ? q : m, NULL), TLM_OK);
        int64_t scored = 0;
        assert_int_equal(tlm_score_text(s, tok, text, sizeof text - 1, &scores[i], &scored),
                         TLM_OK);
        assert_int_equal(scored, (int64_t)sizeof text - 2);
        tlm_sampler_params sp;
        tlm_sampler_params_init(&sp);
        sp.temperature = 0;
        tlm_sampler *sampler = NULL;
        assert_int_equal(tlm_sampler_create(&sampler, ctx, &sp), TLM_OK);
        tlm_generate_params gp;
        tlm_generate_params_init(&gp);
        gp.max_tokens = 8;
        gp.stop_at_eos = 0;
        int32_t generated = 0;
        assert_int_equal(tlm_session_reset(s), TLM_OK);
        assert_int_equal(tlm_generate(s, sampler, tok, "the", 3, &gp, &generated), TLM_OK);
        assert_int_equal(generated, 8);
        tlm_sampler_free(sampler);
        tlm_session_free(s);
    }
    /* Near the float32 score: per token, within a few hundredths of a nat
     * (an untrained model's log-probabilities are near -log V). */
    tlmt_assert_close(scores[1], scores[0], 0.02 * (double)(sizeof text - 2));
    tlm_model_free(q);
    tlm_model_free(m);

    /* Beam search with an int8 encoder-decoder. */
    tlm_model *s2s = make_model(ctx, 2);
    assert_int_equal(tlm_model_quantize(&q, s2s, TLM_WEIGHTS_INT8), TLM_OK);
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, q, NULL), TLM_OK);
    tlm_beam_search_params bp;
    tlm_beam_search_params_init(&bp);
    bp.beam_width = 3;
    bp.max_length = 6;
    bp.bos_id = 1;
    bp.eos_id = 2;
    const int32_t src[5] = {7, 8, 9, 10, 11};
    int32_t ids[8];
    size_t n_ids = 0;
    double score = 0;
    assert_int_equal(tlm_beam_search(s, src, 5, NULL, &bp, ids, 8, &n_ids, &score), TLM_OK);
    assert_true(n_ids >= 1 && n_ids <= 6);
    assert_true(score <= 0 && isfinite(score));
    tlm_session_free(s);
    tlm_model_free(q);
    tlm_model_free(s2s);
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);
}

/* Exports write the dequantized values. */
static void exports_write_dequantized_values(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, 0);
    tlm_model *q = NULL;
    assert_int_equal(tlm_model_quantize(&q, m, TLM_WEIGHTS_INT8), TLM_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/q.safetensors", dir);
    assert_int_equal(tlm_model_export_safetensors(q, path), TLM_OK);
    tlm_model *back = NULL;
    assert_int_equal(tlm_model_import_safetensors(&back, ctx, path), TLM_OK);
    assert_int_equal(tlm_model_weight_format(back), TLM_WEIGHTS_F32);
    size_t a = 0, b = 0;
    float *want = all_values(q, &a), *got = all_values(back, &b);
    assert_int_equal(a, b);
    assert_memory_equal(want, got, a * sizeof *want);
    free(got);
    tlm_model_free(back);
    /* Through tlm_model_export: a llama2.c checkpoint of the Llama shape. */
    tlm_model_export_params ep;
    tlm_model_export_params_init(&ep);
    ep.format = TLM_MODEL_FORMAT_LLAMA2C;
    snprintf(path, sizeof path, "%s/q.bin", dir);
    assert_int_equal(tlm_model_export(q, path, &ep), TLM_OK);
    tlm_model_import_params ip;
    tlm_model_import_params_init(&ip);
    ip.format = TLM_MODEL_FORMAT_LLAMA2C;
    assert_int_equal(tlm_model_import(&back, ctx, path, &ip), TLM_OK);
    got = all_values(back, &b);
    assert_int_equal(a, b);
    assert_memory_equal(want, got, a * sizeof *want);
    free(want);
    free(got);
    tlm_model_free(back);
    tlm_model_free(q);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

/* A float32 .tlm file written before #19 (the fuzz corpus's, argv[1])
 * loads and saves again byte for byte: float32 files have not changed. */
static const char *float32_fixture;

static void float32_files_are_unchanged(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    for (int map = 0; map <= 1; map++) {
        tlm_model *m = load(ctx, float32_fixture, map);
        assert_int_equal(tlm_model_weight_format(m), TLM_WEIGHTS_F32);
        char path[600];
        snprintf(path, sizeof path, "%s/fixture%d.tlm", dir, map);
        assert_int_equal(tlm_model_save(m, path), TLM_OK);
        assert_same_files(float32_fixture, path);
        tlm_model_free(m);
    }
    tlm_context_free(ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FLOAT32_TLM_FIXTURE\n", argv[0]);
        return 2;
    }
    float32_fixture = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(float32_files_are_unchanged),
        cmocka_unit_test(quantized_files_round_trip),
        cmocka_unit_test(logits_stay_near_float32),
        cmocka_unit_test(encoder_only_logits),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(quantized_models_refuse_training),
        cmocka_unit_test(int8_models_generate_and_score),
        cmocka_unit_test(exports_write_dequantized_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
