/*
 * Training progress on stderr: on a terminal one line redrawn in place
 * (step/total, loss, validation loss, tokens/s, ETA); otherwise plain lines,
 * one per evaluation and one every `every` steps.
 */
#ifndef TLM_CLI_PROGRESS_H
#define TLM_CLI_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    int tty;        /* stderr is a terminal */
    int line_open;  /* a redrawable line is on screen */
    int64_t total;  /* steps of the whole run */
    int64_t every;  /* plain mode: a line every this many steps */
} progress;

void progress_init(progress *p, int64_t total);

/* Reports step `step`; val_loss < 0 means not evaluated at this step. */
void progress_update(progress *p, int64_t step, double loss, double val_loss,
                     double tokens_per_s, double eta_seconds);

/* Ends the in-place line (if any) so that other output can follow. */
void progress_break(progress *p);

#endif
