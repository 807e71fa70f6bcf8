/*
 * The streaming decoder (docs/tokenizer.md, "Streaming decoder"): ids in,
 * one at a time; text out in pieces that never end inside a UTF-8
 * character. The bytes of an unfinished character at the end of what is
 * known so far (at most 3) are held back until the next ids finish it or
 * show that it cannot be finished.
 */
#include <string.h>

#include "base/error.h"
#include "base/utf8.h"
#include "tokenizer.h"

struct tlm_token_stream {
    tlmi_host host;
    const tlm_tokenizer *tok; /* read only */
    unsigned char held[4];    /* an unfinished character's bytes */
    size_t n_held;            /* 0..3 */
    unsigned char *buffer;    /* the piece: held bytes + one token */
    size_t capacity;          /* max_token_bytes + 3 */
    tlmi_sp_decoder sp;       /* SentencePiece: the leading-space rule */
};

void tlmi_token_stream_continue(tlm_token_stream *stream) {
    stream->sp.at_start = 0;
}

TLM_API int tlm_token_stream_create(tlm_token_stream **out,
                                    tlm_tokenizer *tok) {
    const char *who = "tlm_token_stream_create";
    TLMI_CHECK_OUT(tok != NULL ? &tok->host : NULL, who, out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, who, tok);
    tlm_token_stream *s = TLMI_HANDLE_ALLOC(&tok->host, tlm_token_stream);
    if (s == NULL)
        return tlmi_fail(&tok->host, TLM_E_NOMEM,
                         "%s: out of memory for the stream (%zu bytes)", who,
                         sizeof *s);
    s->tok = tok;
    s->sp.at_start = 1;
    s->capacity = tok->max_token_bytes + 3;
    s->buffer = tlmi_host_alloc(&tok->host, s->capacity, 64);
    if (s->buffer == NULL) {
        size_t capacity = s->capacity;
        tlmi_host_free(&tok->host, s, sizeof *s);
        return tlmi_fail(&tok->host, TLM_E_NOMEM,
                         "%s: out of memory for the stream's buffer (%zu "
                         "bytes)",
                         who, capacity);
    }
    *out = s;
    return TLM_OK;
}

TLM_API void tlm_token_stream_free(tlm_token_stream *stream) {
    if (stream == NULL)
        return;
    tlmi_host host = stream->host;
    tlmi_host_free(&host, stream->buffer, stream->capacity);
    tlmi_host_free(&host, stream, sizeof *stream);
}

/* Checks the output pointers of push and flush; empties them. */
static int check_outputs(const char **piece, size_t *length,
                         tlm_token_stream *stream, const char *who) {
    tlmi_host *host = stream != NULL ? &stream->host : NULL;
    if (piece != NULL)
        *piece = "";
    if (length != NULL)
        *length = 0;
    TLMI_CHECK_NOT_NULL(host, who, piece);
    TLMI_CHECK_NOT_NULL(host, who, length);
    TLMI_CHECK_NOT_NULL(host, who, stream);
    return TLM_OK;
}

TLM_API int tlm_token_stream_push(tlm_token_stream *stream, int32_t id,
                                  const char **piece, size_t *length) {
    const char *who = "tlm_token_stream_push";
    TLMI_TRY(check_outputs(piece, length, stream, who));
    const tlm_tokenizer *tok = stream->tok;
    if (id < 0 || id >= tok->vocab_size)
        return tlmi_fail(&stream->host, TLM_E_RANGE,
                         "%s: id %d is outside the vocabulary 0..%d", who,
                         (int)id, (int)tok->vocab_size - 1);
    const unsigned char *bytes = tok->token_data + tok->token_offsets[id];
    size_t len = tok->token_offsets[id + 1] - tok->token_offsets[id];
    if (tok->kind == TLM_TOKENIZER_SENTENCEPIECE)
        tlmi_sp_decode_piece(tok, &stream->sp, id, &bytes, &len);
    unsigned char *buf = stream->buffer;
    memcpy(buf, stream->held, stream->n_held);
    memcpy(buf + stream->n_held, bytes, len);
    const size_t n = stream->n_held + len;
    const size_t keep = tlmi_utf8_unfinished_tail(buf, n);
    memcpy(stream->held, buf + n - keep, keep);
    stream->n_held = keep;
    *piece = (const char *)buf;
    *length = n - keep;
    return TLM_OK;
}

TLM_API int tlm_token_stream_flush(tlm_token_stream *stream,
                                   const char **piece, size_t *length) {
    int status =
        check_outputs(piece, length, stream, "tlm_token_stream_flush");
    if (status != TLM_OK)
        return status;
    memcpy(stream->buffer, stream->held, stream->n_held);
    *piece = (const char *)stream->buffer;
    *length = stream->n_held;
    stream->n_held = 0;
    return TLM_OK;
}

TLM_API const char *tlm_token_stream_last_error(
    const tlm_token_stream *stream) {
    return TLMI_LAST_ERROR("tlm_token_stream_last_error", stream);
}
