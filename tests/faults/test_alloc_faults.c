/*
 * Suite "faults": allocation-failure injection. For each operation below,
 * the N-th allocation made through the context's allocator hook fails, for
 * N = 1, 2, ... until the operation runs without meeting a failure. Every
 * run must return TLM_E_NOMEM with a message (a failed save may say
 * TLM_E_IO when the failure came from writing; none does today), leak
 * nothing (live_bytes back to 0 once everything is freed, every free with
 * the size allocated), and leave the handles involved usable: the same
 * call succeeds once allocations work again.
 *
 * Operations: model load (.tlm read and mapped), model save, safetensors
 * export and import, tokenizer train (BPE), load and load from memory,
 * session create + tlm_generate, trainer create + 2 steps + save.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "temp_dir.h"
#include "tlm.h"

/* No operation here needs more allocations than this; a sweep that goes
 * further is a failure (a loop that never stops failing). */
#define MAX_FAILURES 20000

static char dir[512];
static char model_path[600];
static char tokenizer_path[600];
static char st_path[600];
static char out_path[600];
static char int8_path[600];

static const char corpus[] =
    "the quick brown fox jumps over the lazy dog. the dog sleeps; the fox "
    "runs away. 12 foxes, 34 dogs! the end.";

/* One run of an operation with the allocator armed to fail. */
typedef struct trial {
    counting_allocator counter;
    int armed;
    int hit; /* the injected failure happened */
} trial;

static void arm(trial *t, int64_t n) {
    t->counter.fail_at = (int64_t)t->counter.calls + n;
    t->armed = 1;
}

static void disarm(trial *t) {
    if (t->armed && (int64_t)t->counter.calls >= t->counter.fail_at)
        t->hit = 1;
    t->counter.fail_at = 0;
    t->armed = 0;
}

static tlm_context *new_context(trial *t) {
    tlm_context_params params;
    counting_context_params(&params, &t->counter);
    params.n_threads = 1;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    return ctx;
}

static tlm_model *new_model(tlm_context *ctx, int with_tokenizer) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 259;
    c.d_model = 16;
    c.n_heads = 2;
    c.d_ff = 24;
    c.n_decoder_layers = 1;
    c.max_context = 16;
    c.init_seed = 11;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    if (with_tokenizer) {
        tlm_tokenizer_params tp;
        tlm_tokenizer_params_init(&tp);
        tp.kind = TLM_TOKENIZER_BYTE;
        tlm_tokenizer *tok = NULL;
        assert_int_equal(tlm_tokenizer_train(&tok, ctx, NULL, 0, &tp), TLM_OK);
        assert_int_equal(tlm_model_set_tokenizer(m, tok), TLM_OK);
        tlm_tokenizer_free(tok);
    }
    return m;
}

/* A scenario: does its setup unarmed, arms with `n`, runs the operation,
 * disarms, checks the handles still work, frees everything. Returns the
 * operation's status. */
typedef int (*scenario_fn)(trial *t, int64_t n);

static void sweep(const char *name, scenario_fn scenario, int io_allowed) {
    int64_t n = 1;
    int64_t failures = 0;
    for (;; n++) {
        assert_true(n <= MAX_FAILURES);
        trial t;
        memset(&t, 0, sizeof t);
        int status = scenario(&t, n);
        if (t.counter.live_bytes != 0 || t.counter.bad_free_sizes != 0)
            fail_msg("%s, allocation %lld failing: %llu bytes leaked, %llu "
                     "frees with a wrong size (status %s)",
                     name, (long long)n,
                     (unsigned long long)t.counter.live_bytes,
                     (unsigned long long)t.counter.bad_free_sizes,
                     tlm_status_name(status));
        if (status == TLM_OK) {
            if (!t.hit)
                break; /* ran through without meeting the failure */
            continue;  /* a failure the operation absorbed: fine */
        }
        if (!t.hit)
            fail_msg("%s: failed with %s without an allocation failing: %s",
                     name, tlm_status_name(status), tlm_last_error());
        if (!(status == TLM_E_NOMEM || (io_allowed && status == TLM_E_IO)))
            fail_msg("%s, allocation %lld failing: %s (%s), expected "
                     "TLM_E_NOMEM",
                     name, (long long)n, tlm_status_name(status),
                     tlm_last_error());
        assert_true(strlen(tlm_last_error()) > 0);
        failures++;
    }
    printf("%s: %lld allocation failures, each clean; succeeds with %lld "
           "allocations\n",
           name, (long long)failures, (long long)n - 1);
    assert_true(failures > 0);
}

/* No temporary file may survive a failed save: the directory holds the
 * fixtures only. */
static void assert_no_temporaries(void) {
    char names[2048];
    int count = temp_dir_count(dir, names, sizeof names);
    if (strstr(names, ".tmp-") != NULL)
        fail_msg("temporary files left behind: %s (%d entries)", names, count);
}

/* ---- scenarios ---------------------------------------------------------- */

static int load_scenario(trial *t, int64_t n, int memory_map) {
    tlm_context *ctx = new_context(t);
    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    lp.memory_map = memory_map;
    tlm_model *m = NULL;
    arm(t, n);
    int status = tlm_model_load(&m, ctx, model_path, &lp);
    disarm(t);
    if (status != TLM_OK) {
        assert_null(m);
        /* The context still works: load again. */
        assert_int_equal(tlm_model_load(&m, ctx, model_path, &lp), TLM_OK);
    }
    assert_non_null(tlm_model_tokenizer(m));
    tlm_model_free(m);
    tlm_context_free(ctx);
    return status;
}

static int load_read(trial *t, int64_t n) { return load_scenario(t, n, 0); }
static int load_mapped(trial *t, int64_t n) { return load_scenario(t, n, 1); }

/* An int8 model's file (validated on load), read and mapped. */
static int load_int8(trial *t, int64_t n, int memory_map) {
    tlm_context *ctx = new_context(t);
    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    lp.memory_map = memory_map;
    tlm_model *m = NULL;
    arm(t, n);
    int status = tlm_model_load(&m, ctx, int8_path, &lp);
    disarm(t);
    if (status != TLM_OK) {
        assert_null(m);
        assert_int_equal(tlm_model_load(&m, ctx, int8_path, &lp), TLM_OK);
    }
    assert_int_equal(tlm_model_weight_format(m), TLM_WEIGHTS_INT8);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return status;
}

static int load_int8_read(trial *t, int64_t n) { return load_int8(t, n, 0); }
static int load_int8_mapped(trial *t, int64_t n) { return load_int8(t, n, 1); }

static int save_scenario(trial *t, int64_t n, int safetensors) {
    tlm_context *ctx = new_context(t);
    tlm_model *m = new_model(ctx, 1);
    remove(out_path);
    arm(t, n);
    int status = safetensors ? tlm_model_export_safetensors(m, out_path)
                             : tlm_model_save(m, out_path);
    disarm(t);
    assert_no_temporaries();
    if (status != TLM_OK) {
        /* Nothing half-written under the target name. */
        char byte;
        assert_int_equal(read_whole_file(out_path, &byte, 1), -1);
        assert_int_equal(safetensors ? tlm_model_export_safetensors(m, out_path)
                                     : tlm_model_save(m, out_path),
                         TLM_OK);
    }
    tlm_model_free(m);
    tlm_context_free(ctx);
    remove(out_path);
    return status;
}

static int save_tlm(trial *t, int64_t n) { return save_scenario(t, n, 0); }
static int export_st(trial *t, int64_t n) { return save_scenario(t, n, 1); }

static int import_st(trial *t, int64_t n) {
    tlm_context *ctx = new_context(t);
    tlm_model *m = NULL;
    arm(t, n);
    int status = tlm_model_import_safetensors(&m, ctx, st_path);
    disarm(t);
    if (status != TLM_OK) {
        assert_null(m);
        assert_int_equal(tlm_model_import_safetensors(&m, ctx, st_path), TLM_OK);
    }
    tlm_model_free(m);
    tlm_context_free(ctx);
    return status;
}

static int tokenizer_train(trial *t, int64_t n) {
    tlm_context *ctx = new_context(t);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.vocab_size = 300;
    tlm_tokenizer *tok = NULL;
    arm(t, n);
    int status = tlm_tokenizer_train(&tok, ctx, corpus, sizeof corpus - 1, &tp);
    disarm(t);
    if (status != TLM_OK) {
        assert_null(tok);
        assert_int_equal(tlm_tokenizer_train(&tok, ctx, corpus, sizeof corpus - 1,
                                             &tp), TLM_OK);
    }
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);
    return status;
}

static int tokenizer_load(trial *t, int64_t n) {
    tlm_context *ctx = new_context(t);
    tlm_tokenizer *tok = NULL;
    arm(t, n);
    int status = tlm_tokenizer_load(&tok, ctx, tokenizer_path);
    disarm(t);
    if (status != TLM_OK) {
        assert_null(tok);
        assert_int_equal(tlm_tokenizer_load(&tok, ctx, tokenizer_path), TLM_OK);
    }
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);
    return status;
}

static int tokenizer_load_memory(trial *t, int64_t n) {
    static unsigned char image[65536];
    long size = read_whole_file(tokenizer_path, image, sizeof image);
    assert_true(size > 0 && size < (long)sizeof image);
    tlm_context *ctx = new_context(t);
    tlm_tokenizer *tok = NULL;
    arm(t, n);
    int status = tlm_tokenizer_load_memory(&tok, ctx, image, (size_t)size);
    disarm(t);
    if (status != TLM_OK) {
        assert_null(tok);
        assert_int_equal(tlm_tokenizer_load_memory(&tok, ctx, image, (size_t)size),
                         TLM_OK);
    }
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);
    return status;
}

/* Session create + generation of a few tokens. */
static int generate(trial *t, int64_t n) {
    tlm_context *ctx = new_context(t);
    tlm_model *m = new_model(ctx, 1);
    tlm_sampler_params sp;
    tlm_sampler_params_init(&sp);
    sp.seed = 5;
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, ctx, &sp), TLM_OK);
    tlm_generate_params gp;
    tlm_generate_params_init(&gp);
    gp.max_tokens = 20; /* past max_context: the window slides */
    gp.stop_at_eos = 0;
    tlm_session *s = NULL;
    int32_t produced = 0;
    arm(t, n);
    int status = tlm_session_create(&s, m, NULL);
    if (status == TLM_OK)
        status = tlm_generate(s, sampler, tlm_model_tokenizer(m), "hello", 5,
                              &gp, &produced);
    disarm(t);
    if (s == NULL)
        assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    /* Whatever failed, the session and the sampler generate again. */
    assert_int_equal(tlm_generate(s, sampler, tlm_model_tokenizer(m), "hello", 5,
                                  &gp, &produced), TLM_OK);
    assert_int_equal(produced, 20);
    tlm_session_free(s);
    tlm_sampler_free(sampler);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return status;
}

/* tlm_model_quantize to int8, then a session of the int8 model and a
 * few generated tokens (its weights kernels' workspace included). */
static int quantize_generate(trial *t, int64_t n) {
    tlm_context *ctx = new_context(t);
    tlm_model *m = new_model(ctx, 1);
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, ctx, NULL), TLM_OK);
    tlm_generate_params gp;
    tlm_generate_params_init(&gp);
    gp.max_tokens = 4;
    gp.stop_at_eos = 0;
    tlm_model *q = NULL;
    tlm_session *s = NULL;
    int32_t produced = 0;
    arm(t, n);
    int status = tlm_model_quantize(&q, m, TLM_WEIGHTS_INT8);
    if (status == TLM_OK)
        status = tlm_session_create(&s, q, NULL);
    if (status == TLM_OK)
        status = tlm_generate(s, sampler, tlm_model_tokenizer(q), "hi", 2, &gp,
                              &produced);
    disarm(t);
    if (q == NULL)
        assert_int_equal(tlm_model_quantize(&q, m, TLM_WEIGHTS_INT8), TLM_OK);
    if (s == NULL)
        assert_int_equal(tlm_session_create(&s, q, NULL), TLM_OK);
    assert_int_equal(tlm_generate(s, sampler, tlm_model_tokenizer(q), "hi", 2, &gp,
                                  &produced), TLM_OK);
    tlm_session_free(s);
    tlm_sampler_free(sampler);
    tlm_model_free(q);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return status;
}

/* Trainer create + 2 steps + save. */
static int train(trial *t, int64_t n) {
    tlm_context *ctx = new_context(t);
    tlm_model *m = new_model(ctx, 0);
    int32_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = (unsigned char)corpus[i % (int)(sizeof corpus - 1)];
    tlm_dataset *data = NULL;
    assert_int_equal(tlm_dataset_from_ids(&data, ctx, ids, 200, NULL), TLM_OK);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 2;
    params.context = 8;
    tlm_trainer *trainer = NULL;
    remove(out_path);
    arm(t, n);
    int status = tlm_trainer_create(&trainer, m, data, &params);
    for (int step = 0; step < 2 && status == TLM_OK; step++)
        status = tlm_trainer_step(trainer, NULL);
    if (status == TLM_OK)
        status = tlm_trainer_save(trainer, out_path);
    disarm(t);
    assert_no_temporaries();
    if (trainer == NULL) {
        assert_int_equal(tlm_trainer_create(&trainer, m, data, &params), TLM_OK);
    }
    /* The trainer steps and saves once allocations work again. */
    if (tlm_trainer_step(trainer, NULL) != TLM_OK)
        fail_msg("step after a failure: %s", tlm_trainer_last_error(trainer));
    assert_int_equal(tlm_trainer_save(trainer, out_path), TLM_OK);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(m);
    tlm_context_free(ctx);
    remove(out_path);
    return status;
}

/* ---- tests -------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    if (temp_dir_create(dir, sizeof dir) != 0)
        return -1;
    snprintf(model_path, sizeof model_path, "%s/model.tlm", dir);
    snprintf(tokenizer_path, sizeof tokenizer_path, "%s/bpe.tok", dir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(int8_path, sizeof int8_path, "%s/int8.tlm", dir);
    tlm_context *ctx = NULL;
    if (tlm_context_create(&ctx, NULL) != TLM_OK)
        return -1;
    tlm_model *m = new_model(ctx, 1);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.vocab_size = 300;
    tlm_tokenizer *tok = NULL;
    tlm_model *q = NULL;
    int ok = tlm_model_quantize(&q, m, TLM_WEIGHTS_INT8) == TLM_OK &&
             tlm_model_save(q, int8_path) == TLM_OK;
    tlm_model_free(q);
    ok = ok && tlm_model_save(m, model_path) == TLM_OK &&
             tlm_model_export_safetensors(m, st_path) == TLM_OK &&
             tlm_tokenizer_train(&tok, ctx, corpus, sizeof corpus - 1, &tp) ==
                 TLM_OK &&
             tlm_tokenizer_save(tok, tokenizer_path) == TLM_OK;
    tlm_tokenizer_free(tok);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return ok ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    return 0;
}

static void model_load_read(void **state) {
    (void)state;
    sweep("tlm_model_load (read)", load_read, 0);
}

static void model_load_mapped(void **state) {
    (void)state;
    sweep("tlm_model_load (memory_map)", load_mapped, 0);
}

static void model_save(void **state) {
    (void)state;
    sweep("tlm_model_save", save_tlm, 1);
}

static void safetensors_export(void **state) {
    (void)state;
    sweep("tlm_model_export_safetensors", export_st, 1);
}

static void safetensors_import(void **state) {
    (void)state;
    sweep("tlm_model_import_safetensors", import_st, 0);
}

static void tokenizer_train_faults(void **state) {
    (void)state;
    sweep("tlm_tokenizer_train (BPE)", tokenizer_train, 0);
}

static void tokenizer_load_faults(void **state) {
    (void)state;
    sweep("tlm_tokenizer_load", tokenizer_load, 0);
    sweep("tlm_tokenizer_load_memory", tokenizer_load_memory, 0);
}

static void generation(void **state) {
    (void)state;
    sweep("tlm_session_create + tlm_generate", generate, 0);
}

static void quantized(void **state) {
    (void)state;
    sweep("tlm_model_quantize (int8) + tlm_session_create + tlm_generate",
          quantize_generate, 0);
    sweep("tlm_model_load of an int8 model (read)", load_int8_read, 0);
    sweep("tlm_model_load of an int8 model (memory_map)", load_int8_mapped, 0);
}

static void training(void **state) {
    (void)state;
    sweep("tlm_trainer_create + 2 steps + tlm_trainer_save", train, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_load_read),
        cmocka_unit_test(model_load_mapped),
        cmocka_unit_test(model_save),
        cmocka_unit_test(safetensors_export),
        cmocka_unit_test(safetensors_import),
        cmocka_unit_test(tokenizer_train_faults),
        cmocka_unit_test(tokenizer_load_faults),
        cmocka_unit_test(generation),
        cmocka_unit_test(quantized),
        cmocka_unit_test(training),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
