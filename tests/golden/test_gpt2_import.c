/*
 * Suite "golden": GPT-2 checkpoints written by Hugging Face transformers
 * (save_pretrained: F32, F16, BF16, sharded, names without the
 * `transformer.` prefix) and llm.c checkpoints (version 3 float32, version
 * 5 bfloat16, written after llm.c's published layout), made by
 * tests/reference/make_gpt2_fixtures.py into tests/fixtures/gpt2, against
 * what transformers computes from the same weights
 * (expected/<name>.safetensors: token ids, logits, loss, and parameters
 * after one AdamW step).
 *
 * For each file, tlm_model_import() must give a model whose
 *   - configuration is the checkpoint's;
 *   - logits, from tlm_model_forward() and from a tlm_session on the same
 *     ids, agree with transformers' (max |diff| <= LOGIT_TOLERANCE * max
 *     |ref|) and with each other;
 *   - loss on the shifted targets agrees (LOSS_TOLERANCE, relative);
 *   - parameters after one step of tlm's AdamW (the fixture's lr, betas,
 *     eps, weight decay; tlm's default decay flags, which the generator
 *     mirrors in PyTorch's parameter groups) agree with PyTorch's to
 *     UPDATE_TOLERANCE * lr.
 * The F16 and BF16 references are computed in float32 from the stored
 * half-precision values, which import converts exactly: their bounds are
 * the float32 ones.
 *
 * The configuration given instead of a config.json beside the weights
 * (params.config_path, params.config) gives the same model; none at all is
 * TLM_E_IO naming the config.json looked for.
 *
 * Exports: each model exported to Hugging Face form (F32) and to llm.c
 * (version 3) and imported again has bit-identical parameters and the same
 * configuration; exported in the fixture's own element type it writes the
 * same tensors, byte for byte, as transformers wrote (and the F32 model's
 * llm.c exports are the fixture's .bin files, byte for byte).
 *
 * Bad input: copies of a fixture changed at run time (a tensor removed, a
 * tensor's shape changed, config.json's n_embd wrong, model_type "bert",
 * architectures ["BertModel"], vocab_size not the embedding's rows; the
 * sharded one with a shard deleted or a tensor left out of its index) are
 * refused with the documented status and a message naming the file and
 * the tensor or field, create no model and write nothing.
 *
 * usage: test_gpt2_import FIXTURES_DIR [--export-to DIR]
 * With --export-to, the Hugging Face export of every fixture is also left
 * in DIR/<name>, and the F32 model after the AdamW step in DIR/f32_stepped
 * (and .bin, .logits.f32), for `make_gpt2_fixtures.py --check-export` and
 * for llm.c (tests/reference/README.md).
 */
#define _POSIX_C_SOURCE 200809L /* mkdir */

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "io/safetensors.h"
#include "temp_dir.h"
#include "tlm.h"
#include "tolerance.h"

/* Logits: max |tlm - transformers| / max |transformers|. Measured 4e-7 to
 * 5e-7 for every fixture (float32 against float32 in another order); exact
 * against tanh GELU moves these logits by 2.5e-4 to 3e-4 of their largest,
 * the default layer_norm_epsilon instead of the stored one by 6e-3 or
 * more, so 2e-5 tells them apart. */
#define LOGIT_TOLERANCE 2e-5
/* forward against session: two executions of the same float32 model. */
#define SESSION_TOLERANCE 1e-5
#define LOSS_TOLERANCE 1e-5
/* After one step an element moves by lr * g / (|g| + eps) (plus the
 * decay): an error d in g moves it by at most lr * d / eps (eps is
 * 2^-10). Measured 2e-5 to 3e-5 lr, so the float32 gradients agree with
 * PyTorch's to a few 1e-8. A wrong decay flag moves a weight by lr * wd * |p|
 * (wd 0.125, |p| ~ 0.15: ~2e-2 lr), a wrong sign of an update by 2 lr. */
#define UPDATE_TOLERANCE 1e-3

static const char *fixtures_dir;
static const char *export_to; /* or NULL */

/* ---------------------------------------------------------------------- */
/* Fixtures */

typedef struct import_case {
    const char *name;     /* the test's name */
    const char *path;     /* relative to the fixtures directory */
    const char *expected; /* expected/<expected>.safetensors */
    int32_t format;       /* the tlm_model_format given to the import */
    int32_t weight_type;  /* the tlm_weight_type of the file's tensors */
    int llmc;             /* 1: an llm.c checkpoint */
} import_case;

static const import_case import_cases[] = {
    {"f32 directory", "f32", "f32", TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_F32, 0},
    {"f32 model.safetensors", "f32/model.safetensors", "f32", TLM_MODEL_FORMAT_AUTO,
     TLM_WEIGHT_F32, 0},
    {"f32 directory, format hf", "f32", "f32", TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32, 0},
    {"f16 directory", "f16", "f16", TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_F16, 0},
    {"f16 model.safetensors", "f16/model.safetensors", "f16", TLM_MODEL_FORMAT_AUTO,
     TLM_WEIGHT_F16, 0},
    {"bf16 without prefix, directory", "bf16_noprefix", "bf16_noprefix",
     TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_BF16, 0},
    {"bf16 without prefix, model.safetensors", "bf16_noprefix/model.safetensors",
     "bf16_noprefix", TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_BF16, 0},
    {"sharded directory", "sharded", "sharded", TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_F16, 0},
    {"sharded index", "sharded/model.safetensors.index.json", "sharded",
     TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_F16, 0},
    {"llm.c version 3", "llmc/llmc_v3.bin", "f32", TLM_MODEL_FORMAT_AUTO, TLM_WEIGHT_F32, 1},
    {"llm.c version 3, format llmc", "llmc/llmc_v3.bin", "f32", TLM_MODEL_FORMAT_LLMC,
     TLM_WEIGHT_F32, 1},
    {"llm.c version 5", "llmc/llmc_v5.bin", "llmc_v5", TLM_MODEL_FORMAT_AUTO,
     TLM_WEIGHT_BF16, 1},
};
#define IMPORT_CASES (sizeof import_cases / sizeof import_cases[0])

/* The models exported and imported again: one per distinct file. */
static const size_t round_trip_cases[] = {0, 3, 5, 7, 9, 11};
#define ROUND_TRIP_CASES (sizeof round_trip_cases / sizeof round_trip_cases[0])

static void fixture_path(char *path, size_t size, const char *relative) {
    int n = snprintf(path, size, "%s/%s", fixtures_dir, relative);
    assert_true(n > 0 && (size_t)n < size);
}

/* What transformers computed (expected/<name>.safetensors). */
typedef struct expected {
    tlmi_host host;
    tlmi_safetensors *st;
    int64_t batch, length, vocab;
    int32_t *ids, *targets; /* [batch, length] */
    float *logits;          /* [batch, length, vocab] */
    float loss;
    float lr, beta1, beta2, eps, weight_decay;
    int32_t config[6]; /* vocab, n_embd, n_head, n_layer, n_positions, activation */
    float layer_norm_epsilon;
} expected;

static const tlmi_safetensors_entry *find_entry(const expected *e, const char *name) {
    const tlmi_safetensors_entry *entry = tlmi_safetensors_find(e->st, name);
    if (entry == NULL)
        fail_msg("the expected values lack %s", name);
    return entry;
}

static float *read_f32(const expected *e, const char *name, int64_t numel) {
    const tlmi_safetensors_entry *entry = find_entry(e, name);
    assert_int_equal(entry->numel, numel);
    float *values = malloc((size_t)numel * sizeof *values);
    assert_non_null(values);
    assert_int_equal(tlmi_safetensors_copy_f32(e->st, entry, values, numel), TLM_OK);
    return values;
}

static float read_scalar(const expected *e, const char *name) {
    float *value = read_f32(e, name, 1);
    float result = value[0];
    free(value);
    return result;
}

static int32_t *read_i32(const expected *e, const char *name, int64_t numel) {
    const tlmi_safetensors_entry *entry = find_entry(e, name);
    assert_int_equal(entry->numel, numel);
    int32_t *values = malloc((size_t)numel * sizeof *values);
    assert_non_null(values);
    assert_int_equal(tlmi_safetensors_copy_i32(e->st, entry, values, numel), TLM_OK);
    return values;
}

static void expected_open(expected *e, tlm_context *ctx, const char *name) {
    memset(e, 0, sizeof *e);
    e->host = ctx->host;
    char relative[256], path[4096];
    snprintf(relative, sizeof relative, "expected/%s.safetensors", name);
    fixture_path(path, sizeof path, relative);
    if (tlmi_safetensors_open(&e->host, path, TLMI_ST_OPEN_READ, &e->st) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    const tlmi_safetensors_entry *logits = find_entry(e, "expected.logits");
    assert_int_equal(logits->ndim, 3);
    e->batch = logits->shape[0];
    e->length = logits->shape[1];
    e->vocab = logits->shape[2];
    e->ids = read_i32(e, "input.ids", e->batch * e->length);
    e->targets = read_i32(e, "input.targets", e->batch * e->length);
    e->logits = read_f32(e, "expected.logits", e->batch * e->length * e->vocab);
    e->loss = read_scalar(e, "expected.loss");
    e->lr = read_scalar(e, "adamw.lr");
    e->beta1 = read_scalar(e, "adamw.beta1");
    e->beta2 = read_scalar(e, "adamw.beta2");
    e->eps = read_scalar(e, "adamw.eps");
    e->weight_decay = read_scalar(e, "adamw.weight_decay");
    int32_t *config = read_i32(e, "config.ints", 6);
    memcpy(e->config, config, sizeof e->config);
    free(config);
    e->layer_norm_epsilon = read_scalar(e, "config.layer_norm_epsilon");
}

static void expected_close(expected *e) {
    free(e->ids);
    free(e->targets);
    free(e->logits);
    tlmi_safetensors_free(e->st);
}

static tlm_model *import_or_fail(tlm_context *ctx, const char *path, int32_t format) {
    tlm_model_import_params params;
    assert_int_equal(tlm_model_import_params_init(&params), TLM_OK);
    params.format = format;
    tlm_model *model = NULL;
    if (tlm_model_import(&model, ctx, path, &params) != TLM_OK)
        fail_msg("tlm_model_import(%s): %s", path, tlm_last_error());
    assert_non_null(model);
    return model;
}

/* ---------------------------------------------------------------------- */
/* Import: configuration, logits, loss, one AdamW step */

static void check_config(const tlm_model *model, const expected *e) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    assert_int_equal(tlm_model_get_config(model, &c), TLM_OK);
    assert_int_equal(c.vocab_size, e->config[0]);
    assert_int_equal(c.d_model, e->config[1]);
    assert_int_equal(c.n_heads, e->config[2]);
    assert_int_equal(c.head_dim * c.n_heads, c.d_model);
    assert_int_equal(c.d_ff, 4 * c.d_model);
    assert_int_equal(c.n_decoder_layers, e->config[3]);
    assert_int_equal(c.n_encoder_layers, 0);
    assert_int_equal(c.max_context, e->config[4]);
    assert_int_equal(c.activation, e->config[5]);
    assert_int_equal(c.position, TLM_POSITION_LEARNED);
    assert_int_equal(c.norm, TLM_NORM_LAYER);
    assert_int_equal(c.norm_placement, TLM_NORM_PRE);
    assert_int_equal(c.bias, 1);
    assert_int_equal(c.tied_output, 1);
    /* config.json's value read as a float, as the fixture stored it */
    tlmt_assert_close(c.norm_eps, e->layer_norm_epsilon, 0.0);
}

static tlm_tensor *i32_tensor(tlm_context *ctx, const int32_t *values, int64_t batch,
                              int64_t length) {
    int64_t shape[2] = {batch, length};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
    memcpy(tlm_tensor_data_i32(t), values, (size_t)(batch * length) * sizeof *values);
    return t;
}

/* The session's logits for every position of every sequence of the batch. */
static float *session_logits(const tlm_model *model, const expected *e) {
    size_t row = (size_t)(e->length * e->vocab);
    float *logits = malloc((size_t)e->batch * row * sizeof *logits);
    assert_non_null(logits);
    tlm_session *session = NULL;
    if (tlm_session_create(&session, model, NULL) != TLM_OK)
        fail_msg("tlm_session_create: %s", tlm_last_error());
    for (int64_t b = 0; b < e->batch; b++) {
        assert_int_equal(tlm_session_reset(session), TLM_OK);
        if (tlm_session_decode(session, e->ids + b * e->length, (size_t)e->length,
                               logits + (size_t)b * row, (int32_t)e->length) != TLM_OK)
            fail_msg("tlm_session_decode: %s", tlm_session_last_error(session));
    }
    tlm_session_free(session);
    return logits;
}

/* max over the recorded elements of |tlm - PyTorch| / lr, after the step. */
static double update_error(tlm_model *model, const expected *e, const char **worst_name) {
    double worst = 0.0;
    *worst_name = "";
    int32_t count = tlm_model_parameter_tensor_count(model);
    for (int32_t i = 0; i < count; i++) {
        const char *name;
        tlm_tensor *t;
        assert_int_equal(tlm_model_parameter(model, i, &name, &t), TLM_OK);
        char key[256];
        snprintf(key, sizeof key, "updated.%s", name);
        const tlmi_safetensors_entry *entry = find_entry(e, key);
        /* the first rows of a matrix, or a whole vector */
        int64_t row = tlm_tensor_ndim(t) == 2 ? tlm_tensor_dim(t, 1) : tlm_tensor_numel(t);
        assert_int_equal(entry->numel % row, 0);
        assert_true(entry->numel <= tlm_tensor_numel(t));
        float *want = read_f32(e, key, entry->numel);
        double error = tlmt_max_abs_diff_f32(want, tlm_tensor_data_f32(t), entry->numel) /
                       (double)e->lr;
        if (!(error <= worst) && !isnan(worst))
            *worst_name = name;
        worst = tlmt_worst(worst, error);
        free(want);
    }
    return worst;
}

static void export_or_fail(const tlm_model *model, const char *path, int32_t format,
                           int32_t weight_type);

/* --export-to: the model after tlm's AdamW step (a model tlm changed, no
 * longer a fixture) as DIR/f32_stepped (Hugging Face), DIR/f32_stepped.bin
 * (llm.c version 3) and its logits on the batch as raw float32
 * DIR/f32_stepped.logits.f32, for running it in transformers and llm.c. */
static void export_stepped(tlm_model *model, const tlm_batch *batch, int64_t n_logits) {
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/f32_stepped", export_to);
    export_or_fail(model, path, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32);
    snprintf(path, sizeof path, "%s/f32_stepped.bin", export_to);
    export_or_fail(model, path, TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_F32);
    tlm_tensor *logits = NULL;
    assert_int_equal(tlm_model_forward(model, batch, &logits, NULL), TLM_OK);
    assert_int_equal(tlm_tensor_numel(logits), n_logits);
    snprintf(path, sizeof path, "%s/f32_stepped.logits.f32", export_to);
    assert_int_equal(write_whole_file(path, tlm_tensor_data_f32(logits),
                                      (size_t)n_logits * sizeof(float)), 0);
}

static void check_import(void **state) {
    const import_case *c = *state;
    char path[4096];
    fixture_path(path, sizeof path, c->path);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    expected e;
    expected_open(&e, ctx, c->expected);
    tlm_model *model = import_or_fail(ctx, path, c->format);
    check_config(model, &e);

    /* Evaluation mode: the checkpoints' dropout settings (0.1) must not
     * act, as in transformers' model.eval(). */
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = i32_tensor(ctx, e.ids, e.batch, e.length);
    batch.targets = i32_tensor(ctx, e.targets, e.batch, e.length);
    tlm_tensor *logits = NULL, *loss = NULL;
    if (tlm_model_forward(model, &batch, &logits, &loss) != TLM_OK)
        fail_msg("tlm_model_forward: %s", tlm_last_error());
    int64_t n = e.batch * e.length * e.vocab;
    assert_int_equal(tlm_tensor_numel(logits), n);
    double scale = tlmt_max_abs_f32(e.logits, n);
    double forward_error = tlmt_max_abs_diff_f32(e.logits, tlm_tensor_data_f32(logits), n) / scale;
    float *from_session = session_logits(model, &e);
    double session_error = tlmt_max_abs_diff_f32(e.logits, from_session, n) / scale;
    double between = tlmt_max_abs_diff_f32(tlm_tensor_data_f32(logits), from_session, n) / scale;
    double loss_error = fabs((double)tlm_tensor_data_f32(loss)[0] - (double)e.loss) /
                        fabs((double)e.loss);

    /* One AdamW step as the generator took it. */
    assert_int_equal(tlm_backward(loss), TLM_OK);
    int32_t count = tlm_model_parameter_tensor_count(model);
    tlm_tensor **tensors = calloc((size_t)count, sizeof *tensors);
    assert_non_null(tensors);
    for (int32_t i = 0; i < count; i++)
        assert_int_equal(tlm_model_parameter(model, i, NULL, &tensors[i]), TLM_OK);
    tlm_optimizer_params params;
    tlm_optimizer_params_init(&params);
    params.lr = e.lr;
    params.beta1 = e.beta1;
    params.beta2 = e.beta2;
    params.eps = e.eps;
    params.weight_decay = e.weight_decay;
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, tensors, count, &params), TLM_OK);
    /* The generator's parameter groups: decay on 2-D tensors only. */
    for (int32_t i = 0; i < count; i++)
        assert_int_equal(tlm_optimizer_get_decay(opt, i), tlm_tensor_ndim(tensors[i]) >= 2);
    assert_int_equal(tlm_optimizer_step(opt, TLM_OPTIMIZER_LR_DEFAULT), TLM_OK);
    const char *worst_name;
    double step_error = update_error(model, &e, &worst_name);

    printf("golden gpt2 %-40s logits %.2e  session %.2e  (between %.2e)  loss %.2e  "
           "AdamW step %.2e lr (%s)\n",
           c->name, forward_error, session_error, between, loss_error, step_error, worst_name);
    assert_true(forward_error <= LOGIT_TOLERANCE);
    assert_true(session_error <= LOGIT_TOLERANCE);
    assert_true(between <= SESSION_TOLERANCE);
    assert_true(loss_error <= LOSS_TOLERANCE);
    assert_true(step_error <= UPDATE_TOLERANCE);

    if (export_to != NULL && strcmp(c->name, "f32 directory") == 0)
        export_stepped(model, &batch, e.batch * e.length * e.vocab);

    tlm_optimizer_free(opt);
    free(tensors);
    free(from_session);
    tlm_model_free(model);
    expected_close(&e);
    tlm_context_free(ctx);
}

/* max |forward logits - transformers'| / max |transformers'|, in
 * evaluation mode. */
static double forward_logits_error(tlm_context *ctx, tlm_model *model, const expected *e) {
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = i32_tensor(ctx, e->ids, e->batch, e->length);
    tlm_tensor *logits = NULL;
    if (tlm_model_forward(model, &batch, &logits, NULL) != TLM_OK)
        fail_msg("tlm_model_forward: %s", tlm_last_error());
    int64_t n = e->batch * e->length * e->vocab;
    assert_int_equal(tlm_tensor_numel(logits), n);
    return tlmt_max_abs_diff_f32(e->logits, tlm_tensor_data_f32(logits), n) /
           tlmt_max_abs_f32(e->logits, n);
}

static void copy_file(const char *from, const char *to);

/* The F32 fixture's model.safetensors alone in a directory: without a
 * config.json the import is refused naming it; with the configuration
 * given as a file (config_path) or as a tlm_model_config it gives the
 * fixture's model. */
static void check_explicit_config(void **state) {
    (void)state;
    char dir[4096], from[4096], to[4096 + 64];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    fixture_path(from, sizeof from, "f32/model.safetensors");
    snprintf(to, sizeof to, "%s/model.safetensors", dir);
    copy_file(from, to);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    expected e;
    expected_open(&e, ctx, "f32");

    tlm_model *model = NULL;
    int status = tlm_model_import(&model, ctx, to, NULL);
    printf("golden gpt2 no config.json: %s: %s\n", tlm_status_name(status), tlm_last_error());
    assert_int_equal(status, TLM_E_IO);
    assert_null(model);
    if (strstr(tlm_last_error(), "config.json") == NULL)
        fail_msg("the message does not name config.json: %s", tlm_last_error());

    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    fixture_path(from, sizeof from, "f32/config.json");
    params.config_path = from;
    if (tlm_model_import(&model, ctx, to, &params) != TLM_OK)
        fail_msg("tlm_model_import with config_path: %s", tlm_last_error());
    check_config(model, &e);
    double from_file = forward_logits_error(ctx, model, &e);
    tlm_model_free(model);

    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = e.config[0];
    config.d_model = e.config[1];
    config.n_heads = e.config[2];
    config.n_decoder_layers = e.config[3];
    config.max_context = e.config[4];
    config.activation = e.config[5];
    config.norm_eps = e.layer_norm_epsilon;
    tlm_model_import_params_init(&params);
    params.config = &config;
    if (tlm_model_import(&model, ctx, to, &params) != TLM_OK)
        fail_msg("tlm_model_import with a config: %s", tlm_last_error());
    check_config(model, &e);
    double from_struct = forward_logits_error(ctx, model, &e);
    tlm_model_free(model);
    printf("golden gpt2 configuration given: logits %.2e (config_path), %.2e (config)\n",
           from_file, from_struct);
    assert_true(from_file <= LOGIT_TOLERANCE);
    assert_true(from_struct <= LOGIT_TOLERANCE);
    expected_close(&e);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
}

/* ---------------------------------------------------------------------- */
/* Export and import again */

static void assert_same_parameters(tlm_model *a, tlm_model *b, const char *what) {
    tlm_model_config ca, cb;
    tlm_model_config_init(&ca);
    tlm_model_config_init(&cb);
    assert_int_equal(tlm_model_get_config(a, &ca), TLM_OK);
    assert_int_equal(tlm_model_get_config(b, &cb), TLM_OK);
    /* init_seed is not part of either format */
    ca.init_seed = cb.init_seed = 0;
    if (memcmp(&ca, &cb, sizeof ca) != 0)
        fail_msg("%s: the configuration changed", what);
    int32_t count = tlm_model_parameter_tensor_count(a);
    assert_int_equal(tlm_model_parameter_tensor_count(b), count);
    for (int32_t i = 0; i < count; i++) {
        const char *name_a, *name_b;
        tlm_tensor *ta, *tb;
        assert_int_equal(tlm_model_parameter(a, i, &name_a, &ta), TLM_OK);
        assert_int_equal(tlm_model_parameter(b, i, &name_b, &tb), TLM_OK);
        assert_string_equal(name_a, name_b);
        assert_int_equal(tlm_tensor_numel(ta), tlm_tensor_numel(tb));
        if (memcmp(tlm_tensor_data_f32(ta), tlm_tensor_data_f32(tb),
                   (size_t)tlm_tensor_numel(ta) * sizeof(float)) != 0)
            fail_msg("%s: %s is not bit-identical", what, name_a);
    }
}

static void export_or_fail(const tlm_model *model, const char *path, int32_t format,
                           int32_t weight_type) {
    tlm_model_export_params params;
    assert_int_equal(tlm_model_export_params_init(&params), TLM_OK);
    params.format = format;
    params.weight_type = weight_type;
    if (tlm_model_export(model, path, &params) != TLM_OK)
        fail_msg("tlm_model_export(%s): %s", path, tlm_last_error());
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    return size;
}

static unsigned char *whole_file(const char *path, long *size) {
    *size = file_size(path);
    if (*size < 0)
        fail_msg("cannot read %s", path);
    unsigned char *data = malloc((size_t)*size + 1);
    assert_non_null(data);
    assert_int_equal(read_whole_file(path, data, (size_t)*size), *size);
    return data;
}

static void assert_same_file(const char *a, const char *b) {
    long size_a, size_b;
    unsigned char *da = whole_file(a, &size_a);
    unsigned char *db = whole_file(b, &size_b);
    if (size_a != size_b || memcmp(da, db, (size_t)size_a) != 0)
        fail_msg("%s and %s differ", a, b);
    free(da);
    free(db);
}

/* The tensor `name` (with or without "transformer.") in the fixture's
 * safetensors files, which `files` holds open. */
static const tlmi_safetensors_entry *find_in(tlmi_safetensors *const *files, size_t n_files,
                                             const char *name) {
    const char *prefix = "transformer.";
    for (size_t i = 0; i < n_files; i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_find(files[i], name);
        if (e == NULL && strncmp(name, prefix, strlen(prefix)) == 0)
            e = tlmi_safetensors_find(files[i], name + strlen(prefix));
        if (e != NULL)
            return e;
    }
    return NULL;
}

/* Old checkpoints' causal-mask buffers h.N.attn.bias [1, 1, T, T] and
 * h.N.attn.masked_bias: not parameters, not exported. */
static int is_mask_buffer(const tlmi_safetensors_entry *e) {
    size_t n = strlen(e->name);
    return (n > 10 && strcmp(e->name + n - 10, ".attn.bias") == 0 && e->ndim == 4) ||
           (n > 17 && strcmp(e->name + n - 17, ".attn.masked_bias") == 0);
}

/* The export in the fixture's element type holds exactly the tensors
 * transformers wrote, byte for byte (names with the prefix, as
 * save_pretrained writes GPT2LMHeadModel). */
static void assert_same_tensors_as_transformers(tlm_context *ctx, const char *fixture,
                                                const char *exported_dir) {
    static const char *const shard_names[] = {
        "model.safetensors", "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    tlmi_safetensors *files[4];
    size_t n_files = 0;
    size_t originals = 0;
    for (size_t i = 0; i < 4; i++) {
        char relative[512], path[4096];
        snprintf(relative, sizeof relative, "%s/%s", fixture, shard_names[i]);
        fixture_path(path, sizeof path, relative);
        if (file_size(path) < 0)
            continue;
        assert_int_equal(tlmi_safetensors_open(&ctx->host, path, TLMI_ST_OPEN_READ,
                                               &files[n_files]), TLM_OK);
        for (size_t j = 0; j < tlmi_safetensors_count(files[n_files]); j++)
            originals += !is_mask_buffer(tlmi_safetensors_entry_at(files[n_files], j));
        n_files++;
    }
    assert_true(n_files > 0);
    char path[8192 + 64];
    snprintf(path, sizeof path, "%s/model.safetensors", exported_dir);
    tlmi_safetensors *exported = NULL;
    if (tlmi_safetensors_open(&ctx->host, path, TLMI_ST_OPEN_READ, &exported) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    assert_int_equal(tlmi_safetensors_count(exported), originals);
    for (size_t i = 0; i < tlmi_safetensors_count(exported); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(exported, i);
        if (strncmp(e->name, "transformer.", 12) != 0)
            fail_msg("%s: %s lacks the transformer. prefix", path, e->name);
        const tlmi_safetensors_entry *o = find_in(files, n_files, e->name);
        if (o == NULL)
            fail_msg("%s: %s is not in the fixture", path, e->name);
        assert_int_equal(e->dtype, o->dtype);
        assert_int_equal(e->ndim, o->ndim);
        for (int32_t d = 0; d < e->ndim; d++)
            assert_int_equal(e->shape[d], o->shape[d]);
        if (e->nbytes != o->nbytes || memcmp(e->data, o->data, e->nbytes) != 0)
            fail_msg("%s: %s differs from transformers' bytes", path, e->name);
    }
    tlmi_safetensors_free(exported);
    for (size_t i = 0; i < n_files; i++)
        tlmi_safetensors_free(files[i]);
}

static void check_round_trip(void **state) {
    const import_case *c = *state;
    char path[4096], dir[4096], out[4096 + 64];
    fixture_path(path, sizeof path, c->path);
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *model = import_or_fail(ctx, path, TLM_MODEL_FORMAT_AUTO);

    /* Hugging Face, float32: the same parameters and configuration back. */
    snprintf(out, sizeof out, "%s/hf", dir);
    export_or_fail(model, out, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32);
    tlm_model *back = import_or_fail(ctx, out, TLM_MODEL_FORMAT_AUTO);
    assert_same_parameters(model, back, "tlm -> hf -> tlm");
    tlm_model_free(back);

    /* llm.c version 3: llm.c fixes the epsilon (1e-5) and the activation
     * (tanh GELU), so only a model with those round-trips; another is
     * refused, naming the field, and nothing is written. */
    tlm_model_config config;
    tlm_model_config_init(&config);
    assert_int_equal(tlm_model_get_config(model, &config), TLM_OK);
    snprintf(out, sizeof out, "%s/model.bin", dir);
    const char *llmc_result = "round-trips bit-exact";
    if (config.norm_eps == 1e-5f && config.activation == TLM_ACTIVATION_GELU) {
        export_or_fail(model, out, TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_F32);
        back = import_or_fail(ctx, out, TLM_MODEL_FORMAT_AUTO);
        assert_same_parameters(model, back, "tlm -> llmc -> tlm");
        tlm_model_free(back);
    } else {
        tlm_model_export_params params;
        tlm_model_export_params_init(&params);
        params.format = TLM_MODEL_FORMAT_LLMC;
        assert_int_equal(tlm_model_export(model, out, &params), TLM_E_UNSUPPORTED);
        const char *field = config.norm_eps != 1e-5f ? "norm_eps" : "activation";
        if (strstr(tlm_last_error(), field) == NULL)
            fail_msg("the refusal does not name %s: %s", field, tlm_last_error());
        assert_true(file_size(out) < 0);
        llmc_result = config.norm_eps != 1e-5f ? "refused (norm_eps)" : "refused (activation)";
    }

    if (!c->llmc) {
        /* In the fixture's own element type: transformers' bytes. */
        snprintf(out, sizeof out, "%s/hf_%d", dir, (int)c->weight_type);
        export_or_fail(model, out, TLM_MODEL_FORMAT_HF, c->weight_type);
        assert_same_tensors_as_transformers(ctx, c->path, out);
    }
    if (strcmp(c->expected, "f32") == 0) {
        /* The llm.c files the generator wrote from this model. */
        char fixture[4096];
        snprintf(out, sizeof out, "%s/v3.bin", dir);
        export_or_fail(model, out, TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_F32);
        fixture_path(fixture, sizeof fixture, "llmc/llmc_v3.bin");
        assert_same_file(out, fixture);
        snprintf(out, sizeof out, "%s/v5.bin", dir);
        export_or_fail(model, out, TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_BF16);
        fixture_path(fixture, sizeof fixture, "llmc/llmc_v5.bin");
        assert_same_file(out, fixture);
    }
    if (export_to != NULL) {
        /* For make_gpt2_fixtures.py --check-export, named by the file. */
        const char *base = strrchr(c->path, '/');
        char name[256];
        snprintf(name, sizeof name, "%s", base != NULL ? base + 1 : c->path);
        char *dot = strchr(name, '.');
        if (dot != NULL)
            *dot = '\0';
        snprintf(out, sizeof out, "%s/%s", export_to, name);
        export_or_fail(model, out, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32);
    }
    printf("golden gpt2 %-40s hf export round-trips bit-exact; llm.c export %s\n", c->name,
           llmc_result);
    tlm_model_free(model);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
}

/* ---------------------------------------------------------------------- */
/* Bad input, derived from the F32 fixture at run time */

/* Replaces the one occurrence of `from` in the NUL-terminated `text`
 * (room for `capacity` bytes) by `to`. */
static void replace_once(char *text, size_t capacity, const char *from, const char *to) {
    char *at = strstr(text, from);
    if (at == NULL || strstr(at + 1, from) != NULL)
        fail_msg("the fixture's config.json does not hold '%s' once", from);
    size_t tail = strlen(at + strlen(from));
    assert_true(strlen(text) - strlen(from) + strlen(to) < capacity);
    memmove(at + strlen(to), at + strlen(from), tail + 1);
    memcpy(at, to, strlen(to));
}

typedef struct bad_case {
    const char *name;
    const char *drop_tensor;   /* a tensor left out, or NULL */
    const char *narrow_tensor; /* a 2-D tensor written with one column less */
    const char *config_from;   /* config.json text replaced ... */
    const char *config_to;     /* ... by this */
    int status;                /* what tlm_model_import returns */
    const char *message;       /* what its message names: one of these, '|' between */
} bad_case;

static const bad_case bad_cases[] = {
    {"a tensor missing", "transformer.h.1.mlp.c_fc.bias", NULL, NULL, NULL,
     TLM_E_FORMAT, "h.1.mlp.c_fc.bias"},
    {"a tensor's shape changed", NULL, "transformer.h.0.attn.c_proj.weight", NULL, NULL,
     TLM_E_FORMAT, "h.0.attn.c_proj.weight"},
    {"config n_embd wrong", NULL, NULL, "\"n_embd\": 32", "\"n_embd\": 48",
     TLM_E_FORMAT, "n_embd|wte|wpe|ln_|c_attn|c_proj|c_fc"},
    {"model_type bert", NULL, NULL, "\"model_type\": \"gpt2\"", "\"model_type\": \"bert\"",
     TLM_E_UNSUPPORTED, "bert"},
    {"architectures BertModel", NULL, NULL, "\"GPT2LMHeadModel\"", "\"BertModel\"",
     TLM_E_UNSUPPORTED, "BertModel"},
    {"vocab_size not wte's rows", NULL, NULL, "\"vocab_size\": 97", "\"vocab_size\": 98",
     TLM_E_FORMAT, "vocab_size|wte"},
};
#define BAD_CASES (sizeof bad_cases / sizeof bad_cases[0])

/* Writes the F32 fixture's model.safetensors into `dir`, with `drop` left
 * out and `narrow` one column narrower. */
static void write_changed_weights(tlm_context *ctx, const char *dir, const char *drop,
                                  const char *narrow) {
    char path[8192];
    fixture_path(path, sizeof path, "f32/model.safetensors");
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_open(&ctx->host, path, TLMI_ST_OPEN_READ, &st), TLM_OK);
    tlmi_safetensors_writer *writer = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(&ctx->host, &writer), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_add_metadata(writer, "format", "pt"), TLM_OK);
    /* every tensor's copy, kept until the save */
    size_t count = tlmi_safetensors_count(st);
    float **kept = calloc(count, sizeof *kept);
    assert_non_null(kept);
    int found = drop == NULL && narrow == NULL;
    for (size_t i = 0; i < count; i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        if (drop != NULL && strcmp(e->name, drop) == 0) {
            found = 1;
            continue;
        }
        /* the data of a safetensors file need not be aligned: copy */
        float *values = malloc(e->nbytes + 1);
        assert_non_null(values);
        kept[i] = values;
        memcpy(values, e->data, e->nbytes);
        int64_t shape[TLM_MAX_DIMS];
        memcpy(shape, e->shape, sizeof shape);
        if (narrow != NULL && strcmp(e->name, narrow) == 0) {
            assert_int_equal(e->ndim, 2);
            int64_t rows = shape[0], cols = shape[1];
            for (int64_t r = 0; r < rows; r++)
                memmove(values + r * (cols - 1), values + r * cols,
                        (size_t)(cols - 1) * sizeof *values);
            shape[1] = cols - 1;
            found = 1;
        }
        assert_int_equal(tlmi_safetensors_writer_add(writer, e->name, e->dtype, e->ndim,
                                                     shape, values), TLM_OK);
    }
    assert_true(found);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(tlmi_safetensors_writer_save(writer, path), TLM_OK);
    for (size_t i = 0; i < count; i++)
        free(kept[i]);
    free(kept);
    tlmi_safetensors_writer_free(writer);
    tlmi_safetensors_free(st);
}

/* 1 when `message` holds one of the '|'-separated words of `words`. */
static int names_one_of(const char *message, const char *words) {
    while (*words != '\0') {
        size_t length = strcspn(words, "|");
        char word[128];
        assert_true(length < sizeof word);
        memcpy(word, words, length);
        word[length] = '\0';
        if (strstr(message, word) != NULL)
            return 1;
        words += length + (words[length] == '|');
    }
    return 0;
}

/* Importing the directory `dir` and its file `weights` both fail with
 * `want_status`, leave the out-pointer NULL, and give a message naming `dir`
 * and one of `names` ('|' between). */
static void assert_import_refused(tlm_context *ctx, const char *dir, const char *weights,
                                  const char *name, int want_status, const char *names) {
    char path[4096 + 64];
    for (int form = 0; form < 2; form++) {
        if (form == 0)
            snprintf(path, sizeof path, "%s", dir);
        else
            snprintf(path, sizeof path, "%s/%s", dir, weights);
        static int sentinel;
        tlm_model *model = (tlm_model *)(void *)&sentinel; /* must be cleared */
        int status = tlm_model_import(&model, ctx, path, NULL);
        const char *message = tlm_last_error();
        printf("golden gpt2 bad input, %-28s %s: %s\n", name, tlm_status_name(status),
               message);
        assert_int_equal(status, want_status);
        assert_null(model);
        if (!names_one_of(message, names))
            fail_msg("the message does not name any of '%s': %s", names, message);
        if (strstr(message, dir) == NULL)
            fail_msg("the message does not name the file: %s", message);
    }
}

static void check_bad_input(void **state) {
    const bad_case *c = *state;
    char dir[4096], path[4096 + 64];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    write_changed_weights(ctx, dir, c->drop_tensor, c->narrow_tensor);

    char config[8192];
    char fixture[4096];
    fixture_path(fixture, sizeof fixture, "f32/config.json");
    long length = read_whole_file(fixture, config, sizeof config - 1);
    assert_true(length > 0 && (size_t)length < sizeof config - 1);
    config[length] = '\0';
    if (c->config_from != NULL)
        replace_once(config, sizeof config, c->config_from, c->config_to);
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(write_whole_file(path, config, strlen(config)), 0);
    char before[1024], after[1024];
    assert_int_equal(temp_dir_count(dir, before, sizeof before), 2);

    /* The directory and its model.safetensors alike. */
    assert_import_refused(ctx, dir, "model.safetensors", c->name, c->status, c->message);
    /* Nothing written beside the checkpoint. */
    assert_int_equal(temp_dir_count(dir, after, sizeof after), 2);
    assert_string_equal(before, after);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
}

/* The sharded fixture copied into a scratch directory, then one shard
 * deleted or the index's entry for one tensor removed. */
typedef struct bad_shard_case {
    const char *name;
    const char *delete_file;  /* a file of the copy deleted, or NULL */
    const char *index_from;   /* the index's text replaced ... */
    const char *index_to;     /* ... by this */
    int status;
    const char *message; /* what the message names: one of these, '|' between */
} bad_shard_case;

static const bad_shard_case bad_shard_cases[] = {
    {"a shard missing", "model-00002-of-00003.safetensors", NULL, NULL, TLM_E_IO,
     "model-00002-of-00003.safetensors"},
    {"a tensor not in the index",
     NULL, "\"transformer.h.1.ln_2.bias\": \"model-00003-of-00003.safetensors\",", "",
     TLM_E_FORMAT, "h.1.ln_2.bias"},
};
#define BAD_SHARD_CASES (sizeof bad_shard_cases / sizeof bad_shard_cases[0])

static void copy_file(const char *from, const char *to) {
    long size;
    unsigned char *data = whole_file(from, &size);
    assert_int_equal(write_whole_file(to, data, (size_t)size), 0);
    free(data);
}

static void check_bad_shards(void **state) {
    const bad_shard_case *c = *state;
    static const char *const files[] = {
        "config.json", "model.safetensors.index.json", "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    char dir[4096], from[4096], to[4096 + 64], relative[256];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(relative, sizeof relative, "sharded/%s", files[i]);
        fixture_path(from, sizeof from, relative);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        copy_file(from, to);
    }
    if (c->delete_file != NULL) {
        snprintf(to, sizeof to, "%s/%s", dir, c->delete_file);
        assert_int_equal(remove(to), 0);
    }
    if (c->index_from != NULL) {
        char index[16384];
        snprintf(to, sizeof to, "%s/model.safetensors.index.json", dir);
        long length = read_whole_file(to, index, sizeof index - 1);
        assert_true(length > 0 && (size_t)length < sizeof index - 1);
        index[length] = '\0';
        replace_once(index, sizeof index, c->index_from, c->index_to);
        assert_int_equal(write_whole_file(to, index, strlen(index)), 0);
    }
    char before[1024], after[1024];
    int entries = temp_dir_count(dir, before, sizeof before);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    assert_import_refused(ctx, dir, "model.safetensors.index.json", c->name, c->status,
                          c->message);
    assert_int_equal(temp_dir_count(dir, after, sizeof after), entries);
    assert_string_equal(before, after);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_gpt2_import FIXTURES_DIR [--export-to DIR]\n");
        return 2;
    }
    fixtures_dir = argv[1];
    if (argc >= 4 && strcmp(argv[2], "--export-to") == 0) {
        export_to = argv[3];
        mkdir(export_to, 0777);
    }
    struct CMUnitTest tests[IMPORT_CASES + 1 + ROUND_TRIP_CASES + BAD_CASES + BAD_SHARD_CASES];
    size_t n = 0;
    for (size_t i = 0; i < IMPORT_CASES; i++) {
        struct CMUnitTest t = {import_cases[i].name, check_import, NULL, NULL,
                               (void *)&import_cases[i]};
        tests[n++] = t;
    }
    struct CMUnitTest given = {"configuration given", check_explicit_config, NULL, NULL, NULL};
    tests[n++] = given;
    static char round_trip_names[ROUND_TRIP_CASES][128];
    for (size_t i = 0; i < ROUND_TRIP_CASES; i++) {
        const import_case *c = &import_cases[round_trip_cases[i]];
        snprintf(round_trip_names[i], sizeof round_trip_names[i], "export %s", c->name);
        struct CMUnitTest t = {round_trip_names[i], check_round_trip, NULL, NULL, (void *)c};
        tests[n++] = t;
    }
    static char bad_names[BAD_CASES][128];
    for (size_t i = 0; i < BAD_CASES; i++) {
        snprintf(bad_names[i], sizeof bad_names[i], "bad input: %s", bad_cases[i].name);
        struct CMUnitTest t = {bad_names[i], check_bad_input, NULL, NULL,
                               (void *)&bad_cases[i]};
        tests[n++] = t;
    }
    static char bad_shard_names[BAD_SHARD_CASES][128];
    for (size_t i = 0; i < BAD_SHARD_CASES; i++) {
        snprintf(bad_shard_names[i], sizeof bad_shard_names[i], "bad input: %s",
                 bad_shard_cases[i].name);
        struct CMUnitTest t = {bad_shard_names[i], check_bad_shards, NULL, NULL,
                               (void *)&bad_shard_cases[i]};
        tests[n++] = t;
    }
    return _cmocka_run_group_tests("gpt2_import", tests, n, NULL, NULL);
}
