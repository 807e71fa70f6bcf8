/* The training benchmarks' run (bench_gpt.h). */
#include "bench_gpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *program, const char *what, const char *message) {
    fprintf(stderr, "%s: %s: %s\n", program, what, message);
    return 1;
}

/* One flag a parameter tensor: 1 where AdamW decays it. nanoGPT's
 * configure_optimizers decays every tensor of 2 or more dimensions, the
 * embeddings too; tlm's trainer by default leaves the embeddings out.
 * NULL when memory runs out. */
static int32_t *decay_flags(tlm_model *model, int32_t n_tensors, int decay_embeddings) {
    int32_t *flags = malloc((size_t)n_tensors * sizeof *flags);
    for (int32_t i = 0; flags != NULL && i < n_tensors; i++) {
        const char *name = NULL;
        tlm_tensor *tensor = NULL;
        int32_t ndim = 0;
        if (tlm_model_parameter(model, i, &name, &tensor) == TLM_OK)
            ndim = tlm_tensor_ndim(tensor);
        flags[i] = ndim >= 2 && (decay_embeddings || strstr(name, "embedding") == NULL);
    }
    return flags;
}

int bench_gpt_run_create(bench_gpt_run *r, const char *program,
                         const bench_gpt_recipe *recipe, const bench_text *text) {
    memset(r, 0, sizeof *r);
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.n_threads = recipe->threads;
    if (tlm_context_create(&r->ctx, &cp) != TLM_OK)
        return fail(program, "tlm_context_create", tlm_last_error());

    tlm_model_config mc;
    tlm_model_config_init(&mc);
    mc.vocab_size = text->vocab;
    mc.d_model = recipe->width;
    mc.n_heads = recipe->heads;
    mc.n_decoder_layers = recipe->layers;
    mc.max_context = recipe->context;
    mc.position = TLM_POSITION_LEARNED;
    mc.norm = TLM_NORM_LAYER;
    mc.activation = recipe->gelu_exact ? TLM_ACTIVATION_GELU_EXACT : TLM_ACTIVATION_GELU;
    mc.bias = 0;        /* nanoGPT's default (bias = False) */
    mc.tied_output = 1; /* nanoGPT ties lm_head to wte */
    mc.embedding_dropout = recipe->dropout;
    mc.residual_dropout = recipe->dropout;
    mc.init_seed = recipe->seed;
    if (tlm_model_create(&r->model, r->ctx, &mc) != TLM_OK)
        return fail(program, "tlm_model_create", tlm_last_error());
    if (tlm_dataset_from_ids(&r->data, r->ctx, text->ids, (size_t)text->count, NULL) != TLM_OK)
        return fail(program, "tlm_dataset_from_ids", tlm_last_error());

    const int32_t n_tensors = tlm_model_parameter_tensor_count(r->model);
    if (n_tensors <= 0)
        return fail(program, "tlm_model_parameter_tensor_count", tlm_last_error());
    int32_t *flags = decay_flags(r->model, n_tensors, recipe->decay_embeddings);
    if (flags == NULL)
        return fail(program, "bench_gpt_run_create", "out of memory");
    tlm_optimizer_params op;
    tlm_optimizer_params_init(&op);
    op.lr = recipe->lr;
    op.beta1 = 0.9f;
    op.beta2 = 0.99f;
    op.weight_decay = 0.1f;
    op.decay_flags = flags;

    tlm_schedule_params sp;
    tlm_schedule_params_init(&sp);
    sp.kind = TLM_SCHEDULE_COSINE;
    sp.lr = recipe->lr;
    sp.min_lr = recipe->min_lr;
    sp.warmup_steps = recipe->warmup_steps;
    sp.decay_end_step = recipe->decay_end_step;

    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = recipe->batch;
    tp.accumulation = recipe->accumulation;
    tp.context = recipe->context;
    tp.grad_clip = 1.0f;
    tp.seed = recipe->seed;
    tp.precision = recipe->precision;
    tp.optimizer = &op;
    tp.schedule = &sp;
    const int status = tlm_trainer_create(&r->trainer, r->model, r->data, &tp);
    free(flags);
    if (status != TLM_OK)
        return fail(program, "tlm_trainer_create", tlm_last_error());
    return 0;
}

void bench_gpt_run_free(bench_gpt_run *r) {
    tlm_trainer_free(r->trainer);
    tlm_dataset_free(r->data);
    tlm_model_free(r->model);
    tlm_context_free(r->ctx);
    memset(r, 0, sizeof *r);
}
