/* Datasets from text files, and their cache of encoded ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "temp_dir.h"
#include "tlm.h"

static void text_file_dataset_and_cache(void **state) {
    (void)state;
    char dir[512], path[600], cache[700];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/corpus.txt", dir);
    snprintf(cache, sizeof cache, "%s.tlmtok", path);
    const char *text = "hello, world. hello again, small world.\n";
    assert_int_equal(write_whole_file(path, text, strlen(text)), 0);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tokenizer *tok = NULL;
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_CHAR;
    assert_int_equal(tlm_tokenizer_train(&tok, ctx, text, strlen(text), &tp), TLM_OK);

    tlm_dataset *ds = NULL;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.25f;
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, tok, &dp), TLM_OK);
    const int64_t n = (int64_t)strlen(text);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_TRAIN) + tlm_dataset_size(ds, TLM_SPLIT_VALIDATION), n);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_VALIDATION), n / 4);
    tlm_dataset_free(ds);
    struct stat st;
    assert_int_equal(stat(cache, &st), 0);
    assert_int_equal(st.st_size, 40 + 4 * n + 4);

    /* The cache is used: a second load gives the same sizes. */
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, tok, &dp), TLM_OK);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_TRAIN), n - n / 4);
    tlm_dataset_free(ds);

    /* A damaged cache is ignored and rewritten; a changed text too. */
    unsigned char bytes[4096];
    long size = read_whole_file(cache, bytes, sizeof bytes);
    bytes[50] ^= 0xff;
    assert_int_equal(write_whole_file(cache, bytes, (size_t)size), 0);
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, tok, &dp), TLM_OK);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_TRAIN), n - n / 4);
    tlm_dataset_free(ds);
    const char *longer = "hello, world. hello again, small world. hello!\n";
    assert_int_equal(write_whole_file(path, longer, strlen(longer)), 0);
    dp.validation_fraction = 0.0f;
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, tok, &dp), TLM_OK);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_TRAIN), (int64_t)strlen(longer));
    tlm_dataset_free(ds);
    assert_int_equal(stat(cache, &st), 0);
    assert_int_equal(st.st_size, 40 + 4 * (int64_t)strlen(longer) + 4);

    /* Without the cache nothing is written. */
    remove(cache);
    dp.use_cache = 0;
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, tok, &dp), TLM_OK);
    tlm_dataset_free(ds);
    assert_int_not_equal(stat(cache, &st), 0);

    /* Missing files, directories, empty files. */
    char missing[700], empty[700];
    snprintf(missing, sizeof missing, "%s/none.txt", dir);
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    assert_int_equal(write_whole_file(empty, "", 0), 0);
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, missing, tok, NULL), TLM_E_IO);
    assert_non_null(strstr(tlm_last_error(), "none.txt"));
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, dir, tok, NULL), TLM_E_IO);
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, empty, tok, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, NULL, NULL), TLM_E_INVALID);
    dp.validation_fraction = 0.1f;
    dp.use_cache = 2;
    assert_int_equal(tlm_dataset_from_text_file(&ds, ctx, path, tok, &dp), TLM_E_INVALID);
    assert_null(ds);
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(text_file_dataset_and_cache)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
