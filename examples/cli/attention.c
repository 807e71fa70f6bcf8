/*
 * tlm attention: heat maps of the self-attention of one layer for a
 * prompt, one grid per head (rows: the attending position, columns: the
 * position attended to), labelled with the tokens' text, as SVG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "options.h"
#include "output_file.h"
#include "paths.h"

enum { MAX_TOKENS = 64, LABEL = 70, GAP = 30, HEAD_TITLE = 20, PAGE_TITLE = 40 };

static void token_label(FILE *out, tlm_tokenizer *tok, int32_t id) {
    const char *bytes = NULL;
    size_t length = 0;
    if (tlm_tokenizer_token_bytes(tok, id, &bytes, &length) != TLM_OK || length == 0) {
        /* The begin id a SentencePiece prompt starts with has no text. */
        if (id == tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS))
            fputs("&lt;bos&gt;", out);
        else
            fprintf(out, "#%d", (int)id);
        return;
    }
    cli_xml_text(out, bytes, length, 1);
}

static void write_svg(FILE *out, tlm_tokenizer *tok, const int32_t *ids, int32_t n,
                      int32_t heads, int32_t layer, const float *w, const char *prompt) {
    const int cell = n <= 10 ? 24 : n <= 24 ? 16 : 10;
    const int grid = cell * n;
    const int panel_w = LABEL + grid + GAP, panel_h = HEAD_TITLE + LABEL + grid + GAP;
    const int per_row = heads < 4 ? heads : 4;
    const int rows = (heads + per_row - 1) / per_row;
    const int width = per_row * panel_w + GAP, height = PAGE_TITLE + rows * panel_h;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"monospace\" font-size=\"%d\">\n",
            width, height, width, height, cell < 12 ? 8 : 11);
    fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height);
    fprintf(out, "<text id=\"title\" x=\"%d\" y=\"26\" font-family=\"sans-serif\" "
                 "font-size=\"15\">Attention of layer %d (%d heads) for \"",
            GAP, (int)layer, (int)heads);
    cli_xml_text(out, prompt, strlen(prompt) > 80 ? 80 : strlen(prompt), 0);
    fputs("\": row = query token, column = key token</text>\n", out);
    for (int32_t h = 0; h < heads; h++) {
        const int ox = GAP + (h % per_row) * panel_w;
        const int oy = PAGE_TITLE + (h / per_row) * panel_h;
        const int gx = ox + LABEL, gy = oy + HEAD_TITLE + LABEL;
        fprintf(out, "<g id=\"head-%d\">\n<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" "
                     "font-size=\"13\">head %d</text>\n",
                (int)h, gx, oy + 14, (int)h);
        for (int32_t i = 0; i < n; i++) {
            /* Row label (query), right-aligned left of the grid. */
            fprintf(out, "<text class=\"token\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", gx - 4,
                    gy + i * cell + cell / 2 + 4);
            token_label(out, tok, ids[i]);
            fputs("</text>\n", out);
            /* Column label (key), vertical above the grid. */
            const int cx = gx + i * cell + cell / 2 + 4, cy = gy - 4;
            fprintf(out, "<text class=\"token\" x=\"%d\" y=\"%d\" transform=\"rotate(-90 %d %d)\">",
                    cx, cy, cx, cy);
            token_label(out, tok, ids[i]);
            fputs("</text>\n", out);
        }
        for (int32_t i = 0; i < n; i++)
            for (int32_t j = 0; j < n; j++) {
                double v = (double)w[((size_t)h * (size_t)n + (size_t)i) * (size_t)n + (size_t)j];
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                const int r = (int)(255 - v * (255 - 8)), g = (int)(255 - v * (255 - 48)),
                          b = (int)(255 - v * (255 - 107));
                fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                             "fill=\"rgb(%d,%d,%d)\"><title>%.3f</title></rect>\n",
                        gx + j * cell, gy + i * cell, cell, cell, r, g, b, v);
            }
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                     "stroke=\"#888\"/>\n</g>\n",
                gx, gy, grid, grid);
    }
    fputs("</svg>\n", out);
}

int cmd_attention(int argc, char **argv) {
    const char *prompt = NULL, *out_path = "attention.svg";
    int32_t layer = 0;
    cli_option options[] = {
        {"prompt", 'p', CLI_STRING, &prompt, 0, 0, "TEXT", "the text whose attention is drawn (required)", 0},
        {"layer", 'l', CLI_INT, &layer, 0, 1 << 16, "N", "decoder layer, from 0 (default 0)", 0},
        {"output", 'o', CLI_STRING, &out_path, 0, 0, "FILE", "the SVG file to write (default attention.svg)", 0},
    };
    cli_command cmd = {"attention", "MODEL --prompt TEXT [--layer N] -o attn.svg",
                       "Draw the self-attention probabilities of one layer for a prompt: one\n"
                       "heat map per head, rows and columns labelled with the tokens (at most\n"
                       "64 tokens are drawn).",
                       options, (int)(sizeof options / sizeof options[0]), 1, 1, "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (prompt == NULL || prompt[0] == '\0')
        return cli_error(CLI_EXIT_USAGE, "attention", "missing --prompt TEXT (see 'tlm attention --help')");
    const cli_path input = {positional[0], "MODEL"}, output = {out_path, "-o"};
    if (cli_check_outputs("attention", &input, 1, &output, 1) != 0)
        return CLI_EXIT_USAGE;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("attention", positional[0], 1, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    cli_warn_unknown("attention", tok, prompt, strlen(prompt), "the prompt");
    tlm_model_config c;
    tlm_model_config_init(&c);
    tlm_model_get_config(model, &c);
    const size_t length = strlen(prompt);
    /* A SentencePiece tokenizer starts the text with its begin id, as
     * tlm_generate does, and may give up to 3 * length + 1 ids. */
    const int32_t bos = tlm_tokenizer_kind(tok) == TLM_TOKENIZER_SENTENCEPIECE
                            ? tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS)
                            : -1;
    const size_t first = bos >= 0 ? 1 : 0, capacity = 3 * length + 3;
    int32_t *ids = malloc((capacity + first) * sizeof *ids);
    float *w = NULL;
    size_t n_ids = 0;
    if (ids == NULL) {
        status = cli_error(CLI_EXIT_RUNTIME, "attention", "out of memory");
    } else if (tlm_tokenizer_encode(tok, prompt, length, ids + first, capacity, &n_ids) !=
               TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "attention", "%s", tlm_tokenizer_last_error(tok));
    } else {
        if (first) {
            ids[0] = bos;
            n_ids++;
        }
        int32_t n = (int32_t)(n_ids < MAX_TOKENS ? n_ids : MAX_TOKENS);
        if (n > c.max_context)
            n = c.max_context;
        if ((size_t)n < n_ids)
            fprintf(stderr, "tlm attention: drawing the first %d of %zu tokens\n", (int)n, n_ids);
        w = malloc((size_t)c.n_heads * (size_t)n * (size_t)n * sizeof *w);
        cli_output *out = NULL;
        if (w == NULL)
            status = cli_error(CLI_EXIT_RUNTIME, "attention", "out of memory");
        else if (tlm_model_attention_weights(model, ids, n, layer, w) != TLM_OK)
            status = cli_error(CLI_EXIT_RUNTIME, "attention", "%s", tlm_context_last_error(ctx));
        else if (cli_output_open(&out, "attention", out_path, CLI_OUTPUT_REPLACE) != 0)
            status = CLI_EXIT_RUNTIME;
        else {
            write_svg(cli_output_stream(out), tok, ids, n, c.n_heads, layer, w, prompt);
            status = cli_output_close(out);
            if (status == 0)
                printf("wrote %s (%d heads, %d tokens)\n", out_path, (int)c.n_heads, (int)n);
        }
    }
    free(w);
    free(ids);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}
