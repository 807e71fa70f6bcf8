/*
 * Suite "golden": tlm's transformer against an independent implementation.
 * Each fixture in tests/fixtures (made by tests/reference/make_fixtures.py
 * in PyTorch, in float64) holds a small model's weights, a batch, and the
 * expected logits, loss and gradient of every parameter. The model is
 * loaded through tlm_model_import_safetensors, run forward and backward in
 * float32, and compared:
 *   logits:    max |tlm - ref| <= LOGIT_TOLERANCE * max |ref|
 *   loss:      |tlm - ref| <= LOSS_TOLERANCE * |ref|
 *   gradients: per tensor, max |tlm - ref| <= GRAD_TOLERANCE * max |ref|
 *              over all gradients (a tensor whose true gradient is zero,
 *              like k_proj.bias, is held to that absolute bound).
 * The fixtures directory is the first argument.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "context.h"
#include "safetensors.h"
#include "tlm.h"

#define LOGIT_TOLERANCE 1e-5
#define LOSS_TOLERANCE 1e-5
#define GRAD_TOLERANCE 1e-4

static const char *fixtures_dir;

static tlm_tensor *input_ids(tlm_context *ctx, const tlmi_safetensors *st,
                             const char *name) {
    const tlmi_safetensors_entry *e = tlmi_safetensors_find(st, name);
    if (e == NULL)
        return NULL;
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_I32, e->ndim, e->shape), TLM_OK);
    assert_int_equal(tlmi_safetensors_copy_i32(st, e, tlm_tensor_data_i32(t), e->numel), TLM_OK);
    return t;
}

static float *expected_f32(const tlmi_safetensors *st, const char *name,
                           int64_t *count) {
    const tlmi_safetensors_entry *e = tlmi_safetensors_find(st, name);
    if (e == NULL)
        fail_msg("fixture lacks %s", name);
    float *values = malloc((size_t)e->numel * sizeof *values);
    assert_non_null(values);
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, values, e->numel), TLM_OK);
    *count = e->numel;
    return values;
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m)
            m = fabs((double)x[i]);
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)a[i] - (double)b[i]) > m)
            m = fabs((double)a[i] - (double)b[i]);
    return m;
}

static void check_fixture(void **state) {
    const char *file = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures_dir, file);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *model = NULL;
    if (tlm_model_import_safetensors(&model, ctx, path) != TLM_OK)
        fail_msg("import: %s", tlm_last_error());
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_open(&ctx->host, path, TLMI_ST_OPEN_READ, &st), TLM_OK);

    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = input_ids(ctx, st, "input.ids");
    batch.targets = input_ids(ctx, st, "input.targets");
    batch.mask = input_ids(ctx, st, "input.mask");
    batch.src_ids = input_ids(ctx, st, "input.src_ids");
    batch.src_mask = input_ids(ctx, st, "input.src_mask");
    tlm_tensor *logits = NULL, *loss = NULL;
    if (tlm_model_forward(model, &batch, &logits, &loss) != TLM_OK)
        fail_msg("forward: %s", tlm_last_error());

    int64_t n_logits = 0, n_loss = 0;
    float *ref_logits = expected_f32(st, "expected.logits", &n_logits);
    float *ref_loss = expected_f32(st, "expected.loss", &n_loss);
    assert_int_equal(n_logits, tlm_tensor_numel(logits));
    double logit_error = max_diff(ref_logits, tlm_tensor_data_f32(logits), n_logits) /
                         max_abs(ref_logits, n_logits);
    double loss_error = fabs((double)ref_loss[0] - (double)tlm_tensor_data_f32(loss)[0]) /
                        fabs((double)ref_loss[0]);
    assert_int_equal(tlm_backward(loss), TLM_OK);

    /* The largest gradient of the model sets the scale of every tensor's
     * absolute bound. */
    int32_t count = tlm_model_parameter_tensor_count(model);
    double grad_scale = 0, worst_grad = 0;
    const char *worst_name = "";
    for (int32_t pass = 0; pass < 2; pass++) {
        for (int32_t i = 0; i < count; i++) {
            const char *name;
            tlm_tensor *t;
            tlm_model_parameter(model, i, &name, &t);
            char grad_name[128];
            snprintf(grad_name, sizeof grad_name, "grad.%s", name);
            int64_t n = 0;
            float *ref = expected_f32(st, grad_name, &n);
            assert_int_equal(n, tlm_tensor_numel(t));
            if (pass == 0) {
                if (max_abs(ref, n) > grad_scale)
                    grad_scale = max_abs(ref, n);
            } else {
                double error = max_diff(ref, tlm_tensor_grad_data_f32(t), n) / grad_scale;
                if (error > worst_grad) {
                    worst_grad = error;
                    worst_name = name;
                }
            }
            free(ref);
        }
    }
    printf("golden %-45s logits %.2e  loss %.2e  gradients %.2e (%s)\n", file,
           logit_error, loss_error, worst_grad, worst_name);
    assert_true(logit_error <= LOGIT_TOLERANCE);
    assert_true(loss_error <= LOSS_TOLERANCE);
    assert_true(worst_grad <= GRAD_TOLERANCE);
    free(ref_logits);
    free(ref_loss);
    tlmi_safetensors_free(st);
    tlm_model_free(model);
    tlm_context_free(ctx);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_golden FIXTURES_DIR\n");
        return 2;
    }
    fixtures_dir = argv[1];
    DIR *dir = opendir(fixtures_dir);
    if (dir == NULL) {
        fprintf(stderr, "test_golden: cannot open %s\n", fixtures_dir);
        return 1;
    }
    static char names[64][256];
    char *sorted[64];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && n < 64;) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0 && len < 256) {
            memcpy(names[n], e->d_name, len + 1);
            sorted[n] = names[n];
            n++;
        }
    }
    closedir(dir);
    qsort(sorted, n, sizeof sorted[0], compare_names);
    if (n == 0) {
        fprintf(stderr, "test_golden: no fixtures in %s\n", fixtures_dir);
        return 1;
    }
    struct CMUnitTest tests[64];
    for (size_t i = 0; i < n; i++) {
        struct CMUnitTest t = {sorted[i], check_fixture, NULL, NULL, sorted[i]};
        tests[i] = t;
    }
    return _cmocka_run_group_tests("golden", tests, n, NULL, NULL);
}
