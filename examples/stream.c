/*
 * The README's C example: load a model written by `tlm train` and stream a
 * completion of a prompt to stdout.
 *   stream MODEL.tlm "prompt"
 */
#include <stdio.h>
#include <string.h>

#include <tlm.h>

static int print_piece(void *user, int32_t token, const char *piece,
                       size_t length, float logprob) {
    (void)user, (void)token, (void)logprob;
    fwrite(piece, 1, length, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop */
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.tlm PROMPT\n", argv[0]);
        return 2;
    }
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_session *session = NULL;
    tlm_sampler *sampler = NULL;
    tlm_sampler_params sampling;
    tlm_sampler_params_init(&sampling);
    sampling.temperature = 0.8f;
    tlm_generate_params gen;
    tlm_generate_params_init(&gen);
    gen.max_tokens = 200;
    gen.callback = print_piece;
    int status = tlm_context_create(&ctx, NULL);
    if (status == TLM_OK)
        status = tlm_model_load(&model, ctx, argv[1], NULL);
    if (status == TLM_OK)
        status = tlm_session_create(&session, model, NULL);
    if (status == TLM_OK)
        status = tlm_sampler_create(&sampler, ctx, &sampling);
    if (status == TLM_OK)
        status = tlm_generate(session, sampler, tlm_model_tokenizer(model),
                              argv[2], strlen(argv[2]), &gen, NULL);
    if (status != TLM_OK)
        fprintf(stderr, "%s: %s\n", tlm_strerror(status), tlm_last_error());
    putchar('\n');
    tlm_sampler_free(sampler);
    tlm_session_free(session);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status == TLM_OK ? 0 : 1;
}
