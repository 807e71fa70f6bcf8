/*
 * Resume is all or nothing (docs/reliability.md, issue #21 finding 8): a
 * checkpoint damaged in one section or field, its checksums made right
 * again so that the check under test is the one that speaks, must be
 * refused by tlm_trainer_resume with a message naming the section or
 * field, and leave the model's weights, the optimizer's state and the
 * trainer's position (step and generators) exactly as they were: a
 * checkpoint saved before the attempt and one saved after are the same
 * bytes.
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

#include "base/crc32.h"
#include "base/endian.h"
#include "io/container.h"
#include "temp_dir.h"
#include "tlm.h"

#define FILE_CAPACITY ((size_t)4 << 20)
/* The optimizer state's layout (lib/train/optim_state.c). */
#define OPTIM_HEADER 56
#define OPTIM_ENTRY 48

static char dir[512];

typedef struct run {
    tlm_context *ctx;
    tlm_model *model;
    tlm_dataset *data;
    tlm_trainer *trainer;
    unsigned char *good;      /* a checkpoint after 2 steps */
    long good_size;
    unsigned char *before;    /* the trainer's state after 3 steps */
    long before_size;
} run;

static char *path_in_dir(const char *name) {
    static char path[4][600];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

static unsigned char *read_file(const char *path, long *size) {
    unsigned char *bytes = malloc(FILE_CAPACITY);
    assert_non_null(bytes);
    *size = read_whole_file(path, bytes, FILE_CAPACITY);
    assert_true(*size > 0);
    return bytes;
}

/* A character tokenizer of the distinct characters of `corpus`. */
static tlm_tokenizer *make_tokenizer(tlm_context *ctx, const char *corpus) {
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_CHAR;
    tlm_tokenizer *tok = NULL;
    if (tlm_tokenizer_train(&tok, ctx, corpus, strlen(corpus), &tp) != TLM_OK)
        return NULL;
    return tok;
}

static int setup(void **state) {
    if (temp_dir_create(dir, sizeof dir) != 0)
        return -1;
    static run r;
    if (tlm_context_create(&r.ctx, NULL) != TLM_OK)
        return -1;
    /* The model has a tokenizer, so that the checkpoints have a section
     * 'tokenizr' to damage: 64 characters and the specials. */
    char letters[65];
    for (int i = 0; i < 64; i++)
        letters[i] = (char)('0' + i);
    letters[64] = '\0';
    tlm_tokenizer *tok = make_tokenizer(r.ctx, letters);
    if (tok == NULL)
        return -1;
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = tlm_tokenizer_vocab_size(tok);
    c.d_model = 16;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_decoder_layers = 1;
    c.max_context = 8;
    c.residual_dropout = 0.1f; /* the dropout generator matters */
    c.init_seed = 3;
    if (tlm_model_create(&r.model, r.ctx, &c) != TLM_OK ||
        tlm_model_set_tokenizer(r.model, tok) != TLM_OK)
        return -1;
    tlm_tokenizer_free(tok);
    int32_t ids[400];
    for (int i = 0; i < 400; i++)
        ids[i] = (int32_t)((i * 7 + i / 13) % 64);
    if (tlm_dataset_from_ids(&r.data, r.ctx, ids, 400, NULL) != TLM_OK)
        return -1;
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 2;
    params.seed = 5;
    if (tlm_trainer_create(&r.trainer, r.model, r.data, &params) != TLM_OK)
        return -1;
    /* A checkpoint two steps in, then a third step: a resume that
     * changed anything would show in the weights, moments or step. */
    for (int i = 0; i < 2; i++)
        if (tlm_trainer_step(r.trainer, NULL) != TLM_OK)
            return -1;
    if (tlm_trainer_save(r.trainer, path_in_dir("good.tlm")) != TLM_OK ||
        tlm_trainer_step(r.trainer, NULL) != TLM_OK ||
        tlm_trainer_save(r.trainer, path_in_dir("before.tlm")) != TLM_OK)
        return -1;
    r.good = read_file(path_in_dir("good.tlm"), &r.good_size);
    r.before = read_file(path_in_dir("before.tlm"), &r.before_size);
    *state = &r;
    return 0;
}

static int teardown(void **state) {
    run *r = *state;
    if (r != NULL) {
        free(r->good);
        free(r->before);
        tlm_trainer_free(r->trainer);
        tlm_dataset_free(r->data);
        tlm_model_free(r->model);
        tlm_context_free(r->ctx);
    }
    temp_dir_remove(dir);
    return 0;
}

/* A copy of the good checkpoint and where its sections are. */
typedef struct damaged {
    unsigned char *bytes;
    long size;
    tlmi_container sections;
} damaged;

static void damaged_copy(const run *r, damaged *d) {
    d->bytes = malloc((size_t)r->good_size);
    assert_non_null(d->bytes);
    memcpy(d->bytes, r->good, (size_t)r->good_size);
    d->size = r->good_size;
    assert_int_equal(tlmi_container_parse(NULL, "test", "good.tlm", d->bytes,
                                          (size_t)d->size, NULL, &d->sections),
                     TLM_OK);
}

static unsigned char *section(damaged *d, const char *kind, size_t *size) {
    const tlmi_container_section *s = tlmi_container_find(&d->sections, kind);
    assert_non_null(s);
    *size = (size_t)s->size;
    return d->bytes + s->offset;
}

/* The optimizer state's own CRC, then every section's, the table's and
 * the header's (docs/format.md): only the damage itself remains. */
static void fix_checksums(damaged *d) {
    size_t optim_size = 0;
    unsigned char *optim = section(d, "optim", &optim_size);
    tlmi_put_u32(optim + optim_size - 4, tlmi_crc32(0, optim, optim_size - 4));
    const uint32_t count = tlmi_get_u32(d->bytes + 24);
    unsigned char *table = d->bytes + 64;
    for (uint32_t i = 0; i < count; i++) {
        unsigned char *entry = table + 32 * i;
        const uint64_t offset = tlmi_get_u64(entry + 8);
        const uint64_t size = tlmi_get_u64(entry + 16);
        tlmi_put_u32(entry + 24, tlmi_crc32(0, d->bytes + offset, (size_t)size));
    }
    tlmi_put_u32(d->bytes + 40, tlmi_crc32(0, table, (size_t)count * 32));
    tlmi_put_u32(d->bytes + 44, tlmi_crc32(0, d->bytes, 44));
}

/* Writes the damaged checkpoint, resumes from it, and checks the refusal
 * and that nothing changed. */
static void expect_refused(run *r, damaged *d, const char *needle) {
    fix_checksums(d);
    const char *path = path_in_dir("damaged.tlm");
    assert_int_equal(write_whole_file(path, d->bytes, (size_t)d->size), 0);
    free(d->bytes);
    const int64_t step = tlm_trainer_step_count(r->trainer);
    const int status = tlm_trainer_resume(r->trainer, path);
    const char *message = tlm_trainer_last_error(r->trainer);
    if (status == TLM_OK)
        fail_msg("resume accepted a checkpoint damaged in %s", needle);
    if (strstr(message, needle) == NULL || strstr(message, "damaged.tlm") == NULL)
        fail_msg("the message does not name '%s' and the file: %s", needle,
                 message);
    assert_int_equal(tlm_trainer_step_count(r->trainer), step);
    /* Weights, optimizer state (its save_state bytes are the section
     * 'optim'), step and both generators: all in the checkpoint. */
    assert_int_equal(tlm_trainer_save(r->trainer, path_in_dir("after.tlm")), TLM_OK);
    long after_size = 0;
    unsigned char *after = read_file(path_in_dir("after.tlm"), &after_size);
    assert_int_equal(after_size, r->before_size);
    if (memcmp(after, r->before, (size_t)after_size) != 0)
        fail_msg("a refused resume (%s) changed the trainer: %s", needle, message);
    free(after);
}

/* The good checkpoint resumes (the damage below is all that differs), and
 * the trainer is put back to its state after 3 steps by resuming
 * before.tlm. */
static void good_checkpoint_resumes(void **state) {
    run *r = *state;
    assert_int_equal(tlm_trainer_resume(r->trainer, path_in_dir("good.tlm")), TLM_OK);
    assert_int_equal(tlm_trainer_step_count(r->trainer), 2);
    assert_int_equal(tlm_trainer_resume(r->trainer, path_in_dir("before.tlm")), TLM_OK);
    assert_int_equal(tlm_trainer_step_count(r->trainer), 3);
}

/* Overwrites the 64 hex digits after `"<key>":"` with `digit`. */
static void set_generator(damaged *d, const char *key, char digit) {
    size_t size = 0;
    char *json = (char *)section(d, "trainer", &size);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    char *at = NULL;
    for (size_t i = 0; at == NULL && i + strlen(pattern) < size; i++)
        if (memcmp(json + i, pattern, strlen(pattern)) == 0)
            at = json + i + strlen(pattern);
    assert_non_null(at);
    memset(at, digit, 64);
}

static void zero_sampling_generator(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    set_generator(&d, "sampling_rng", '0');
    expect_refused(*state, &d, "sampling_rng is all zeros");
}

static void zero_dropout_generator(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    set_generator(&d, "dropout_rng", '0');
    expect_refused(*state, &d, "dropout_rng is all zeros");
}

static void generator_not_hex(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    set_generator(&d, "dropout_rng", 'x');
    expect_refused(*state, &d, "dropout_rng is missing or not 64 hex digits");
}

/* "step":2 becomes "step":3 in section 'trainer'; the optimizer says 2. */
static void trainer_step_disagrees(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    char *json = (char *)section(&d, "trainer", &size);
    char *at = NULL;
    for (size_t i = 0; at == NULL && i + 8 < size; i++)
        if (memcmp(json + i, "\"step\":2", 8) == 0)
            at = json + i + 7;
    assert_non_null(at);
    *at = '3';
    expect_refused(*state, &d, "section 'trainer' says step 3, section 'optim'");
}

/* The optimizer's own step (offset 24 of its state) becomes 7. */
static void optimizer_step_disagrees(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *optim = section(&d, "optim", &size);
    tlmi_put_u64(optim + 24, 7);
    expect_refused(*state, &d, "the optimizer's step) 7");
}

static void nan_first_moment(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *optim = section(&d, "optim", &size);
    const uint32_t count = tlmi_get_u32(optim + 16);
    const float nan = NAN;
    memcpy(optim + OPTIM_HEADER + (size_t)count * OPTIM_ENTRY, &nan, 4);
    expect_refused(*state, &d, "section 'optim': tlm_optimizer_load_state: moment 0");
}

static void negative_second_moment(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *optim = section(&d, "optim", &size);
    const float negative = -1.0f;
    memcpy(optim + size - 8, &negative, 4); /* the last v */
    expect_refused(*state, &d, "section 'optim': tlm_optimizer_load_state: second moment");
}

/* Parameter 0 (the token embedding, 64 x 16) saved as 16 x 64. */
static void optimizer_shape_wrong(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *entry = section(&d, "optim", &size) + OPTIM_HEADER;
    assert_int_equal(tlmi_get_u32(entry), 2);
    const uint64_t rows = tlmi_get_u64(entry + 16), cols = tlmi_get_u64(entry + 24);
    assert_true(rows != cols);
    tlmi_put_u64(entry + 16, cols);
    tlmi_put_u64(entry + 24, rows);
    expect_refused(*state, &d, "section 'optim': tlm_optimizer_load_state: parameter 0 was saved");
}

static void optimizer_setting_not_finite(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *optim = section(&d, "optim", &size);
    const float inf = INFINITY;
    memcpy(optim + 36, &inf, 4); /* beta1 */
    expect_refused(*state, &d, "section 'optim': tlm_optimizer_load_state: saved settings");
}

static void nan_weight(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *data = section(&d, "data", &size);
    const float nan = NAN;
    memcpy(data + 8, &nan, 4);
    expect_refused(*state, &d, "value 2 of tensor");
}

/* The tensor index's first entry claims another shape. */
static void weight_shape_wrong(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *index = section(&d, "tensors", &size);
    const size_t name_length = tlmi_get_u16(index + 4);
    /* count u32; name length u16, name, dtype u8, ndim u8, 2 reserved
     * bytes, shape u64 x ndim, ... (docs/format.md) */
    unsigned char *shape = index + 4 + 2 + name_length + 4;
    tlmi_put_u64(shape, tlmi_get_u64(shape) + 1);
    expect_refused(*state, &d, "tlm_trainer_resume: tensor 'token_embedding.weight' "
                               "of '");
}

static void optim_section_missing(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    (void)section(&d, "optim", &size);
    /* Renamed in the section table: "optim" -> "optix". */
    const uint32_t count = tlmi_get_u32(d.bytes + 24);
    for (uint32_t i = 0; i < count; i++)
        if (memcmp(d.bytes + 64 + 32 * i, "optim", 5) == 0)
            d.bytes[64 + 32 * i + 4] = 'x';
    expect_refused(*state, &d, "no optim section");
}

/* Overwrites the first occurrence of `old` in section `kind` with `new`
 * (as long). */
static void replace_in_section(damaged *d, const char *kind, const char *old,
                               const char *new) {
    size_t size = 0;
    char *bytes = (char *)section(d, kind, &size);
    const size_t length = strlen(old);
    assert_int_equal(strlen(new), length);
    for (size_t i = 0; i + length <= size; i++)
        if (memcmp(bytes + i, old, length) == 0) {
            memcpy(bytes + i, new, length);
            return;
        }
    fail_msg("'%s' is not in section '%s'", old, kind);
}

/* "ranks" misspelt: a key this reader does not know is refused, not
 * ignored (its default of 1 rank would have been used). */
static void trainer_key_unknown(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    replace_in_section(&d, "trainer", "\"ranks\"", "\"rankz\"");
    expect_refused(*state, &d, "section 'trainer' at byte");
    damaged_copy(*state, &d);
    replace_in_section(&d, "trainer", "\"ranks\"", "\"rankz\"");
    expect_refused(*state, &d, "unknown key \"rankz\"");
}

/* Not JSON: the JSON reader's message, with the file and the section. */
static void trainer_not_json(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    replace_in_section(&d, "trainer", "{", "[");
    expect_refused(*state, &d, "section 'trainer' at byte");
}

/* A number out of range names the file and the section too. */
static void trainer_ranks_zero(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    replace_in_section(&d, "trainer", "\"ranks\":1", "\"ranks\":0");
    expect_refused(*state, &d, "section 'trainer' at byte");
}

/* The tokenizer's magic damaged: the section is read and refused. */
static void tokenizer_damaged(void **state) {
    damaged d;
    damaged_copy(*state, &d);
    size_t size = 0;
    unsigned char *tokenizer = section(&d, "tokenizr", &size);
    tokenizer[0] ^= 0x20;
    expect_refused(*state, &d, "section 'tokenizr' at byte");
}

/* A model whose tokenizer is not the checkpoint's is refused with
 * TLM_E_STATE and left as it was; a model without a tokenizer gets the
 * checkpoint's. */
static void tokenizer_differs(void **state) {
    run *r = *state;
    tlm_tokenizer *original = NULL;
    size_t size = 0;
    const int sized = tlm_tokenizer_save_memory(tlm_model_tokenizer(r->model), NULL,
                                                0, &size);
    assert_true(sized == TLM_OK || sized == TLM_E_RANGE);
    unsigned char *saved = malloc(size);
    assert_non_null(saved);
    assert_int_equal(tlm_tokenizer_save_memory(tlm_model_tokenizer(r->model), saved,
                                               size, &size), TLM_OK);
    assert_int_equal(tlm_tokenizer_load_memory(&original, r->ctx, saved, size), TLM_OK);
    free(saved);
    /* 64 other characters: the same number of ids, other text. */
    char letters[65];
    for (int i = 0; i < 64; i++)
        letters[i] = (char)('@' + i);
    letters[64] = '\0';
    tlm_tokenizer *other = make_tokenizer(r->ctx, letters);
    assert_non_null(other);
    assert_int_equal(tlm_tokenizer_vocab_size(other), tlm_tokenizer_vocab_size(original));
    assert_int_equal(tlm_model_set_tokenizer(r->model, other), TLM_OK);
    tlm_tokenizer_free(other);
    const int64_t step = tlm_trainer_step_count(r->trainer);
    assert_int_equal(tlm_trainer_resume(r->trainer, path_in_dir("good.tlm")),
                     TLM_E_STATE);
    const char *message = tlm_trainer_last_error(r->trainer);
    if (strstr(message, "another tokenizer") == NULL ||
        strstr(message, "good.tlm") == NULL)
        fail_msg("the message names neither the tokenizer nor the file: %s",
                 message);
    assert_int_equal(tlm_trainer_step_count(r->trainer), step);
    /* Without a tokenizer, the checkpoint's is attached. */
    assert_int_equal(tlm_model_set_tokenizer(r->model, NULL), TLM_OK);
    assert_int_equal(tlm_trainer_resume(r->trainer, path_in_dir("good.tlm")), TLM_OK);
    assert_non_null(tlm_model_tokenizer(r->model));
    int32_t ids[4];
    size_t n = 0;
    assert_int_equal(tlm_tokenizer_encode(tlm_model_tokenizer(r->model), "0123", 4,
                                          ids, 4, &n), TLM_OK);
    int32_t expected[4];
    size_t n_expected = 0;
    assert_int_equal(tlm_tokenizer_encode(original, "0123", 4, expected, 4,
                                          &n_expected), TLM_OK);
    assert_int_equal(n, n_expected);
    assert_memory_equal(ids, expected, sizeof ids[0] * n);
    tlm_tokenizer_free(original);
    /* Back to the trainer's state after 3 steps, for the next tests. */
    assert_int_equal(tlm_trainer_resume(r->trainer, path_in_dir("before.tlm")), TLM_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_checkpoint_resumes),
        cmocka_unit_test(zero_sampling_generator),
        cmocka_unit_test(zero_dropout_generator),
        cmocka_unit_test(generator_not_hex),
        cmocka_unit_test(trainer_step_disagrees),
        cmocka_unit_test(optimizer_step_disagrees),
        cmocka_unit_test(nan_first_moment),
        cmocka_unit_test(negative_second_moment),
        cmocka_unit_test(optimizer_shape_wrong),
        cmocka_unit_test(optimizer_setting_not_finite),
        cmocka_unit_test(nan_weight),
        cmocka_unit_test(weight_shape_wrong),
        cmocka_unit_test(optim_section_missing),
        cmocka_unit_test(trainer_key_unknown),
        cmocka_unit_test(trainer_not_json),
        cmocka_unit_test(trainer_ranks_zero),
        cmocka_unit_test(tokenizer_damaged),
        cmocka_unit_test(tokenizer_differs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
