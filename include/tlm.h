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
 * - Arguments: create functions and operations take their out-pointer
 *   first; every other call takes the handle first, then its inputs, then
 *   its outputs. A caller's buffer is (pointer, size_t capacity, size_t
 *   *count written). Flags are int32_t 0 or 1.
 * - const on a handle means the call changes nothing in it, its error
 *   message included; such calls record failures in tlm_last_error().
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
#define TLM_VERSION_MINOR 2
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

/**
 * The version of the library actually linked, as a static string:
 * "major.minor.patch" (TLM_VERSION_STRING as it was when the library was
 * built), followed by "+mpi" (SemVer build metadata) when the library was
 * built with MPI (`-Dmpi=enabled`), e.g. "0.2.0+mpi". A default build, which
 * never links MPI, adds nothing. tlm_comm_available() says the same at run
 * time; see docs/distributed.md.
 */
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
    TLM_CPU_ARM_DOTPROD = 1 << 18, /**< Arm SDOT/UDOT */
    TLM_CPU_ARM_BF16 = 1 << 19     /**< Arm BFloat16 (BFDOT, Armv8.6 FEAT_BF16) */
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
    /** Compute threads, the calling thread included (so n - 1 workers),
     *  0..1024. 0 means the environment variable TLM_THREADS when it holds
     *  a positive number, else one per core this process may run on.
     *  Default 0. Results are bitwise the same for any value: every loop
     *  is split into ranges that depend only on its size, and each result
     *  is computed by one thread in a fixed order. The workers start on
     *  the first loop worth splitting, spin a few tens of microseconds
     *  after each loop and then sleep; they run only for calls made on
     *  this context, from the one thread using it. */
    int32_t n_threads;
    /** Bytes that creating a model, session, trainer or dataset in this
     *  context may not exceed, together with what the context's objects
     *  already hold: such a create first estimates what it needs and
     *  refuses with TLM_E_NOMEM ("needs X GiB (...), the limit is Y GiB
     *  (source)") before allocating. 0 (the default) means the memory
     *  available to the process: the smallest of the physical memory, the
     *  cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) and
     *  RLIMIT_AS / RLIMIT_DATA when set. UINT64_MAX means no limit. See
     *  docs/reliability.md, "Memory". */
    uint64_t memory_limit;
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

/**
 * Give up the caller's context: the context goes now if nothing made in it
 * is alive, else with the last of its models, sessions, samplers,
 * optimizers, trainers and datasets, which keep it alive and keep working
 * until they are freed. So handles may be freed in any order, before or
 * after their context: nothing is used after it is freed and nothing
 * leaks once every handle is freed (docs/conventions.md, "Ownership").
 * Leaf tensors made by the caller belong to the context: they go with it
 * (do not tlm_tensor_free() them after the context went). Tokenizers
 * never depend on their context. NULL is accepted and ignored; freeing the
 * same context twice is an error of the caller, like any double free.
 */
TLM_API void tlm_context_free(tlm_context *ctx);

/**
 * The detailed message of the last failure of a call on `ctx` (or on an
 * object it owns). Empty string if none; a fixed text if `ctx` is NULL.
 * Valid until the next failing call on `ctx`.
 */
TLM_API const char *tlm_context_last_error(const tlm_context *ctx);

/**
 * The number of compute threads the context uses (its `n_threads` setting
 * with 0 resolved to TLM_THREADS or the number of available cores), or a
 * negative status if `ctx` is NULL.
 */
TLM_API int32_t tlm_context_thread_count(const tlm_context *ctx);

/**
 * The context's memory limit in bytes (its `memory_limit` setting, with 0
 * resolved to the memory available to the process when the context was
 * created; UINT64_MAX: none).
 * @param      ctx   the context
 * @param[out] bytes receives the limit
 * @return TLM_OK, TLM_E_INVALID for a NULL argument
 */
TLM_API int tlm_context_memory_limit(const tlm_context *ctx, uint64_t *bytes);

/**
 * The bytes the context and every object made in it hold from its
 * allocator now (tensors, the arena, models, sessions, trainers,
 * datasets; not tokenizers, which may outlive the context, nor
 * memory-mapped model files): what the memory limit's check adds to a new
 * object's estimate.
 * @param      ctx   the context
 * @param[out] bytes receives the count
 * @return TLM_OK, TLM_E_INVALID for a NULL argument
 */
TLM_API int tlm_context_memory_in_use(const tlm_context *ctx, uint64_t *bytes);

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
    TLM_DTYPE_F32 = 0,  /**< 32-bit IEEE float: values, parameters, gradients */
    TLM_DTYPE_I32 = 1,  /**< 32-bit signed integer: token ids, class targets */
    TLM_DTYPE_BF16 = 2, /**< bfloat16 (the matrices of a quantized model):
                             read as float with tlm_tensor_get_f32 */
    TLM_DTYPE_Q8 = 3    /**< int8 in groups of 32 along the last axis, one
                             float32 scale per group (the matrices of a
                             quantized model): read as float with
                             tlm_tensor_get_f32 */
};

/** How a model stores its matrices (docs/quantization.md). */
enum tlm_weight_format {
    TLM_WEIGHTS_F32 = 0,  /**< float32 (trainable) */
    TLM_WEIGHTS_BF16 = 1, /**< bfloat16, rounded to nearest even from float32 */
    TLM_WEIGHTS_INT8 = 2  /**< int8, symmetric, groups of 32 inputs with a float32 scale */
};

/**
 * Create a leaf tensor filled with zeros.
 * @param[out] out   the new tensor, or NULL on failure
 * @param ctx        the context that owns it
 * @param dtype      TLM_DTYPE_F32 or TLM_DTYPE_I32 (the quantized dtypes
 *                   are a quantized model's matrices only)
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

/**
 * Free a leaf tensor and its gradient. NULL and results are ignored. A
 * tensor belongs to its context: call this before tlm_context_free(), or
 * leave the tensor to go with the context (a model's parameters go with
 * tlm_model_free()).
 */
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
                                 size_t capacity);

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
                               size_t count);

/** Copy `count` ints (must equal numel) into an integer tensor. */
TLM_API int tlm_tensor_set_i32(tlm_tensor *tensor, const int32_t *data,
                               size_t count);

/**
 * Copy the values of a float tensor out; `count` must equal numel. A
 * quantized parameter (TLM_DTYPE_BF16 or TLM_DTYPE_Q8) gives its
 * dequantized values.
 */
TLM_API int tlm_tensor_get_f32(const tlm_tensor *tensor, float *data,
                               size_t count);

/** Copy the values of an integer tensor out; `count` must equal numel. */
TLM_API int tlm_tensor_get_i32(const tlm_tensor *tensor, int32_t *data,
                               size_t count);

/**
 * Direct access to the values of a float tensor (numel floats, 64-byte
 * aligned), valid as long as the tensor. NULL for a bad handle, an
 * integer tensor or a quantized one (TLM_E_INVALID: copy its dequantized
 * values out with tlm_tensor_get_f32()).
 */
TLM_API float *tlm_tensor_data_f32(tlm_tensor *tensor);

/** Direct access to the values of an integer tensor, or NULL. */
TLM_API int32_t *tlm_tensor_data_i32(tlm_tensor *tensor);

/**
 * Ask for (flag 1) or stop asking for (flag 0) the gradient of a float leaf
 * tensor. The gradient buffer is allocated, zeroed, at the first request.
 * Results get a gradient automatically when an input requires one.
 */
TLM_API int tlm_tensor_set_requires_grad(tlm_tensor *tensor, int32_t flag);

/** 1 if the tensor has a gradient, 0 if not, or a negative status. */
TLM_API int tlm_tensor_requires_grad(const tlm_tensor *tensor);

/**
 * Copy the gradient (d loss / d tensor, accumulated by tlm_backward())
 * out; `count` must equal numel. TLM_E_STATE if the tensor has none.
 */
TLM_API int tlm_tensor_get_grad_f32(const tlm_tensor *tensor, float *grad,
                                size_t count);

/** Direct access to the gradient buffer, or NULL when there is none. */
TLM_API float *tlm_tensor_grad_data_f32(tlm_tensor *tensor);

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
 * reset allocates nothing after its first pass. So are the gradient buffers
 * a model's backward passes use, except those of shapes no backward pass
 * has used in the last four resets that followed one (docs/autodiff.md).
 */
TLM_API int tlm_context_reset(tlm_context *ctx);

/**
 * Turn gradient recording on (1, the default) or off (0). With recording
 * off, operations still compute their results but record nothing for
 * backward and allocate no gradients: use it for inference.
 */
TLM_API int tlm_context_set_grad_enabled(tlm_context *ctx, int32_t enabled);

/**
 * Training mode (1, the default) or evaluation mode (0): dropout is active
 * only in training mode, batch norm uses batch statistics in training mode
 * and its running statistics in evaluation mode.
 */
TLM_API int tlm_context_set_training(tlm_context *ctx, int32_t training);

/**
 * Reset the context's random number generator (used by dropout) to a
 * state derived from `seed`. Contexts start with seed 0.
 */
TLM_API int tlm_context_set_seed(tlm_context *ctx, uint64_t seed);

/**
 * Bytes the context holds for results (used or not): its arena (results'
 * values, saved buffers and gradients) and the pool of gradient buffers
 * that tlm_backward() lends the internal results of tlm_model_forward().
 */
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
TLM_API int tlm_split_heads(tlm_tensor **out, tlm_tensor *a, int32_t n_heads);

/** [B, H, T, D] to [B, T, H*D]: the inverse of tlm_split_heads(). */
TLM_API int tlm_merge_heads(tlm_tensor **out, tlm_tensor *a);

/**
 * Join `count` tensors (1..16) along `axis`; all other dimensions must be
 * equal. Negative axes count from the end.
 */
TLM_API int tlm_concat(tlm_tensor **out, tlm_tensor *const *inputs,
                       int32_t count, int32_t axis);

/** The `length` entries of `axis` starting at `start` (a copy). Negative
 *  axes count from the end; start >= 0, length >= 1 and start + length <=
 *  the axis's size, else TLM_E_RANGE. */
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
 * (a - mean) / sqrt(var + eps) * gain + bias, var the biased variance (the
 * mean of squared deviations) of each row.
 * @param gain NULL or [C]
 * @param bias NULL or [C]
 * @param eps  finite and > 0, else TLM_E_INVALID
 */
TLM_API int tlm_layer_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                           tlm_tensor *bias, float eps);

/** RMS normalization over the last dimension: a / sqrt(mean(a^2) + eps) *
 *  gain, `gain` NULL or [C], `eps` finite and > 0 (else TLM_E_INVALID). */
TLM_API int tlm_rms_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                         float eps);

/**
 * Batch normalization of each feature (the last dimension C) over all
 * other dimensions. In training mode it normalizes with the batch's
 * statistics and updates `running_mean` and `running_var` ([C] each, may
 * both be NULL) as running = (1 - momentum) running + momentum batch (the
 * variance unbiased); in evaluation mode it normalizes with the running
 * statistics, which are then required.
 *
 * The mode is read at every forward, tlm_context_forward() re-runs
 * included. Training mode needs at least 2 values per feature (numel / C),
 * else TLM_E_SHAPE; evaluation mode without running statistics is
 * TLM_E_INVALID, and a running_var + eps <= 0 is TLM_E_RANGE. The running
 * statistics are buffers updated in place, never differentiated.
 * @param gain NULL or [C]
 * @param bias NULL or [C]
 * @param momentum in [0, 1], else TLM_E_INVALID
 * @param eps  finite and > 0, else TLM_E_INVALID
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
 * `offset` >= 0 (TLM_E_INVALID otherwise).
 */
TLM_API int tlm_add_sinusoidal_positions(tlm_tensor **out, tlm_tensor *a,
                                         int64_t offset);

/**
 * Rotary position embedding (RoPE) of `a` [..., T, D] (D even): each pair
 * (a[2i], a[2i+1]) at position p = offset + t is rotated by the angle
 * p * base^(-2i/D). Commonly base = 10000. `offset` >= 0 and `base`
 * finite and > 0 (TLM_E_INVALID otherwise).
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
 *
 * Grouped-query attention: k and v may have fewer heads Hkv than q, Hkv
 * dividing H; query head h then attends over key/value head
 * h / (H / Hkv), so consecutive query heads share a key/value head
 * (Hkv = 1: multi-query attention). The shared heads are read in place,
 * never copied per query head; their gradients sum over the group.
 * @param q    [B, H, Tq, D]
 * @param k    [B, Hkv, Tk, D], Hkv dividing H (Hkv = H: plain multi-head)
 * @param v    [B, Hkv, Tk, Dv]
 * @param key_mask NULL, or [B, Tk] (float or integer): key j of batch b is
 *             attended only where the mask is non-zero (padding mask)
 * @param flags combination of tlm_attention_flags
 * @return result [B, H, Tq, Dv]; a query row that can see no key gives
 *         zeros; a NaN in q, k or v makes every row that sees it NaN
 */
TLM_API int tlm_attention(tlm_tensor **out, tlm_tensor *q, tlm_tensor *k,
                          tlm_tensor *v, tlm_tensor *key_mask, int32_t flags);

/**
 * Multi-head attention on heads packed side by side, as linear projections
 * produce them: the same as tlm_split_heads() of q, k and v, tlm_attention()
 * and tlm_merge_heads() of its result, but the heads are read and written in
 * place, so neither the copies nor their gradients are made (faster, and
 * less memory in training). Head h is columns h*D .. h*D+D-1.
 *
 * Grouped-query attention: k and v may hold Hkv heads, Hkv dividing H, as
 * in tlm_attention() (query head h reads key/value head h / (H / Hkv)).
 * D is q's last dimension / H; Hkv is k's last dimension / D, and v's last
 * dimension must be a multiple Hkv*Dv of the same Hkv.
 * @param q    [B, Tq, H*D]
 * @param k    [B, Tk, Hkv*D]
 * @param v    [B, Tk, Hkv*Dv]
 * @param key_mask NULL, or [B, Tk] (float or integer), as tlm_attention()
 * @param n_heads H >= 1, dividing q's last dimension
 * @param flags combination of tlm_attention_flags
 * @return result [B, Tq, H*Dv]
 */
TLM_API int tlm_multi_head_attention(tlm_tensor **out, tlm_tensor *q,
                                     tlm_tensor *k, tlm_tensor *v,
                                     tlm_tensor *key_mask, int32_t n_heads,
                                     int32_t flags);

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
 * A 1-D `logits` [V] (one position) takes `targets` [1].
 * A target outside 0..V-1 (other than ignore_index) is TLM_E_RANGE. When
 * every position is ignored the loss is 0.
 */
TLM_API int tlm_cross_entropy(tlm_tensor **out, tlm_tensor *logits,
                              tlm_tensor *targets, int32_t ignore_index);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Tokenizers
 *
 * A tokenizer turns bytes into token ids and ids back into bytes. Four
 * kinds exist, all specified in docs/tokenizer.md:
 * - **byte-level**: ids 0..255 are the byte values; encodes every byte
 *   string, invalid UTF-8 included;
 * - **character-level**: the distinct UTF-8 characters of a training
 *   corpus, sorted (a byte that is not part of a valid UTF-8 sequence counts
 *   as a character of its own); unseen characters encode to an unknown
 *   token, which decodes to U+FFFD;
 * - **byte-level BPE**: the 256 bytes plus merges learned from a corpus
 *   (GPT-2 style): text is first split into chunks (words with their
 *   leading space, numbers, punctuation runs, whitespace runs), then each
 *   chunk's bytes are merged by rank.
 * - **GPT-2**: GPT-2's own byte-level BPE, read from its published files
 *   with tlm_tokenizer_import(): its vocabulary and ids, its merges and its
 *   pre-tokenization (the same ids as OpenAI's tiktoken on any bytes).
 * - **SentencePiece**: a SentencePiece BPE model (Llama's tokenizer.model,
 *   llama2.c's tokenizer.bin) read with tlm_tokenizer_import(): the same
 *   ids as the sentencepiece library. Its special ids are the model's
 *   (Llama: unknown 0, begin 1, end 2; tlm_tokenizer_special_id() answers
 *   TLM_E_RANGE for one the model lacks); encoding never produces begin
 *   or end, decoding turns them into nothing and the unknown piece into
 *   its surface (" U+2047 "), and drops the space SentencePiece adds
 *   before the text (the leading space of the first piece). Generation
 *   and scoring put the begin id before the encoded text, as llama2.c
 *   and Hugging Face do.
 *
 * The first three kinds end their vocabulary with three special tokens,
 * begin of text, end of text and padding (ids vocab_size-3, -2, -1), which
 * encoding never produces and decoding turns into nothing. A
 * character-level tokenizer has its unknown token just before them. A
 * GPT-2 tokenizer has one special token, `<|endoftext|>` (id 50256 in
 * GPT-2), which is its begin, end and padding token; encoding never
 * produces it (the text "<|endoftext|>" is encoded as ordinary text) and
 * decoding turns it into its text "<|endoftext|>".
 *
 * decode(encode(x)) == x for every byte string x, except that a
 * character-level tokenizer replaces characters it has not seen, and a
 * SentencePiece tokenizer replaces every byte that starts no valid UTF-8
 * character by U+FFFD (as sentencepiece does) and characters outside its
 * vocabulary by its unknown piece when it has no byte fallback.
 *
 * A tokenizer never changes after it is created: encoding and decoding only
 * read it, but record their failures in it, so one thread at a time uses a
 * tokenizer. Token streams only read the tokenizer's vocabulary and may be
 * used in other threads while it is in use.
 *  @{ */

/** Opaque tokenizer handle. */
typedef struct tlm_tokenizer tlm_tokenizer;

/** Tokenizer kinds (tlm_tokenizer_params::kind, tlm_tokenizer_kind()). */
enum tlm_tokenizer_kind {
    TLM_TOKENIZER_BYTE = 0, /**< 256 byte tokens, id = byte value */
    TLM_TOKENIZER_CHAR = 1, /**< the distinct characters of a corpus */
    TLM_TOKENIZER_BPE = 2,  /**< byte-level byte-pair encoding */
    TLM_TOKENIZER_GPT2 = 3, /**< GPT-2's byte-level BPE (its byte alphabet,
                                 merge ranks and pre-tokenization,
                                 <|endoftext|>); made by
                                 tlm_tokenizer_import(), never trained */
    TLM_TOKENIZER_SENTENCEPIECE = 4 /**< a SentencePiece BPE model (pieces,
                                 scores, types; byte fallback; the dummy
                                 prefix; U+2581 for spaces), as Llama's
                                 tokenizer.model and llama2.c's
                                 tokenizer.bin; made by
                                 tlm_tokenizer_import(), never trained */
};

/** Special tokens (the `which` of tlm_tokenizer_special_id()). */
enum tlm_special_token {
    TLM_TOKEN_BOS = 0, /**< begin of text: id vocab_size - 3 (GPT-2:
                            <|endoftext|>; SentencePiece: the model's
                            bos_id, Llama's 1) */
    TLM_TOKEN_EOS = 1, /**< end of text: id vocab_size - 2 (GPT-2:
                            <|endoftext|>; SentencePiece: the model's
                            eos_id, Llama's 2) */
    TLM_TOKEN_PAD = 2, /**< padding: id vocab_size - 1 (GPT-2:
                            <|endoftext|>; SentencePiece: the model's
                            pad_id, which Llama's lacks) */
    TLM_TOKEN_UNK = 3  /**< unknown character: id vocab_size - 4 in
                            character-level tokenizers; SentencePiece: the
                            model's unknown piece */
};

/**
 * Settings of tlm_tokenizer_train(). Fill with tlm_tokenizer_params_init(),
 * then change the fields you need.
 */
typedef struct tlm_tokenizer_params {
    /** sizeof(tlm_tokenizer_params) as the caller compiled it; set by init. */
    size_t struct_size;
    /** A ::tlm_tokenizer_kind. Default TLM_TOKENIZER_BPE. */
    int32_t kind;
    /** BPE only: the vocabulary wanted, 256 bytes + merges + 3 special
     *  tokens, so 259..16777216. Training stops earlier when no pair is
     *  frequent enough (see `min_pair_count`). Default 512. */
    int32_t vocab_size;
    /** BPE only: merging stops when the most frequent pair occurs fewer
     *  times than this in the corpus; at least 1. Default 2. */
    int32_t min_pair_count;
} tlm_tokenizer_params;

/**
 * Fill `params` with the defaults (BPE, 512 ids, pairs seen at least
 * twice) and set its struct_size. Returns TLM_E_INVALID when `params` is
 * NULL.
 */
TLM_API int tlm_tokenizer_params_init(tlm_tokenizer_params *params);

/**
 * Create a tokenizer of the kind `params->kind` from a corpus:
 * - TLM_TOKENIZER_BYTE: the corpus is not read (it may be NULL);
 * - TLM_TOKENIZER_CHAR: the vocabulary is the corpus's distinct characters;
 * - TLM_TOKENIZER_BPE: merges are learned until the vocabulary reaches
 *   `params->vocab_size` or no pair occurs `params->min_pair_count` times.
 *
 * Training is deterministic: the same corpus and settings give the same
 * tokenizer on every platform.
 * @param[out] out   the new tokenizer, or NULL on failure
 * @param ctx        its allocator and log hooks come from this context, or
 *                   NULL for the C library's allocator and no logging; the
 *                   tokenizer does not keep a reference to it
 * @param corpus     `length` bytes of training text (any bytes); may be
 *                   NULL when `length` is 0
 * @param length     bytes in `corpus`
 * @param params     settings, or NULL for the defaults
 * @return TLM_OK, TLM_E_INVALID (bad arguments or settings), TLM_E_NOMEM,
 *         TLM_E_OVERFLOW (a corpus too large to count)
 */
TLM_API int tlm_tokenizer_train(tlm_tokenizer **out, tlm_context *ctx,
                                const char *corpus, size_t length,
                                const tlm_tokenizer_params *params);

/**
 * Free a tokenizer. NULL is ignored. It does not depend on the context it
 * was made in, so this may come before or after tlm_context_free(). Free
 * its token streams first.
 */
TLM_API void tlm_tokenizer_free(tlm_tokenizer *tok);

/**
 * The detailed message of the tokenizer's last failure ("" if none); a
 * fixed text if `tok` is NULL.
 */
TLM_API const char *tlm_tokenizer_last_error(const tlm_tokenizer *tok);

/** The ::tlm_tokenizer_kind of `tok`, or a negative status. */
TLM_API int32_t tlm_tokenizer_kind(const tlm_tokenizer *tok);

/**
 * Number of token ids, special tokens included: 259 for byte-level,
 * characters + 4 for character-level, 259 + merges for BPE, the
 * vocabulary's size for GPT-2 (50257). A negative status for a NULL
 * tokenizer.
 */
TLM_API int32_t tlm_tokenizer_vocab_size(const tlm_tokenizer *tok);

/**
 * The id of a special token.
 * @param which a ::tlm_special_token
 * @return the id, TLM_E_RANGE when the tokenizer has no such token (only
 *         character-level and SentencePiece tokenizers have TLM_TOKEN_UNK;
 *         a SentencePiece model may lack any of begin, end and padding:
 *         Llama's has no padding id), TLM_E_INVALID
 *         for a NULL tokenizer or an unknown `which`
 */
TLM_API int32_t tlm_tokenizer_special_id(tlm_tokenizer *tok, int32_t which);

/**
 * The bytes token `id` decodes to: a byte, a character's UTF-8 bytes, a
 * merged token's bytes; U+FFFD (EF BF BD) for the unknown token; nothing
 * (length 0) for the special tokens, except GPT-2's `<|endoftext|>`,
 * whose bytes are that text. SentencePiece: the piece with U+2581 as a
 * space (kept: only decoding drops the first piece's), a byte piece's
 * byte, the unknown piece's surface (" U+2047 "), nothing for begin and
 * end.
 * @param[out] bytes  receives a pointer into the tokenizer, valid as long
 *                    as the tokenizer (not NUL-terminated)
 * @param[out] length receives the number of bytes
 * @return TLM_OK, TLM_E_RANGE for an id outside 0..vocab_size-1,
 *         TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_token_bytes(tlm_tokenizer *tok, int32_t id,
                                      const char **bytes, size_t *length);

/** Number of BPE or GPT-2 merges (0 for the other kinds), or a negative
 *  status. */
TLM_API int32_t tlm_tokenizer_merge_count(const tlm_tokenizer *tok);

/**
 * The merge of rank `rank` (0 is learned first): tokens `left` and `right`
 * make token 256 + rank (GPT-2: the token whose bytes are left's then
 * right's, 256 + rank in GPT-2's own vocabulary).
 * @return TLM_OK, TLM_E_RANGE for a rank outside 0..merge_count-1,
 *         TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_merge(tlm_tokenizer *tok, int32_t rank,
                                int32_t *left, int32_t *right);

/**
 * Encode `length` bytes of `text` into token ids. Encoding accepts any
 * bytes and never produces a special token; a character-level tokenizer
 * encodes characters it does not know as TLM_TOKEN_UNK. There are never
 * more ids than bytes, so `capacity` = `length` always suffices, except
 * for a SentencePiece tokenizer: its dummy prefix and byte fallback (up
 * to 3 byte pieces for one input byte) need `capacity` = 3 * `length` + 3
 * at most. A GPT-2 tokenizer allocates (for pre-tokenization pieces longer
 * than 256 bytes, such as a long run of spaces) and a SentencePiece
 * tokenizer always does (its merge queue), so only they can fail with
 * TLM_E_NOMEM.
 * @param tok          the tokenizer
 * @param text         the bytes to encode; may be NULL when `length` is 0
 * @param length       bytes in `text`
 * @param[out] ids     room for `capacity` ids; NULL (with capacity 0) to
 *                     only count them
 * @param capacity     ids that fit in `ids`
 * @param[out] n_ids   receives the number of ids the text encodes to, also
 *                     when they do not fit
 * @return TLM_OK; TLM_E_RANGE when `capacity` is too small (the first
 *         `capacity` ids are written, `*n_ids` says how many are needed);
 *         TLM_E_NOMEM (GPT-2 and SentencePiece only, see above);
 *         TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_encode(tlm_tokenizer *tok, const char *text,
                                 size_t length, int32_t *ids,
                                 size_t capacity, size_t *n_ids);

/**
 * Decode `n_ids` ids into bytes: the concatenation of each token's bytes
 * (see tlm_tokenizer_token_bytes()). No terminator is written.
 * @param tok          the tokenizer
 * @param ids          the ids; may be NULL when `n_ids` is 0
 * @param n_ids        number of ids
 * @param[out] text    room for `capacity` bytes; NULL (with capacity 0) to
 *                     only measure
 * @param capacity     bytes that fit in `text`
 * @param[out] length  receives the number of bytes of the decoded text,
 *                     also when they do not fit; 0 when an id is invalid
 * @return TLM_OK; TLM_E_RANGE for an id outside 0..vocab_size-1 (the
 *         message gives its position; nothing is written) or when
 *         `capacity` is too small (the first `capacity` bytes are
 *         written); TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_decode(tlm_tokenizer *tok, const int32_t *ids,
                                 size_t n_ids, char *text, size_t capacity,
                                 size_t *length);

/**
 * Write the tokenizer to a file in the format of docs/tokenizer.md,
 * replacing the file atomically as tlm_model_save() does (a temporary file
 * in the same directory, flushed and renamed over `path`).
 * @return TLM_OK, TLM_E_IO (with the system's reason), TLM_E_NOMEM,
 *         TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_save(tlm_tokenizer *tok, const char *path);

/**
 * Write the tokenizer's file image into a buffer.
 * @param tok         the tokenizer
 * @param[out] buffer room for `capacity` bytes; NULL (with capacity 0) to
 *                    only ask for the size
 * @param capacity    bytes that fit in `buffer`
 * @param[out] size   receives the image's size in bytes, also when it
 *                    does not fit
 * @return TLM_OK; TLM_E_RANGE when `capacity` is too small (nothing is
 *         written); TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_save_memory(tlm_tokenizer *tok, void *buffer,
                                      size_t capacity, size_t *size);

/**
 * Read a tokenizer from a file written by tlm_tokenizer_save().
 * @param[out] out the tokenizer, or NULL on failure
 * @param ctx      hooks as in tlm_tokenizer_train(), or NULL
 * @param path     the file
 * @return TLM_OK, TLM_E_IO, TLM_E_FORMAT and TLM_E_VERSION as for
 *         tlm_tokenizer_load_memory(), TLM_E_NOMEM, TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_load(tlm_tokenizer **out, tlm_context *ctx,
                               const char *path);

/**
 * Read a tokenizer from a file image in memory (exactly `size` bytes).
 * Everything is validated; any byte string is safe to pass.
 * @param[out] out the tokenizer, or NULL on failure
 * @param ctx      hooks as in tlm_tokenizer_train(), or NULL
 * @param data     the image; may be NULL when `size` is 0
 * @param size     its size in bytes
 * @return TLM_OK; TLM_E_FORMAT for a malformed, truncated or corrupt image
 *         (the message says what is wrong at which byte offset);
 *         TLM_E_VERSION for an image of a newer format version;
 *         TLM_E_NOMEM; TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_load_memory(tlm_tokenizer **out, tlm_context *ctx,
                                      const void *data, size_t size);

/**
 * Read a published tokenizer, the format detected from the content
 * (docs/tokenizer.md, "GPT-2" and "SentencePiece"):
 * - a directory holding SentencePiece's `tokenizer.model`, or OpenAI's
 *   `encoder.json` + `vocab.bpe`, or Hugging Face's names for the same
 *   files, `vocab.json` + `merges.txt`;
 * - a SentencePiece model file (`tokenizer.model`, a protobuf ModelProto)
 *   of a BPE model with the identity normalizer: a ::TLM_TOKENIZER_SENTENCEPIECE
 *   tokenizer. Unigram, word and character models, normalizers other
 *   than identity (`nmt_nfkc`, ...: tlm does not normalize),
 *   remove_extra_whitespaces, user-defined and unused pieces are
 *   TLM_E_UNSUPPORTED naming the field;
 * - llama2.c's `tokenizer.bin` (a max_token_length, then per token a
 *   float score, a length and its bytes, spaces written as ' '; ids 0, 1, 2
 *   unknown, begin, end; `<0xNN>` pieces are byte fallback): a
 *   ::TLM_TOKENIZER_SENTENCEPIECE tokenizer;
 * - a file in tiktoken's rank format (`gpt2.tiktoken`-style: a base64
 *   token, a space and its rank per line; the rank is the id and the
 *   merges are derived from the ranks): a ::TLM_TOKENIZER_GPT2 tokenizer;
 * - a file written by tlm_tokenizer_save(), of any kind.
 * GPT-2 vocabularies: `<|endoftext|>` is the special token; a vocabulary
 * without it (a tiktoken file) gets it as its last id.
 * @param[out] out the tokenizer, or NULL on failure
 * @param ctx      hooks as in tlm_tokenizer_train(), or NULL
 * @param path     the directory or file
 * @return TLM_OK; TLM_E_IO when a file is missing or unreadable;
 *         TLM_E_FORMAT for malformed content (the message names the file
 *         and the line, byte offset or field); TLM_E_UNSUPPORTED for a
 *         SentencePiece model tlm cannot encode exactly; TLM_E_NOMEM;
 *         TLM_E_INVALID
 */
TLM_API int tlm_tokenizer_import(tlm_tokenizer **out, tlm_context *ctx,
                                 const char *path);

/**
 * Write a tokenizer in its kind's published form into the directory `dir`
 * (created if absent; each file replaced atomically), which
 * tlm_tokenizer_import() reads back to the same ids: a ::TLM_TOKENIZER_GPT2
 * tokenizer as `encoder.json` + `vocab.bpe`, a ::TLM_TOKENIZER_SENTENCEPIECE
 * tokenizer as `tokenizer.model` (a ModelProto the sentencepiece library
 * loads and encodes with the same ids).
 * `tok` is const: a failure is recorded only in tlm_last_error().
 * @return TLM_OK; TLM_E_INVALID for another kind or NULL arguments;
 *         TLM_E_IO; TLM_E_NOMEM
 */
TLM_API int tlm_tokenizer_export(const tlm_tokenizer *tok, const char *dir);

/** File formats of tlm_tokenizer_export_as(). */
enum tlm_tokenizer_format {
    TLM_TOKENIZER_FORMAT_TLM = 0,           /**< tlm_tokenizer_save()'s file */
    TLM_TOKENIZER_FORMAT_GPT2 = 1,          /**< a directory: encoder.json +
                                                 vocab.bpe */
    TLM_TOKENIZER_FORMAT_SENTENCEPIECE = 2, /**< a tokenizer.model file */
    TLM_TOKENIZER_FORMAT_LLAMA2C = 3        /**< llama2.c's tokenizer.bin
                                                 file */
};

/**
 * Write a tokenizer in the ::tlm_tokenizer_format `format` at `path` (a
 * file, replaced atomically; a directory, created if absent, for
 * TLM_TOKENIZER_FORMAT_GPT2). TLM_TOKENIZER_FORMAT_TLM holds every kind;
 * GPT2 only ::TLM_TOKENIZER_GPT2; SENTENCEPIECE and LLAMA2C only
 * ::TLM_TOKENIZER_SENTENCEPIECE, and LLAMA2C only what tokenizer.bin can
 * say (unknown, begin, end at ids 0, 1, 2, no padding id, the dummy prefix,
 * the default unknown surface, byte fallback exactly when the model has
 * byte pieces). Nothing is written on failure.
 * `tok` is const: a failure is recorded only in tlm_last_error().
 * @return TLM_OK; TLM_E_UNSUPPORTED for a kind or model the format cannot
 *         hold (the message names the field); TLM_E_INVALID for NULL
 *         arguments or an unknown format; TLM_E_IO; TLM_E_NOMEM
 */
TLM_API int tlm_tokenizer_export_as(const tlm_tokenizer *tok, const char *path,
                                    int32_t format);

/**
 * Opaque streaming decoder: ids go in one at a time, text comes out in
 * pieces that never end inside a UTF-8 character. A stream reads its
 * tokenizer, which must outlive it.
 */
typedef struct tlm_token_stream tlm_token_stream;

/**
 * Create a streaming decoder for `tok`, with the tokenizer's hooks.
 * @param[out] out the stream, or NULL on failure
 * @param tok      the tokenizer it decodes for
 * @return TLM_OK, TLM_E_NOMEM, TLM_E_INVALID
 */
TLM_API int tlm_token_stream_create(tlm_token_stream **out,
                                    tlm_tokenizer *tok);

/** Free a token stream. NULL is ignored. */
TLM_API void tlm_token_stream_free(tlm_token_stream *stream);

/**
 * Feed one id and receive the text that is now complete. The bytes of an
 * unfinished UTF-8 character at the end are held back until a later id
 * completes the character, or shows that it cannot be completed (the held
 * bytes are then given out as they are), or until
 * tlm_token_stream_flush(). The pieces concatenate to
 * tlm_tokenizer_decode() of the same ids.
 * @param stream      the stream
 * @param id          a token id
 * @param[out] piece  receives a pointer to the piece (never NULL), valid
 *                    until the next call on the stream
 * @param[out] length receives the piece's length, possibly 0
 * @return TLM_OK; TLM_E_RANGE for an id outside the vocabulary (the
 *         stream is unchanged and the piece empty); TLM_E_INVALID
 */
TLM_API int tlm_token_stream_push(tlm_token_stream *stream, int32_t id,
                                  const char **piece, size_t *length);

/**
 * End the text: receive the held-back bytes (an unfinished character, as
 * it is) and start afresh. `piece` and `length` as for
 * tlm_token_stream_push().
 */
TLM_API int tlm_token_stream_flush(tlm_token_stream *stream,
                                   const char **piece, size_t *length);

/** The detailed message of the stream's last failure ("" if none). */
TLM_API const char *tlm_token_stream_last_error(
    const tlm_token_stream *stream);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Transformer model
 *
 * A transformer built from the operations above: token embedding, position
 * encoding, a stack of encoder layers and/or a stack of decoder layers
 * (self-attention, cross-attention in encoder-decoder models, feedforward,
 * norms and residual connections), final norm and output projection. The
 * architecture is specified in docs/model.md; every option below is
 * described there.
 *  @{ */

/** Opaque model handle: its parameters are leaf tensors of a context. */
typedef struct tlm_model tlm_model;

/** Position encodings (tlm_model_config::position). */
enum tlm_position {
    TLM_POSITION_LEARNED = 0,    /**< a trained [max_context, D] table */
    TLM_POSITION_SINUSOIDAL = 1, /**< the fixed sin/cos encoding */
    TLM_POSITION_ROTARY = 2      /**< RoPE on queries and keys */
};

/** Normalizations (tlm_model_config::norm). */
enum tlm_norm {
    TLM_NORM_LAYER = 0, /**< LayerNorm */
    TLM_NORM_RMS = 1    /**< RMSNorm */
};

/** Where the norms sit (tlm_model_config::norm_placement). */
enum tlm_norm_placement {
    TLM_NORM_PRE = 0, /**< x + f(norm(x)), and a final norm (GPT-2) */
    TLM_NORM_POST = 1 /**< norm(x + f(x)) (the original transformer) */
};

/** Feedforward activations (tlm_model_config::activation). */
enum tlm_activation {
    TLM_ACTIVATION_GELU = 0,       /**< GELU, tanh form */
    TLM_ACTIVATION_GELU_EXACT = 1, /**< GELU with erf */
    TLM_ACTIVATION_RELU = 2,       /**< ReLU */
    TLM_ACTIVATION_SWIGLU = 3      /**< SwiGLU gated unit */
};

/**
 * The architecture of a model. Fill with tlm_model_config_init(), then set
 * at least vocab_size. Zero-valued sizes marked "0 means" take the stated
 * default.
 */
typedef struct tlm_model_config {
    size_t struct_size;         /**< sizeof(tlm_model_config); set by init */
    int32_t vocab_size;         /**< V, number of token ids (required) */
    int32_t d_model;            /**< D, model width; default 128 */
    int32_t n_heads;            /**< attention heads; default 4 */
    int32_t head_dim;           /**< width of a head; 0 means D / n_heads */
    int32_t d_ff;               /**< feedforward width; 0 means 4 D */
    int32_t n_encoder_layers;   /**< encoder layers; default 0 */
    int32_t n_decoder_layers;   /**< decoder layers; default 4 */
    int32_t max_context;        /**< longest sequence; default 256 */
    int32_t position;           /**< a tlm_position; default learned */
    int32_t norm;               /**< a tlm_norm; default layer */
    int32_t norm_placement;     /**< a tlm_norm_placement; default pre */
    int32_t activation;         /**< a tlm_activation; default gelu */
    int32_t bias;               /**< 1: biases in projections and LayerNorm */
    int32_t tied_output;        /**< 1: output projection = token embedding */
    float embedding_dropout;    /**< dropout after the input embedding */
    float residual_dropout;     /**< dropout on each sub-layer's output */
    float norm_eps;             /**< epsilon of the norms; default 1e-5 */
    float rope_base;            /**< rotary base; default 10000 */
    uint64_t init_seed;         /**< seed of the initialisation; default 0 */
    int32_t n_kv_heads; /**< key/value heads: 0 (default) means n_heads; must
                             divide n_heads (grouped-query attention; 1 =
                             multi-query). Query head h uses key/value head
                             h / (n_heads / n_kv_heads); the k and v
                             projections are [n_kv_heads * head_dim, D] */
} tlm_model_config;

/** Fill `config` with the defaults (a small GPT) and set its struct_size. */
TLM_API int tlm_model_config_init(tlm_model_config *config);

/**
 * Create a model with freshly initialised parameters (GPT-2 style, from
 * config->init_seed) as leaf tensors of `ctx` that require gradients.
 * Every invalid combination (zero vocabulary, heads not dividing the width,
 * no layers, ...) is TLM_E_INVALID with a message naming the field.
 */
TLM_API int tlm_model_create(tlm_model **out, tlm_context *ctx,
                             const tlm_model_config *config);

/**
 * Free a model and its parameters. NULL is ignored. Any order with its
 * context and the other handles is fine: a model keeps its context alive,
 * and this frees the context too when tlm_context_free() came first and
 * the model was its last handle (docs/conventions.md, "Ownership").
 * Sessions and trainers of the model may be freed after it, but not used.
 */
TLM_API void tlm_model_free(tlm_model *model);

/**
 * The context the model lives in (its parameters, allocator and log hooks),
 * for creating what goes with it (a sampler, a dataset) without a second
 * context; NULL for a NULL model. Like tlm_tensor_context(), it returns the
 * owner, which the const model does not include.
 */
TLM_API tlm_context *tlm_model_context(const tlm_model *model);

/**
 * Copy the model's configuration, with every default resolved (head_dim,
 * d_ff and n_kv_heads never 0), into `config`, filled first with tlm_model_config_init()
 * (its struct_size says how much the caller's struct holds).
 */
TLM_API int tlm_model_get_config(const tlm_model *model,
                                 tlm_model_config *config);

/** Total number of parameters (scalars), or a negative status. */
TLM_API int64_t tlm_model_parameter_count(const tlm_model *model);

/** Number of parameter tensors, or a negative status. */
TLM_API int32_t tlm_model_parameter_tensor_count(const tlm_model *model);

/**
 * The index-th parameter tensor (0-based, in a fixed order) and its name as
 * in docs/model.md. The name stays valid as long as the model. In a
 * quantized model (tlm_model_weight_format()) the matrices have the dtype
 * TLM_DTYPE_BF16 or TLM_DTYPE_Q8 (read them with tlm_tensor_get_f32()) and
 * no parameter requires a gradient.
 */
TLM_API int tlm_model_parameter(const tlm_model *model, int32_t index,
                                const char **name, tlm_tensor **tensor);

/** The parameter called `name`, or TLM_E_RANGE if there is none. */
TLM_API int tlm_model_find_parameter(const tlm_model *model, const char *name,
                                     tlm_tensor **tensor);

/**
 * A copy of `model` in the same context (its tokenizer copied too) whose
 * matrices (attention and feedforward projections, token and learned
 * position embeddings, the untied output layer) are stored in `format`;
 * norm gains and biases stay float32. TLM_WEIGHTS_F32 dequantizes (the
 * result is trainable). A quantized model runs sessions, generation,
 * scoring and tlm_model_forward(), saves and loads (memory-mapped too) in
 * its format, and refuses training. Its matrix parameters have the dtype
 * TLM_DTYPE_BF16 or TLM_DTYPE_Q8.
 * @param[out] out  the new model, or NULL on failure
 * @param model     any model (float32 or quantized; it is not changed)
 * @param format    an enum tlm_weight_format
 * @return TLM_OK, TLM_E_INVALID (a NULL argument, an unknown format, a
 *         matrix holding NaN or infinity to be stored in bf16 or int8:
 *         the message names the tensor; a float32 copy of a float32 model
 *         copies its values as they are), TLM_E_NOMEM
 */
TLM_API int tlm_model_quantize(tlm_model **out, const tlm_model *model,
                               int32_t format);

/**
 * The model's enum tlm_weight_format, or -1 (and an error in
 * tlm_last_error()) for a NULL model.
 */
TLM_API int32_t tlm_model_weight_format(const tlm_model *model);

/**
 * Attach a copy of `tokenizer` to the model (replacing any), so that it is
 * saved in the model's .tlm file and comes back with tlm_model_load(). Its
 * vocabulary size must equal the model's vocab_size. NULL detaches.
 */
TLM_API int tlm_model_set_tokenizer(tlm_model *model, tlm_tokenizer *tokenizer);

/**
 * The tokenizer attached to the model (owned by the model, valid until it
 * is replaced or the model freed), or NULL when there is none. The model
 * is not const: the tokenizer is part of it, and using it (encoding
 * records failures in it) changes it.
 */
TLM_API tlm_tokenizer *tlm_model_tokenizer(tlm_model *model);

/**
 * Write the model's parameters to a safetensors file (F32 tensors named as
 * in docs/model.md; the configuration as JSON in the metadata entry
 * "tlm.config"), the format PyTorch and Hugging Face tools exchange weights
 * in. The file is written atomically (a temporary file renamed over
 * `path`).
 */
TLM_API int tlm_model_export_safetensors(const tlm_model *model,
                                         const char *path);

/**
 * Create a model in `ctx` from a safetensors file written by
 * tlm_model_export_safetensors() or by any tool that follows docs/model.md:
 * the configuration comes from the "tlm.config" metadata entry, every
 * parameter must be present with its documented shape (F32, or F16/BF16
 * converted), and tensors that are not parameters are ignored. The file
 * is checked as docs/format-safetensors.md says (as the reference
 * implementation does: the tensors cover the data section exactly,
 * integer shapes); a NaN or infinite weight is refused (tlm_model_import()
 * with allow_nonfinite accepts it).
 * @return TLM_E_IO, TLM_E_FORMAT (not a safetensors file, a malformed
 *         file, a missing or misshapen parameter, no configuration, a NaN
 *         or infinite weight), TLM_E_UNSUPPORTED, TLM_E_NOMEM, with a
 *         message naming the file and the tensor (and the element)
 */
TLM_API int tlm_model_import_safetensors(tlm_model **out, tlm_context *ctx,
                                         const char *path);

/** Model file formats (tlm_model_import_params::format,
 *  tlm_model_export_params::format); docs/formats-import.md lists exactly
 *  which files and fields each accepts. */
enum tlm_model_format {
    TLM_MODEL_FORMAT_AUTO = 0,        /**< import: detect from the content */
    TLM_MODEL_FORMAT_TLM = 1,         /**< tlm's .tlm file */
    TLM_MODEL_FORMAT_SAFETENSORS = 2, /**< tlm's own safetensors naming with
                                           "tlm.config" metadata */
    TLM_MODEL_FORMAT_HF = 3,          /**< Hugging Face: model.safetensors (or a
                                           sharded index) + config.json;
                                           GPT2LMHeadModel or
                                           LlamaForCausalLM */
    TLM_MODEL_FORMAT_LLMC = 4,        /**< llm.c GPT-2 checkpoint: version 3
                                           float32, version 5 bfloat16 */
    TLM_MODEL_FORMAT_LLAMA2C = 5      /**< llama2.c checkpoint: import the
                                           legacy format (run.c's) and
                                           export.py's "ak42" version 1;
                                           export the legacy format */
};

/** Element types of exported weights (tlm_model_export_params::weight_type). */
enum tlm_weight_type {
    TLM_WEIGHT_F32 = 0,  /**< IEEE float32 */
    TLM_WEIGHT_F16 = 1,  /**< IEEE half, rounded to nearest even */
    TLM_WEIGHT_BF16 = 2  /**< bfloat16, rounded to nearest even */
};

/** Settings of tlm_model_import(). Fill with tlm_model_import_params_init(). */
typedef struct tlm_model_import_params {
    size_t struct_size; /**< sizeof(tlm_model_import_params); set by init */
    /** A ::tlm_model_format; default TLM_MODEL_FORMAT_AUTO (detected from
     *  the content, never from the name). */
    int32_t format;
    /** Hugging Face: the config.json to read; NULL (default): the
     *  config.json in the directory of the weights. */
    const char *config_path;
    /** Hugging Face: use this configuration instead of a config.json
     *  (filled with tlm_model_config_init(): position learned, LayerNorm,
     *  pre-norm, biases, as GPT-2 has; or rotary, RMSNorm, SwiGLU, no
     *  biases, which reads Llama's names); NULL (default). */
    const tlm_model_config *config;
    /** 1 accepts weights that are NaN or infinite (for debugging a broken
     *  checkpoint); 0 (default) refuses them with TLM_E_FORMAT, naming the
     *  tensor and the element: safetensors, Hugging Face, llm.c and
     *  llama2.c imports (a .tlm file is loaded as tlm_model_load() does,
     *  which trusts float32 values). */
    int32_t allow_nonfinite;
} tlm_model_import_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_model_import_params_init(tlm_model_import_params *params);

/**
 * Create a model in `ctx` from a file another program wrote, its format
 * detected from the content unless params->format says it: a .tlm file
 * (as tlm_model_load()), a tlm safetensors export (as
 * tlm_model_import_safetensors()), a Hugging Face GPT-2 or Llama
 * checkpoint (`path` is the directory, its model.safetensors, or its
 * model.safetensors.index.json; F32, F16 or BF16 tensors; the
 * configuration from config.json beside it, params->config_path or
 * params->config; Llama's q and k rows are converted exactly from its
 * half-split rotary layout to tlm's interleaved pairs), an llm.c
 * checkpoint (version 3 or 5) or a llama2.c checkpoint (the legacy format
 * run.c reads, detected by its header implying the file's size, or
 * export.py's "ak42" version 1; version 2 (int8) is TLM_E_UNSUPPORTED).
 * The weights are mapped or streamed tensor by tensor, so the model's
 * float32 parameters are the only full copy in memory. `params` may be
 * NULL. Nothing is created on failure.
 * @return TLM_E_IO (cannot open or read), TLM_E_FORMAT (malformed, a
 *         missing tensor, a shape that disagrees with the configuration, a
 *         vocabulary that does not match the embedding, a llama2.c header
 *         whose dims disagree or whose implied size is not the file's,
 *         naming both sizes; a weight that is NaN or infinite, unless
 *         params->allow_nonfinite, naming the tensor and element),
 *         TLM_E_UNSUPPORTED (an unknown architecture,
 *         a configuration field tlm cannot compute such as rope_scaling or
 *         biases in a Llama, a llama2.c version other than 1, a size
 *         beyond tlm_model_create()'s limits),
 *         TLM_E_INVALID, TLM_E_NOMEM; the message names the file and the
 *         tensor or field
 */
TLM_API int tlm_model_import(tlm_model **out, tlm_context *ctx,
                             const char *path,
                             const tlm_model_import_params *params);

/** Settings of tlm_model_export(). Fill with tlm_model_export_params_init(). */
typedef struct tlm_model_export_params {
    size_t struct_size; /**< sizeof(tlm_model_export_params); set by init */
    /** A ::tlm_model_format other than AUTO: required (the default, AUTO,
     *  is refused). */
    int32_t format;
    /** A ::tlm_weight_type; default TLM_WEIGHT_F32. HF: F32, F16 or BF16;
     *  LLMC: F32 (version 3) or BF16 (version 5); TLM, SAFETENSORS and
     *  LLAMA2C: F32. A quantized model (tlm_model_quantize()) is exported
     *  from its dequantized values, converted to this type; TLM keeps its
     *  weight format. */
    int32_t weight_type;
} tlm_model_export_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_model_export_params_init(tlm_model_export_params *params);

/**
 * Write `model` in another program's format. HF: `path` is a directory
 * (created if absent) that receives model.safetensors and config.json,
 * GPT-2's (named as transformers' GPT2LMHeadModel.save_pretrained writes
 * them) or, for a model with rotary positions, RMSNorm and SwiGLU,
 * Llama's (LlamaForCausalLM; q and k rows permuted back to its
 * half-split rotary layout), and the model's tokenizer: vocab.json and
 * merges.txt for a ::TLM_TOKENIZER_GPT2 one (the names transformers'
 * GPT-2 tokenizers read), tokenizer.model for a SentencePiece one;
 * LLMC and LLAMA2C: `path` is the .bin file (LLAMA2C: the legacy float32
 * format llama2.c's run.c reads); TLM and SAFETENSORS: as
 * tlm_model_save() and tlm_model_export_safetensors(). Every file is
 * written atomically. A model the format cannot express (HF GPT-2, LLMC:
 * rotary or sinusoidal positions, RMSNorm, post-norm, SwiGLU, no biases,
 * encoder layers, head_dim * n_heads != d_model; LLMC: an untied output,
 * d_ff other than 4 d_model, an activation other than tanh GELU,
 * norm_eps other than 1e-5; HF Llama: encoder layers, post-norm, biases;
 * LLAMA2C: anything but rotary, RMSNorm, SwiGLU, pre-norm, no biases,
 * no encoder, head_dim * n_heads == d_model, norm_eps 1e-5 and rope_base
 * 10000, which run.c fixes) is TLM_E_UNSUPPORTED with a message naming
 * the field, before anything is written. Each file
 * is replaced atomically, but an HF directory's files one after another:
 * an I/O failure after model.safetensors is in place can leave it beside
 * an older config.json. An HF export of a model without a GPT-2
 * tokenizer into a directory that holds tokenizer files (vocab.json,
 * merges.txt, encoder.json, vocab.bpe), or without a SentencePiece
 * tokenizer into one that holds tokenizer.model, is TLM_E_STATE naming
 * the file, before anything is written: they would be taken for this
 * model's.
 */
TLM_API int tlm_model_export(const tlm_model *model, const char *path,
                             const tlm_model_export_params *params);

/**
 * Save the model as a .tlm file (docs/format.md): configuration,
 * parameters, and a checksum per section. The save is atomic: the file is
 * written under a temporary name in the same directory, flushed to disk and
 * renamed over `path`, so a crash leaves the old file or the new one.
 */
TLM_API int tlm_model_save(const tlm_model *model, const char *path);

/** Settings of tlm_model_load(). Fill with tlm_model_load_params_init(). */
typedef struct tlm_model_load_params {
    size_t struct_size;       /**< sizeof(tlm_model_load_params); set by init */
    /** 1: map the file read-only and use the parameters in place, without
     *  copying (the file must not change while the model lives); the
     *  parameters are then read-only and cannot be trained. Default 0:
     *  the file is mapped only while loading and each parameter copied out
     *  of it, its pages let go once copied, so that the load never holds
     *  the weights twice (the trainable model holds its parameters and
     *  their zeroed gradients). */
    int32_t memory_map;
    /** 0: with memory_map, skip the checksum of the parameter data, and
     *  a quantized model's checks of its values (scales, int8 range,
     *  padding: docs/format.md), so that loading is instant (the header,
     *  table, configuration and index are always checked). Default 1. */
    int32_t verify_checksums;
} tlm_model_load_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_model_load_params_init(tlm_model_load_params *params);

/**
 * Load a model saved by tlm_model_save() into `ctx`. `params` may be NULL.
 * A quantized model's file gives a quantized model (its weight format is
 * in the file), copied or memory-mapped like a float32 one.
 * @return TLM_E_IO (cannot open or read; a directory), TLM_E_FORMAT (not a
 *         .tlm file, truncated, a checksum fails, a malformed configuration
 *         or parameter index), TLM_E_VERSION (written by a newer format
 *         version), TLM_E_NOMEM; the message names the file and what is
 *         wrong
 */
TLM_API int tlm_model_load(tlm_model **out, tlm_context *ctx, const char *path,
                           const tlm_model_load_params *params);

/** What tlm_model_memory_estimate() estimates. */
enum tlm_memory_purpose {
    TLM_MEMORY_INFERENCE = 0, /**< the model plus one tlm_session */
    TLM_MEMORY_TRAINING = 1   /**< parameters, gradients, AdamW state and the
                                   activations of one forward and backward */
};

/**
 * Estimate the memory, in bytes, that the model needs for `purpose` with
 * `batch` sequences of `context` positions (inference: batch must be 1 and
 * context is the session's max_context; training: the batch shape).
 * Inference is exact for the session's buffers (a session with the
 * context's thread count: its GEMM packing space grows with the threads);
 * training counts what the forward pass keeps for backward and the
 * gradient buffers backward holds at most (within a few percent of
 * tlm_context_arena_bytes() after a step; docs/performance.md, "Training
 * memory", lists the buffers). The parameters count with
 * their real bytes: a quantized model's matrices at 2 (bf16) or 1.125
 * (int8) bytes a weight.
 */
TLM_API int tlm_model_memory_estimate(const tlm_model *model, int32_t purpose,
                                      int32_t batch, int32_t context,
                                      int64_t *bytes);

/**
 * What one forward pass reads. Fill with tlm_batch_init(). All tensors are
 * i32 and belong to the model's context; shapes use B (batch) and T
 * (sequence length, at most max_context).
 */
typedef struct tlm_batch {
    size_t struct_size;   /**< sizeof(tlm_batch); set by init */
    tlm_tensor *ids;      /**< [B, T] token ids: decoder input, or the
                               encoder input of an encoder-only model */
    tlm_tensor *targets;  /**< [B, T] class ids, -1 ignored; or NULL */
    tlm_tensor *mask;     /**< encoder-only: [B, T] 1 = token, 0 = padding;
                               or NULL */
    tlm_tensor *src_ids;  /**< encoder-decoder: [B, Ts] source ids */
    tlm_tensor *src_mask; /**< encoder-decoder: [B, Ts] source padding mask,
                               or NULL */
} tlm_batch;

/** Clear `batch` and set its struct_size. */
TLM_API int tlm_batch_init(tlm_batch *batch);

/**
 * The training forward pass through the autodiff engine, in the model's
 * context: logits [B, T, V] and, when targets are given, the mean
 * cross-entropy loss [1], ready for tlm_backward(). Dropout follows the
 * context's training mode.
 * @param[out] logits the logits (required)
 * @param[out] loss   the loss, or NULL when not wanted; set to NULL when
 *                    the batch has no targets
 */
TLM_API int tlm_model_forward(tlm_model *model, const tlm_batch *batch,
                              tlm_tensor **logits, tlm_tensor **loss);

/**
 * The attention probabilities of decoder layer `layer`'s self-attention
 * for the sequence `ids` (positions 0..n-1, causal), for looking at what a
 * model attends to: weights[(h * n + i) * n + j] is how much query
 * position i of head h attends to key position j; each row sums to 1 and
 * j > i is 0. Computed by a session of its own (one pass, one thread,
 * the reference kernels; the layers below `layer` run in full) whose
 * attention hands the scores to a softmax in double; dropout is not
 * applied.
 * Only reads the model.
 * @param model   a decoder-only model
 * @param ids     `n` token ids in 0..vocab_size-1
 * @param n       1..max_context
 * @param layer   0..n_decoder_layers-1
 * @param[out] weights room for n_heads * n * n floats
 * @return TLM_OK, TLM_E_INVALID (NULL pointers), TLM_E_STATE (not a
 *         decoder-only model), TLM_E_RANGE (n, layer or an id out of
 *         range), TLM_E_OVERFLOW, TLM_E_NOMEM
 */
TLM_API int tlm_model_attention_weights(const tlm_model *model,
                                        const int32_t *ids, size_t n,
                                        int32_t layer, float *weights);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Inference sessions (KV cache)
 *
 * A session runs a model forward without the autodiff engine, keeping the
 * keys and values of every position it has seen (the KV cache), so that
 * generating one more token costs one position's work. A session only
 * reads its model: any number of sessions, in any number of threads, may
 * share one model as long as nothing modifies the model meanwhile. One
 * session is used by one thread at a time.
 *
 * Each session has its own pool of compute threads (`n_threads` in its
 * settings), started on its first product large enough to split and used
 * only by calls on that session: sessions in different threads never
 * share workers, and the model's context's pool is not touched.
 *  @{ */

/** Opaque inference session handle. */
typedef struct tlm_session tlm_session;

/** Settings of tlm_session_create(). Fill with tlm_session_params_init(). */
typedef struct tlm_session_params {
    size_t struct_size;   /**< sizeof(tlm_session_params); set by init */
    /** Most positions processed in one pass: a longer prompt is fed in
     *  chunks of this size (the result is the same). 0 means 64. */
    int32_t chunk_tokens;
    /** Compute threads of the session's own pool (the calling thread is
     *  one of them), 0..1024; 0 means the thread count of the model's
     *  context (tlm_context_thread_count()). The logits are bitwise the
     *  same for any value. Default 0. */
    int32_t n_threads;
} tlm_session_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_session_params_init(tlm_session_params *params);

/**
 * Create a session for `model`, allocating its caches for max_context
 * positions from the model's context's allocator. `params` may be NULL.
 */
TLM_API int tlm_session_create(tlm_session **out, const tlm_model *model,
                               const tlm_session_params *params);

/**
 * Free a session. NULL is ignored. Any order with its model, context and
 * the other handles is fine: a session keeps its model's context alive
 * and frees it when it was the last handle after tlm_context_free().
 */
TLM_API void tlm_session_free(tlm_session *session);

/** Forget every position (and the encoded source): start a new sequence. */
TLM_API int tlm_session_reset(tlm_session *session);

/**
 * Make `dst` continue exactly where `src` is: its positions, the decoder's
 * keys and values up to the position and, for an encoder-decoder model, the
 * encoded source with every decoder layer's cross-attention keys and
 * values. Decoding the same ids in both then gives the same logits. Both
 * sessions must run the same model (else TLM_E_INVALID); `src` is only
 * read. Allocates nothing; costs a copy of the filled part of the caches.
 * Beam search keeps one session per hypothesis this way.
 */
TLM_API int tlm_session_copy(tlm_session *dst, const tlm_session *src);

/** Positions in the decoder's cache (tokens decoded so far), or a negative
 *  status. */
TLM_API int32_t tlm_session_position(const tlm_session *session);

/**
 * Run the encoder over a source of `n` ids.
 * - encoder-decoder model: the encoder output is kept (with each decoder
 *   layer's cross-attention keys and values) for the decoding that
 *   follows; the decoder's cache is cleared; `logits` must be NULL.
 * - encoder-only model: `logits` [n, V] receives the output for every
 *   position (or NULL).
 * @param src_mask NULL, or n flags: 1 token, 0 padding (never attended)
 * @return TLM_E_STATE for a decoder-only model; TLM_E_RANGE for an id
 *         outside the vocabulary or n outside 1..max_context
 */
TLM_API int tlm_session_encode(tlm_session *session, const int32_t *src_ids,
                               size_t n, const int32_t *src_mask,
                               float *logits);

/**
 * Feed `n` ids at the next positions of the decoder (a prompt, or one
 * generated token) and compute logits.
 * @param logits      [logits_rows, V] floats, or NULL when logits_rows is 0
 * @param logits_rows 0: none; 1: the last position's logits only; n: every
 *                    position's, in order
 * @return TLM_E_RANGE when the cache would pass max_context (nothing is
 *         consumed then: reset, or start again with a shorter window), or
 *         for an id outside the vocabulary; TLM_E_STATE for an
 *         encoder-only model, or an encoder-decoder model before
 *         tlm_session_encode()
 */
TLM_API int tlm_session_decode(tlm_session *session, const int32_t *ids,
                               size_t n, float *logits, int32_t logits_rows);

/** The detailed message of the session's last failure ("" if none). */
TLM_API const char *tlm_session_last_error(const tlm_session *session);

/**
 * Settings of tlm_beam_search(). Fill with tlm_beam_search_params_init(), then set
 * at least bos_id and eos_id.
 */
typedef struct tlm_beam_search_params {
    size_t struct_size;   /**< sizeof(tlm_beam_search_params); set by init */
    /** Hypotheses kept at each step, 1..256; 1 is greedy decoding.
     *  Default 4. */
    int32_t beam_width;
    /** Most tokens generated, the end id included: 1..max_context; 0
     *  means max_context (the decoder sees bos and max_length - 1 more
     *  ids). Default 0. */
    int32_t max_length;
    int32_t bos_id;       /**< the decoder's start id; default 0 */
    /** The end id: a hypothesis that produces it is finished (the end id
     *  is scored but not returned); -1: none, hypotheses end at
     *  max_length. Default -1. */
    int32_t eos_id;
    /** GNMT's length penalty alpha, >= 0: a finished hypothesis of `len`
     *  scored tokens (its ids, plus the end id if it ended on it) scores
     *  logprob / ((5 + len) / 6)^alpha; 0: the plain log-probability.
     *  Default 0. */
    float length_penalty;
    /** NULL, or beam_width - 1 (or more) sessions of the same model, all
     *  distinct and distinct from the main session, used as the other
     *  hypotheses' KV caches (their contents are replaced). NULL: the call
     *  creates beam_width - 1 sessions and frees them before it returns. */
    tlm_session *const *sessions;
    int32_t n_sessions;   /**< entries in `sessions` */
} tlm_beam_search_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_beam_search_params_init(tlm_beam_search_params *params);

/**
 * Decode a source with an encoder-decoder model by beam search (greedy
 * when params->beam_width is 1); docs/seq2seq.md describes it.
 *
 * The source is encoded once, in `session`; the decoder starts from
 * bos_id. At each step every live hypothesis's next-token log-probabilities
 * (log-softmax of the logits) extend it; of all extensions, ranked by
 * log-probability (ties: lower token id, then the better parent), the
 * end id among the first beam_width finishes a hypothesis, and the best
 * beam_width others stay live. A hypothesis also finishes when it reaches
 * max_length tokens. The search stops when no hypothesis is live, when
 * beam_width have finished, or when no live one can still beat the best
 * finished one. The result is the finished hypothesis with the best score
 * (ties: the first found). Deterministic.
 *
 * Memory: beam_width sessions (`session` and beam_width - 1 from
 * params->sessions, or created for the call: each the size of
 * tlm_model_memory_estimate()'s inference figure minus the parameters),
 * plus about beam_width * (vocab_size + 2 max_length) * 4 bytes for the
 * call, from the model's context's allocator.
 *
 * @param session       a session of an encoder-decoder model; its
 *                      contents are replaced; its last error records
 *                      failures
 * @param src_ids       the source, `n_src` ids (1..max_context)
 * @param n_src         ids in `src_ids`
 * @param src_mask      NULL, or n_src flags: 1 token, 0 padding
 * @param params        NULL: the defaults
 * @param[out] ids      the best hypothesis's ids, without bos and eos
 * @param capacity      entries in `ids`; max_length is always enough
 * @param[out] n_ids    number of ids; < max_length exactly when the
 *                      hypothesis ended on eos_id
 * @param[out] score    its score (length-penalised log-probability), or
 *                      NULL
 * @return TLM_E_STATE for a model that is not encoder-decoder;
 *         TLM_E_INVALID for bad settings or a pool that does not fit;
 *         TLM_E_RANGE for an id outside the vocabulary, or when the result
 *         needs more than `capacity` ids (n_ids then says how many);
 *         TLM_E_NOMEM
 */
TLM_API int tlm_beam_search(tlm_session *session, const int32_t *src_ids,
                            size_t n_src, const int32_t *src_mask,
                            const tlm_beam_search_params *params, int32_t *ids,
                            size_t capacity, size_t *n_ids, double *score);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Samplers
 *
 * A sampler turns the logits a model produced for the next token into the
 * next token. It applies, in this order:
 *
 * 1. **penalties** on tokens in its record of recent tokens (see
 *    tlm_sampler_accept()): the repetition penalty r of the CTRL paper
 *    (a positive logit is divided by r, a negative one multiplied by r),
 *    then the frequency and presence penalties of the OpenAI API
 *    (logit -= count * frequency_penalty + presence_penalty, where count
 *    is how often the token occurs in the window);
 * 2. **temperature** T: logits / T; T = 0 is greedy decoding (argmax);
 * 3. **top-k**: only the k most probable tokens stay;
 * 4. **top-p** (nucleus): only the smallest set of most probable tokens
 *    whose probability mass reaches top_p stays;
 * 5. **min-p**: only tokens whose probability is at least min_p times the
 *    most probable token's stay;
 * 6. the remaining probabilities are **renormalized** and one token is
 *    **drawn** with the sampler's own generator (xoshiro256**, seeded).
 *
 * Ties are resolved towards the lowest token id: greedy decoding returns
 * the lowest id among equal maxima, and top-k and top-p keep the lower id
 * when equal probabilities straddle their boundary. A logit of -infinity
 * marks an impossible token (it is never chosen); NaN and +infinity are
 * errors. docs/sampling.md explains each step with a worked example.
 *
 * After its first call for a vocabulary size, tlm_sampler_sample() does
 * not allocate again for that size or a smaller one. One sampler is used by
 * one thread at a time.
 *  @{ */

/** Opaque sampler handle. */
typedef struct tlm_sampler tlm_sampler;

/**
 * Settings of tlm_sampler_create(). Fill with tlm_sampler_params_init(),
 * whose defaults (temperature 1, every filter and penalty off) sample from
 * the model's softmax unchanged. Each out-of-domain value makes
 * tlm_sampler_create() fail with TLM_E_INVALID and a message naming the
 * field.
 */
typedef struct tlm_sampler_params {
    size_t struct_size;       /**< sizeof(tlm_sampler_params); set by init */
    /** Divides the logits: finite and >= 0; 0 means greedy (argmax, no
     *  random draw). Default 1. */
    float temperature;
    /** Keep only the k most probable tokens: >= 0; 0 means off.
     *  Default 0. */
    int32_t top_k;
    /** Keep the smallest set of most probable tokens whose mass is at
     *  least top_p: in (0, 1]; 1 means off. Default 1. */
    float top_p;
    /** Keep tokens whose probability is at least min_p times the largest:
     *  in [0, 1); 0 means off. Default 0. */
    float min_p;
    /** Repetition penalty r for tokens in the window: positive logits are
     *  divided by r, negative ones multiplied by r. Finite and >= 1; 1
     *  means off. Default 1. */
    float repetition_penalty;
    /** Subtracted from a token's logit once per occurrence in the window
     *  (negative values encourage repetition). Finite; default 0. */
    float frequency_penalty;
    /** Subtracted from the logit of every token that occurs in the window
     *  at least once. Finite; default 0. */
    float presence_penalty;
    /** How many of the most recently accepted tokens the penalties look
     *  at: >= 0; 0 means all of them since the last reset. Default 64. */
    int32_t penalty_window;
    /** Seed of the sampler's random generator. Default 0. */
    uint64_t seed;
} tlm_sampler_params;

/** Fill `params` with the defaults and set its struct_size. Returns
 *  TLM_E_INVALID when `params` is NULL. */
TLM_API int tlm_sampler_params_init(tlm_sampler_params *params);

/**
 * Create a sampler. It uses the allocator and log hooks of `ctx` (copied
 * now: free the sampler before the context) and nothing else of it.
 * @param[out] out    receives the new sampler, or NULL on failure
 * @param      ctx    the context whose hooks the sampler uses
 * @param[in]  params settings, or NULL for the defaults
 * @return TLM_OK, TLM_E_INVALID (NULL argument, or a setting outside its
 *         domain: the message names the field), TLM_E_UNSUPPORTED (a
 *         newer struct sets fields this library does not know),
 *         TLM_E_NOMEM
 */
TLM_API int tlm_sampler_create(tlm_sampler **out, tlm_context *ctx,
                               const tlm_sampler_params *params);

/**
 * Free a sampler and its buffers. NULL is ignored. Any order with its
 * context and the other handles is fine: a sampler keeps its context
 * alive and frees it when it was the last handle after tlm_context_free().
 */
TLM_API void tlm_sampler_free(tlm_sampler *sampler);

/**
 * Copy the sampler's settings into `params`, filled first with
 * tlm_sampler_params_init() (an older, shorter struct receives the fields
 * it has); `seed` is
 * the seed given at creation or by the last tlm_sampler_set_seed().
 */
TLM_API int tlm_sampler_get_params(const tlm_sampler *sampler,
                                   tlm_sampler_params *params);

/**
 * Record a token in the sampler's history: every prompt token and every
 * token chosen, in order. tlm_sampler_sample() does not record the token
 * it returns; the caller accepts it (and may accept another instead).
 * Only the last `penalty_window` tokens are kept when the window is not 0.
 * @return TLM_OK, TLM_E_INVALID (NULL sampler), TLM_E_RANGE (a negative
 *         id), TLM_E_NOMEM (the history could not grow; it is unchanged)
 */
TLM_API int tlm_sampler_accept(tlm_sampler *sampler, int32_t token);

/** Forget the history of accepted tokens (a new sequence begins). The
 *  random generator is not reseeded: see tlm_sampler_set_seed(). */
TLM_API int tlm_sampler_reset(tlm_sampler *sampler);

/** Reseed the sampler's random generator: the same seed gives the same
 *  stream of draws for the same logits and history. */
TLM_API int tlm_sampler_set_seed(tlm_sampler *sampler, uint64_t seed);

/**
 * Choose the next token from `logits` through the pipeline above.
 * @param sampler       the sampler; its history and settings apply
 * @param[in]  logits   `vocab` logits; -infinity marks an impossible token
 * @param      vocab    number of logits, >= 1
 * @param[out] token    the chosen id, in 0..vocab-1
 * @param[out] logprob  NULL, or the natural log of the chosen token's
 *                      probability under the final (filtered,
 *                      renormalized) distribution; 0 in greedy mode. For
 *                      its probability under the model's own softmax, use
 *                      tlm_log_softmax_at().
 * @return TLM_OK; TLM_E_INVALID (NULL pointer, vocab < 1);
 *         TLM_E_NONFINITE (a NaN or +infinity logit, with its position, or
 *         every logit -infinity); TLM_E_RANGE (a token in the penalty
 *         window is outside 0..vocab-1); TLM_E_OVERFLOW, TLM_E_NOMEM (the
 *         work buffer for a larger vocabulary). On failure `*token` is -1.
 */
TLM_API int tlm_sampler_sample(tlm_sampler *sampler, const float *logits,
                               int32_t vocab, int32_t *token,
                               float *logprob);

/**
 * The distribution tlm_sampler_sample() would draw from: `probs[i]` is the
 * probability of token i after penalties, temperature, filters and
 * renormalization (0 for filtered and impossible tokens; in greedy mode 1
 * for the argmax and 0 elsewhere). Draws no random number and leaves the
 * history unchanged. Same arguments and statuses as tlm_sampler_sample().
 * @param[out] probs room for `vocab` floats
 */
TLM_API int tlm_sampler_probabilities(tlm_sampler *sampler,
                                      const float *logits, int32_t vocab,
                                      float *probs);

/** The detailed message of the sampler's last failure ("" if none). */
TLM_API const char *tlm_sampler_last_error(const tlm_sampler *sampler);

/**
 * The log-probability of token `id` under the softmax of the raw logits,
 * log(exp(logits[id]) / sum_j exp(logits[j])), computed stably in double
 * precision: the score of a token under the model, without temperature,
 * filters or penalties. -infinity when logits[id] is -infinity (or when
 * the log-probability is below -FLT_MAX, as for logits -FLT_MAX and
 * FLT_MAX).
 * Errors are reported through tlm_last_error().
 * @return TLM_OK; TLM_E_INVALID (NULL pointer, vocab < 1); TLM_E_RANGE
 *         (id outside 0..vocab-1); TLM_E_NONFINITE (a NaN or +infinity
 *         logit, or every logit -infinity)
 */
TLM_API int tlm_log_softmax_at(const float *logits, int32_t vocab,
                               int32_t id, float *logprob);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Generation and scoring
 *
 * Text in, text out: a prompt is encoded with the tokenizer, fed through a
 * session's KV cache, and tokens are drawn by a sampler one at a time and
 * handed to a callback as they are produced, decoded into text pieces
 * that never split a UTF-8 character. See docs/sampling.md.
 *  @{ */

/**
 * Receives each generated token: its id, the text it completes (`length`
 * bytes, not NUL-terminated; empty while a UTF-8 character is incomplete)
 * and its log-probability under the sampler's final distribution. Return
 * 0 to go on, non-zero to stop.
 */
typedef int (*tlm_token_fn)(void *user, int32_t token, const char *piece,
                            size_t length, float logprob);

/** Settings of tlm_generate(). Fill with tlm_generate_params_init(). */
typedef struct tlm_generate_params {
    size_t struct_size;   /**< sizeof(tlm_generate_params); set by init */
    int32_t max_tokens;   /**< tokens to generate at most; default 256 */
    /** 1 (default): stop after the tokenizer's end-of-text token. */
    int32_t stop_at_eos;
    /** NUL-terminated text that ends the generation once produced (the
     *  text up to and including it has been handed out), or NULL. */
    const char *stop;
    tlm_token_fn callback;  /**< or NULL */
    void *callback_user;    /**< passed to callback */
    /** 0 (default): reset the session and the sampler's history first.
     *  1: continue the conversation already in the session: the prompt
     *  is appended after the session's positions (encoded as continuing
     *  text: no begin id, no dummy prefix, unless the session is empty),
     *  the sampler's history is kept, and every generated token,
     *  the last one included, is left in the session, so the next call
     *  with 1 continues after it (a chat loop computes each token once).
     *  The window does not slide: a prompt that does not fit with room for
     *  one generated token fails with TLM_E_RANGE and changes nothing;
     *  generation stops (TLM_OK) when the context is full. Compare
     *  tlm_session_position() with max_context, and reset to go on. */
    int32_t continue_session;
} tlm_generate_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_generate_params_init(tlm_generate_params *params);

/**
 * Continue `prompt` (`length` bytes, at least one token) with a
 * decoder-only model. A tokenizer that adds a begin id (SentencePiece)
 * puts BOS first, so that its prompt may be empty (BOS alone, whose
 * continuation starts the text and drops its leading space, as llama2.c
 * does). The session is reset, the prompt goes through as one
 * batched forward (its last max_context - 1 tokens when longer), and then
 * up to max_tokens tokens are sampled. When the context fills up, the
 * session is reset and re-fed with the most recent half of the context (a
 * sliding window), so generation can run past max_context.
 * @param[out] n_generated receives the number of tokens generated, or NULL
 * @return TLM_OK (also when the callback or a stop condition ended it),
 *         TLM_E_INVALID, TLM_E_STATE (not a decoder-only model), and the
 *         statuses of the session and the sampler
 */
TLM_API int tlm_generate(tlm_session *session, tlm_sampler *sampler,
                         tlm_tokenizer *tokenizer, const char *prompt,
                         size_t length, const tlm_generate_params *params,
                         int32_t *n_generated);

/**
 * Score text with a decoder-only model: the sum of log p(token | the
 * tokens before it) over the tokens of `text` after the first (which has
 * no context; a SentencePiece tokenizer puts its begin id first, so every
 * token of the text is scored), in nats, and how many tokens were
 * scored. The perplexity
 * is exp(-logprob / n_scored). Text longer than the context is scored in
 * windows that keep half a context of history.
 */
TLM_API int tlm_score_text(tlm_session *session, tlm_tokenizer *tokenizer,
                           const char *text, size_t length, double *logprob,
                           int64_t *n_scored);

/** Most alternatives tlm_score_tokens() reports per position. */
#define TLM_TOP_LOGPROBS_MAX 20

/**
 * The log-probability of one token given the tokens before it, with the
 * most probable alternatives at its position (OpenAI's `logprobs`). Every
 * value is log_softmax of the model's raw logits (no temperature,
 * filters or penalties), in nats.
 */
typedef struct tlm_token_logprob {
    int32_t id;        /**< the token scored */
    float logprob;     /**< log p(id | the tokens before it) */
    /** 0-based rank of `id` among the vocabulary by logprob (0: the most
     *  probable; ties go to the lower id). */
    int32_t rank;
    int32_t n_top;     /**< entries filled in top_ids and top_logprobs */
    /** The n_top most probable ids at this position, most probable first
     *  (ties: lower id first). */
    int32_t top_ids[TLM_TOP_LOGPROBS_MAX];
    float top_logprobs[TLM_TOP_LOGPROBS_MAX]; /**< their logprobs */
} tlm_token_logprob;

/**
 * Per-token log-probabilities of a token sequence under a decoder-only
 * model: `out[i]` scores `ids[i + 1]` given `ids[0..i]` (the first token
 * has no context and is not scored), with the `top_k` most probable
 * alternatives at that position. The sum of out[i].logprob is what
 * tlm_score_text() returns for the same ids. The session is reset first
 * and left holding the sequence (its last max_context positions);
 * sequences longer than the context are scored in windows that keep half
 * a context of history, as tlm_score_text() does.
 * @param session  a session of a decoder-only model
 * @param ids      `n` ids, each in 0..vocab_size-1
 * @param n        2 or more
 * @param top_k    0..TLM_TOP_LOGPROBS_MAX alternatives per position
 * @param[out] out n - 1 entries
 * @return TLM_OK; TLM_E_INVALID (NULL pointer, n < 2, top_k out of
 *         range); TLM_E_STATE (not a decoder-only model); TLM_E_RANGE (an
 *         id outside the vocabulary); TLM_E_NOMEM. Errors are reported
 *         through tlm_session_last_error() and tlm_last_error().
 */
TLM_API int tlm_score_tokens(tlm_session *session, const int32_t *ids,
                             size_t n, int32_t top_k,
                             tlm_token_logprob *out);

/**
 * The log-probability of `continuation` following `prompt`: the sum of
 * log p over the continuation's tokens, each given the prompt and the
 * continuation before it (what a user compares two candidate answers
 * with). Prompt and continuation are encoded apart; a SentencePiece
 * tokenizer puts its begin id before the prompt and no dummy prefix
 * before the continuation (" x" is U+2581 "x", as in the whole text).
 */
TLM_API int tlm_score_continuation(tlm_session *session,
                                   tlm_tokenizer *tokenizer,
                                   const char *prompt, size_t prompt_length,
                                   const char *continuation,
                                   size_t continuation_length,
                                   double *logprob);

/** @} */


/* ------------------------------------------------------------------------ */
/** @name Optimizers and learning-rate schedules
 *
 * An optimizer turns the gradients of a list of parameters (float leaf
 * tensors that require a gradient) into parameter updates: AdamW with
 * decoupled weight decay, or SGD with optional momentum, Nesterov momentum
 * and L2 weight decay, with PyTorch's semantics. Its state (moments, step
 * count) lives in one block allocated at creation; a step allocates
 * nothing, checks every gradient before touching any parameter, and the
 * state saves to and loads from a versioned little-endian buffer so that a
 * resumed run is bit-identical. Clipping by global norm and learning-rate
 * schedules (warm-up, cosine decay) are plain functions. The equations,
 * the schedules, gradient accumulation and the state format are in
 * docs/optimizers.md.
 *  @{ */

/** Opaque optimizer handle. One thread at a time may use an optimizer. */
typedef struct tlm_optimizer tlm_optimizer;

/** Optimizer algorithms (tlm_optimizer_params::kind). */
enum tlm_optimizer_kind {
    TLM_OPTIMIZER_ADAMW = 0, /**< Adam with decoupled weight decay */
    TLM_OPTIMIZER_SGD = 1    /**< stochastic gradient descent, momentum */
};

/**
 * Settings of tlm_optimizer_create(). Fill with tlm_optimizer_params_init()
 * (AdamW's defaults) or tlm_optimizer_params_init_for() (the defaults of
 * another kind), then change what you need. Fields that do not belong to
 * the kind are kept (and saved) but not used.
 */
typedef struct tlm_optimizer_params {
    size_t struct_size;  /**< sizeof(tlm_optimizer_params); set by init */
    int32_t kind;        /**< a tlm_optimizer_kind */
    /** Learning rate used when tlm_optimizer_step() is given
     *  TLM_OPTIMIZER_LR_DEFAULT; finite and >= 0. Default 1e-3 (AdamW),
     *  1e-2 (SGD). */
    float lr;
    float beta1;         /**< AdamW: first-moment decay, in [0, 1); 0.9 */
    float beta2;         /**< AdamW: second-moment decay, in [0, 1); 0.999 */
    float eps;           /**< AdamW: added to sqrt(v), finite > 0; 1e-8 */
    /** Weight decay, finite and >= 0, applied to the parameters whose decay
     *  flag is set: decoupled for AdamW (p -= lr * weight_decay * p before
     *  the Adam step), L2 added to the gradient for SGD
     *  (g += weight_decay * p). Default 0.01 (AdamW), 0 (SGD). */
    float weight_decay;
    float momentum;      /**< SGD: momentum in [0, 1); default 0 (none) */
    int32_t nesterov;    /**< SGD: 1 for Nesterov momentum (needs
                              momentum > 0); default 0 */
    /** NULL (default): weight decay applies to every parameter with 2 or
     *  more dimensions (matrices, embeddings included) and not to 1-D ones
     *  (biases, norm gains). Otherwise `count` flags, one per parameter
     *  in the order given to tlm_optimizer_create(), each 0 or 1. Read
     *  only during the create call. */
    const int32_t *decay_flags;
} tlm_optimizer_params;

/**
 * Fill `params` with AdamW's defaults (kind TLM_OPTIMIZER_ADAMW, lr 1e-3,
 * betas 0.9 and 0.999, eps 1e-8, weight decay 0.01: PyTorch's, with
 * weight decay 0.01) and set its struct_size, like every other
 * `*_params_init()`.
 * @return TLM_OK, TLM_E_INVALID (`params` NULL)
 */
TLM_API int tlm_optimizer_params_init(tlm_optimizer_params *params);

/**
 * Fill `params` with the defaults of `kind` (a tlm_optimizer_kind) and set
 * its struct_size: AdamW's as tlm_optimizer_params_init(); for SGD, lr
 * 1e-2, no momentum, no weight decay. SGD's learning rate and weight decay
 * differ from AdamW's, so setting only `kind` after
 * tlm_optimizer_params_init() would train SGD with AdamW's values: start
 * from this call instead.
 * @return TLM_OK, TLM_E_INVALID (`params` NULL or an unknown kind)
 */
TLM_API int tlm_optimizer_params_init_for(tlm_optimizer_params *params,
                                          int32_t kind);

/**
 * Create an optimizer over `count` parameters. Each must be a live float
 * leaf tensor of one context that requires a gradient, listed once. The
 * state (moments, step count) is allocated here, in one block, from the
 * context's allocator.
 *
 * @param[out] out       the new optimizer, or NULL on failure
 * @param      tensors   `count` parameter tensors; the optimizer keeps the
 *                       pointers, so they must outlive it
 * @param      count     1 or more
 * @param      params    settings, or NULL for the AdamW defaults
 * @return TLM_OK, TLM_E_INVALID (a bad setting, tensor or flag, with the
 *         field or index in the message), TLM_E_STATE (a tensor that has no
 *         gradient, or was freed), TLM_E_OVERFLOW (the state's size does not
 *         fit in size_t), TLM_E_UNSUPPORTED (a quantized model's matrix:
 *         "dequantize first"), TLM_E_NOMEM
 */
TLM_API int tlm_optimizer_create(tlm_optimizer **out,
                                 tlm_tensor *const *tensors, int32_t count,
                                 const tlm_optimizer_params *params);

/**
 * Free an optimizer and its state (not the parameters). NULL is ignored.
 * Any order with its parameters' model, context and the other handles is
 * fine: an optimizer keeps its context alive and frees it when it was the
 * last handle after tlm_context_free().
 */
TLM_API void tlm_optimizer_free(tlm_optimizer *opt);

/**
 * The detailed message of the last failure of a call on `opt` ("" if
 * none); a fixed text if `opt` is NULL. Valid until the next failing call
 * on `opt`. Calls that take a const optimizer record their failures only
 * in tlm_last_error().
 */
TLM_API const char *tlm_optimizer_last_error(const tlm_optimizer *opt);

/**
 * Copy the optimizer's settings (as created, or as restored by
 * tlm_optimizer_load_state()) into `params`, filled first with
 * tlm_optimizer_params_init() (its struct_size says how much the caller's
 * struct holds). decay_flags is set to NULL: read the flags with
 * tlm_optimizer_get_decay().
 */
TLM_API int tlm_optimizer_get_params(const tlm_optimizer *opt,
                                     tlm_optimizer_params *params);

/**
 * Turn weight decay on (flag 1) or off (flag 0) for parameter `index`
 * (0-based, in creation order), overriding the default rule, e.g. to
 * exclude an embedding table.
 * @return TLM_OK, TLM_E_INVALID (NULL or a flag other than 0 or 1),
 *         TLM_E_RANGE (index outside 0..count-1)
 */
TLM_API int tlm_optimizer_set_decay(tlm_optimizer *opt, int32_t index,
                                    int32_t flag);

/**
 * Whether weight decay applies to parameter `index`: 1 or 0, or a
 * negative status (TLM_E_INVALID for NULL, TLM_E_RANGE for a bad index).
 */
TLM_API int tlm_optimizer_get_decay(const tlm_optimizer *opt, int32_t index);

/** Number of steps taken (restored by tlm_optimizer_load_state()), or a
 *  negative status. */
TLM_API int64_t tlm_optimizer_step_count(const tlm_optimizer *opt);

/** The `lr` argument of tlm_optimizer_step() that means "the learning rate
 *  of the settings". */
#define TLM_OPTIMIZER_LR_DEFAULT (-1.0f)

/**
 * Update every parameter from its gradient, with learning rate `lr` for
 * this step (so that a schedule can drive it), and count the step.
 * Gradients are read, not cleared (tlm_context_zero_grad()). Allocates
 * nothing.
 *
 * Every gradient is checked first: if any holds a NaN or an infinity the
 * call returns TLM_E_NONFINITE, naming the parameter and element, and no
 * parameter and no state has changed (skip the batch, or lower the lr).
 *
 * @param lr finite and >= 0, or any negative value such as
 *           TLM_OPTIMIZER_LR_DEFAULT for the settings' lr
 * @return TLM_OK, TLM_E_INVALID (NULL, NaN or infinite lr), TLM_E_STATE (a
 *         parameter was freed or no longer requires a gradient),
 *         TLM_E_NONFINITE
 */
TLM_API int tlm_optimizer_step(tlm_optimizer *opt, float lr);

/** The number of bytes tlm_optimizer_save_state() writes, into `*size`. */
TLM_API int tlm_optimizer_state_size(const tlm_optimizer *opt, size_t *size);

/**
 * Write the optimizer's state (kind, step count, settings, each parameter's
 * shape and decay flag, the moments, a CRC-32) into `buffer`, in the
 * little-endian layout of docs/optimizers.md.
 * @param size at least tlm_optimizer_state_size() bytes, else TLM_E_INVALID
 */
TLM_API int tlm_optimizer_save_state(const tlm_optimizer *opt, void *buffer,
                                     size_t size);

/**
 * Restore a state written by tlm_optimizer_save_state() from an optimizer
 * of the same kind over parameters of the same shapes: the step count,
 * the settings and decay flags (as PyTorch's load_state_dict does) and the
 * moments. The buffer is checked completely before anything changes, so on
 * failure the optimizer is as it was.
 * @param size the buffer's exact size
 * @return TLM_OK, TLM_E_INVALID (NULL, or the state of another kind of
 *         optimizer), TLM_E_SHAPE (another number of parameters or other
 *         shapes), TLM_E_VERSION (written by a newer tlm), TLM_E_FORMAT
 *         (truncated, wrong size, corrupt: bad magic, checksum or values)
 */
TLM_API int tlm_optimizer_load_state(tlm_optimizer *opt, const void *buffer,
                                     size_t size);

/**
 * Clip gradients by their global norm, as PyTorch's clip_grad_norm_: the
 * Euclidean norm of all the gradients together is computed in double;
 * when max_norm / (norm + 1e-6) is below 1 every gradient is multiplied by
 * that factor, otherwise nothing changes.
 * @param tensors  `count` float leaf tensors (1 or more) of one context
 *                 that have a gradient
 * @param max_norm > 0 (+infinity only measures), else TLM_E_INVALID
 * @param[out] norm the norm before clipping, or NULL when not wanted; set
 *                 also when it is not finite
 * @return TLM_OK, TLM_E_INVALID, TLM_E_STATE (a tensor without gradient),
 *         TLM_E_NONFINITE (the norm is NaN or infinite: nothing is scaled)
 */
TLM_API int tlm_clip_grad_norm(tlm_tensor *const *tensors, int32_t count,
                               float max_norm, double *norm);

/** Shapes of learning-rate schedules (tlm_schedule_params::kind). */
enum tlm_schedule_kind {
    TLM_SCHEDULE_CONSTANT = 0, /**< warm-up, then `lr` */
    TLM_SCHEDULE_COSINE = 1    /**< warm-up, cosine decay to `min_lr`, then
                                    `min_lr` (nanoGPT's get_lr) */
};

/**
 * A learning-rate schedule for tlm_schedule_lr(). Fill with
 * tlm_schedule_params_init(). With W = warmup_steps and f =
 * warmup_start_factor, step s < W gives lr * (f + (1 - f) * s / W).
 */
typedef struct tlm_schedule_params {
    size_t struct_size;       /**< sizeof(tlm_schedule_params); set by init */
    int32_t kind;             /**< a tlm_schedule_kind; default constant */
    float lr;                 /**< peak lr, finite and >= 0; default 1e-3 */
    float min_lr;             /**< cosine: final lr, in [0, lr]; default 0 */
    float warmup_start_factor; /**< lr factor at step 0, in [0, 1];
                                    default 0 (warm-up from 0) */
    int64_t warmup_steps;     /**< W >= 0 steps of linear warm-up;
                                   default 0 (none) */
    /** Cosine: the step at which the lr reaches min_lr, counted from step
     *  0 (warm-up included, nanoGPT's lr_decay_iters); must be greater
     *  than warmup_steps. Default 0 (must be set for cosine). */
    int64_t decay_end_step;
} tlm_schedule_params;

/** Fill `params` with the defaults (a constant 1e-3) and set its
 *  struct_size. */
TLM_API int tlm_schedule_params_init(tlm_schedule_params *params);

/**
 * The learning rate of the schedule at `step` (0-based: the lr for the
 * step-th call of tlm_optimizer_step()), computed in double.
 * @param step >= 0, else TLM_E_INVALID
 * @param[out] lr the learning rate
 * @return TLM_OK, TLM_E_INVALID (NULL, a bad setting or step, with the
 *         field in the message)
 */
TLM_API int tlm_schedule_lr(const tlm_schedule_params *params, int64_t step,
                            float *lr);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Distributed training (MPI)
 *
 * Data-parallel training over processes and hosts with MPI (OpenMPI or any
 * MPI library tlm was built with; Meson option `mpi`). tlm.h has no MPI
 * types: a communicator is an opaque handle over a duplicate of
 * MPI_COMM_WORLD. These functions exist in every build; in a build
 * without MPI, tlm_comm_create_world() returns TLM_E_UNSUPPORTED and
 * tlm_comm_available() returns 0. See docs/distributed.md.
 *  @{ */

/** Opaque communicator handle: the ranks that train together. */
typedef struct tlm_comm tlm_comm;

/** Settings of tlm_comm_create_world(). Fill with tlm_comm_params_init(). */
typedef struct tlm_comm_params {
    size_t struct_size;   /**< sizeof(tlm_comm_params); set by init */
    /** 1 (default): initialise MPI (MPI_Init_thread, serialized threads)
     *  when the program has not; 0: fail with TLM_E_STATE instead. */
    int32_t init_mpi;
    /** 1 (default): when this communicator initialised MPI,
     *  tlm_comm_free() finalises it (MPI cannot be initialised again in
     *  the process after that); 0: leave MPI running. */
    int32_t finalize_mpi;
    /** Gradients are averaged in buckets of at most this many bytes, one
     *  allreduce each; default 4 MiB (4194304), 4..2^31-4. */
    int64_t bucket_bytes;
} tlm_comm_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_comm_params_init(tlm_comm_params *params);

/** 1 when this build of tlm has MPI support, 0 when it has not. */
TLM_API int tlm_comm_available(void);

/**
 * A communicator over every process of the MPI job (MPI_COMM_WORLD,
 * duplicated so tlm's messages never mix with the program's), with MPI
 * errors returned instead of aborting. Initialises MPI when needed (see
 * tlm_comm_params::init_mpi). Create one per process, from the thread
 * that calls every trainer function.
 * @return TLM_OK; TLM_E_UNSUPPORTED in a build without MPI; TLM_E_STATE
 *         when MPI is finalised or not initialised and init_mpi is 0
 */
TLM_API int tlm_comm_create_world(tlm_comm **out,
                                  const tlm_comm_params *params);

/** Free a communicator (finalising MPI if it initialised it and
 *  finalize_mpi is 1). NULL is ignored. */
TLM_API void tlm_comm_free(tlm_comm *comm);

/** This process's rank, 0..size-1, or a negative status. */
TLM_API int32_t tlm_comm_rank(const tlm_comm *comm);

/** Number of ranks, or a negative status. */
TLM_API int32_t tlm_comm_size(const tlm_comm *comm);

/**
 * Collective: `*any` becomes 1 on every rank when `flag` is non-zero on
 * at least one rank, else 0. Lets ranks agree to stop together (an
 * interrupt, a time limit) so that none waits forever in the next step.
 */
TLM_API int tlm_comm_any(tlm_comm *comm, int32_t flag, int32_t *any);

/** The detailed message of the communicator's last failure ("" if none). */
TLM_API const char *tlm_comm_last_error(const tlm_comm *comm);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Datasets and training
 *
 * A dataset holds token ids split into training and validation parts; a
 * trainer ties a model, an AdamW or SGD optimizer, a learning-rate
 * schedule and a dataset together and runs training steps. See
 * docs/training.md.
 *  @{ */

/** Opaque dataset handle. */
typedef struct tlm_dataset tlm_dataset;

/** The two parts of a dataset. */
enum tlm_split {
    TLM_SPLIT_TRAIN = 0,     /**< the part trained on */
    TLM_SPLIT_VALIDATION = 1 /**< the held-out part evaluated on */
};

/**
 * Settings of the tlm_dataset_from_*() constructors. Fill with
 * tlm_dataset_params_init(), then change the fields you need.
 */
typedef struct tlm_dataset_params {
    size_t struct_size;  /**< sizeof(tlm_dataset_params); set by init */
    /** The part of the data held out for validation, in [0, 1): the end
     *  of an id stream, or the last round(n_pairs * fraction) pairs.
     *  Default 0.1. */
    float validation_fraction;
    /** tlm_dataset_from_text_file() only: 1 (default) reads and writes the
     *  encoded-ids cache next to the file; 0 neither reads nor writes it. */
    int32_t use_cache;
} tlm_dataset_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_dataset_params_init(tlm_dataset_params *params);

/**
 * A language-modelling dataset from a stream of token ids (copied): the
 * first (1 - validation_fraction) of the stream is the training part, the
 * rest the validation part (nanoGPT's split). Batches are windows of
 * context + 1 consecutive ids at random positions of a part.
 * @param params settings, or NULL for the defaults
 */
TLM_API int tlm_dataset_from_ids(tlm_dataset **out, tlm_context *ctx,
                                 const int32_t *ids, size_t count,
                                 const tlm_dataset_params *params);

/**
 * A language-modelling dataset from a text file encoded with `tokenizer`
 * (as tlm_dataset_from_ids). The encoded ids are cached next to the file,
 * in `<path>.tlmtok`, and reused while the text and the tokenizer are
 * unchanged (checked by size and checksum), so a large corpus is encoded
 * once. A cache that cannot be written (a read-only directory) is not an
 * error; params->use_cache 0 neither reads nor writes it.
 * @param params settings, or NULL for the defaults
 */
TLM_API int tlm_dataset_from_text_file(tlm_dataset **out, tlm_context *ctx,
                                       const char *path,
                                       tlm_tokenizer *tokenizer,
                                       const tlm_dataset_params *params);

/**
 * A sequence-to-sequence dataset of `n_pairs` (source, target) pairs
 * (copied), for encoder-decoder models. Pair i's source is
 * ids[offsets[2i] .. offsets[2i+1]) and its target ids[offsets[2i+1] ..
 * offsets[2i+2]); `offsets` has 2 * n_pairs + 1 non-decreasing entries.
 * The last round(n_pairs * validation_fraction) pairs are the validation
 * part. Batches pad sources (masked) and targets (ignored by the loss).
 * @param params settings, or NULL for the defaults
 */
TLM_API int tlm_dataset_from_pairs(tlm_dataset **out, tlm_context *ctx,
                                   const int32_t *ids, const int64_t *offsets,
                                   int64_t n_pairs,
                                   const tlm_dataset_params *params);

/**
 * Free a dataset. NULL is ignored. Any order with its context and the
 * other handles is fine: a dataset keeps its context alive (its bytes
 * count in tlm_context_memory_in_use()) and frees it when it was the last
 * handle after tlm_context_free(). A trainer on it may be freed after it,
 * but not used.
 */
TLM_API void tlm_dataset_free(tlm_dataset *dataset);

/** Tokens (stream) or pairs (sequence-to-sequence) in a part, or a
 *  negative status. */
TLM_API int64_t tlm_dataset_size(const tlm_dataset *dataset, int32_t split);

/** Opaque trainer handle. */
typedef struct tlm_trainer tlm_trainer;

/** What one training step did (tlm_trainer_step()). */
typedef struct tlm_step_info {
    size_t struct_size;  /**< sizeof(tlm_step_info); set by init */
    int64_t step;        /**< steps completed, this one included */
    float loss;          /**< mean loss over the step's micro-batches */
    float lr;            /**< learning rate used */
    double grad_norm;    /**< global gradient norm before clipping */
    /** 1: the update was skipped: the loss or gradient was not finite,
     *  or the gradient norm was above tlm_trainer_params::max_grad_norm */
    int32_t skipped;
    int64_t tokens;      /**< target tokens the step trained on (on all
                              ranks, with tlm_trainer_params::comm) */
} tlm_step_info;

/**
 * Zero `info` and set its struct_size, before passing it to
 * tlm_trainer_step(). Returns TLM_E_INVALID when `info` is NULL.
 */
TLM_API int tlm_step_info_init(tlm_step_info *info);

/** Called after every step; a non-zero return asks the caller's loop to
 *  stop (tlm_trainer_step() then returns TLM_E_CANCELLED). */
typedef int (*tlm_progress_fn)(void *user, const tlm_step_info *info);

/**
 * Arithmetic of the training step's matrix products
 * (tlm_trainer_params::precision). Weights, gradients and the optimizer's
 * state stay float32 in both; see docs/training.md.
 */
enum tlm_precision {
    /** float32 products (the default) */
    TLM_PRECISION_FLOAT32 = 0,
    /** bf16 mixed precision: every tlm_matmul of the step's forward and
     *  backward passes rounds its two inputs to bf16 (nearest even) and
     *  sums the exact products in float32, and so do attention's products
     *  (q k^T, P v and their gradients' four) inside tlm_attention() and
     *  tlm_multi_head_attention(); everything else (attention's softmax,
     *  norms, activations, the loss, the optimizer) stays float32. Faster
     *  where the CPU has AVX-512 BF16 (the tlm_matmul products);
     *  elsewhere the same results, at about float32's speed. */
    TLM_PRECISION_BF16 = 1
};

/** Settings of tlm_trainer_create(). Fill with tlm_trainer_params_init(). */
typedef struct tlm_trainer_params {
    size_t struct_size;     /**< sizeof(tlm_trainer_params); set by init */
    int32_t batch_size;     /**< sequences per micro-batch; default 12 */
    int32_t context;        /**< positions per sequence; 0 means the
                                 model's max_context */
    int32_t accumulation;   /**< micro-batches per step; default 1 */
    float grad_clip;        /**< clip the global norm to this; 0 = off;
                                 default 1 */
    uint64_t seed;          /**< batch sampling and dropout; default 1 */
    /** The optimizer's settings. Default (set by init, and what NULL
     *  means): the library's trainer settings, AdamW with betas 0.9/0.99
     *  and weight decay 0.1 (nanoGPT's), which differ from
     *  tlm_optimizer_params_init()'s (beta2 0.999, weight decay 0.01). To
     *  change one of them, copy `*params.optimizer`, change the copy and
     *  point here to it; the struct's size is honoured as for every
     *  settings struct. Weight decay applies to the projection matrices
     *  only, not to embeddings, norms or biases, unless decay_flags is
     *  set. Read only during tlm_trainer_create(). */
    const tlm_optimizer_params *optimizer;
    /** NULL: constant learning rate, the optimizer's lr. */
    const tlm_schedule_params *schedule;
    tlm_progress_fn progress;  /**< or NULL */
    void *progress_user;       /**< passed to progress */
    int32_t bos_id;  /**< sequence-to-sequence: the decoder's start id */
    int32_t pad_id;  /**< sequence-to-sequence: id of padding positions */
    /** A step whose global gradient norm (before clipping) is above this
     *  is treated as an exploding gradient: skipped like a non-finite one
     *  (weights and optimizer untouched) and reported with TLM_E_RANGE.
     *  Finite and >= 0; 0 = off (default: clipping alone tames spikes). */
    float max_grad_norm;
    /** NULL (default): train in this process alone. A communicator from
     *  tlm_comm_create_world(): data-parallel training over its ranks,
     *  each with batch_size sequences of one global batch of batch_size x
     *  ranks (every rank draws the same windows and keeps its slice, so N
     *  ranks with batch B/N match one process with batch B); rank 0's
     *  weights are copied to all at creation; gradients, loss and
     *  evaluations are averaged over the ranks. tlm_trainer_create(),
     *  _step(), _evaluate(), _save() and _resume() are then collective:
     *  every rank calls them in the same order. Only rank 0 writes
     *  checkpoints; a checkpoint resumes only with the same number of
     *  ranks. See docs/distributed.md. It must outlive the trainer. */
    tlm_comm *comm;
    /** An enum tlm_precision: the arithmetic of the training step's matrix
     *  products (TLM_PRECISION_FLOAT32 by default). Added after 0.2.0; an
     *  older caller's struct, which lacks it, trains in float32. */
    int32_t precision;
} tlm_trainer_params;

/** Fill `params` with the defaults and set its struct_size. */
TLM_API int tlm_trainer_params_init(tlm_trainer_params *params);

/**
 * Create a trainer for `model` on `dataset` (both stay owned by the
 * caller and must outlive the trainer). It builds one training graph in
 * the model's context and re-runs it every step, so steps allocate
 * nothing; do not reset that context while the trainer lives. A
 * quantized model (tlm_model_quantize()) is TLM_E_UNSUPPORTED: dequantize
 * it first (TLM_WEIGHTS_F32).
 */
TLM_API int tlm_trainer_create(tlm_trainer **out, tlm_model *model,
                               tlm_dataset *dataset,
                               const tlm_trainer_params *params);

/**
 * Free a trainer. NULL is ignored. Any order with its model, dataset,
 * context and the other handles is fine: a trainer keeps its context alive
 * and frees it when it was the last handle after tlm_context_free().
 */
TLM_API void tlm_trainer_free(tlm_trainer *trainer);

/**
 * One optimisation step: `accumulation` micro-batches sampled from the
 * training part, forward, backward, gradient clipping, the schedule's
 * learning rate, the optimizer update. A non-finite loss or gradient skips
 * the update, leaves every parameter and the optimizer untouched, and
 * returns TLM_E_NONFINITE (info->skipped = 1); a gradient norm above
 * `max_grad_norm` (when set) does the same and returns TLM_E_RANGE. The
 * step count does not advance on a skipped step; training may go on (the
 * next step samples new batches).
 * @param info NULL, or filled with what the step did
 */
TLM_API int tlm_trainer_step(tlm_trainer *trainer, tlm_step_info *info);

/**
 * Mean loss over `n_batches` batches of the validation part (or of the
 * training part when `split` says so), dropout off and no gradients. The
 * batches come from their own generator, seeded from the trainer's seed,
 * so repeated evaluations see the same batches.
 */
TLM_API int tlm_trainer_evaluate(tlm_trainer *trainer, int32_t split,
                                 int32_t n_batches, float *loss);

/**
 * tlm_trainer_evaluate() on a fixed set of batches named by `seed` instead
 * of the trainer's seed: the windows (or pairs) are drawn one after the
 * other from a generator seeded with `seed` and `split` alone, so every
 * trainer on the same dataset with the same context evaluates on the same
 * n_batches x batch_size windows, whatever its training seed, schedule or
 * precision, and the first k windows are the same for every batch size.
 * Use it to compare runs with each other (a time-to-quality curve, seeds
 * against each other); tlm_trainer_evaluate() compares the evaluations of
 * one run. Dropout off, no gradients, the model's training mode restored;
 * with a communicator, collective like tlm_trainer_evaluate().
 * @return TLM_OK; TLM_E_INVALID (NULL trainer or loss, split not a
 *         tlm_split, n_batches < 1), TLM_E_RANGE (the part is shorter
 *         than one window)
 */
TLM_API int tlm_trainer_evaluate_seeded(tlm_trainer *trainer, int32_t split,
                                        int32_t n_batches, uint64_t seed,
                                        float *loss);

/** Steps completed, or a negative status. */
TLM_API int64_t tlm_trainer_step_count(const tlm_trainer *trainer);

/**
 * Save a checkpoint that resumes exactly: the model, the optimizer state,
 * the step, and the generators' states (.tlm, docs/format.md). Atomic.
 * Not const: a failure is recorded in the trainer, and with a communicator
 * the call is collective.
 */
TLM_API int tlm_trainer_save(tlm_trainer *trainer, const char *path);

/**
 * Resume from a checkpoint written by tlm_trainer_save() for a model of
 * the same configuration: parameters, optimizer state, step and
 * generators are restored, so the following steps are bit-identical to an
 * uninterrupted run. All or nothing: every section is checked first
 * (docs/training.md lists the checks; an unknown key in the `trainer`
 * section is refused), and a refusal changes nothing. The checkpoint's
 * tokenizer, when it has one, must equal the model's (TLM_E_STATE
 * otherwise); a model without one gets the checkpoint's attached.
 * @return TLM_OK; TLM_E_IO, TLM_E_FORMAT (a damaged or foreign file, the
 *         message naming the file and the section), TLM_E_STATE (another
 *         configuration, tokenizer or number of ranks), TLM_E_NOMEM,
 *         TLM_E_INVALID
 */
TLM_API int tlm_trainer_resume(tlm_trainer *trainer, const char *path);

/** The detailed message of the trainer's last failure ("" if none). */
TLM_API const char *tlm_trainer_last_error(const tlm_trainer *trainer);

/**
 * Time spent averaging the gradients across the ranks of
 * tlm_trainer_params::comm (packing, allreduce, unpacking): in the last
 * step (`last_ms`) and in all steps of this trainer (`total_ms`), in
 * milliseconds; both 0 without a communicator. Either pointer may be NULL.
 */
TLM_API int tlm_trainer_allreduce_time(const tlm_trainer *trainer,
                                       double *last_ms, double *total_ms);

/** @} */



/* ------------------------------------------------------------------------ */
/** @name Experimental: kernel dispatch
 *
 * Declared only when the program defines `TLM_EXPERIMENTAL` before
 * including tlm.h. These calls are outside the ABI promise: they may
 * change or go away in any release (like zstd's ZSTD_STATIC_LINKING_ONLY
 * section).
 *
 * Each context picks its compute kernels (scalar C, AVX2, AVX-512, NEON)
 * once, when tlm_context_create() makes it, as the best instruction set
 * the CPU supports within two limits: the mask set here, and the
 * environment variable `TLM_CPU=scalar|avx2|avx512|neon`, both read at
 * that moment; TLM_CPU caps the level (scalar 0, avx2 and neon 1, avx512
 * 2; an unknown name is ignored). The context, and every model, session
 * and trainer made in it, keeps those kernels for its whole life.
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
 * TLM_EXPERIMENTAL_CPU_MASK_ALL to lift the restriction. The mask applies
 * to the contexts created after the call, in any thread; contexts that
 * exist keep the kernels they chose. Safe to call from any thread.
 * @return TLM_OK, or TLM_E_INVALID when `mask` has a bit that is not a
 *         ::tlm_cpu_feature (and is not TLM_EXPERIMENTAL_CPU_MASK_ALL);
 *         the mask then stays as it was
 */
TLM_API int tlm_experimental_set_cpu_mask(uint32_t mask);

/**
 * Name of the instruction set a context created now would use (with
 * the mask and `TLM_CPU` of this moment): "scalar", "avx2", "avx512" or
 * "neon". Static text; never NULL.
 */
TLM_API const char *tlm_experimental_active_isa(void);

#endif /* TLM_EXPERIMENTAL */
/** @} */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TLM_H */
