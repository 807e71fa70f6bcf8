/*
 * Suite "faults": ownership (issue #20). A context stays alive while any
 * model, session, sampler, optimizer, trainer or dataset made in it does:
 * tlm_context_free gives up the caller's reference and the context goes
 * with the last handle. So every order of frees is clean: the context's
 * allocator ends with no live bytes and as many frees as allocations, and
 * nothing is touched after it is freed (this program runs under valgrind
 * and in the ASan build). Before the rule, freeing the context first
 * freed the model's tensors under it: tlm_model_free then read freed
 * memory, and the session and trainer leaked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"

/* Frees through the counter after filling the block with 0xA5, so that
 * memory read after its free holds garbage pointers and sizes: a use
 * after free crashes or miscounts here even without valgrind or ASan. */
static void scribbling_free(void *user, void *ptr, size_t size) {
    if (ptr != NULL)
        memset(ptr, 0xA5, size);
    counting_free(user, ptr, size);
}

/* The handles, in the order they are made. */
enum {
    CONTEXT, MODEL, SESSION, SAMPLER, OPTIMIZER, TRAINER, DATASET, TOKENIZER,
    N_HANDLES
};

typedef struct handles {
    counting_allocator counter;
    tlm_context *ctx;
    tlm_model *model;
    tlm_session *session;
    tlm_sampler *sampler;
    tlm_optimizer *optimizer;
    tlm_trainer *trainer;
    tlm_dataset *dataset;
    tlm_tokenizer *tokenizer;
} handles;

/* Every handle, in a context of one thread allocating through a counter;
 * the trainer has taken a step and the session has decoded, so the tape,
 * the arena and the caches hold something. */
static void make_all(handles *h) {
    memset(h, 0, sizeof *h);
    tlm_context_params cp;
    counting_context_params(&cp, &h->counter);
    cp.free_fn = scribbling_free;
    cp.n_threads = 1;
    assert_int_equal(tlm_context_create(&h->ctx, &cp), TLM_OK);

    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 16;
    config.d_model = 8;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 8;
    assert_int_equal(tlm_model_create(&h->model, h->ctx, &config), TLM_OK);

    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.n_threads = 1;
    assert_int_equal(tlm_session_create(&h->session, h->model, &sp), TLM_OK);
    const int32_t prompt[3] = {1, 2, 3};
    float logits[16];
    assert_int_equal(tlm_session_decode(h->session, prompt, 3, logits, 1),
                     TLM_OK);

    assert_int_equal(tlm_sampler_create(&h->sampler, h->ctx, NULL), TLM_OK);

    tlm_tensor *weight = NULL;
    assert_int_equal(tlm_model_parameter(h->model, 0, NULL, &weight), TLM_OK);
    assert_int_equal(tlm_optimizer_create(&h->optimizer, &weight, 1, NULL),
                     TLM_OK);

    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = (i * 7) % 16;
    assert_int_equal(tlm_dataset_from_ids(&h->dataset, h->ctx, ids, 64, NULL),
                     TLM_OK);
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = 2;
    tp.context = 4;
    assert_int_equal(tlm_trainer_create(&h->trainer, h->model, h->dataset, &tp),
                     TLM_OK);
    tlm_step_info info;
    tlm_step_info_init(&info);
    const int status = tlm_trainer_step(h->trainer, &info);
    if (status != TLM_OK)
        print_error("%s\n", tlm_trainer_last_error(h->trainer));
    assert_int_equal(status, TLM_OK);

    static const char corpus[] = "the cat sat on the mat";
    tlm_tokenizer_params kp;
    tlm_tokenizer_params_init(&kp);
    kp.kind = TLM_TOKENIZER_CHAR;
    assert_int_equal(tlm_tokenizer_train(&h->tokenizer, h->ctx, corpus,
                                         sizeof corpus - 1, &kp),
                     TLM_OK);
}

static void free_one(handles *h, int which) {
    switch (which) {
    case CONTEXT: tlm_context_free(h->ctx); break;
    case MODEL: tlm_model_free(h->model); break;
    case SESSION: tlm_session_free(h->session); break;
    case SAMPLER: tlm_sampler_free(h->sampler); break;
    case OPTIMIZER: tlm_optimizer_free(h->optimizer); break;
    case TRAINER: tlm_trainer_free(h->trainer); break;
    case DATASET: tlm_dataset_free(h->dataset); break;
    case TOKENIZER: tlm_tokenizer_free(h->tokenizer); break;
    default: fail();
    }
}

/* Makes everything, frees it in `order` and checks the allocator is back
 * to nothing. */
static void free_in_order(const int order[N_HANDLES]) {
    handles h;
    make_all(&h);
    for (int i = 0; i < N_HANDLES; i++)
        free_one(&h, order[i]);
    assert_true(h.counter.live_bytes == 0);
    assert_true(h.counter.allocations == h.counter.frees);
    assert_true(h.counter.bad_free_sizes == 0);
}

/* The context freed at each position, the others before and after it in
 * creation order and in reverse. */
static void context_at_every_position(void **state) {
    (void)state;
    for (int position = 0; position < N_HANDLES; position++) {
        for (int reversed = 0; reversed < 2; reversed++) {
            int order[N_HANDLES];
            int next = 0;
            for (int k = 0; k < N_HANDLES; k++) {
                if (next == position)
                    order[next++] = CONTEXT;
                const int handle = reversed ? N_HANDLES - k : k + 1;
                if (handle >= 1 && handle < N_HANDLES)
                    order[next++] = handle;
            }
            if (next < N_HANDLES)
                order[next++] = CONTEXT;
            assert_int_equal(next, N_HANDLES);
            free_in_order(order);
        }
    }
}

/* Pseudo-random shuffles of the eight, each followed by its reverse (so
 * each pair is freed in both orders). */
static void shuffled_orders(void **state) {
    (void)state;
    uint64_t seed = 20;
    for (int round = 0; round < 12; round++) {
        int order[N_HANDLES];
        for (int k = 0; k < N_HANDLES; k++)
            order[k] = k;
        for (int k = N_HANDLES - 1; k > 0; k--) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            const int j = (int)((seed >> 33) % (uint64_t)(k + 1));
            const int swap = order[k];
            order[k] = order[j];
            order[j] = swap;
        }
        free_in_order(order);
        int reverse[N_HANDLES];
        for (int k = 0; k < N_HANDLES; k++)
            reverse[k] = order[N_HANDLES - 1 - k];
        free_in_order(reverse);
    }
}

/* Handles keep working after tlm_context_free: the session decodes and
 * the trainer steps, and the context goes with the last of them. */
static void handles_work_after_context_free(void **state) {
    (void)state;
    handles h;
    make_all(&h);
    tlm_context_free(h.ctx);
    h.ctx = NULL;
    const int32_t next[1] = {4};
    float logits[16];
    assert_int_equal(tlm_session_decode(h.session, next, 1, logits, 1), TLM_OK);
    tlm_step_info info;
    tlm_step_info_init(&info);
    assert_int_equal(tlm_trainer_step(h.trainer, &info), TLM_OK);
    assert_true(h.counter.live_bytes > 0);
    tlm_tokenizer_free(h.tokenizer);
    tlm_trainer_free(h.trainer);
    tlm_dataset_free(h.dataset);
    tlm_optimizer_free(h.optimizer);
    tlm_sampler_free(h.sampler);
    tlm_session_free(h.session);
    assert_true(h.counter.live_bytes > 0); /* the model holds it */
    tlm_model_free(h.model);
    assert_true(h.counter.live_bytes == 0);
    assert_true(h.counter.allocations == h.counter.frees);
}

/* A tensor of the caller's belongs to the context: freed by the caller
 * before, or by the context when it goes (with its last handle). */
static void tensors_go_with_the_context(void **state) {
    (void)state;
    counting_allocator counter;
    memset(&counter, 0, sizeof counter);
    tlm_context_params cp;
    counting_context_params(&cp, &counter);
    cp.free_fn = scribbling_free;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &cp), TLM_OK);
    const int64_t shape[1] = {4};
    tlm_tensor *kept = NULL, *freed = NULL;
    assert_int_equal(tlm_tensor_create(&kept, ctx, TLM_DTYPE_F32, 1, shape),
                     TLM_OK);
    assert_int_equal(tlm_tensor_create(&freed, ctx, TLM_DTYPE_F32, 1, shape),
                     TLM_OK);
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, ctx, NULL), TLM_OK);
    tlm_tensor_free(freed);
    tlm_context_free(ctx);
    /* Alive until the sampler goes. */
    assert_int_equal(tlm_tensor_numel(kept), 4);
    tlm_sampler_free(sampler);
    assert_true(counter.live_bytes == 0);
    assert_true(counter.allocations == counter.frees);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(context_at_every_position),
        cmocka_unit_test(shuffled_orders),
        cmocka_unit_test(handles_work_after_context_free),
        cmocka_unit_test(tensors_go_with_the_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
