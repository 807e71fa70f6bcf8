/*
 * tlm info: what a model file holds: its architecture, parameter count,
 * tokenizer and vocabulary, how its matrices are stored (float32, bf16,
 * int8), the file's size, and how much memory a session and a training
 * step need (tlm_model_memory_estimate, before allocating either).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "options.h"

static const char *name_of(int32_t value, const char *const *names, int32_t count) {
    return value >= 0 && value < count ? names[value] : "?";
}

static void print_bytes(const char *label, int64_t bytes, const char *what) {
    printf("%-18s %.1f MiB (%lld bytes): %s\n", label, (double)bytes / (1024.0 * 1024.0),
           (long long)bytes, what);
}

/* Prints the UTF-8 character at the start of `text` (a byte >= 0x80)
 * and returns the bytes it took: printable characters as they are, C1
 * controls (U+0080..U+009F) as \u escapes, and a byte that does not start
 * a valid sequence (a character tokenizer's lone byte) as \x, so the
 * terminal never receives invisible or broken text. */
static size_t print_utf8(const char *text, size_t length) {
    const unsigned char *u = (const unsigned char *)text;
    size_t need = u[0] >= 0xF0 && u[0] <= 0xF4 ? 4
                : u[0] >= 0xE0                ? 3
                : u[0] >= 0xC2 && u[0] <= 0xDF ? 2
                                               : 0;
    unsigned long code = need == 4 ? u[0] & 0x07u : need == 3 ? u[0] & 0x0Fu : u[0] & 0x1Fu;
    int valid = need > 0 && need <= length;
    for (size_t i = 1; valid && i < need; i++) {
        valid = (u[i] & 0xC0u) == 0x80u;
        code = (code << 6) | (u[i] & 0x3Fu);
    }
    if (valid && ((need == 3 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF))) ||
                  (need == 4 && (code < 0x10000 || code > 0x10FFFF))))
        valid = 0;
    if (!valid) {
        printf("\\x%02x", (unsigned)u[0]);
        return 1;
    }
    if (code < 0xA0)
        printf("\\u%04lx", code);
    else
        fwrite(text, 1, need, stdout);
    return need;
}

/* The vocabulary, each token's text quoted with escapes; long ones cut. */
static void print_vocabulary(tlm_tokenizer *tok, int32_t limit) {
    const int32_t v = tlm_tokenizer_vocab_size(tok);
    static const char *const specials[] = {"<bos>", "<eos>", "<pad>", "<unk>"};
    printf("vocabulary:");
    for (int32_t id = 0; id < v && id < limit; id++) {
        const char *special = NULL;
        for (int32_t which = 0; which < 4; which++)
            if (tlm_tokenizer_special_id(tok, which) == id)
                special = specials[which];
        if (special != NULL) {
            printf(" %s", special);
            continue;
        }
        const char *bytes = NULL;
        size_t length = 0;
        tlm_tokenizer_token_bytes(tok, id, &bytes, &length);
        fputs(" \"", stdout);
        for (size_t i = 0; i < length; i++) {
            const unsigned char c = (unsigned char)bytes[i];
            if (c == '\n')
                fputs("\\n", stdout);
            else if (c == '\t')
                fputs("\\t", stdout);
            else if (c == '"' || c == '\\')
                printf("\\%c", c);
            else if (c < 0x20 || c == 0x7F)
                printf("\\x%02x", (unsigned)c);
            else if (c < 0x80)
                fputc(c, stdout);
            else
                i += print_utf8(bytes + i, length - i) - 1;
        }
        fputc('"', stdout);
    }
    if (v > limit) {
        /* The special ids beyond the list: 3 in tlm's own kinds, GPT-2's
         * one <|endoftext|> serving as all of them. */
        int32_t seen[4];
        int n_special = 0;
        for (int32_t which = 0; which < 4; which++) {
            const int32_t id = tlm_tokenizer_special_id(tok, which);
            int repeated = id < limit;
            for (int k = 0; k < n_special && !repeated; k++)
                repeated = seen[k] == id;
            if (!repeated)
                seen[n_special++] = id;
        }
        printf(" ... (%d more, %d of them special)", (int)(v - limit), n_special);
    }
    fputc('\n', stdout);
}

int cmd_info(int argc, char **argv) {
    int32_t batch = 12, context = 0;
    cli_option options[] = {
        {"batch", 0, CLI_INT, &batch, 1, 1 << 16, "N", "sequences per training step of the memory estimate (default 12)", 0},
        {"context", 0, CLI_INT, &context, 1, 1 << 20, "N", "positions per training sequence of the estimate (default the model's max_context)", 0},
    };
    cli_command cmd = {"info", "MODEL",
                       "Print a model's configuration, parameter count, tokenizer and the\n"
                       "memory a session (at the model's max_context) and a training step\n"
                       "(--batch sequences of --context positions) need, estimated before\n"
                       "anything is allocated (the model file is only mapped).",
                       options, 2, 1, 1, "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("info", positional[0], 0, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    tlm_model_config c;
    tlm_model_config_init(&c);
    tlm_model_get_config(model, &c);
    static const char *const positions[] = {"learned", "sinusoidal", "rotary"};
    static const char *const norms[] = {"layer", "rms"};
    static const char *const placements[] = {"pre", "post"};
    static const char *const activations[] = {"gelu", "gelu-exact", "relu", "swiglu"};
    static const char *const kinds[] = {"byte", "char", "bpe", "gpt2", "sentencepiece"};
    printf("model: %s\n", positional[0]);
    printf("kind: %s\n", c.n_encoder_layers == 0 ? "decoder-only"
                         : c.n_decoder_layers == 0 ? "encoder-only" : "encoder-decoder");
    printf("vocab_size: %d\nd_model: %d\nn_heads: %d\n", (int)c.vocab_size,
           (int)c.d_model, (int)c.n_heads);
    if (c.n_kv_heads != c.n_heads)
        printf("n_kv_heads: %d (grouped-query attention: %d query heads per "
               "key/value head)\n", (int)c.n_kv_heads, (int)(c.n_heads / c.n_kv_heads));
    printf("head_dim: %d\nd_ff: %d\n", (int)c.head_dim, (int)c.d_ff);
    printf("encoder_layers: %d\ndecoder_layers: %d\nmax_context: %d\n",
           (int)c.n_encoder_layers, (int)c.n_decoder_layers, (int)c.max_context);
    printf("position: %s\nnorm: %s (%s-norm)\nactivation: %s\nbias: %s\ntied_output: %s\n",
           name_of(c.position, positions, 3), name_of(c.norm, norms, 2),
           name_of(c.norm_placement, placements, 2), name_of(c.activation, activations, 4),
           c.bias ? "yes" : "no", c.tied_output ? "yes" : "no");
    printf("dropout: embedding %g, residual %g\n", (double)c.embedding_dropout,
           (double)c.residual_dropout);
    printf("parameters: %lld in %d tensors\n", (long long)tlm_model_parameter_count(model),
           (int)tlm_model_parameter_tensor_count(model));
    /* The matrices' storage (norm gains and biases are float32 always). */
    printf("weights: %s\n", weight_format_text(tlm_model_weight_format(model)));
    struct stat st;
    if (stat(positional[0], &st) == 0)
        printf("file size: %.1f MiB (%lld bytes)\n", (double)st.st_size / (1024.0 * 1024.0),
               (long long)st.st_size);
    if (c.n_decoder_layers > 0) {
        /* A session's cache: keys and values of every decoder layer's
         * n_kv_heads heads, float32, per position. */
        const long long per_position = 2LL * c.n_decoder_layers * c.n_kv_heads *
                                       c.head_dim * (long long)sizeof(float);
        printf("kv_cache: %lld bytes per position (keys and values of %d layers "
               "x %d heads x %d)%s\n",
               per_position, (int)c.n_decoder_layers, (int)c.n_kv_heads,
               (int)c.head_dim,
               c.n_encoder_layers > 0 ? ", the same again per source position "
                                        "for cross-attention"
                                      : "");
    }
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    if (tok == NULL) {
        printf("tokenizer: none\n");
    } else {
        const int32_t kind = tlm_tokenizer_kind(tok);
        printf("tokenizer: %s, %d ids", name_of(kind, kinds, 5),
               (int)tlm_tokenizer_vocab_size(tok));
        if (kind == TLM_TOKENIZER_BPE || kind == TLM_TOKENIZER_GPT2)
            printf(" (%d BPE merges)", (int)tlm_tokenizer_merge_count(tok));
        else if (kind == TLM_TOKENIZER_SENTENCEPIECE)
            printf(" (pieces merged by score)");
        putchar('\n');
        print_vocabulary(tok, 300);
    }
    int64_t inference = 0, training = 0;
    if (context == 0)
        context = c.max_context;
    if (context > c.max_context) {
        status = cli_error(CLI_EXIT_USAGE, "info",
                           "--context %d is longer than the model's max_context %d",
                           (int)context, (int)c.max_context);
    } else if (tlm_model_memory_estimate(model, TLM_MEMORY_INFERENCE, 1, c.max_context,
                                         &inference) != TLM_OK ||
               tlm_model_memory_estimate(model, TLM_MEMORY_TRAINING, batch, context,
                                         &training) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "info", "%s", tlm_context_last_error(ctx));
    } else {
        char what[160];
        snprintf(what, sizeof what, "the parameters and one session at context %d",
                 (int)c.max_context);
        print_bytes("memory, inference:", inference, what);
        if (tlm_model_weight_format(model) != TLM_WEIGHTS_F32) {
            /* tlm_trainer_create refuses quantized weights. */
            printf("%-18s none: quantized weights do not train (tlm quantize --to f32 "
                   "first)\n", "memory, training:");
        } else {
            snprintf(what, sizeof what,
                     "one step of batch %d, context %d (parameters, gradients, AdamW "
                     "state, activations)", (int)batch, (int)context);
            print_bytes("memory, training:", training, what);
        }
    }
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}
