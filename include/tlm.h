/**
 * @file tlm.h
 * @brief The whole public API of tlm, a library that builds, trains and runs
 *        transformer language models in C11.
 *
 * Conventions that hold for every function declared here:
 *
 * - Every fallible call returns an `int` status: TLM_OK (0) on success, a
 *   negative `TLM_E_*` value on failure. tlm_strerror() gives the static text
 *   of a status; the detailed message of the last failure (what went wrong
 *   and where) is kept per handle (for example tlm_context_last_error()) and
 *   per thread (tlm_last_error()).
 * - Create functions return the status and fill an out-pointer; on failure
 *   the out-pointer is set to NULL. Free functions accept NULL.
 * - Handles are opaque. No struct is passed or returned by value. Settings
 *   are growable structs whose first member is `struct_size`, filled by the
 *   matching `*_init()` call, so a program built against an older header
 *   keeps working with a newer library.
 * - Nothing in the library aborts or exits on bad input.
 *
 * See docs/conventions.md for the reasoning behind these rules.
 */
#ifndef TLM_H
#define TLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/** @name Export and version macros
 *  @{ */

/**
 * @def TLM_API
 * Marks a function as part of the exported ABI. The library is built with
 * hidden visibility, so only functions carrying this macro are exported.
 * Define `TLM_STATIC` when linking the static library on Windows.
 */
#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(TLM_BUILDING_LIBRARY)
#    define TLM_API __declspec(dllexport)
#  elif defined(TLM_STATIC)
#    define TLM_API
#  else
#    define TLM_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define TLM_API __attribute__((visibility("default")))
#else
#  define TLM_API
#endif

/** Major version. From 1.0 on it is also the soname's major (libtlm.so.N). */
#define TLM_VERSION_MAJOR 0
/** Minor version: compatible additions. */
#define TLM_VERSION_MINOR 1
/** Patch version: fixes only. */
#define TLM_VERSION_PATCH 0

/** The version as one comparable number: major * 10000 + minor * 100 + patch. */
#define TLM_VERSION_NUMBER \
    (TLM_VERSION_MAJOR * 10000 + TLM_VERSION_MINOR * 100 + TLM_VERSION_PATCH)

/** @cond TLM_INTERNAL */
#define TLM_STRINGIFY_(x) #x
#define TLM_STRINGIFY(x) TLM_STRINGIFY_(x)
/** @endcond */

/** The version as a string, "major.minor.patch". */
#define TLM_VERSION_STRING               \
    TLM_STRINGIFY(TLM_VERSION_MAJOR) "." \
    TLM_STRINGIFY(TLM_VERSION_MINOR) "." \
    TLM_STRINGIFY(TLM_VERSION_PATCH)

/**
 * The version of the library actually linked, as TLM_VERSION_NUMBER was when
 * it was built. Compare with TLM_VERSION_NUMBER to detect a header/library
 * mismatch.
 */
TLM_API uint32_t tlm_version_number(void);

/** The version of the library actually linked, as a static string. */
TLM_API const char *tlm_version_string(void);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Status codes
 *
 * One table defines every status: its name, its pinned value and its text.
 * Values are never renumbered; new statuses are only appended.
 *  @{ */

/**
 * @def TLM_STATUS_TABLE
 * X-macro table of all statuses: `X(NAME, value, "text")`. The enum below,
 * tlm_strerror() and tlm_status_name() are all generated from it.
 */
#define TLM_STATUS_TABLE(X)                                                   \
    X(OK,           0,   "success")                                           \
    X(E_INVALID,   -1,   "invalid argument")                                  \
    X(E_NOMEM,     -2,   "out of memory")                                     \
    X(E_SHAPE,     -3,   "tensor shapes do not match")                        \
    X(E_RANGE,     -4,   "value out of range")                                \
    X(E_OVERFLOW,  -5,   "size computation overflows")                        \
    X(E_IO,        -6,   "input/output error")                                \
    X(E_FORMAT,    -7,   "malformed or corrupt data")                         \
    X(E_VERSION,   -8,   "unsupported format version")                        \
    X(E_STATE,     -9,   "operation not valid in the current state")          \
    X(E_UNSUPPORTED, -10, "not supported by this build or CPU")               \
    X(E_NONFINITE, -11,  "non-finite value (NaN or infinity)")                \
    X(E_CANCELLED, -12,  "cancelled by a callback")                           \
    X(E_THREAD,    -13,  "thread creation or synchronisation failed")         \
    X(E_INTERNAL,  -14,  "internal error (a bug in tlm: please report it)")

/** @cond TLM_INTERNAL */
#define TLM_STATUS_ENUM_(name, value, text) TLM_##name = value,
/** @endcond */

/** Status values returned by every fallible tlm call. */
enum tlm_status {
    TLM_STATUS_TABLE(TLM_STATUS_ENUM_)
};

/**
 * Static English text for a status, e.g. "out of memory". Never NULL; an
 * unknown value gives "unknown status".
 */
TLM_API const char *tlm_strerror(int status);

/**
 * The status's name as spelled in C, e.g. "TLM_E_NOMEM". Never NULL; an
 * unknown value gives "TLM_E_UNKNOWN".
 */
TLM_API const char *tlm_status_name(int status);

/**
 * The detailed message of the most recent failure of any tlm call made by
 * the calling thread, e.g. "tlm_context_create: params.struct_size is 0
 * (call tlm_context_params_init first)". Empty string when no call on this
 * thread has failed yet. The pointer stays valid until the thread's next
 * failing tlm call. Use it for calls that have no handle yet (create/load).
 */
TLM_API const char *tlm_last_error(void);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Allocator and log hooks
 *  @{ */

/**
 * Allocation hook. Returns `size` bytes aligned to `alignment` (a power of
 * two, at least sizeof(void *)), or NULL on failure. `size` is never 0.
 */
typedef void *(*tlm_alloc_fn)(void *user, size_t size, size_t alignment);

/**
 * Release hook for memory returned by the matching tlm_alloc_fn. `size` is
 * the size that was requested, so a hook can account without a header.
 * Never called with NULL.
 */
typedef void (*tlm_free_fn)(void *user, void *ptr, size_t size);

/** Log levels, from most to least severe. */
enum tlm_log_level {
    TLM_LOG_NONE = 0,  /**< as a threshold: deliver nothing */
    TLM_LOG_ERROR = 1, /**< a call failed; the message is also its error text */
    TLM_LOG_WARN = 2,  /**< something suspicious that did not fail */
    TLM_LOG_INFO = 3,  /**< progress a user may want to see */
    TLM_LOG_DEBUG = 4  /**< detail for developers */
};

/**
 * Log hook: receives one complete message (no trailing newline) at a level
 * at or below the handle's threshold. Called from the thread that made the
 * tlm call.
 */
typedef void (*tlm_log_fn)(void *user, int level, const char *message);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name CPU features
 *  @{ */

/** CPU feature bits reported by tlm_cpu_features(). */
enum tlm_cpu_feature {
    TLM_CPU_SSE2 = 1 << 0,        /**< x86 SSE2 (baseline of x86-64) */
    TLM_CPU_AVX = 1 << 1,         /**< x86 AVX with OS support for YMM state */
    TLM_CPU_AVX2 = 1 << 2,        /**< x86 AVX2 */
    TLM_CPU_FMA = 1 << 3,         /**< x86 FMA3 */
    TLM_CPU_F16C = 1 << 4,        /**< x86 half-precision conversions */
    TLM_CPU_AVX512F = 1 << 5,     /**< x86 AVX-512 Foundation, OS-enabled */
    TLM_CPU_AVX512BW = 1 << 6,    /**< x86 AVX-512 byte/word */
    TLM_CPU_AVX512VL = 1 << 7,    /**< x86 AVX-512 vector length */
    TLM_CPU_AVX512VNNI = 1 << 8,  /**< x86 AVX-512 VNNI */
    TLM_CPU_AVX512BF16 = 1 << 9,  /**< x86 AVX-512 BF16 */
    TLM_CPU_NEON = 1 << 16,       /**< Arm Advanced SIMD (baseline on AArch64) */
    TLM_CPU_ARM_FP16 = 1 << 17,   /**< Arm half-precision arithmetic */
    TLM_CPU_ARM_DOTPROD = 1 << 18 /**< Arm SDOT/UDOT */
};

/**
 * The features of the CPU this process runs on, as a bitwise OR of
 * ::tlm_cpu_feature values. x86 features are reported only when the
 * operating system also saves their registers (XGETBV), so a set bit means
 * the instructions can be used.
 */
TLM_API uint32_t tlm_cpu_features(void);

/**
 * Lower-case name of one feature bit, e.g. "avx2", or NULL when `feature`
 * is not exactly one known bit.
 */
TLM_API const char *tlm_cpu_feature_name(uint32_t feature);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Context
 *
 * A context is the handle every other object lives in: it carries the
 * allocator and log hooks its objects use, and it owns their memory.
 *  @{ */

/** Opaque context handle. One thread at a time may use a context. */
typedef struct tlm_context tlm_context;

/**
 * Settings for tlm_context_create(). Fill with tlm_context_params_init(),
 * then change the fields you need.
 */
typedef struct tlm_context_params {
    /** sizeof(tlm_context_params) as the caller compiled it; set by init. */
    size_t struct_size;
    /** Allocation hook, or NULL for the C library's allocator. Must be set
     *  together with `free_fn`. */
    tlm_alloc_fn alloc_fn;
    /** Release hook matching `alloc_fn`, or NULL. */
    tlm_free_fn free_fn;
    /** Passed unchanged to `alloc_fn` and `free_fn`. */
    void *alloc_user;
    /** Log hook, or NULL for no logging. */
    tlm_log_fn log_fn;
    /** Passed unchanged to `log_fn`. */
    void *log_user;
    /** Deliver messages at this ::tlm_log_level and more severe.
     *  Default TLM_LOG_WARN. */
    int32_t log_level;
    /** Worker threads for compute; 0 means one per available core.
     *  Default 0. */
    int32_t n_threads;
} tlm_context_params;

/**
 * Fill `params` with defaults and set its struct_size. Returns
 * TLM_E_INVALID when `params` is NULL.
 */
TLM_API int tlm_context_params_init(tlm_context_params *params);

/**
 * Create a context. `params` may be NULL for all defaults.
 *
 * @param[out] out    receives the new context, or NULL on failure
 * @param[in]  params settings, or NULL
 * @return TLM_OK, TLM_E_INVALID (bad settings, with a message in
 *         tlm_last_error()), TLM_E_NOMEM
 */
TLM_API int tlm_context_create(tlm_context **out,
                               const tlm_context_params *params);

/** Free a context and everything it owns. NULL is accepted and ignored. */
TLM_API void tlm_context_free(tlm_context *ctx);

/**
 * The detailed message of the last failure of a call on `ctx` (or on an
 * object it owns). Empty string if none; a fixed text if `ctx` is NULL.
 * Valid until the next failing call on `ctx`.
 */
TLM_API const char *tlm_context_last_error(const tlm_context *ctx);

/**
 * The number of compute threads the context uses (its `n_threads` setting
 * with 0 resolved to the number of available cores), or a negative status
 * if `ctx` is NULL.
 */
TLM_API int tlm_context_thread_count(const tlm_context *ctx);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Tensors
 *
 * Tensors are n-dimensional arrays (1 to 4 dimensions, row-major,
 * contiguous) of 32-bit floats, or of 32-bit integers for token ids and
 * class targets. Every tensor belongs to a context.
 *
 * Two kinds exist:
 * - **leaf tensors**, made by tlm_tensor_create() or tlm_tensor_from_f32()
 *   and friends: parameters and inputs. They live until tlm_tensor_free()
 *   or until their context is freed, and survive tlm_context_reset().
 * - **results**, returned by the operations below. Their memory comes from
 *   the context's arena; they stay valid until tlm_context_reset() or until
 *   the context is freed. tlm_tensor_free() on a result does nothing.
 *
 * Using a freed tensor, or a result after tlm_context_reset(), returns
 * TLM_E_STATE as long as the context has not reused its slot; do not rely
 * on it: it is a diagnostic, not a feature.
 *  @{ */

/** Opaque tensor handle. */
typedef struct tlm_tensor tlm_tensor;

/** The most dimensions a tensor can have. */
#define TLM_MAX_DIMS 4

/** Element types (the `dtype` arguments). */
enum tlm_dtype {
    TLM_DTYPE_F32 = 0, /**< 32-bit IEEE float: values, parameters, gradients */
    TLM_DTYPE_I32 = 1  /**< 32-bit signed integer: token ids, class targets */
};

/**
 * Create a leaf tensor filled with zeros.
 * @param[out] out   the new tensor, or NULL on failure
 * @param ctx        the context that owns it
 * @param dtype      a tlm_dtype
 * @param ndim       1 to TLM_MAX_DIMS
 * @param shape      `ndim` sizes, each at least 1
 * @return TLM_OK, TLM_E_INVALID, TLM_E_OVERFLOW (the size does not fit in
 *         memory arithmetic), TLM_E_NOMEM
 */
TLM_API int tlm_tensor_create(tlm_tensor **out, tlm_context *ctx,
                              int32_t dtype, int32_t ndim,
                              const int64_t *shape);

/** Create a float leaf tensor holding a copy of `data` (numel values). */
TLM_API int tlm_tensor_from_f32(tlm_tensor **out, tlm_context *ctx,
                                int32_t ndim, const int64_t *shape,
                                const float *data);

/** Create an integer leaf tensor holding a copy of `data` (numel values). */
TLM_API int tlm_tensor_from_i32(tlm_tensor **out, tlm_context *ctx,
                                int32_t ndim, const int64_t *shape,
                                const int32_t *data);

/** Free a leaf tensor and its gradient. NULL and results are ignored. */
TLM_API void tlm_tensor_free(tlm_tensor *tensor);

/** Number of dimensions (1..TLM_MAX_DIMS), or a negative status. */
TLM_API int32_t tlm_tensor_ndim(const tlm_tensor *tensor);

/**
 * Size of dimension `axis`; negative axes count from the end (-1 is the
 * last). Returns a negative status for a bad tensor or axis.
 */
TLM_API int64_t tlm_tensor_dim(const tlm_tensor *tensor, int32_t axis);

/**
 * Copy the shape into `shape` (room for `capacity` values).
 * @return the number of dimensions, or a negative status
 */
TLM_API int32_t tlm_tensor_shape(const tlm_tensor *tensor, int64_t *shape,
                                 int32_t capacity);

/** Number of elements, or a negative status. */
TLM_API int64_t tlm_tensor_numel(const tlm_tensor *tensor);

/** The tlm_dtype of the tensor, or a negative status. */
TLM_API int32_t tlm_tensor_dtype(const tlm_tensor *tensor);

/** The context that owns the tensor, or NULL for a bad handle. */
TLM_API tlm_context *tlm_tensor_context(const tlm_tensor *tensor);

/**
 * Copy `count` floats (must equal numel) into a float tensor. Writing
 * into a result is allowed (tlm_context_forward() recomputes it).
 */
TLM_API int tlm_tensor_set_f32(tlm_tensor *tensor, const float *data,
                               int64_t count);

/** Copy `count` ints (must equal numel) into an integer tensor. */
TLM_API int tlm_tensor_set_i32(tlm_tensor *tensor, const int32_t *data,
                               int64_t count);

/** Copy the values of a float tensor out; `count` must equal numel. */
TLM_API int tlm_tensor_get_f32(const tlm_tensor *tensor, float *data,
                               int64_t count);

/** Copy the values of an integer tensor out; `count` must equal numel. */
TLM_API int tlm_tensor_get_i32(const tlm_tensor *tensor, int32_t *data,
                               int64_t count);

/**
 * Direct access to the values of a float tensor (numel floats, 64-byte
 * aligned), valid as long as the tensor. NULL for a bad handle or an
 * integer tensor.
 */
TLM_API float *tlm_tensor_data_f32(tlm_tensor *tensor);

/** Direct access to the values of an integer tensor, or NULL. */
TLM_API int32_t *tlm_tensor_data_i32(tlm_tensor *tensor);

/**
 * Ask for (flag 1) or stop asking for (flag 0) the gradient of a float leaf
 * tensor. The gradient buffer is allocated, zeroed, at the first request.
 * Results get a gradient automatically when an input requires one.
 */
TLM_API int tlm_tensor_set_requires_grad(tlm_tensor *tensor, int flag);

/** 1 if the tensor has a gradient, 0 if not, or a negative status. */
TLM_API int tlm_tensor_requires_grad(const tlm_tensor *tensor);

/**
 * Copy the gradient (d loss / d tensor, accumulated by tlm_backward())
 * out; `count` must equal numel. TLM_E_STATE if the tensor has none.
 */
TLM_API int tlm_tensor_get_grad(const tlm_tensor *tensor, float *grad,
                                int64_t count);

/** Direct access to the gradient buffer, or NULL when there is none. */
TLM_API float *tlm_tensor_grad_f32(tlm_tensor *tensor);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Autodiff engine
 *
 * Every operation runs at once and, unless recording is off, appends a node
 * to its context's tape. tlm_backward() walks the tape in reverse and
 * accumulates gradients; tlm_context_forward() re-runs the whole tape with
 * the current input values, so a graph built once serves step after step
 * without rebuilding or allocating. See docs/autodiff.md.
 *  @{ */

/**
 * Back-propagate from a scalar (one-element) float tensor: its gradient is
 * taken as 1, the gradients of all results on the tape are recomputed, and
 * the gradients of leaf tensors that require one are **accumulated** (add
 * to what they hold; clear them with tlm_context_zero_grad()).
 * @return TLM_OK, TLM_E_SHAPE (not a scalar), TLM_E_STATE (the tensor does
 *         not depend on anything that requires a gradient)
 */
TLM_API int tlm_backward(tlm_tensor *loss);

/** Zero the gradients of every tensor of the context. */
TLM_API int tlm_context_zero_grad(tlm_context *ctx);

/**
 * Re-run every operation recorded since the last reset, in order, from the
 * current values of their inputs. Allocates nothing.
 */
TLM_API int tlm_context_forward(tlm_context *ctx);

/**
 * Release every result and the tape; leaf tensors are kept. The arena's
 * memory is kept for reuse, so a loop that builds the same graph after each
 * reset allocates nothing after its first pass.
 */
TLM_API int tlm_context_reset(tlm_context *ctx);

/**
 * Turn gradient recording on (1, the default) or off (0). With recording
 * off, operations still compute their results but record nothing for
 * backward and allocate no gradients: use it for inference.
 */
TLM_API int tlm_context_set_grad_enabled(tlm_context *ctx, int enabled);

/**
 * Training mode (1, the default) or evaluation mode (0): dropout is active
 * only in training mode, batch norm uses batch statistics in training mode
 * and its running statistics in evaluation mode.
 */
TLM_API int tlm_context_set_training(tlm_context *ctx, int training);

/**
 * Reset the context's random number generator (used by dropout) to a
 * state derived from `seed`. Contexts start with seed 0.
 */
TLM_API int tlm_context_set_seed(tlm_context *ctx, uint64_t seed);

/** Bytes the context's arena holds for results (used or not). */
TLM_API int64_t tlm_context_arena_bytes(const tlm_context *ctx);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Operations
 *
 * Every operation writes its result to `*out` (NULL on failure), takes its
 * inputs from one context, and has a backward pass. Shapes are written
 * outermost first: [B, T, C] is batch, time, channels. Float inputs are
 * required unless an argument says "ids" or "targets" (integer tensors).
 * On failure the message names the operation and the shapes involved.
 *  @{ */

/** a + b. `b` has the shape of `a` or of its trailing dimensions (a
 *  vector added to every row, for instance). */
TLM_API int tlm_add(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b);

/** a - b, with the broadcasting of tlm_add(). */
TLM_API int tlm_sub(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b);

/** a * b elementwise, with the broadcasting of tlm_add(). */
TLM_API int tlm_mul(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b);

/** a * factor. */
TLM_API int tlm_scale(tlm_tensor **out, tlm_tensor *a, float factor);

/** a + value, elementwise. */
TLM_API int tlm_add_scalar(tlm_tensor **out, tlm_tensor *a, float value);

/** Flags of tlm_matmul(). */
enum tlm_matmul_flags {
    TLM_MATMUL_TRANSPOSE_B = 1 /**< use the transpose of b's last two dims */
};

/**
 * Matrix product with optional bias, in the forms a transformer needs:
 * - `a` [..., M, K] times a 2-D `b` [K, N] (or [N, K] with
 *   TLM_MATMUL_TRANSPOSE_B): x.W or x.W^T, the leading dims of `a` act as
 *   rows; result [..., M, N];
 * - `a` [..., M, K] times `b` [..., K, N] (or [..., N, K] transposed) with
 *   the same leading dims: one product per batch entry (per head), result
 *   [..., M, N].
 * @param bias  NULL, or [N] added to every row of the result
 * @param flags a combination of tlm_matmul_flags
 */
TLM_API int tlm_matmul(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b,
                       tlm_tensor *bias, int32_t flags);

/**
 * The same values with another shape (same element count); a view: no
 * copy, the result shares the input's memory.
 */
TLM_API int tlm_reshape(tlm_tensor **out, tlm_tensor *a, int32_t ndim,
                        const int64_t *shape);

/** Swap the last two dimensions: [..., M, N] to [..., N, M]. */
TLM_API int tlm_transpose(tlm_tensor **out, tlm_tensor *a);

/** [B, T, H*D] to [B, H, T, D]: one slice per attention head. */
TLM_API int tlm_split_heads(tlm_tensor **out, tlm_tensor *a, int32_t n_head);

/** [B, H, T, D] to [B, T, H*D]: the inverse of tlm_split_heads(). */
TLM_API int tlm_merge_heads(tlm_tensor **out, tlm_tensor *a);

/**
 * Join `count` tensors (1..16) along `axis`; all other dimensions must be
 * equal. Negative axes count from the end.
 */
TLM_API int tlm_concat(tlm_tensor **out, tlm_tensor *const *inputs,
                       int32_t count, int32_t axis);

/** The `length` entries of `axis` starting at `start` (a copy). */
TLM_API int tlm_slice(tlm_tensor **out, tlm_tensor *a, int32_t axis,
                      int64_t start, int64_t length);

/** Sum of all elements, shape [1]. */
TLM_API int tlm_sum(tlm_tensor **out, tlm_tensor *a);

/** Mean of all elements, shape [1]. */
TLM_API int tlm_mean(tlm_tensor **out, tlm_tensor *a);

/** max(0, a). */
TLM_API int tlm_relu(tlm_tensor **out, tlm_tensor *a);

/** Forms of GELU for tlm_gelu(). */
enum tlm_gelu_form {
    TLM_GELU_TANH = 0, /**< 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) */
    TLM_GELU_EXACT = 1 /**< a Phi(a) = 0.5 a (1 + erf(a / sqrt(2))) */
};

/** GELU, in the tlm_gelu_form `form`. */
TLM_API int tlm_gelu(tlm_tensor **out, tlm_tensor *a, int32_t form);

/** SiLU (swish): a * sigmoid(a). */
TLM_API int tlm_silu(tlm_tensor **out, tlm_tensor *a);

/** SwiGLU gating: silu(gate) * up, two tensors of one shape. */
TLM_API int tlm_swiglu(tlm_tensor **out, tlm_tensor *gate, tlm_tensor *up);

/**
 * Layer normalization over the last dimension C:
 * (a - mean) / sqrt(var + eps) * gain + bias.
 * @param gain NULL or [C]
 * @param bias NULL or [C]
 */
TLM_API int tlm_layer_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                           tlm_tensor *bias, float eps);

/** RMS normalization over the last dimension: a / sqrt(mean(a^2) + eps) *
 *  gain, `gain` NULL or [C]. */
TLM_API int tlm_rms_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                         float eps);

/**
 * Batch normalization of each feature (the last dimension C) over all
 * other dimensions. In training mode it normalizes with the batch's
 * statistics and updates `running_mean` and `running_var` ([C] each, may
 * both be NULL) as running = (1 - momentum) running + momentum batch (the
 * variance unbiased); in evaluation mode it normalizes with the running
 * statistics, which are then required.
 * @param gain NULL or [C]
 * @param bias NULL or [C]
 */
TLM_API int tlm_batch_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                           tlm_tensor *bias, tlm_tensor *running_mean,
                           tlm_tensor *running_var, float momentum,
                           float eps);

/** Softmax over the last dimension (numerically stable). */
TLM_API int tlm_softmax(tlm_tensor **out, tlm_tensor *a);

/** Log-softmax over the last dimension (numerically stable). */
TLM_API int tlm_log_softmax(tlm_tensor **out, tlm_tensor *a);

/**
 * Embedding lookup: row ids[i] of `table` [V, D] for every id; ids of shape
 * [...] give a result [..., D]. An id outside 0..V-1 is TLM_E_RANGE, with
 * its position in the message. The backward pass accumulates into the
 * rows that were looked up.
 */
TLM_API int tlm_embedding(tlm_tensor **out, tlm_tensor *table,
                          tlm_tensor *ids);

/**
 * Add the fixed sinusoidal position encoding of "Attention Is All You
 * Need" to `a` [..., T, D] (D even): position p = offset + t,
 * PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(same).
 */
TLM_API int tlm_add_sinusoidal_positions(tlm_tensor **out, tlm_tensor *a,
                                         int64_t offset);

/**
 * Rotary position embedding (RoPE) of `a` [..., T, D] (D even): each pair
 * (a[2i], a[2i+1]) at position p = offset + t is rotated by the angle
 * p * base^(-2i/D). Commonly base = 10000.
 */
TLM_API int tlm_rope(tlm_tensor **out, tlm_tensor *a, int64_t offset,
                     float base);

/** Flags of tlm_attention(). */
enum tlm_attention_flags {
    TLM_ATTENTION_CAUSAL = 1 /**< query i sees keys j <= i + (Tk - Tq) */
};

/**
 * Fused scaled dot-product attention, one pass per head without a Tq x Tk
 * matrix: softmax(q k^T / sqrt(D) + mask) v.
 * @param q    [B, H, Tq, D]
 * @param k    [B, H, Tk, D]
 * @param v    [B, H, Tk, Dv]
 * @param key_mask NULL, or [B, Tk] (float or integer): key j of batch b is
 *             attended only where the mask is non-zero (padding mask)
 * @param flags combination of tlm_attention_flags
 * @return result [B, H, Tq, Dv]; a query row that can see no key gives
 *         zeros
 */
TLM_API int tlm_attention(tlm_tensor **out, tlm_tensor *q, tlm_tensor *k,
                          tlm_tensor *v, tlm_tensor *key_mask, int32_t flags);

/**
 * Dropout: in training mode each element is zeroed with probability `p`
 * and the others scaled by 1/(1-p), from the context's seeded generator;
 * in evaluation mode (or p = 0) the input passes unchanged. p in [0, 1).
 */
TLM_API int tlm_dropout(tlm_tensor **out, tlm_tensor *a, float p);

/**
 * Cross-entropy of `logits` [..., V] against class-index `targets` [...]
 * (integer), fused with its log-softmax: the mean over positions whose
 * target is not `ignore_index` of -log softmax(logits)[target]. Shape [1].
 * A target outside 0..V-1 (other than ignore_index) is TLM_E_RANGE. When
 * every position is ignored the loss is 0.
 */
TLM_API int tlm_cross_entropy(tlm_tensor **out, tlm_tensor *logits,
                              tlm_tensor *targets, int32_t ignore_index);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Experimental: kernel dispatch
 *
 * Declared only when the program defines `TLM_EXPERIMENTAL` before
 * including tlm.h. These calls are outside the ABI promise: they may
 * change or go away in any release (like zstd's ZSTD_STATIC_LINKING_ONLY
 * section).
 *
 * The library picks its compute kernels (scalar C, AVX2, AVX-512, NEON)
 * once, on first use, as the best instruction set the CPU supports within
 * two limits: the mask set here, and the environment variable
 * `TLM_CPU=scalar|avx2|avx512|neon`, read at that moment, which caps the
 * level (scalar 0, avx2 and neon 1, avx512 2; an unknown name is ignored).
 * An instruction set the CPU lacks is never used, whatever the mask or the
 * environment say. Results differ between instruction sets only by
 * floating-point rounding.
 *  @{ */
#ifdef TLM_EXPERIMENTAL

/** Mask value for tlm_experimental_set_cpu_mask(): no restriction. */
#define TLM_EXPERIMENTAL_CPU_MASK_ALL UINT32_MAX

/**
 * Restricts the CPU features the kernels may use to `mask`, a bitwise OR
 * of ::tlm_cpu_feature values (0: scalar kernels only), or
 * TLM_EXPERIMENTAL_CPU_MASK_ALL to lift the restriction. The kernels are
 * chosen again at once, for the whole process; calls already running
 * finish with the kernels they started with. Safe to call from any thread.
 * @return TLM_OK, or TLM_E_INVALID when `mask` has a bit that is not a
 *         ::tlm_cpu_feature (and is not TLM_EXPERIMENTAL_CPU_MASK_ALL);
 *         the kernels then stay as they were
 */
TLM_API int tlm_experimental_set_cpu_mask(uint32_t mask);

/**
 * Name of the instruction set the kernels use now: "scalar", "avx2",
 * "avx512" or "neon". Static text; never NULL.
 */
TLM_API const char *tlm_experimental_active_isa(void);

#endif /* TLM_EXPERIMENTAL */
/** @} */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TLM_H */
