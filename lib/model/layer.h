/*
 * One transformer layer, described once.
 *
 * A layer is its sublayers in order - self-attention, cross-attention
 * (decoder layers of encoder-decoder models), feedforward - each wrapped in
 * its norm (before it, or after the residual addition) and a residual
 * addition, with dropout on the sublayer's output. layer.c owns everything
 * that is the same however the layer is run: the norm placement and kind,
 * the attention's q/k/v/o projections and when queries and keys rotate, the
 * feedforward's up, gate, activation and down projections, the residual
 * additions.
 *
 * Two executions walk it, each a backend of primitives over named values
 * (slots): the training graph (forward.c: autodiff operations on tensors)
 * and the inference session (session.c: its kernel table on its buffers,
 * with a KV cache); model.c's memory estimate walks it with primitives
 * that only count bytes. A backend is called once per primitive, never
 * per element.
 */
#ifndef TLM_LIB_MODEL_LAYER_H
#define TLM_LIB_MODEL_LAYER_H

#include <stdint.h>

#include "model.h"

/* The values a layer reads and writes, by role: a backend keeps one value
 * (a tensor, a buffer) per slot. Shapes for n rows of input. */
enum tlmi_slot {
    TLMI_SLOT_X,      /* [n, D] the residual stream: input and output */
    TLMI_SLOT_NORMED, /* [n, D] a sublayer's input after a pre-norm */
    TLMI_SLOT_MEMORY, /* [m, D] the encoder's output (cross-attention) */
    TLMI_SLOT_Q,      /* [n, H*hd] queries */
    TLMI_SLOT_K,      /* [n or m, Hkv*hd] keys (Hkv = n_kv_heads) */
    TLMI_SLOT_V,      /* [n or m, Hkv*hd] values */
    TLMI_SLOT_MERGED, /* [n, H*hd] the attention heads side by side */
    TLMI_SLOT_UP,     /* [n, F] */
    TLMI_SLOT_GATE,   /* [n, F] SwiGLU's gate */
    TLMI_SLOT_HIDDEN, /* [n, F] after the activation */
    TLMI_SLOT_BRANCH, /* [n, D] a sublayer's output */
    TLMI_SLOT_COUNT
};

/* One attention sublayer, as the backend needs to know it. */
typedef struct tlmi_attention_site {
    int32_t layer; /* index of the layer in its stack */
    int cross;     /* cross-attention: keys and values from the memory */
    int causal;    /* a query sees no later key */
    int rotary;    /* queries and keys rotate (rotary self-attention) */
} tlmi_attention_site;

/* A backend's primitives: `exec` is the backend's own state; slots are
 * enum tlmi_slot values; each returns TLM_OK or a status it has recorded. */
typedef struct tlmi_layer_backend {
    /* out [n, out_features] = in [n, in_features] . weight^T + bias */
    int (*linear)(void *exec, int out, int in, tlm_tensor *weight,
                  tlm_tensor *bias);
    int (*layer_norm)(void *exec, int out, int in, const tlmi_norm_params *p);
    int (*rms_norm)(void *exec, int out, int in, const tlmi_norm_params *p);
    int (*gelu)(void *exec, int out, int in, int exact);
    int (*relu)(void *exec, int out, int in);
    int (*swiglu)(void *exec, int out, int gate, int up);
    int (*add)(void *exec, int out, int a, int b);
    /* Dropout of `rate` > 0 on a slot, in place; NULL: never (inference). */
    int (*dropout)(void *exec, int slot, float rate);
    /* The keys and values just projected into K and V are kept for later
     * queries (a KV cache, rotated when site->rotary); NULL: the attention
     * reads them from their slots. */
    int (*store_keys_values)(void *exec, const tlmi_attention_site *site);
    /* MERGED = attention of the queries in Q over the site's keys and
     * values, the queries rotated when site->rotary. */
    int (*attend)(void *exec, const tlmi_attention_site *site);
    /* Cross-attention keys and values are projected once per source
     * (tlmi_layer_keys_values), not in every layer pass. */
    int cross_keys_values_kept;
} tlmi_layer_backend;

/* How a stack of layers runs. */
typedef struct tlmi_layer_run {
    const tlmi_layer_backend *backend;
    void *exec;
    const tlm_model_config *config;
    int causal; /* decoder self-attention */
    int cross;  /* with cross-attention over MEMORY */
} tlmi_layer_run;

/* X = layer(X) for the layer `index` of its stack. */
int tlmi_layer_forward(const tlmi_layer_run *run,
                       const tlmi_layer_params *layer, int32_t index);

/* X = layers[count-1](...layers[0](X)). */
int tlmi_layer_stack(const tlmi_layer_run *run,
                     const tlmi_layer_params *layers, int32_t count);

/* The stack's final norm (pre-norm only) of X into `out`: the slot that
 * holds the stack's output (`out`, or X when there is no final norm). */
int tlmi_layer_final_norm(const tlmi_layer_run *run,
                          const tlmi_norm_params *final_norm, int out,
                          int *result);

/* K and V projected from `source` (a slot) and handed to
 * store_keys_values for `site`: how a backend that keeps cross-attention
 * keys and values computes them, once per source. */
int tlmi_layer_keys_values(const tlmi_layer_run *run,
                           const tlmi_attention_params *p, int source,
                           const tlmi_attention_site *site);

#endif
