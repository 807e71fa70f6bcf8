/* The reliability campaign's API-misuse part (docs/reliability.md, "The
 * campaign"): calls of the public API that a careless host program makes
 * and that tests/api/test_bad_args_*.c do not already make. Those suites
 * pass NULL handles and NULL out-pointers to every public function; this
 * driver adds a wrong struct_size for every settings struct, out-of-range
 * enums and ids, handles from another context, and calls in the wrong
 * state (generate on a model without a tokenizer, a session of an
 * encoder-decoder model decoding before it encoded, a trainer stepped after
 * a failed resume).
 *
 * Every call must return a status other than TLM_OK with a message naming
 * the function and the argument (or the state) that is wrong. Freed-then-
 * used handles are not called: that is undefined by contract.
 *
 * Prints one JSON line per call and a last line {"summary": ...}; exits 1
 * if any call was accepted or its message did not name the function and
 * the argument. Usage: campaign_misuse DIR (a scratch
 * directory to write a checkpoint in).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlm.h"

static int calls, refused, named, findings;

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* A message that names no function of this driver's list, so that a call
 * which fails without recording its own message is not credited with the
 * previous call's. */
static void clear_message(void) {
    tlm_log_softmax_at(NULL, 0, 0, NULL);
}

/* Whether `message` contains one of the '|'-separated words of `argument`. */
static int names_argument(const char *message, const char *argument) {
    char word[128];
    while (*argument != '\0') {
        size_t n = strcspn(argument, "|");
        if (n < sizeof word) {
            memcpy(word, argument, n);
            word[n] = '\0';
            if (strstr(message, word) != NULL)
                return 1;
        }
        argument += n + (argument[n] == '|');
    }
    return 0;
}

/* Records one misuse call. `handle_message` is the handle's own error text
 * (tlm_*_last_error()), read after the call, or NULL; the thread's message
 * is checked first. `argument` is the argument (or the state) the message
 * must name; alternatives are separated by '|'. */
static void record(const char *function, const char *argument, const char *what,
                   int status, const char *handle_message) {
    const char *message = tlm_last_error();
    if (handle_message != NULL && strstr(message, function) == NULL)
        message = handle_message;
    int names = strstr(message, function) != NULL && names_argument(message, argument);
    calls++;
    const char *outcome = status == TLM_OK ? "accepted" : "refused";
    if (status != TLM_OK) {
        refused++;
        named += names;
    }
    int finding = status == TLM_OK || !names;
    findings += finding;
    printf("{\"call\": ");
    print_json_string(function);
    printf(", \"argument\": ");
    print_json_string(argument);
    printf(", \"misuse\": ");
    print_json_string(what);
    printf(", \"status\": \"%s\", \"outcome\": \"%s\", \"named\": %s, \"message\": ",
           tlm_status_name(status), outcome, names ? "true" : "false");
    print_json_string(status == TLM_OK ? "" : message);
    if (status != TLM_OK && message != tlm_last_error()) {
        printf(", \"thread_message\": ");
        print_json_string(tlm_last_error());
    }
    printf("}\n");
    fflush(stdout);
    clear_message();
}

/* A call that returns a status. */
#define MISUSE(function, argument, what, call) \
    record(#function, argument, what, (call), NULL)
/* A call on a handle with its own error text (read after the call). */
#define MISUSE_ON(function, argument, what, call, handle_message) \
    do { \
        int status_ = (call); \
        record(#function, argument, what, status_, handle_message); \
    } while (0)

static const char corpus[] = "the cat sat on the mat. the dog ran to the tree.\n"
                             "a big red sun and a small blue moon.\n";

typedef struct fixture {
    tlm_context *ctx, *other_ctx;
    tlm_tokenizer *tok, *other_tok;
    tlm_model *model;       /* decoder-only, no tokenizer */
    tlm_model *seq2seq;     /* encoder-decoder */
    tlm_tensor *a, *other_a; /* f32 [2, 2] in ctx and other_ctx */
    tlm_tensor *ids;        /* i32 [1, 2] in ctx */
} fixture;

static int setup(fixture *f) {
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.n_threads = 1;
    if (tlm_context_create(&f->ctx, &cp) != TLM_OK ||
        tlm_context_create(&f->other_ctx, &cp) != TLM_OK)
        return 0;
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_CHAR;
    if (tlm_tokenizer_train(&f->tok, f->ctx, corpus, sizeof corpus - 1, &tp) != TLM_OK ||
        tlm_tokenizer_train(&f->other_tok, f->other_ctx, corpus, sizeof corpus - 1, &tp) !=
            TLM_OK)
        return 0;
    tlm_model_config mc;
    tlm_model_config_init(&mc);
    mc.vocab_size = tlm_tokenizer_vocab_size(f->tok);
    mc.d_model = 16;
    mc.n_heads = 2;
    mc.head_dim = 8;
    mc.d_ff = 32;
    mc.n_encoder_layers = 0;
    mc.n_decoder_layers = 1;
    mc.max_context = 16;
    if (tlm_model_create(&f->model, f->ctx, &mc) != TLM_OK)
        return 0;
    mc.n_encoder_layers = 1;
    if (tlm_model_create(&f->seq2seq, f->ctx, &mc) != TLM_OK)
        return 0;
    const int64_t shape[2] = {2, 2};
    const float values[4] = {1, 2, 3, 4};
    const int64_t id_shape[2] = {1, 2};
    const int32_t id_values[2] = {0, 1};
    if (tlm_tensor_from_f32(&f->a, f->ctx, 2, shape, values) != TLM_OK ||
        tlm_tensor_from_f32(&f->other_a, f->other_ctx, 2, shape, values) != TLM_OK ||
        tlm_tensor_from_i32(&f->ids, f->ctx, 2, id_shape, id_values) != TLM_OK)
        return 0;
    return 1;
}

/* Every settings struct with struct_size 0 (no plausible struct). */
static void wrong_struct_size(fixture *f) {
    tlm_context *c = NULL;
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.struct_size = 0;
    MISUSE(tlm_context_create, "struct_size", "struct_size 0", tlm_context_create(&c, &cp));
    tlm_context_free(c);

    tlm_tokenizer *t = NULL;
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.struct_size = 0;
    MISUSE(tlm_tokenizer_train, "struct_size", "struct_size 0",
           tlm_tokenizer_train(&t, f->ctx, corpus, sizeof corpus - 1, &tp));
    tlm_tokenizer_free(t);

    tlm_model *m = NULL;
    tlm_model_config mc;
    tlm_model_config_init(&mc); /* get_config writes struct_size bytes */
    tlm_model_get_config(f->model, &mc);
    mc.struct_size = 0;
    MISUSE(tlm_model_create, "struct_size", "struct_size 0", tlm_model_create(&m, f->ctx, &mc));
    tlm_model_free(m);
    m = NULL;
    mc.struct_size = 0;
    MISUSE(tlm_model_get_config, "struct_size", "struct_size 0",
           tlm_model_get_config(f->model, &mc));

    tlm_model_import_params ip;
    tlm_model_import_params_init(&ip);
    ip.struct_size = 0;
    MISUSE(tlm_model_import, "struct_size", "struct_size 0",
           tlm_model_import(&m, f->ctx, "model.safetensors", &ip));
    tlm_model_free(m);
    m = NULL;

    tlm_model_export_params ep;
    tlm_model_export_params_init(&ep);
    ep.struct_size = 0;
    MISUSE(tlm_model_export, "struct_size", "struct_size 0",
           tlm_model_export(f->model, "never-written.safetensors", &ep));

    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    lp.struct_size = 0;
    MISUSE(tlm_model_load, "struct_size", "struct_size 0",
           tlm_model_load(&m, f->ctx, "model.tlm", &lp));
    tlm_model_free(m);

    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = f->ids;
    batch.struct_size = 0;
    tlm_tensor *logits = NULL;
    MISUSE(tlm_model_forward, "struct_size", "batch struct_size 0",
           tlm_model_forward(f->model, &batch, &logits, NULL));

    tlm_session *s = NULL;
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.struct_size = 0;
    MISUSE(tlm_session_create, "struct_size", "struct_size 0",
           tlm_session_create(&s, f->model, &sp));
    tlm_session_free(s);

    tlm_sampler *sa = NULL;
    tlm_sampler_params sap;
    tlm_sampler_params_init(&sap);
    sap.struct_size = 0;
    MISUSE(tlm_sampler_create, "struct_size", "struct_size 0",
           tlm_sampler_create(&sa, f->ctx, &sap));
    tlm_sampler_free(sa);

    tlm_schedule_params sch;
    tlm_schedule_params_init(&sch);
    sch.struct_size = 0;
    float lr = 0;
    MISUSE(tlm_schedule_lr, "struct_size", "struct_size 0", tlm_schedule_lr(&sch, 1, &lr));

    tlm_comm *comm = NULL;
    tlm_comm_params cmp;
    tlm_comm_params_init(&cmp);
    cmp.struct_size = 0;
    /* Without MPI the build refuses every communicator first. */
    MISUSE(tlm_comm_create_world, tlm_comm_available() ? "struct_size" : "struct_size|MPI",
           "struct_size 0",
           tlm_comm_create_world(&comm, &cmp));
    tlm_comm_free(comm);

    tlm_dataset *d = NULL;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.struct_size = 0;
    const int32_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    MISUSE(tlm_dataset_from_ids, "struct_size", "struct_size 0",
           tlm_dataset_from_ids(&d, f->ctx, ids, 8, &dp));
    tlm_dataset_free(d);

    tlm_optimizer *o = NULL;
    tlm_optimizer_params op;
    tlm_optimizer_params_init(&op);
    op.struct_size = 0;
    MISUSE(tlm_optimizer_create, "struct_size", "struct_size 0",
           tlm_optimizer_create(&o, &f->a, 1, &op));
    tlm_optimizer_free(o);
}

/* Settings structs that reach a call through another struct or a handle
 * that needs a model, a session or a dataset. */
static void wrong_struct_size_in_use(fixture *f, tlm_session *session, tlm_sampler *sampler,
                                     tlm_dataset *dataset) {
    tlm_session *s2s = NULL;
    tlm_session_create(&s2s, f->seq2seq, NULL);
    tlm_generate_params gp;
    tlm_generate_params_init(&gp);
    gp.struct_size = 0;
    MISUSE(tlm_generate, "struct_size", "struct_size 0",
           tlm_generate(session, sampler, f->tok, "the", 3, &gp, NULL));

    tlm_beam_search_params bp;
    tlm_beam_search_params_init(&bp);
    bp.struct_size = 0;
    int32_t out[4];
    size_t n = 0;
    double score = 0;
    const int32_t src[2] = {0, 1};
    MISUSE_ON(tlm_beam_search, "struct_size", "struct_size 0",
              tlm_beam_search(s2s, src, 2, NULL, &bp, out, 4, &n, &score),
              tlm_session_last_error(s2s));
    tlm_session_free(s2s);

    tlm_trainer *t = NULL;
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.struct_size = 0;
    MISUSE(tlm_trainer_create, "struct_size", "struct_size 0",
           tlm_trainer_create(&t, f->model, dataset, &tp));
    tlm_trainer_free(t);
    t = NULL;

    tlm_sampler_params back;
    back.struct_size = 0;
    MISUSE(tlm_sampler_get_params, "struct_size", "struct_size 0",
           tlm_sampler_get_params(sampler, &back));
}

/* Enums and flags outside their ranges. */
static void out_of_range_enums(fixture *f) {
    tlm_tensor *t = NULL;
    const int64_t shape[2] = {2, 2};
    MISUSE(tlm_tensor_create, "dtype", "dtype 99", tlm_tensor_create(&t, f->ctx, 99, 2, shape));
    MISUSE(tlm_tensor_create, "dtype", "dtype -1", tlm_tensor_create(&t, f->ctx, -1, 2, shape));
    MISUSE(tlm_gelu, "form", "form 7", tlm_gelu(&t, f->a, 7));
    MISUSE(tlm_matmul, "flags", "flags 6", tlm_matmul(&t, f->a, f->a, NULL, 6));
    MISUSE(tlm_tensor_set_requires_grad, "flag", "flag 2",
           tlm_tensor_set_requires_grad(f->a, 2));
    MISUSE(tlm_context_set_grad_enabled, "enabled", "enabled 2",
           tlm_context_set_grad_enabled(f->ctx, 2));
    MISUSE(tlm_context_set_training, "training", "training -1",
           tlm_context_set_training(f->ctx, -1));

    tlm_tokenizer *tok = NULL;
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = 42;
    MISUSE(tlm_tokenizer_train, "kind", "kind 42",
           tlm_tokenizer_train(&tok, f->ctx, corpus, sizeof corpus - 1, &tp));
    record("tlm_tokenizer_special_id", "which", "which 9",
           tlm_tokenizer_special_id(f->tok, 9) >= 0 ? TLM_OK : TLM_E_INVALID,
           tlm_tokenizer_last_error(f->tok));
    MISUSE(tlm_tokenizer_export_as, "format", "format 17",
           tlm_tokenizer_export_as(f->tok, "never-written.tok", 17));

    tlm_model *m = NULL;
    MISUSE(tlm_model_quantize, "format", "format 9", tlm_model_quantize(&m, f->model, 9));
    int64_t bytes = 0;
    MISUSE(tlm_model_memory_estimate, "purpose", "purpose 5",
           tlm_model_memory_estimate(f->model, 5, 1, 8, &bytes));
    tlm_model_config mc;
    tlm_model_config_init(&mc);
    tlm_model_get_config(f->model, &mc);
    mc.position = 7;
    MISUSE(tlm_model_create, "position", "position 7", tlm_model_create(&m, f->ctx, &mc));
    tlm_model_get_config(f->model, &mc);
    mc.norm = 3;
    MISUSE(tlm_model_create, "norm", "norm 3", tlm_model_create(&m, f->ctx, &mc));
    tlm_model_get_config(f->model, &mc);
    mc.activation = 12;
    MISUSE(tlm_model_create, "activation", "activation 12", tlm_model_create(&m, f->ctx, &mc));
    tlm_model_get_config(f->model, &mc);
    mc.norm_placement = -2;
    MISUSE(tlm_model_create, "norm_placement", "norm_placement -2",
           tlm_model_create(&m, f->ctx, &mc));

    tlm_model_import_params ip;
    tlm_model_import_params_init(&ip);
    ip.format = 31;
    MISUSE(tlm_model_import, "format", "format 31",
           tlm_model_import(&m, f->ctx, "model.safetensors", &ip));
    tlm_model_export_params ep;
    tlm_model_export_params_init(&ep);
    ep.format = 31;
    MISUSE(tlm_model_export, "format", "format 31",
           tlm_model_export(f->model, "never-written.safetensors", &ep));
    tlm_model_export_params_init(&ep);
    ep.format = TLM_MODEL_FORMAT_SAFETENSORS;
    ep.weight_type = 8;
    MISUSE(tlm_model_export, "weight_type", "weight_type 8",
           tlm_model_export(f->model, "never-written.safetensors", &ep));

    tlm_optimizer_params op;
    MISUSE(tlm_optimizer_params_init_for, "kind", "kind 4", tlm_optimizer_params_init_for(&op, 4));
    tlm_schedule_params sch;
    tlm_schedule_params_init(&sch);
    sch.kind = 5;
    float lr = 0;
    MISUSE(tlm_schedule_lr, "kind", "kind 5", tlm_schedule_lr(&sch, 1, &lr));
    tlm_sampler *sa = NULL;
    tlm_sampler_params sap;
    tlm_sampler_params_init(&sap);
    sap.temperature = -1.0f;
    MISUSE(tlm_sampler_create, "temperature", "temperature -1",
           tlm_sampler_create(&sa, f->ctx, &sap));
    tlm_sampler_params_init(&sap);
    sap.top_p = 1.5f;
    MISUSE(tlm_sampler_create, "top_p", "top_p 1.5", tlm_sampler_create(&sa, f->ctx, &sap));

    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.log_level = 11;
    tlm_context *c = NULL;
    MISUSE(tlm_context_create, "log_level", "log_level 11", tlm_context_create(&c, &cp));
    tlm_context_params_init(&cp);
    cp.n_threads = -3;
    MISUSE(tlm_context_create, "n_threads", "n_threads -3", tlm_context_create(&c, &cp));
}

/* Ids, indices and axes outside their ranges. */
static void out_of_range_ids(fixture *f) {
    const char *bytes = NULL;
    size_t length = 0;
    int32_t vocab = tlm_tokenizer_vocab_size(f->tok);
    MISUSE_ON(tlm_tokenizer_token_bytes, "id", "id -1",
              tlm_tokenizer_token_bytes(f->tok, -1, &bytes, &length),
              tlm_tokenizer_last_error(f->tok));
    MISUSE_ON(tlm_tokenizer_token_bytes, "id", "id = vocab_size",
              tlm_tokenizer_token_bytes(f->tok, vocab, &bytes, &length),
              tlm_tokenizer_last_error(f->tok));
    int32_t left = 0, right = 0;
    MISUSE_ON(tlm_tokenizer_merge, "rank", "rank 1000 of a char tokenizer",
              tlm_tokenizer_merge(f->tok, 1000, &left, &right),
              tlm_tokenizer_last_error(f->tok));
    const int32_t bad_ids[2] = {0, 1 << 30};
    char text[16];
    MISUSE_ON(tlm_tokenizer_decode, "id", "id 2^30",
              tlm_tokenizer_decode(f->tok, bad_ids, 2, text, sizeof text, &length),
              tlm_tokenizer_last_error(f->tok));
    const int32_t negative[1] = {-5};
    MISUSE_ON(tlm_tokenizer_decode, "id", "id -5",
              tlm_tokenizer_decode(f->tok, negative, 1, text, sizeof text, &length),
              tlm_tokenizer_last_error(f->tok));

    const char *name = NULL;
    tlm_tensor *t = NULL;
    MISUSE(tlm_model_parameter, "index", "index -1",
           tlm_model_parameter(f->model, -1, &name, &t));
    MISUSE(tlm_model_parameter, "index", "index = count",
           tlm_model_parameter(f->model, tlm_model_parameter_tensor_count(f->model), &name, &t));
    MISUSE(tlm_model_find_parameter, "no-such-tensor", "unknown name",
           tlm_model_find_parameter(f->model, "no-such-tensor", &t));
    float weights[64];
    const int32_t ids[2] = {0, 1};
    MISUSE(tlm_model_attention_weights, "layer", "layer 5 of 1",
           tlm_model_attention_weights(f->model, ids, 2, 5, weights));
    const int32_t too_big[2] = {0, 1 << 20};
    MISUSE(tlm_model_attention_weights, "id", "id 2^20",
           tlm_model_attention_weights(f->model, too_big, 2, 0, weights));
    MISUSE(tlm_model_memory_estimate, "batch", "batch -4",
           tlm_model_memory_estimate(f->model, TLM_MEMORY_TRAINING, -4, 8, &(int64_t){0}));
    MISUSE(tlm_model_memory_estimate, "context", "context above max_context",
           tlm_model_memory_estimate(f->model, TLM_MEMORY_INFERENCE, 1, 1 << 20, &(int64_t){0}));

    record("tlm_tensor_dim", "axis", "axis 5 of 2",
           tlm_tensor_dim(f->a, 5) >= 0 ? TLM_OK : TLM_E_INVALID, NULL);
    record("tlm_tensor_dim", "axis", "axis -3 of 2",
           tlm_tensor_dim(f->a, -3) >= 0 ? TLM_OK : TLM_E_INVALID, NULL);
    MISUSE(tlm_slice, "axis", "axis 4", tlm_slice(&t, f->a, 4, 0, 1));
    MISUSE(tlm_slice, "start", "start 3 of 2", tlm_slice(&t, f->a, 0, 3, 1));
    MISUSE(tlm_slice, "length", "length -1", tlm_slice(&t, f->a, 0, 0, -1));
    tlm_tensor *pair[2] = {f->a, f->a};
    MISUSE(tlm_concat, "axis", "axis 9", tlm_concat(&t, pair, 2, 9));
    MISUSE(tlm_split_heads, "[2, 2]", "a 2-D tensor", tlm_split_heads(&t, f->a, 2));
    const int64_t bad_shape[2] = {3, 3};
    MISUSE(tlm_reshape, "shape", "9 elements for 4", tlm_reshape(&t, f->a, 2, bad_shape));
    MISUSE(tlm_dropout, "p", "p 1.5", tlm_dropout(&t, f->a, 1.5f));
    MISUSE(tlm_layer_norm, "eps", "eps -1", tlm_layer_norm(&t, f->a, NULL, NULL, -1.0f));
    float small[2];
    MISUSE(tlm_tensor_get_f32, "count", "count 2 of 4", tlm_tensor_get_f32(f->a, small, 2));
    MISUSE(tlm_tensor_set_f32, "count", "count 9 of 4", tlm_tensor_set_f32(f->a, small, 9));
    int32_t as_ints[4];
    MISUSE(tlm_tensor_get_i32, "dtype|holds f32", "i32 read of an f32 tensor",
           tlm_tensor_get_i32(f->a, as_ints, 4));
    record("tlm_tensor_data_i32", "dtype|holds f32", "i32 data of an f32 tensor",
           tlm_tensor_data_i32(f->a) != NULL ? TLM_OK : TLM_E_INVALID, NULL);

    float lp = 0;
    const float logits[4] = {0, 1, 2, 3};
    MISUSE(tlm_log_softmax_at, "id", "id 4 of 4", tlm_log_softmax_at(logits, 4, 4, &lp));
    MISUSE(tlm_log_softmax_at, "vocab", "vocab 0", tlm_log_softmax_at(logits, 0, 0, &lp));

    tlm_sampler *sa = NULL;
    tlm_sampler_create(&sa, f->ctx, NULL);
    if (sa != NULL) {
        int32_t token = 0;
        MISUSE_ON(tlm_sampler_accept, "token", "token -2", tlm_sampler_accept(sa, -2),
                  tlm_sampler_last_error(sa));
        MISUSE_ON(tlm_sampler_sample, "vocab", "vocab -1",
                  tlm_sampler_sample(sa, logits, -1, &token, NULL), tlm_sampler_last_error(sa));
        float probs[4];
        MISUSE_ON(tlm_sampler_probabilities, "vocab", "vocab 0",
                  tlm_sampler_probabilities(sa, logits, 0, probs), tlm_sampler_last_error(sa));
        tlm_sampler_free(sa);
    }
}

/* Handles of two contexts mixed where every tensor of an operation must
 * belong to one context. */
static void other_context(fixture *f) {
    tlm_tensor *t = NULL;
    MISUSE(tlm_add, "context", "b from another context", tlm_add(&t, f->a, f->other_a));
    MISUSE(tlm_sub, "context", "b from another context", tlm_sub(&t, f->a, f->other_a));
    MISUSE(tlm_mul, "context", "b from another context", tlm_mul(&t, f->a, f->other_a));
    MISUSE(tlm_matmul, "context", "b from another context",
           tlm_matmul(&t, f->a, f->other_a, NULL, 0));
    MISUSE(tlm_matmul, "context", "bias from another context",
           tlm_matmul(&t, f->a, f->a, f->other_a, 0));
    tlm_tensor *pair[2] = {f->a, f->other_a};
    MISUSE(tlm_concat, "context", "inputs from two contexts", tlm_concat(&t, pair, 2, 0));
    MISUSE(tlm_swiglu, "context", "up from another context", tlm_swiglu(&t, f->a, f->other_a));
    MISUSE(tlm_rms_norm, "context", "gain from another context",
           tlm_rms_norm(&t, f->a, f->other_a, 1e-5f));
    MISUSE(tlm_attention, "context", "k from another context",
           tlm_attention(&t, f->a, f->other_a, f->a, NULL, 0));
    MISUSE(tlm_embedding, "context", "ids from another context",
           tlm_embedding(&t, f->other_a, f->ids));

    tlm_batch batch;
    tlm_batch_init(&batch);
    const int64_t shape[2] = {1, 2};
    const int32_t values[2] = {0, 1};
    tlm_tensor *other_ids = NULL;
    tlm_tensor_from_i32(&other_ids, f->other_ctx, 2, shape, values);
    batch.ids = other_ids;
    tlm_tensor *logits = NULL;
    MISUSE(tlm_model_forward, "context", "batch ids from another context",
           tlm_model_forward(f->model, &batch, &logits, NULL));
    tlm_tensor *pair_params[2] = {f->a, f->other_a};
    tlm_tensor_set_requires_grad(f->a, 1);
    tlm_tensor_set_requires_grad(f->other_a, 1);
    tlm_optimizer *o = NULL;
    MISUSE(tlm_optimizer_create, "context", "tensors from two contexts",
           tlm_optimizer_create(&o, pair_params, 2, NULL));
    tlm_optimizer_free(o);
    tlm_tensor_set_requires_grad(f->a, 0);
    tlm_tensor_set_requires_grad(f->other_a, 0);

    const int32_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    tlm_dataset *other_data = NULL;
    tlm_dataset_from_ids(&other_data, f->other_ctx, ids, 8, NULL);
    tlm_trainer *trainer = NULL;
    if (other_data != NULL)
        MISUSE(tlm_trainer_create, "context", "dataset from another context",
               tlm_trainer_create(&trainer, f->model, other_data, NULL));
    tlm_trainer_free(trainer);
    tlm_dataset_free(other_data);
}

/* Calls in a state that does not allow them. */
static void wrong_state(fixture *f, tlm_session *session, tlm_sampler *sampler,
                        const char *dir) {
    MISUSE(tlm_generate, "tokenizer", "no tokenizer given, the model has none",
           tlm_generate(session, sampler, NULL, "the", 3, NULL, NULL));
    double logprob = 0;
    int64_t n = 0;
    MISUSE(tlm_score_text, "tokenizer", "no tokenizer given, the model has none",
           tlm_score_text(session, NULL, "the cat", 7, &logprob, &n));

    tlm_tokenizer *big = NULL;
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    tlm_tokenizer_train(&big, f->ctx, corpus, sizeof corpus - 1, &tp);
    MISUSE(tlm_model_set_tokenizer, "vocab", "tokenizer of another vocabulary size",
           tlm_model_set_tokenizer(f->model, big));
    MISUSE(tlm_generate, "vocab", "tokenizer of another vocabulary size",
           tlm_generate(session, sampler, big, "the", 3, NULL, NULL));
    tlm_tokenizer_free(big);

    float logits[64 * 16];
    const int32_t ids[2] = {0, 1};
    tlm_session *s2s = NULL;
    tlm_session_create(&s2s, f->seq2seq, NULL);
    if (s2s != NULL) {
        MISUSE_ON(tlm_session_decode, "encode", "decode before encode (encoder-decoder)",
                  tlm_session_decode(s2s, ids, 2, logits, 1), tlm_session_last_error(s2s));
        MISUSE_ON(tlm_generate, "decoder-only", "generate with an encoder-decoder model",
                  tlm_generate(s2s, sampler, f->tok, "the", 3, NULL, NULL),
                  tlm_session_last_error(s2s));
        MISUSE_ON(tlm_session_copy, "model", "sessions of two models",
                  tlm_session_copy(session, s2s), tlm_session_last_error(session));
        tlm_session_free(s2s);
    }
    MISUSE_ON(tlm_session_encode, "encoder", "encode on a decoder-only model",
              tlm_session_encode(session, ids, 2, NULL, logits), tlm_session_last_error(session));
    int32_t many[20] = {0};
    tlm_session_reset(session);
    MISUSE_ON(tlm_session_decode, "max_context", "20 tokens into a context of 16",
              tlm_session_decode(session, many, 20, logits, 1),
              tlm_session_last_error(session));
    tlm_session_reset(session);

    MISUSE(tlm_backward, "one-element", "backward from a [2, 2] tensor", tlm_backward(f->a));
    float grad[4];
    MISUSE(tlm_tensor_get_grad_f32, "grad", "gradient of a tensor without one",
           tlm_tensor_get_grad_f32(f->a, grad, 4));

    tlm_tokenizer *loaded = NULL;
    MISUSE(tlm_tokenizer_load_memory, "truncated", "0 bytes",
           tlm_tokenizer_load_memory(&loaded, f->ctx, corpus, 0));

    /* A trainer whose resume failed must be as it was: the resume is
     * refused (and named), and the next step still works. */
    const int32_t data_ids[64] = {0};
    tlm_dataset *data = NULL;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.25f;
    tlm_dataset_from_ids(&data, f->ctx, data_ids, 64, &dp);
    tlm_trainer_params trp;
    tlm_trainer_params_init(&trp);
    trp.batch_size = 1;
    trp.context = 4;
    tlm_trainer *trainer = NULL;
    if (data != NULL && tlm_trainer_create(&trainer, f->model, data, &trp) == TLM_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/misuse-not-a-checkpoint.txt", dir);
        FILE *fp = fopen(path, "wb");
        if (fp != NULL) {
            fputs("not a checkpoint\n", fp);
            fclose(fp);
        }
        MISUSE_ON(tlm_trainer_resume, "misuse-not-a-checkpoint.txt",
                  "resume from a text file", tlm_trainer_resume(trainer, path),
                  tlm_trainer_last_error(trainer));
        tlm_step_info info;
        tlm_step_info_init(&info);
        int step = tlm_trainer_step(trainer, &info);
        printf("{\"check\": \"tlm_trainer_step after a failed resume\", \"status\": \"%s\", "
               "\"ok\": %s}\n",
               tlm_status_name(step), step == TLM_OK ? "true" : "false");
        findings += step != TLM_OK;
        MISUSE_ON(tlm_trainer_evaluate, "split", "split 7",
                  tlm_trainer_evaluate(trainer, 7, 1, &(float){0}),
                  tlm_trainer_last_error(trainer));
        MISUSE_ON(tlm_trainer_evaluate, "n_batches", "n_batches 0",
                  tlm_trainer_evaluate(trainer, TLM_SPLIT_VALIDATION, 0, &(float){0}),
                  tlm_trainer_last_error(trainer));
        tlm_step_info bad_info;
        tlm_step_info_init(&bad_info);
        bad_info.struct_size = 0;
        MISUSE_ON(tlm_trainer_step, "struct_size", "step_info struct_size 0",
                  tlm_trainer_step(trainer, &bad_info), tlm_trainer_last_error(trainer));
        snprintf(path, sizeof path, "%s/no-such-directory/ckpt.tlm", dir);
        MISUSE_ON(tlm_trainer_save, "no-such-directory", "save into a missing directory",
                  tlm_trainer_save(trainer, path), tlm_trainer_last_error(trainer));
        tlm_trainer_free(trainer);
    } else {
        printf("{\"check\": \"trainer set-up\", \"ok\": false, \"message\": ");
        print_json_string(tlm_last_error());
        printf("}\n");
        findings++;
    }
    record("tlm_dataset_size", "split", "split 3",
           data != NULL && tlm_dataset_size(data, 3) >= 0 ? TLM_OK : TLM_E_INVALID, NULL);
    tlm_dataset_free(data);

    tlm_token_stream *stream = NULL;
    tlm_token_stream_create(&stream, f->tok);
    if (stream != NULL) {
        const char *piece = NULL;
        size_t length = 0;
        MISUSE_ON(tlm_token_stream_push, "id", "id 2^30",
                  tlm_token_stream_push(stream, 1 << 30, &piece, &length),
                  tlm_token_stream_last_error(stream));
        tlm_token_stream_free(stream);
    }

    tlm_optimizer *o = NULL;
    tlm_tensor_set_requires_grad(f->a, 1);
    if (tlm_optimizer_create(&o, &f->a, 1, NULL) == TLM_OK) {
        char state[8] = {0};
        MISUSE_ON(tlm_optimizer_load_state, "too short", "8 zero bytes of state",
                  tlm_optimizer_load_state(o, state, sizeof state),
                  tlm_optimizer_last_error(o));
        MISUSE_ON(tlm_optimizer_save_state, "size", "an 8-byte buffer",
                  tlm_optimizer_save_state(o, state, sizeof state),
                  tlm_optimizer_last_error(o));
        MISUSE_ON(tlm_optimizer_set_decay, "index", "index 3 of 1",
                  tlm_optimizer_set_decay(o, 3, 1), tlm_optimizer_last_error(o));
        MISUSE_ON(tlm_optimizer_step, "lr", "lr NaN", tlm_optimizer_step(o, 0.0f / 0.0f),
                  tlm_optimizer_last_error(o));
        tlm_optimizer_free(o);
    }
    tlm_tensor_set_requires_grad(f->a, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: campaign_misuse DIR\n");
        return 2;
    }
    const char *dir = argv[argc - 1];
    fixture f;
    memset(&f, 0, sizeof f);
    if (!setup(&f)) {
        fprintf(stderr, "campaign_misuse: set-up failed: %s\n", tlm_last_error());
        return 2;
    }
    clear_message();
    tlm_session *session = NULL;
    tlm_sampler *sampler = NULL;
    tlm_dataset *dataset = NULL;
    const int32_t ids[64] = {0};
    if (tlm_session_create(&session, f.model, NULL) != TLM_OK ||
        tlm_sampler_create(&sampler, f.ctx, NULL) != TLM_OK ||
        tlm_dataset_from_ids(&dataset, f.ctx, ids, 64, NULL) != TLM_OK) {
        fprintf(stderr, "campaign_misuse: set-up failed: %s\n", tlm_last_error());
        return 2;
    }
    clear_message();
    wrong_struct_size(&f);
    wrong_struct_size_in_use(&f, session, sampler, dataset);
    out_of_range_enums(&f);
    out_of_range_ids(&f);
    other_context(&f);
    wrong_state(&f, session, sampler, dir);
    printf("{\"summary\": {\"calls\": %d, \"refused\": %d, \"named\": %d, \"findings\": %d}}\n",
           calls, refused, named, findings);
    tlm_dataset_free(dataset);
    tlm_sampler_free(sampler);
    tlm_session_free(session);
    tlm_model_free(f.seq2seq);
    tlm_model_free(f.model);
    tlm_tokenizer_free(f.other_tok);
    tlm_tokenizer_free(f.tok);
    tlm_context_free(f.other_ctx);
    tlm_context_free(f.ctx);
    return findings == 0 ? 0 : 1;
}
