/* minimal MODEL.tlm "Once upon a time": load a model written by `tlm train`
 * and stream a completion of the prompt. */
#include <stdio.h>
#include <string.h>
#include <tlm.h>

/* Called with the text of every new token; returning non-zero stops. */
static int print_piece(void *user, int32_t token, const char *piece,
                       size_t length, float logprob) {
    (void)user, (void)token, (void)logprob;
    fwrite(piece, 1, length, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) { fputs("usage: minimal MODEL.tlm PROMPT\n", stderr); return 2; }
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_session *session = NULL; /* the model's memory of the text so far */
    tlm_sampler *sampler = NULL; /* picks each next token */
    tlm_generate_params gen;
    tlm_generate_params_init(&gen);
    gen.callback = print_piece;

    int status = tlm_context_create(&ctx, NULL);
    if (status == TLM_OK) status = tlm_model_load(&model, ctx, argv[1], NULL);
    if (status == TLM_OK) status = tlm_session_create(&session, model, NULL);
    if (status == TLM_OK) status = tlm_sampler_create(&sampler, ctx, NULL);
    if (status == TLM_OK) status = tlm_generate(session, sampler, tlm_model_tokenizer(model),
                                                argv[2], strlen(argv[2]), &gen, NULL);
    if (status != TLM_OK) fprintf(stderr, "\nminimal: %s\n", tlm_last_error());
    else printf("\n");
    tlm_sampler_free(sampler);
    tlm_session_free(session);
    tlm_model_free(model);
    tlm_context_free(ctx); /* NULL-safe, like every free */
    return status == TLM_OK ? 0 : 1;
}
