/*
 * Every growable struct of tlm.h, as a program built against an older
 * tlm.h (a shorter struct, followed by whatever bytes the program has
 * there) and a newer one (a longer struct) passes it:
 * - settings the library reads: the older struct works and the bytes past
 *   its struct_size are never read (they are poisoned, so reading them
 *   would fail a check or crash); the newer one works while its unknown
 *   tail is zero, and is refused with TLM_E_UNSUPPORTED when it is not;
 * - structs the library fills: the older struct receives the fields it
 *   has and nothing past them; the newer one gets zeros in its unknown
 *   tail; both keep their struct_size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "temp_dir.h"
#include "tlm.h"

enum { POISON = 0xA5, NEWER_TAIL = 16, VOCAB = 259, CONTEXT = 16 };

/* Room for any settings struct and a newer caller's tail. */
typedef union sized {
    max_align_t align;
    unsigned char bytes[512];
} sized;

/* `filled` (a struct of the library's size, from its init) as an older
 * caller has it: `old_size` bytes, then anything. */
static void *as_older(sized *s, const void *filled, size_t old_size) {
    memset(s->bytes, POISON, sizeof s->bytes);
    memcpy(s->bytes, filled, old_size);
    memcpy(s->bytes, &old_size, sizeof old_size);
    return s->bytes;
}

/* `filled` as a newer caller has it: NEWER_TAIL more bytes, zero unless
 * `set_unknown`. */
static void *as_newer(sized *s, const void *filled, size_t size, int set_unknown) {
    memset(s->bytes, 0, sizeof s->bytes);
    memcpy(s->bytes, filled, size);
    const size_t newer = size + NEWER_TAIL;
    memcpy(s->bytes, &newer, sizeof newer);
    if (set_unknown)
        s->bytes[size + 3] = 1;
    return s->bytes;
}

typedef struct fixture {
    tlm_context *ctx;
    tlm_model *model;      /* decoder-only, byte vocabulary */
    tlm_model *seq2seq;    /* encoder-decoder */
    tlm_tokenizer *tok;    /* byte-level */
    tlm_session *session;  /* of model */
    tlm_session *s2s;      /* of seq2seq */
    tlm_sampler *sampler;
    tlm_tensor *param;     /* a float leaf with a gradient */
    tlm_optimizer *opt;
    tlm_dataset *data;
    tlm_trainer *trainer;
    char dir[512];
    char path[600];
} fixture;

static tlm_model *make_model(tlm_context *ctx, int32_t encoder_layers) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = VOCAB;
    c.d_model = 16;
    c.n_heads = 2;
    c.n_encoder_layers = encoder_layers;
    c.n_decoder_layers = 1;
    c.max_context = CONTEXT;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    return m;
}

static int setup(void **state) {
    static fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(tlm_context_create(&f.ctx, NULL), TLM_OK);
    f.model = make_model(f.ctx, 0);
    f.seq2seq = make_model(f.ctx, 1);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    assert_int_equal(tlm_tokenizer_train(&f.tok, f.ctx, NULL, 0, &tp), TLM_OK);
    assert_int_equal(tlm_model_set_tokenizer(f.model, f.tok), TLM_OK);
    assert_int_equal(tlm_session_create(&f.session, f.model, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&f.s2s, f.seq2seq, NULL), TLM_OK);
    assert_int_equal(tlm_sampler_create(&f.sampler, f.ctx, NULL), TLM_OK);
    const int64_t shape[2] = {2, 3};
    assert_int_equal(tlm_tensor_create(&f.param, f.ctx, TLM_DTYPE_F32, 2, shape), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(f.param, 1), TLM_OK);
    assert_int_equal(tlm_optimizer_create(&f.opt, &f.param, 1, NULL), TLM_OK);
    int32_t ids[256];
    for (int i = 0; i < 256; i++)
        ids[i] = (i * 7) % 50;
    assert_int_equal(tlm_dataset_from_ids(&f.data, f.ctx, ids, 256, NULL), TLM_OK);
    assert_int_equal(temp_dir_create(f.dir, sizeof f.dir), 0);
    snprintf(f.path, sizeof f.path, "%s/model.tlm", f.dir);
    assert_int_equal(tlm_model_save(f.model, f.path), TLM_OK);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    temp_dir_remove(f->dir);
    tlm_trainer_free(f->trainer);
    tlm_dataset_free(f->data);
    tlm_optimizer_free(f->opt);
    tlm_sampler_free(f->sampler);
    tlm_session_free(f->s2s);
    tlm_session_free(f->session);
    tlm_tokenizer_free(f->tok);
    tlm_model_free(f->seq2seq);
    tlm_model_free(f->model);
    tlm_context_free(f->ctx);
    return 0;
}

/* A call that reads a settings struct; it frees what it creates. */
typedef int (*reads_fn)(fixture *f, const void *params);

/* The older struct and the newer struct with a zero tail give `expected`;
 * the newer one with a set unknown field is refused. */
static void check_reads(fixture *f, const char *name, reads_fn call, const void *filled,
                        size_t size, size_t old_size, int expected) {
    sized s;
    int status = call(f, as_older(&s, filled, old_size));
    if (status != expected)
        fail_msg("%s, older struct (%zu of %zu bytes): status %d, expected %d: %s", name,
                 old_size, size, status, expected, tlm_last_error());
    status = call(f, as_newer(&s, filled, size, 0));
    if (status != expected)
        fail_msg("%s, newer struct: status %d, expected %d: %s", name, status, expected,
                 tlm_last_error());
    status = call(f, as_newer(&s, filled, size, 1));
    if (status != TLM_E_UNSUPPORTED)
        fail_msg("%s, newer struct with an unknown field set: status %d, expected "
                 "TLM_E_UNSUPPORTED", name, status);
}

#define CHECK_READS(type, field, call, filled, expected)                              \
    check_reads(f, #type, call, &(filled), sizeof(type), offsetof(type, field), expected)

static int context_create(fixture *f, const void *p) {
    (void)f;
    tlm_context *ctx = NULL;
    int status = tlm_context_create(&ctx, p);
    tlm_context_free(ctx);
    return status;
}

/* The settings are cut at init_seed, a field any value of which is
 * valid: the model must have the default seed, not the poison's, and (as
 * for a caller compiled before n_kv_heads existed) one key/value head per
 * query head. */
static int model_create(fixture *f, const void *p) {
    tlm_model *m = NULL;
    int status = tlm_model_create(&m, f->ctx, p);
    if (status == TLM_OK) {
        tlm_model_config got, defaults;
        tlm_model_config_init(&got);
        tlm_model_config_init(&defaults);
        assert_int_equal(tlm_model_get_config(m, &got), TLM_OK);
        assert_true(got.init_seed == defaults.init_seed);
        assert_int_equal(got.n_kv_heads, got.n_heads);
    }
    tlm_model_free(m);
    return status;
}

static int model_load(fixture *f, const void *p) {
    tlm_model *m = NULL;
    int status = tlm_model_load(&m, f->ctx, f->path, p);
    tlm_model_free(m);
    return status;
}

/* Cut at config_path: a poisoned path would be refused for a .tlm. */
static int model_import(fixture *f, const void *p) {
    tlm_model *m = NULL;
    int status = tlm_model_import(&m, f->ctx, f->path, p);
    tlm_model_free(m);
    return status;
}

/* Cut at weight_type: a poisoned type would be refused. */
static int model_export(fixture *f, const void *p) {
    char path[700];
    snprintf(path, sizeof path, "%s/exported.bin", f->dir);
    return tlm_model_export(f->model, path, p);
}

static int model_forward(fixture *f, const void *p) {
    tlm_tensor *logits = NULL, *loss = NULL;
    return tlm_model_forward(f->model, p, &logits, &loss);
}

static int session_create(fixture *f, const void *p) {
    tlm_session *s = NULL;
    int status = tlm_session_create(&s, f->model, p);
    tlm_session_free(s);
    return status;
}

static int beam_search(fixture *f, const void *p) {
    const int32_t src[2] = {5, 6};
    int32_t ids[CONTEXT];
    size_t n_ids = 0;
    return tlm_beam_search(f->s2s, src, 2, NULL, p, ids, CONTEXT, &n_ids, NULL);
}

static int tokenizer_train(fixture *f, const void *p) {
    tlm_tokenizer *t = NULL;
    int status = tlm_tokenizer_train(&t, f->ctx, "abab", 4, p);
    tlm_tokenizer_free(t);
    return status;
}

/* Cut at seed, which takes any value: the sampler must have the default. */
static int sampler_create(fixture *f, const void *p) {
    tlm_sampler *s = NULL;
    int status = tlm_sampler_create(&s, f->ctx, p);
    if (status == TLM_OK) {
        tlm_sampler_params got, defaults;
        tlm_sampler_params_init(&got);
        tlm_sampler_params_init(&defaults);
        assert_int_equal(tlm_sampler_get_params(s, &got), TLM_OK);
        assert_true(got.seed == defaults.seed);
    }
    tlm_sampler_free(s);
    return status;
}

static int generate(fixture *f, const void *p) {
    assert_int_equal(tlm_session_reset(f->session), TLM_OK);
    int32_t n = 0;
    return tlm_generate(f->session, f->sampler, f->tok, "ab", 2, p, &n);
}

static int optimizer_create(fixture *f, const void *p) {
    tlm_optimizer *o = NULL;
    int status = tlm_optimizer_create(&o, &f->param, 1, p);
    tlm_optimizer_free(o);
    return status;
}

static int schedule_lr(fixture *f, const void *p) {
    (void)f;
    float lr = 0;
    return tlm_schedule_lr(p, 0, &lr);
}

static int comm_create(fixture *f, const void *p) {
    (void)f;
    tlm_comm *comm = NULL;
    int status = tlm_comm_create_world(&comm, p);
    tlm_comm_free(comm);
    return status;
}

static int dataset_from_ids(fixture *f, const void *p) {
    const int32_t ids[40] = {1, 2, 3};
    tlm_dataset *d = NULL;
    int status = tlm_dataset_from_ids(&d, f->ctx, ids, 40, p);
    tlm_dataset_free(d);
    return status;
}

static int trainer_create(fixture *f, const void *p) {
    tlm_trainer *t = NULL;
    int status = tlm_trainer_create(&t, f->model, f->data, p);
    tlm_trainer_free(t);
    return status;
}

/* The trainer's own settings are fine; its params.optimizer is `p`. */
static int trainer_create_with_optimizer(fixture *f, const void *p) {
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = 2;
    tp.context = 4;
    tp.optimizer = p;
    return trainer_create(f, &tp);
}

static void settings_of_every_size_are_read_within_their_size(void **state) {
    fixture *f = *state;

    tlm_context_params context;
    tlm_context_params_init(&context);
    context.n_threads = 1;
    CHECK_READS(tlm_context_params, n_threads, context_create, context, TLM_OK);

    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = VOCAB;
    config.d_model = 16;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = CONTEXT;
    CHECK_READS(tlm_model_config, init_seed, model_create, config, TLM_OK);

    tlm_model_load_params load;
    tlm_model_load_params_init(&load);
    CHECK_READS(tlm_model_load_params, verify_checksums, model_load, load, TLM_OK);

    tlm_model_import_params import;
    tlm_model_import_params_init(&import);
    import.format = TLM_MODEL_FORMAT_TLM;
    CHECK_READS(tlm_model_import_params, config_path, model_import, import, TLM_OK);

    tlm_model_export_params export;
    tlm_model_export_params_init(&export);
    export.format = TLM_MODEL_FORMAT_LLMC;
    CHECK_READS(tlm_model_export_params, weight_type, model_export, export, TLM_OK);

    const int64_t shape[2] = {1, 4};
    const int32_t tokens[4] = {1, 2, 3, 4};
    tlm_batch batch;
    tlm_batch_init(&batch);
    assert_int_equal(tlm_tensor_from_i32(&batch.ids, f->ctx, 2, shape, tokens), TLM_OK);
    assert_int_equal(tlm_tensor_from_i32(&batch.targets, f->ctx, 2, shape, tokens), TLM_OK);
    CHECK_READS(tlm_batch, mask, model_forward, batch, TLM_OK);

    tlm_session_params session;
    tlm_session_params_init(&session);
    CHECK_READS(tlm_session_params, n_threads, session_create, session, TLM_OK);

    tlm_beam_search_params beam;
    tlm_beam_search_params_init(&beam);
    beam.beam_width = 2;
    beam.max_length = 4;
    beam.bos_id = 1;
    beam.eos_id = 2;
    CHECK_READS(tlm_beam_search_params, sessions, beam_search, beam, TLM_OK);

    tlm_tokenizer_params tokenizer;
    tlm_tokenizer_params_init(&tokenizer);
    /* BPE: the kind that reads min_pair_count (a poisoned one is < 1). */
    tokenizer.kind = TLM_TOKENIZER_BPE;
    tokenizer.vocab_size = 262;
    CHECK_READS(tlm_tokenizer_params, min_pair_count, tokenizer_train, tokenizer, TLM_OK);

    tlm_sampler_params sampler;
    tlm_sampler_params_init(&sampler);
    sampler.top_k = 5;
    CHECK_READS(tlm_sampler_params, seed, sampler_create, sampler, TLM_OK);

    tlm_generate_params gen;
    tlm_generate_params_init(&gen);
    gen.max_tokens = 2;
    gen.stop_at_eos = 0;
    CHECK_READS(tlm_generate_params, stop, generate, gen, TLM_OK);

    tlm_optimizer_params optimizer;
    tlm_optimizer_params_init(&optimizer);
    CHECK_READS(tlm_optimizer_params, decay_flags, optimizer_create, optimizer, TLM_OK);

    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    /* Cut at warmup_steps: the constant schedule reads it (a poisoned one
     * is negative), not decay_end_step. */
    CHECK_READS(tlm_schedule_params, warmup_steps, schedule_lr, schedule, TLM_OK);

    if (tlm_comm_available()) {
        /* MPI is not initialised and init_mpi is 0: TLM_E_STATE, after the
         * struct was read. */
        tlm_comm_params comm;
        tlm_comm_params_init(&comm);
        comm.init_mpi = 0;
        CHECK_READS(tlm_comm_params, bucket_bytes, comm_create, comm, TLM_E_STATE);
    }

    tlm_dataset_params dataset;
    tlm_dataset_params_init(&dataset);
    dataset.validation_fraction = 0.25f;
    CHECK_READS(tlm_dataset_params, use_cache, dataset_from_ids, dataset, TLM_OK);

    tlm_trainer_params trainer;
    tlm_trainer_params_init(&trainer);
    trainer.batch_size = 2;
    trainer.context = 4;
    CHECK_READS(tlm_trainer_params, max_grad_norm, trainer_create, trainer, TLM_OK);

    /* The trainer's optimizer settings, which it once copied with sizeof. */
    tlm_optimizer_params trainer_optimizer = *trainer.optimizer;
    CHECK_READS(tlm_optimizer_params, decay_flags, trainer_create_with_optimizer,
                trainer_optimizer, TLM_OK);
}

/* A call that fills a struct. */
typedef int (*fills_fn)(fixture *f, void *out);

/* `filled` is the struct filled with the library's size (by its init and
 * `call`); `comparable` says whether a second call gives the same values. */
static void check_fills(fixture *f, const char *name, fills_fn call, const void *filled,
                        size_t size, size_t old_size, int comparable) {
    sized s;
    as_older(&s, filled, old_size);
    memset(s.bytes + sizeof(size_t), POISON, old_size - sizeof(size_t));
    int status = call(f, s.bytes);
    if (status != TLM_OK)
        fail_msg("%s, older struct: status %d: %s", name, status, tlm_last_error());
    size_t got_size;
    memcpy(&got_size, s.bytes, sizeof got_size);
    assert_int_equal(got_size, old_size);
    if (comparable)
        assert_memory_equal(s.bytes + sizeof(size_t), (const unsigned char *)filled +
                            sizeof(size_t), old_size - sizeof(size_t));
    for (size_t i = old_size; i < sizeof s.bytes; i++)
        if (s.bytes[i] != POISON)
            fail_msg("%s, older struct: byte %zu past its struct_size %zu was written",
                     name, i, old_size);

    as_newer(&s, filled, size, 0);
    memset(s.bytes + sizeof(size_t), POISON, size + NEWER_TAIL - sizeof(size_t));
    status = call(f, s.bytes);
    if (status != TLM_OK)
        fail_msg("%s, newer struct: status %d: %s", name, status, tlm_last_error());
    memcpy(&got_size, s.bytes, sizeof got_size);
    assert_int_equal(got_size, size + NEWER_TAIL);
    if (comparable)
        assert_memory_equal(s.bytes + sizeof(size_t), (const unsigned char *)filled +
                            sizeof(size_t), size - sizeof(size_t));
    for (size_t i = size; i < size + NEWER_TAIL; i++)
        if (s.bytes[i] != 0)
            fail_msg("%s, newer struct: unknown byte %zu is %d, not 0", name, i,
                     (int)s.bytes[i]);
}

#define CHECK_FILLS(type, field, call, filled, comparable)                            \
    check_fills(f, #type, call, &(filled), sizeof(type), offsetof(type, field), comparable)

static int get_config(fixture *f, void *out) {
    return tlm_model_get_config(f->model, out);
}

static int get_sampler_params(fixture *f, void *out) {
    return tlm_sampler_get_params(f->sampler, out);
}

static int get_optimizer_params(fixture *f, void *out) {
    return tlm_optimizer_get_params(f->opt, out);
}

static int trainer_step(fixture *f, void *out) {
    return tlm_trainer_step(f->trainer, out);
}

static void filled_structs_of_every_size_are_written_within_their_size(void **state) {
    fixture *f = *state;

    tlm_model_config config;
    tlm_model_config_init(&config);
    assert_int_equal(get_config(f, &config), TLM_OK);
    CHECK_FILLS(tlm_model_config, init_seed, get_config, config, 1);

    tlm_sampler_params sampler;
    tlm_sampler_params_init(&sampler);
    assert_int_equal(get_sampler_params(f, &sampler), TLM_OK);
    CHECK_FILLS(tlm_sampler_params, seed, get_sampler_params, sampler, 1);

    tlm_optimizer_params optimizer;
    tlm_optimizer_params_init(&optimizer);
    assert_int_equal(get_optimizer_params(f, &optimizer), TLM_OK);
    CHECK_FILLS(tlm_optimizer_params, decay_flags, get_optimizer_params, optimizer, 1);

    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = 2;
    tp.context = 4;
    assert_int_equal(tlm_trainer_create(&f->trainer, f->model, f->data, &tp), TLM_OK);
    tlm_step_info info;
    tlm_step_info_init(&info);
    assert_int_equal(trainer_step(f, &info), TLM_OK);
    CHECK_FILLS(tlm_step_info, tokens, trainer_step, info, 0);
}

/* tlm_model_context gives the model's context, for what goes with it. */
static void model_context_is_the_creating_context(void **state) {
    fixture *f = *state;
    assert_ptr_equal(tlm_model_context(f->model), f->ctx);
    assert_ptr_equal(tlm_model_context(f->seq2seq), f->ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(settings_of_every_size_are_read_within_their_size),
        cmocka_unit_test(filled_structs_of_every_size_are_written_within_their_size),
        cmocka_unit_test(model_context_is_the_creating_context),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
