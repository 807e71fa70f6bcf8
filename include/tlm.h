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

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TLM_H */
