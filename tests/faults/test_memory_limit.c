/*
 * Suite "faults": memory limits (issue #21, finding 4). Creating a model,
 * session, trainer or dataset far beyond the context's memory limit is
 * refused with TLM_E_NOMEM and "<call>: needs X (parts), the limit is Y
 * (source)" before anything is allocated: the context's allocator holds
 * the same bytes before and after, and none once the context is freed.
 * The default limit is read from sysconf, the cgroup files and the
 * rlimits (lib/base/memory_limit.c), here on fake cgroup files.
 */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "base/memory_limit.h"
#include "counting_allocator.h"
#include "temp_dir.h"
#include "tlm.h"

/* ---- The cgroup files ------------------------------------------------- */

static int parse(const char *text, uint64_t *bytes) {
    *bytes = 12345;
    return tlmi_memory_parse_cgroup_value(text, strlen(text), bytes);
}

static void cgroup_values_parse(void **state) {
    (void)state;
    uint64_t bytes = 0;
    assert_int_equal(parse("max\n", &bytes), 0);
    assert_true(bytes == TLMI_MEMORY_UNLIMITED);
    assert_int_equal(parse("max", &bytes), 0);
    assert_true(bytes == TLMI_MEMORY_UNLIMITED);
    assert_int_equal(parse("2147483648\n", &bytes), 0);
    assert_true(bytes == 2147483648u);
    assert_int_equal(parse("0\n", &bytes), 0);
    assert_true(bytes == 0);
    /* v1's "no limit": LONG_MAX rounded down to a page. */
    assert_int_equal(parse("9223372036854771712\n", &bytes), 0);
    assert_true(bytes == TLMI_MEMORY_UNLIMITED);
    static const char *const garbage[] = {
        "", "\n", "lots\n", "-1\n", "+5\n", " 5\n", "5 \n", "5\n\n", "0x10\n",
        "1e9\n", "maximum\n", "99999999999999999999999\n",
        "18446744073709551616\n"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        bytes = 777;
        assert_int_equal(tlmi_memory_parse_cgroup_value(garbage[i],
                                                        strlen(garbage[i]), &bytes),
                         -1);
        assert_true(bytes == 777); /* untouched */
    }
}

static char root[512];

/* Writes `text` to root/relative, creating the directories on the way. */
static void put(const char *relative, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    for (char *slash = strchr(path + strlen(root) + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0777);
        *slash = '/';
    }
    assert_int_equal(write_whole_file(path, text, strlen(text)), 0);
}

static void fresh_root(void) {
    if (root[0] != '\0')
        temp_dir_remove(root);
    assert_int_equal(temp_dir_create(root, sizeof root), 0);
}

static tlmi_memory_limit cgroup_limit(void) {
    tlmi_memory_limit limit = {0, NULL};
    tlmi_memory_limit_cgroup(root, &limit);
    assert_non_null(limit.source);
    return limit;
}

static void cgroup_files_read(void **state) {
    (void)state;
    tlmi_memory_limit limit;

    /* Nothing there: no limit. */
    fresh_root();
    limit = cgroup_limit();
    assert_true(limit.bytes == TLMI_MEMORY_UNLIMITED);
    assert_string_equal(limit.source, "none");

    /* v2, "max" at the process's cgroup, a number at its parent: the
     * parent's limit holds for its children. */
    fresh_root();
    put("proc/self/cgroup", "0::/user.slice/job.scope\n");
    put("sys/fs/cgroup/user.slice/job.scope/memory.max", "max\n");
    put("sys/fs/cgroup/user.slice/memory.max", "2147483648\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == 2147483648u);
    assert_string_equal(limit.source, "cgroup memory.max");

    /* v2, a number at the process's cgroup below a larger parent's. */
    put("sys/fs/cgroup/user.slice/job.scope/memory.max", "1048576\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == 1048576u);

    /* v2, "max" everywhere: none. */
    put("sys/fs/cgroup/user.slice/job.scope/memory.max", "max\n");
    put("sys/fs/cgroup/user.slice/memory.max", "max\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == TLMI_MEMORY_UNLIMITED);

    /* v2 in a container: the cgroup is "/", its file at the top. */
    fresh_root();
    put("proc/self/cgroup", "0::/\n");
    put("sys/fs/cgroup/memory.max", "536870912\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == 536870912u);

    /* v1, the memory hierarchy among others (a joint "cpu,memory" list
     * too), its "unlimited" number at the top. */
    fresh_root();
    put("proc/self/cgroup", "9:name=systemd:/\n8:pids:/\n"
                            "4:cpu,memory:/process_api/abc\n1:cpu:/\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put("sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes",
        "3221225472\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == 3221225472u);
    assert_string_equal(limit.source, "cgroup memory.limit_in_bytes");

    /* v1 unlimited, no v2 file: none. */
    put("sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes",
        "9223372036854771712\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == TLMI_MEMORY_UNLIMITED);

    /* Hybrid: both hierarchies, the smaller wins. */
    put("proc/self/cgroup", "4:memory:/a\n0::/b\n");
    put("sys/fs/cgroup/memory/a/memory.limit_in_bytes", "4096000\n");
    put("sys/fs/cgroup/b/memory.max", "2048000\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == 2048000u);
    assert_string_equal(limit.source, "cgroup memory.max");

    /* Garbage in a limit file, or in the table: ignored, not a limit. */
    fresh_root();
    put("proc/self/cgroup", "0::/g\n");
    put("sys/fs/cgroup/g/memory.max", "lots of memory\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == TLMI_MEMORY_UNLIMITED);
    put("proc/self/cgroup", "garbage without colons\n::\n0:\n4:memory:\n");
    limit = cgroup_limit();
    assert_true(limit.bytes == TLMI_MEMORY_UNLIMITED);
    put("proc/self/cgroup", "");
    limit = cgroup_limit();
    assert_true(limit.bytes == TLMI_MEMORY_UNLIMITED);

    /* The default includes the cgroup's limit and never exceeds it. */
    fresh_root();
    put("proc/self/cgroup", "0::/small\n");
    put("sys/fs/cgroup/small/memory.max", "65536\n");
    tlmi_memory_limit_default(root, &limit);
    assert_true(limit.bytes == 65536u);
    assert_string_equal(limit.source, "cgroup memory.max");
    temp_dir_remove(root);
    root[0] = '\0';
}

/* The running system's default: some positive amount, the context's when
 * its setting is 0; UINT64_MAX turns the limit off. */
static void context_default_limit(void **state) {
    (void)state;
    tlmi_memory_limit limit;
    tlmi_memory_limit_default("", &limit);
    assert_true(limit.bytes > 0);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    uint64_t bytes = 0;
    assert_int_equal(tlm_context_memory_limit(ctx, &bytes), TLM_OK);
    assert_true(bytes == limit.bytes);
    tlm_context_free(ctx);

    tlm_context_params params;
    tlm_context_params_init(&params);
    assert_true(params.memory_limit == 0);
    params.memory_limit = UINT64_MAX;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    assert_int_equal(tlm_context_memory_limit(ctx, &bytes), TLM_OK);
    assert_true(bytes == UINT64_MAX);
    tlm_context_free(ctx);
}

/* ---- Creates refused before allocating -------------------------------- */

#define MiB ((uint64_t)1 << 20)

typedef struct limited {
    counting_allocator counter;
    tlm_context *ctx;
    uint64_t held; /* the allocator's live bytes before the refused call */
} limited;

static void limited_open(limited *l, uint64_t limit) {
    memset(l, 0, sizeof *l);
    tlm_context_params params;
    counting_context_params(&params, &l->counter);
    params.memory_limit = limit;
    params.n_threads = 1;
    assert_int_equal(tlm_context_create(&l->ctx, &params), TLM_OK);
}

static void before(limited *l) {
    l->held = l->counter.live_bytes;
    uint64_t in_use = 0;
    assert_int_equal(tlm_context_memory_in_use(l->ctx, &in_use), TLM_OK);
    /* The context's own count: everything but the context's struct. */
    assert_true(in_use <= l->held);
    assert_true(in_use > 0);
}

/* The refusal: TLM_E_NOMEM, the message with the call, "needs", every
 * expected part and the limit's source; not a byte kept. */
static void refused(limited *l, int status, const char *call,
                    const char *const *parts, const char *limit_text) {
    const char *message = tlm_context_last_error(l->ctx);
    print_message("refused: %s\n", message);
    assert_int_equal(status, TLM_E_NOMEM);
    assert_string_equal(tlm_last_error(), message);
    /* "<call>: needs", or "<call>: <file>: tlm_model_create: needs" */
    assert_true(strncmp(message, call, strlen(call)) == 0);
    assert_non_null(strstr(message, ": needs "));
    for (; *parts != NULL; parts++)
        assert_non_null(strstr(message, *parts));
    assert_non_null(strstr(message, limit_text));
    assert_true(l->counter.live_bytes == l->held);
}

static void limited_close(limited *l) {
    tlm_context_free(l->ctx);
    assert_true(l->counter.live_bytes == 0);
    assert_true(l->counter.bad_free_sizes == 0);
}

static void model_create_refused(void **state) {
    (void)state;
    limited l;
    limited_open(&l, 64 * MiB);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 1000;
    config.d_model = 4096; /* 1.6 G parameters: 6.4 GB of weights */
    config.n_heads = 32;
    config.n_decoder_layers = 8;
    before(&l);
    tlm_model *model = (tlm_model *)&l; /* must be cleared */
    const int status = tlm_model_create(&model, l.ctx, &config);
    assert_null(model);
    static const char *const parts[] = {"weights ", "gradients ", NULL};
    refused(&l, status, "tlm_model_create", parts,
            "the limit is 64.0 MiB (tlm_context_params.memory_limit)");

    /* A model that fits is made, and the context counts what it holds. */
    config.d_model = 64;
    config.n_heads = 2;
    config.n_decoder_layers = 2;
    config.max_context = 32;
    assert_int_equal(tlm_model_create(&model, l.ctx, &config), TLM_OK);
    uint64_t in_use = 0;
    assert_int_equal(tlm_context_memory_in_use(l.ctx, &in_use), TLM_OK);
    assert_true(in_use >= l.held + 2 * 4 * (uint64_t)tlm_model_parameter_count(model));
    tlm_model_free(model);
    limited_close(&l);
}

/* The issue's `tlm train --dim 65536 --layers 96`: 10 TB of weights,
 * refused by the default limit (whatever the machine's is). */
static void absurd_model_refused_by_default(void **state) {
    (void)state;
    limited l;
    limited_open(&l, 0);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 65;
    config.d_model = 65536;
    config.n_heads = 64;
    config.n_decoder_layers = 96;
    before(&l);
    tlm_model *model = NULL;
    const int status = tlm_model_create(&model, l.ctx, &config);
    static const char *const parts[] = {"weights ", "TiB", NULL};
    refused(&l, status, "tlm_model_create", parts, "the limit is ");
    limited_close(&l);
}

/* A model loaded from a file is refused the same way. */
static void model_load_refused(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/m.tlm", dir);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 256;
    config.d_model = 128;
    config.n_heads = 2;
    config.n_decoder_layers = 2;
    config.max_context = 64;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &config), TLM_OK);
    assert_int_equal(tlm_model_save(model, path), TLM_OK);
    tlm_model_free(model);
    tlm_context_free(ctx);

    limited l;
    limited_open(&l, 1 * MiB); /* the model: 0.5 M parameters, 2 MB */
    before(&l);
    model = NULL;
    const int status = tlm_model_load(&model, l.ctx, path, NULL);
    assert_null(model);
    static const char *const parts[] = {"m.tlm': tlm_model_create: needs ",
                                        "weights ", NULL};
    refused(&l, status, "tlm_model_load", parts, "the limit is 1.0 MiB");
    limited_close(&l);
    temp_dir_remove(dir);
}

/* A small model of a long context: its session's KV caches do not fit. */
static void session_create_refused(void **state) {
    (void)state;
    limited l;
    limited_open(&l, 8 * MiB);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 64;
    config.d_model = 64;
    config.n_heads = 2;
    config.n_decoder_layers = 2;
    config.position = TLM_POSITION_ROTARY;
    config.max_context = 65536; /* caches: 2 x 2 x 65536 x 64 floats */
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, l.ctx, &config), TLM_OK);
    before(&l);
    tlm_session *session = (tlm_session *)&l;
    const int status = tlm_session_create(&session, model, NULL);
    assert_null(session);
    static const char *const parts[] = {"KV caches and buffers ", "MiB",
                                        "held by the context already", NULL};
    refused(&l, status, "tlm_session_create", parts,
            "the limit is 8.0 MiB (tlm_context_params.memory_limit)");
    tlm_model_free(model);
    limited_close(&l);
}

/* The issue's `--context 1024 --batch 65536` on a small model: the
 * trainer's activations do not fit. */
static void trainer_create_refused(void **state) {
    (void)state;
    limited l;
    limited_open(&l, 16 * MiB);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 16;
    config.d_model = 32;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 64;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, l.ctx, &config), TLM_OK);
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++)
        ids[i] = (i * 7) % 16;
    tlm_dataset *data = NULL;
    assert_int_equal(tlm_dataset_from_ids(&data, l.ctx, ids, 1000, NULL), TLM_OK);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 65536;
    params.context = 64;
    before(&l);
    tlm_trainer *trainer = (tlm_trainer *)&l;
    const int status = tlm_trainer_create(&trainer, model, data, &params);
    assert_null(trainer);
    static const char *const parts[] = {"weights ", "gradients ", "optimizer ",
                                        "activations ", "GiB", NULL};
    refused(&l, status, "tlm_trainer_create", parts,
            "the limit is 16.0 MiB (tlm_context_params.memory_limit)");

    /* A batch that fits trains. */
    params.batch_size = 2;
    params.context = 16;
    assert_int_equal(tlm_trainer_create(&trainer, model, data, &params), TLM_OK);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    limited_close(&l);
}

static void dataset_create_refused(void **state) {
    (void)state;
    limited l;
    limited_open(&l, 1 * MiB);
    const size_t count = 1 << 20; /* 4 MiB of ids */
    int32_t *ids = calloc(count, sizeof *ids);
    assert_non_null(ids);
    before(&l);
    tlm_dataset *data = (tlm_dataset *)&l;
    int status = tlm_dataset_from_ids(&data, l.ctx, ids, count, NULL);
    assert_null(data);
    static const char *const parts[] = {"token ids 4.0 MiB", NULL};
    refused(&l, status, "tlm_dataset_from_ids", parts,
            "the limit is 1.0 MiB (tlm_context_params.memory_limit)");

    /* Pairs: the ids and the offsets. */
    int64_t offsets[3] = {0, (int64_t)count / 2, (int64_t)count};
    status = tlm_dataset_from_pairs(&data, l.ctx, ids, offsets, 1, NULL);
    assert_null(data);
    static const char *const pair_parts[] = {"token ids 4.0 MiB", "pair offsets ",
                                             NULL};
    refused(&l, status, "tlm_dataset_from_pairs", pair_parts, "the limit is 1.0 MiB");
    free(ids);

    /* A text file: its bytes (held) and their ids. */
    char dir[512], path[600];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/text.txt", dir);
    const size_t length = 300000;
    char *text = malloc(length);
    assert_non_null(text);
    for (size_t i = 0; i < length; i++)
        text[i] = (char)('a' + i % 26);
    assert_int_equal(write_whole_file(path, text, length), 0);
    free(text);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_train(&tok, l.ctx, "ab", 2, &tp), TLM_OK);
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.use_cache = 0;
    before(&l);
    status = tlm_dataset_from_text_file(&data, l.ctx, path, tok, &dp);
    assert_null(data);
    static const char *const text_parts[] = {"text 293.0 KiB", "token ids 1.1 MiB",
                                             NULL};
    refused(&l, status, "tlm_dataset_from_text_file", text_parts,
            "the limit is 1.0 MiB");
    tlm_tokenizer_free(tok);
    limited_close(&l);
    temp_dir_remove(dir);
}

/* ---- Objects that outlive their context ------------------------------ */

/* An allocator whose frees fill the block with POISON and keep it, so
 * that a write into freed memory shows as a changed byte. */
#define POISON 0x5a
#define QUARANTINE_MAX 4096
static struct {
    unsigned char *ptr;
    size_t size;
} quarantine[QUARANTINE_MAX];
static size_t n_quarantined;

static void *quarantine_alloc(void *user, size_t size, size_t alignment) {
    (void)user;
    void *ptr = NULL;
    return posix_memalign(&ptr, alignment, size) == 0 ? ptr : NULL;
}

static void quarantine_free(void *user, void *ptr, size_t size) {
    (void)user;
    memset(ptr, POISON, size);
    if (n_quarantined < QUARANTINE_MAX) {
        quarantine[n_quarantined].ptr = ptr;
        quarantine[n_quarantined].size = size;
        n_quarantined++;
    } else {
        free(ptr);
    }
}

/* The blocks freed so far are still all POISON. */
static int quarantine_intact(size_t n_blocks) {
    for (size_t i = 0; i < n_blocks; i++)
        for (size_t j = 0; j < quarantine[i].size; j++)
            if (quarantine[i].ptr[j] != POISON)
                return 0;
    return 1;
}

/* A tokenizer does not keep its context (tlm.h): used and freed after
 * the context, it must not count its bytes in the freed context. */
static void tokenizer_outlives_context(void **state) {
    (void)state;
    n_quarantined = 0;
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.alloc_fn = quarantine_alloc;
    cp.free_fn = quarantine_free;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &cp), TLM_OK);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.vocab_size = 270;
    tlm_tokenizer *tok = NULL;
    static const char corpus[] = "the cat sat on the mat; the cat ate the rat";
    assert_int_equal(tlm_tokenizer_train(&tok, ctx, corpus, sizeof corpus - 1, &tp),
                     TLM_OK);
    tlm_context_free(ctx);
    const size_t freed_with_context = n_quarantined;
    int32_t ids[64];
    size_t n_ids = 0;
    assert_int_equal(tlm_tokenizer_encode(tok, corpus, sizeof corpus - 1, ids, 64,
                                          &n_ids), TLM_OK);
    tlm_tokenizer_free(tok);
    if (!quarantine_intact(freed_with_context))
        fail_msg("the tokenizer wrote into its freed context");
    for (size_t i = 0; i < n_quarantined; i++)
        free(quarantine[i].ptr);
    n_quarantined = 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cgroup_values_parse),
        cmocka_unit_test(cgroup_files_read),
        cmocka_unit_test(context_default_limit),
        cmocka_unit_test(model_create_refused),
        cmocka_unit_test(absurd_model_refused_by_default),
        cmocka_unit_test(model_load_refused),
        cmocka_unit_test(session_create_refused),
        cmocka_unit_test(trainer_create_refused),
        cmocka_unit_test(dataset_create_refused),
        cmocka_unit_test(tokenizer_outlives_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
