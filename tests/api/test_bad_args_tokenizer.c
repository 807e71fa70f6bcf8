/* The tokenizer and token stream calls with NULL handles, NULL pointers
 * and invalid values: each gives its documented status and a message that
 * names the function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *function) {
    if (strstr(tlm_last_error(), function) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), function);
}

static void assert_handle_message_names(tlm_tokenizer *tok,
                                        const char *text) {
    if (strstr(tlm_tokenizer_last_error(tok), text) == NULL)
        fail_msg("tokenizer message '%s' does not name %s",
                 tlm_tokenizer_last_error(tok), text);
}

static tlm_tokenizer *byte_tokenizer(void) {
    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    params.kind = TLM_TOKENIZER_BYTE;
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, NULL, 0, &params), TLM_OK);
    return tok;
}

static void tokenizer_calls_reject_null(void **state) {
    (void)state;
    tlm_tokenizer_params params;
    int32_t ids[4] = {1, 2, 3, 4};
    char text[8];
    size_t n = 99;
    const char *bytes = "x";
    int32_t left = 0, right = 0;

    assert_int_equal(tlm_tokenizer_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_params_init");
    tlm_tokenizer_params_init(&params);

    tlm_tokenizer *tok = (tlm_tokenizer *)ids;
    assert_int_equal(tlm_tokenizer_train(NULL, NULL, "ab", 2, &params), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_train");
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, NULL, 5, &params), TLM_E_INVALID);
    assert_null(tok);
    assert_message_names("tlm_tokenizer_train");

    tlm_tokenizer_free(NULL);
    assert_non_null(strstr(tlm_tokenizer_last_error(NULL), "NULL"));
    assert_non_null(strstr(tlm_tokenizer_last_error(NULL), "tlm_tokenizer_last_error"));

    assert_true(tlm_tokenizer_kind(NULL) == TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_kind");
    assert_true(tlm_tokenizer_vocab_size(NULL) == TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_vocab_size");
    assert_true(tlm_tokenizer_special_id(NULL, TLM_TOKEN_BOS) == TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_special_id");
    assert_int_equal(tlm_tokenizer_token_bytes(NULL, 0, &bytes, &n), TLM_E_INVALID);
    assert_null(bytes);
    assert_message_names("tlm_tokenizer_token_bytes");
    assert_true(tlm_tokenizer_merge_count(NULL) == TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_merge_count");
    assert_int_equal(tlm_tokenizer_merge(NULL, 0, &left, &right), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_merge");

    assert_int_equal(tlm_tokenizer_encode(NULL, "ab", 2, ids, 4, &n), TLM_E_INVALID);
    assert_int_equal(n, 0);
    assert_message_names("tlm_tokenizer_encode");
    assert_int_equal(tlm_tokenizer_decode(NULL, ids, 1, text, 8, &n), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_decode");
    assert_int_equal(tlm_tokenizer_save(NULL, "/tmp/x"), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_save");
    assert_int_equal(tlm_tokenizer_save_memory(NULL, text, 8, &n), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_save_memory");

    tok = (tlm_tokenizer *)ids;
    assert_int_equal(tlm_tokenizer_load(&tok, NULL, NULL), TLM_E_INVALID);
    assert_null(tok);
    assert_message_names("tlm_tokenizer_load");
    assert_int_equal(tlm_tokenizer_load(NULL, NULL, "/tmp/x"), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_load");
    tok = (tlm_tokenizer *)ids;
    assert_int_equal(tlm_tokenizer_load_memory(&tok, NULL, NULL, 10), TLM_E_INVALID);
    assert_null(tok);
    assert_message_names("tlm_tokenizer_load_memory");
    assert_int_equal(tlm_tokenizer_load_memory(NULL, NULL, text, 8), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_load_memory");

    tok = (tlm_tokenizer *)ids;
    assert_int_equal(tlm_tokenizer_import(&tok, NULL, NULL), TLM_E_INVALID);
    assert_null(tok);
    assert_message_names("tlm_tokenizer_import");
    assert_int_equal(tlm_tokenizer_import(NULL, NULL, "/tmp"), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_import");
    assert_int_equal(tlm_tokenizer_export(NULL, "/tmp/x"), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_export");
    assert_int_equal(tlm_tokenizer_export_as(NULL, "/tmp/x", TLM_TOKENIZER_FORMAT_TLM),
                     TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_export_as");
}

static void tokenizer_calls_reject_bad_values(void **state) {
    (void)state;
    tlm_tokenizer_params params;
    tlm_tokenizer *tok = NULL;

    /* Settings out of their domains. */
    tlm_tokenizer_params_init(&params);
    params.kind = TLM_TOKENIZER_GPT2; /* imported, never trained */
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("params.kind");
    assert_message_names("tlm_tokenizer_import");
    params.kind = TLM_TOKENIZER_SENTENCEPIECE; /* imported, never trained */
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("params.kind");
    assert_message_names("tlm_tokenizer_import");
    params.kind = 5;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("params.kind");
    tlm_tokenizer_params_init(&params);
    params.vocab_size = 258;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("params.vocab_size");
    params.vocab_size = (1 << 24) + 1;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("params.vocab_size");
    tlm_tokenizer_params_init(&params);
    params.min_pair_count = 0;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("params.min_pair_count");
    params.struct_size = 0;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, "abc", 3, &params), TLM_E_INVALID);
    assert_message_names("struct_size");
    assert_null(tok);

    tok = byte_tokenizer();
    int32_t ids[4] = {104, 105, 0, 0};
    char text[8];
    size_t n = 0;
    const char *bytes = NULL;
    int32_t left = 0, right = 0;

    /* NULL output pointers with a valid handle. */
    assert_int_equal(tlm_tokenizer_encode(tok, "ab", 2, ids, 4, NULL), TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_encode");
    assert_int_equal(tlm_tokenizer_encode(tok, "ab", 2, NULL, 4, &n), TLM_E_INVALID);
    assert_handle_message_names(tok, "capacity");
    assert_int_equal(tlm_tokenizer_encode(tok, NULL, 2, ids, 4, &n), TLM_E_INVALID);
    assert_handle_message_names(tok, "text is NULL");
    assert_int_equal(tlm_tokenizer_decode(tok, ids, 2, text, 8, NULL), TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_decode");
    assert_int_equal(tlm_tokenizer_decode(tok, ids, 2, NULL, 8, &n), TLM_E_INVALID);
    assert_handle_message_names(tok, "capacity");
    assert_int_equal(tlm_tokenizer_decode(tok, NULL, 2, text, 8, &n), TLM_E_INVALID);
    assert_handle_message_names(tok, "ids is NULL");
    assert_int_equal(tlm_tokenizer_token_bytes(tok, 0, NULL, &n), TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_token_bytes");
    assert_int_equal(tlm_tokenizer_token_bytes(tok, 0, &bytes, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_tokenizer_merge(tok, 0, NULL, &right), TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_merge");
    assert_int_equal(tlm_tokenizer_merge(tok, 0, &left, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_tokenizer_save(tok, NULL), TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_save");
    assert_int_equal(tlm_tokenizer_save_memory(tok, text, 8, NULL), TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_save_memory");
    assert_int_equal(tlm_tokenizer_save_memory(tok, NULL, 8, &n), TLM_E_INVALID);
    assert_handle_message_names(tok, "capacity");

    /* Values out of range. */
    assert_int_equal(tlm_tokenizer_token_bytes(tok, -1, &bytes, &n), TLM_E_RANGE);
    assert_handle_message_names(tok, "tlm_tokenizer_token_bytes");
    assert_int_equal(tlm_tokenizer_token_bytes(tok, 259, &bytes, &n), TLM_E_RANGE);
    assert_handle_message_names(tok, "259");
    assert_true(tlm_tokenizer_special_id(tok, 4) == TLM_E_INVALID);
    assert_handle_message_names(tok, "tlm_tokenizer_special_id");
    assert_true(tlm_tokenizer_special_id(tok, -1) == TLM_E_INVALID);
    assert_true(tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK) == TLM_E_RANGE);
    assert_handle_message_names(tok, "unknown");
    assert_int_equal(tlm_tokenizer_merge(tok, 0, &left, &right), TLM_E_RANGE);
    assert_handle_message_names(tok, "rank 0");
    assert_int_equal(tlm_tokenizer_merge(tok, -1, &left, &right), TLM_E_RANGE);
    ids[1] = 259;
    assert_int_equal(tlm_tokenizer_decode(tok, ids, 2, text, 8, &n), TLM_E_RANGE);
    assert_handle_message_names(tok, "ids[1] = 259");
    assert_string_equal(tlm_tokenizer_last_error(tok), tlm_last_error());
    ids[1] = -7;
    assert_int_equal(tlm_tokenizer_decode(tok, ids, 2, text, 8, &n), TLM_E_RANGE);
    assert_handle_message_names(tok, "ids[1] = -7");
    assert_int_equal(n, 0);
    assert_int_equal(tlm_tokenizer_encode(tok, "abc", 3, ids, 1, &n), TLM_E_RANGE);
    assert_int_equal(n, 3);
    assert_handle_message_names(tok, "tlm_tokenizer_encode");
    assert_int_equal(tlm_tokenizer_save_memory(tok, text, 8, &n), TLM_E_RANGE);
    assert_handle_message_names(tok, "tlm_tokenizer_save_memory");
    assert_int_equal(tlm_tokenizer_save(tok, "/nonexistent-dir/tok.bin"), TLM_E_IO);
    assert_handle_message_names(tok, "tlm_tokenizer_save");

    /* Loading what is not a tokenizer. */
    tlm_tokenizer *loaded = tok;
    assert_int_equal(tlm_tokenizer_load_memory(&loaded, NULL, "nonsense", 8), TLM_E_FORMAT);
    assert_null(loaded);
    assert_message_names("tlm_tokenizer_load_memory");
    assert_int_equal(tlm_tokenizer_load(&loaded, NULL, "/nonexistent-dir/tok.bin"), TLM_E_IO);
    assert_null(loaded);
    assert_message_names("tlm_tokenizer_load");
    /* Import: a missing path; export: NULL dir, a kind other than GPT-2. */
    assert_int_equal(tlm_tokenizer_import(&loaded, NULL, "/nonexistent-dir/gpt2"), TLM_E_IO);
    assert_null(loaded);
    assert_message_names("tlm_tokenizer_import");
    assert_int_equal(tlm_tokenizer_export(tok, NULL), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_export");
    assert_int_equal(tlm_tokenizer_export(tok, "/nonexistent-dir/out"), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_export");
    /* export_as: NULL path, an unknown format, formats that cannot hold
     * the kind, an unwritable path. */
    assert_int_equal(tlm_tokenizer_export_as(tok, NULL, TLM_TOKENIZER_FORMAT_TLM),
                     TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_export_as");
    assert_int_equal(tlm_tokenizer_export_as(tok, "/tmp/x", 4), TLM_E_INVALID);
    assert_message_names("tlm_tokenizer_format");
    assert_int_equal(tlm_tokenizer_export_as(tok, "/tmp/x", -1), TLM_E_INVALID);
    assert_int_equal(tlm_tokenizer_export_as(tok, "/nonexistent-dir/x",
                                             TLM_TOKENIZER_FORMAT_GPT2),
                     TLM_E_UNSUPPORTED);
    assert_message_names("kind");
    assert_int_equal(tlm_tokenizer_export_as(tok, "/nonexistent-dir/x",
                                             TLM_TOKENIZER_FORMAT_SENTENCEPIECE),
                     TLM_E_UNSUPPORTED);
    assert_int_equal(tlm_tokenizer_export_as(tok, "/nonexistent-dir/x",
                                             TLM_TOKENIZER_FORMAT_LLAMA2C),
                     TLM_E_UNSUPPORTED);
    assert_message_names("tokenizer.bin");
    assert_int_equal(tlm_tokenizer_export_as(tok, "/nonexistent-dir/x",
                                             TLM_TOKENIZER_FORMAT_TLM),
                     TLM_E_IO);
    assert_message_names("tlm_tokenizer_export_as");
    tlm_tokenizer_free(tok);
}

static void stream_calls_reject_bad_arguments(void **state) {
    (void)state;
    const char *piece = NULL;
    size_t length = 7;
    tlm_token_stream *stream = (tlm_token_stream *)&length;
    assert_int_equal(tlm_token_stream_create(&stream, NULL), TLM_E_INVALID);
    assert_null(stream);
    assert_message_names("tlm_token_stream_create");
    assert_int_equal(tlm_token_stream_create(NULL, NULL), TLM_E_INVALID);
    assert_message_names("tlm_token_stream_create");
    tlm_token_stream_free(NULL);
    assert_int_equal(tlm_token_stream_push(NULL, 0, &piece, &length), TLM_E_INVALID);
    assert_message_names("tlm_token_stream_push");
    assert_non_null(piece);
    assert_int_equal(length, 0);
    assert_int_equal(tlm_token_stream_flush(NULL, &piece, &length), TLM_E_INVALID);
    assert_message_names("tlm_token_stream_flush");
    assert_non_null(strstr(tlm_token_stream_last_error(NULL), "tlm_token_stream_last_error"));

    tlm_tokenizer *tok = byte_tokenizer();
    assert_int_equal(tlm_token_stream_create(&stream, tok), TLM_OK);
    assert_int_equal(tlm_token_stream_push(stream, 0, NULL, &length), TLM_E_INVALID);
    assert_message_names("tlm_token_stream_push");
    assert_int_equal(tlm_token_stream_push(stream, 0, &piece, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_token_stream_flush(stream, NULL, &length), TLM_E_INVALID);
    assert_message_names("tlm_token_stream_flush");
    assert_int_equal(tlm_token_stream_flush(stream, &piece, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_token_stream_push(stream, 259, &piece, &length), TLM_E_RANGE);
    assert_non_null(strstr(tlm_token_stream_last_error(stream), "tlm_token_stream_push"));
    assert_non_null(strstr(tlm_token_stream_last_error(stream), "259"));
    assert_int_equal(length, 0);
    assert_int_equal(tlm_token_stream_push(stream, -1, &piece, &length), TLM_E_RANGE);
    tlm_token_stream_free(stream);
    tlm_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokenizer_calls_reject_null),
        cmocka_unit_test(tokenizer_calls_reject_bad_values),
        cmocka_unit_test(stream_calls_reject_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
