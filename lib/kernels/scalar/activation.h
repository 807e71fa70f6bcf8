/* Reference kernels of the elementwise activations. Every array holds n
 * floats of one shape; backward kernels ADD their share into dx (a tensor
 * used twice gets the sum) and recompute what they need from the input x,
 * so nothing has to be saved between the passes. */
#ifndef TLM_LIB_KERNELS_SCALAR_ACTIVATION_H
#define TLM_LIB_KERNELS_SCALAR_ACTIVATION_H

#include <stdint.h>

/* Each activation NAME below has the pair
 *   void tlmi_NAME_forward(float *out, const float *x, int64_t n);
 *   void tlmi_NAME_backward(float *dx, const float *dout, const float *x,
 *                           int64_t n);
 * out = f(x), and dx += dout * f'(x). */
#define TLMI_ACTIVATION_PAIR(name)                                         \
    void tlmi_##name##_forward(float *out, const float *x, int64_t n);     \
    void tlmi_##name##_backward(float *dx, const float *dout, const float *x, \
                                int64_t n)

/* relu: out = max(0, x); a NaN passes through (a diverging run stays
 * visible instead of turning into zeros). The derivative at exactly 0 is
 * taken as 0 (the subgradient PyTorch and llm.c use); at NaN it is 0 too. */
TLMI_ACTIVATION_PAIR(relu);

/* gelu_tanh: GPT-2's tanh approximation (evaluated through exp, see the .c
 * file): out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
TLMI_ACTIVATION_PAIR(gelu_tanh);

/* gelu_exact: out = x Phi(x), Phi the standard normal CDF (from erf); its
 * derivative Phi(x) + x phi(x) uses the normal pdf phi. */
TLMI_ACTIVATION_PAIR(gelu_exact);

/* silu: out = x sigmoid(x) */
TLMI_ACTIVATION_PAIR(silu);

/* out = silu(gate) * up */
void tlmi_swiglu_forward(float *out, const float *gate, const float *up,
                         int64_t n);
/* dgate += dout * up * silu'(gate), dup += dout * silu(gate); either
 * gradient may be NULL when that input needs none. */
void tlmi_swiglu_backward(float *dgate, float *dup, const float *dout,
                          const float *gate, const float *up, int64_t n);

#endif
