/* Reference kernels of the elementwise activations. Every array holds n
 * floats of one shape; backward kernels ADD their share into dx (a tensor
 * used twice gets the sum) and recompute what they need from the input x,
 * so nothing has to be saved between the passes. */
#ifndef TLM_LIB_KERNELS_SCALAR_ACTIVATION_H
#define TLM_LIB_KERNELS_SCALAR_ACTIVATION_H

#include <stdint.h>

/* out = max(0, x); a NaN passes through (a diverging run stays visible
 * instead of turning into zeros). */
void tlmi_relu_forward(float *out, const float *x, int64_t n);
/* dx += dout where x > 0. The derivative at exactly 0 is taken as 0 (the
 * subgradient PyTorch and llm.c use); at NaN it is 0 too. */
void tlmi_relu_backward(float *dx, const float *dout, const float *x,
                        int64_t n);

/* GPT-2's tanh approximation (evaluated through exp, see the .c file):
 * out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void tlmi_gelu_tanh_forward(float *out, const float *x, int64_t n);
void tlmi_gelu_tanh_backward(float *dx, const float *dout, const float *x,
                             int64_t n);

/* Exact GELU: out = x Phi(x), Phi the standard normal CDF (from erf);
 * its derivative Phi(x) + x phi(x) uses the normal pdf phi. */
void tlmi_gelu_exact_forward(float *out, const float *x, int64_t n);
void tlmi_gelu_exact_backward(float *dx, const float *dout, const float *x,
                              int64_t n);

/* out = x sigmoid(x) */
void tlmi_silu_forward(float *out, const float *x, int64_t n);
void tlmi_silu_backward(float *dx, const float *dout, const float *x,
                        int64_t n);

/* out = silu(gate) * up */
void tlmi_swiglu_forward(float *out, const float *gate, const float *up,
                         int64_t n);
/* dgate += dout * up * silu'(gate), dup += dout * silu(gate); either
 * gradient may be NULL when that input needs none. */
void tlmi_swiglu_backward(float *dgate, float *dup, const float *dout,
                          const float *gate, const float *up, int64_t n);

#endif
