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
 * The fixtures directory is the first argument. Every bound is checked as
 * !(error <= bound) and every maximum keeps a NaN (tests/support/tolerance.h),
 * so a NaN output fails. `test_golden DIR --poison` checks that: for each
 * way an output can go NaN (one logit, the loss, one gradient, every
 * gradient of one tensor, one reference logit) it writes that NaN into the
 * first fixture's results and expects the comparison to fail.
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

#include "autodiff/context.h"
#include "io/safetensors.h"
#include "tlm.h"
#include "tolerance.h"

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

/* Where a poisoned run writes its NaN. */
typedef enum poison {
    POISON_NONE,
    POISON_LOGIT,         /* one of tlm's logits */
    POISON_LOSS,          /* tlm's loss */
    POISON_GRAD,          /* one gradient element of the last tensor */
    POISON_TENSOR_GRADS,  /* every gradient of the last tensor */
    POISON_REFERENCE,     /* one of the fixture's expected logits */
    POISON_COUNT
} poison;

static const char *const poison_names[POISON_COUNT] = {
    "none", "one logit", "the loss", "one gradient",
    "every gradient of a tensor", "one reference logit"};

typedef struct golden_errors {
    double logits, loss, grads;
    const char *worst_grad_name;
} golden_errors;

static int within_tolerance(const golden_errors *e) {
    return e->logits <= LOGIT_TOLERANCE && e->loss <= LOSS_TOLERANCE &&
           e->grads <= GRAD_TOLERANCE;
}

/* Runs the fixture's batch through tlm forward and backward and returns
 * its relative errors against the fixture, with `what` written as NaN
 * first. */
static golden_errors compare_fixture(const char *file, poison what) {
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
    if (what == POISON_LOGIT)
        tlm_tensor_data_f32(logits)[n_logits / 2] = NAN;
    if (what == POISON_REFERENCE)
        ref_logits[n_logits / 2] = NAN;
    golden_errors errors;
    errors.logits = tlmt_max_abs_diff_f32(ref_logits, tlm_tensor_data_f32(logits), n_logits) /
                    tlmt_max_abs_f32(ref_logits, n_logits);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    if (what == POISON_LOSS)
        tlm_tensor_data_f32(loss)[0] = NAN;
    errors.loss = fabs((double)ref_loss[0] - (double)tlm_tensor_data_f32(loss)[0]) /
                  fabs((double)ref_loss[0]);

    /* The largest gradient of the model sets the scale of every tensor's
     * absolute bound. */
    int32_t count = tlm_model_parameter_tensor_count(model);
    double grad_scale = 0;
    errors.grads = 0;
    errors.worst_grad_name = "";
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
            float *grad = tlm_tensor_grad_data_f32(t);
            assert_non_null(grad);
            if (pass == 0) {
                grad_scale = tlmt_worst(grad_scale, tlmt_max_abs_f32(ref, n));
            } else {
                if (what == POISON_GRAD && i == count - 1)
                    grad[n - 1] = NAN;
                if (what == POISON_TENSOR_GRADS && i == count - 1)
                    for (int64_t j = 0; j < n; j++)
                        grad[j] = NAN;
                double error = tlmt_max_abs_diff_f32(ref, grad, n) / grad_scale;
                /* The first tensor that goes NaN stays the one named. */
                if (!(error <= errors.grads) && !isnan(errors.grads))
                    errors.worst_grad_name = name;
                errors.grads = tlmt_worst(errors.grads, error);
            }
            free(ref);
        }
    }
    printf("golden %-45s logits %.2e  loss %.2e  gradients %.2e (%s)%s%s\n", file,
           errors.logits, errors.loss, errors.grads, errors.worst_grad_name,
           what == POISON_NONE ? "" : "  NaN in ", what == POISON_NONE ? "" : poison_names[what]);
    free(ref_logits);
    free(ref_loss);
    tlmi_safetensors_free(st);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return errors;
}

static void check_fixture(void **state) {
    golden_errors errors = compare_fixture(*state, POISON_NONE);
    assert_true(errors.logits <= LOGIT_TOLERANCE);
    assert_true(errors.loss <= LOSS_TOLERANCE);
    assert_true(errors.grads <= GRAD_TOLERANCE);
}

/* The same comparison, with one NaN written into the results, fails. */
static void poisoned_fixture_fails(void **state) {
    for (int what = POISON_NONE + 1; what < POISON_COUNT; what++) {
        golden_errors errors = compare_fixture(*state, (poison)what);
        if (within_tolerance(&errors))
            fail_msg("NaN in %s passed the golden comparison", poison_names[what]);
    }
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
    int poisoned = argc > 2 && strcmp(argv[2], "--poison") == 0;
    char **names = NULL;
    size_t n = 0, capacity = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0) {
            if (n == capacity) {
                capacity = capacity ? 2 * capacity : 16;
                char **grown = realloc(names, capacity * sizeof *names);
                if (grown == NULL) {
                    fprintf(stderr, "test_golden: out of memory\n");
                    return 1;
                }
                names = grown;
            }
            names[n] = malloc(len + 1);
            if (names[n] == NULL) {
                fprintf(stderr, "test_golden: out of memory\n");
                return 1;
            }
            memcpy(names[n], e->d_name, len + 1);
            n++;
        }
    }
    closedir(dir);
    if (n == 0) {
        fprintf(stderr, "test_golden: no fixtures in %s\n", fixtures_dir);
        return 1;
    }
    qsort(names, n, sizeof names[0], compare_names);
    /* The poisoned run needs one fixture: it checks the comparison. */
    size_t runs = poisoned ? 1 : n;
    struct CMUnitTest *tests = calloc(runs, sizeof *tests);
    if (tests == NULL) {
        fprintf(stderr, "test_golden: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < runs; i++) {
        struct CMUnitTest t = {names[i], poisoned ? poisoned_fixture_fails : check_fixture,
                               NULL, NULL, names[i]};
        tests[i] = t;
    }
    int failures = _cmocka_run_group_tests(poisoned ? "golden_poisoned" : "golden", tests,
                                           runs, NULL, NULL);
    free(tests);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return failures;
}
