/**
 * @file tlm.hpp
 * @brief C++17 interface to tlm: RAII handles, exceptions, lambdas.
 *
 * A header-only layer over include/tlm.h, installed beside it. Every handle
 * (context, tokenizer, token stream, model, session, sampler, optimizer,
 * dataset, trainer, communicator, tensor) is a move-only class that owns
 * its C handle the way a std::unique_ptr does and frees it in its
 * destructor; a moved-from handle holds nothing (`explicit operator bool`
 * is false, and calls on it throw tlm::error with TLM_E_INVALID from the C
 * library's own argument checks).
 * Every failing call throws tlm::error, which carries the status and the
 * message of tlm_last_error(). Text goes in as std::string_view and comes
 * out as std::string; ids, logits and buffers come out as std::vector.
 *
 * Callbacks are any callables (lambdas that capture included). A C++
 * exception never crosses the C library's frames: the trampoline that the
 * C library calls catches it, asks the library to stop (generation and
 * training) and the wrapper rethrows it once the C call has returned.
 *
 * Destroy handles before the context they were created in: declared after
 * the context in one scope, C++ destroys them first. The C settings
 * structs (tlm_model_config, tlm_sampler_params, ...) are used as they
 * are; tlm::defaults<T>() returns one filled by its `_init` function.
 * The operations (tlm::add, tlm::matmul, ..., tlm::backward) take and
 * return tlm::tensor_view; their results belong to the context's arena.
 * docs/tutorial.md, "From C++", walks through an example.
 *
 * Every public function of tlm.h is wrapped except these, on purpose:
 * - the `*_last_error()` calls: tlm::error carries tlm_last_error()'s
 *   message of the failing call, the same text;
 * - tlm_strerror() and tlm_status_name(): tlm::error::what() uses them;
 * - the `*_params_init()`, tlm_batch_init() and tlm_step_info_init()
 *   calls: tlm::defaults<T>() (tlm_optimizer_params_init_for():
 *   tlm::optimizer_defaults());
 * - the `*_free()` calls: the destructors;
 * - tlm_tensor_context() and tlm_model_context(): they return a context
 *   the caller does not own, which the owning tlm::context cannot hold;
 *   the program has its tlm::context already (or calls them with get());
 * - tlm_model_import_safetensors() and tlm_model_export_safetensors():
 *   model::import() and model::export_to() with TLM_MODEL_FORMAT_SAFETENSORS
 *   do the same;
 * - tlm_tokenizer_export(): tokenizer_view::export_as() with
 *   TLM_TOKENIZER_FORMAT_GPT2 or _SENTENCEPIECE writes the same files;
 * - tlm_experimental_*(): outside the ABI promise, declared only under
 *   TLM_EXPERIMENTAL; call them from C++ as they are.
 */
#ifndef TLM_HPP
#define TLM_HPP

#include <tlm.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

/** The C++ interface of tlm. */
namespace tlm {

/**
 * A failed tlm call: status() is the C status (a negative TLM_E_* value),
 * what() is "TLM_E_NAME: message", the message being tlm_last_error()'s
 * (or the status's description when the library gave none).
 */
class error : public std::runtime_error {
public:
    /** An error with `status` and the library's `message`. */
    error(int status, std::string_view message)
        : std::runtime_error(describe(status, message)), status_(status),
          message_(message) {}

    /** The C status, a negative TLM_E_* value. */
    int status() const noexcept { return status_; }

    /** The library's message alone, without the status name. */
    const std::string &message() const noexcept { return message_; }

private:
    static std::string describe(int status, std::string_view message) {
        std::string text = tlm_status_name(status);
        text += ": ";
        if (message.empty())
            text += tlm_strerror(status);
        else
            text += message;
        return text;
    }

    int status_;
    std::string message_;
};

/** @cond TLM_DETAIL */
namespace detail {

// The exception a callback threw while the C library was calling it, kept
// here (per thread: the library calls back on the calling thread) until the
// C call returns and check() rethrows it.
inline std::exception_ptr &pending_exception() {
    static thread_local std::exception_ptr pending;
    return pending;
}

// Rethrows a callback's exception, if one is waiting.
inline void rethrow_pending() {
    std::exception_ptr &pending = pending_exception();
    if (pending) {
        std::exception_ptr taken = pending;
        pending = nullptr;
        std::rethrow_exception(taken);
    }
}

// In a trampoline's catch block: keep the exception for check() (the
// first one, when several callbacks threw during one C call).
inline void store_current_exception() noexcept {
    if (!pending_exception())
        pending_exception() = std::current_exception();
}

// After every C call: a callback's exception first, then a failed status.
inline void check(int status) {
    rethrow_pending();
    if (status < 0)
        throw error(status, tlm_last_error());
}

template <typename T, void (*Free)(T *)>
struct free_with {
    void operator()(T *handle) const noexcept { Free(handle); }
};

// An owning pointer to a C handle, freed by its tlm_*_free function.
template <typename T, void (*Free)(T *)>
using owned = std::unique_ptr<T, free_with<T, Free>>;

// Paths and other NUL-terminated C strings.
inline std::string c_string(std::string_view text) {
    return std::string(text);
}

} // namespace detail
/** @endcond */

/**
 * A settings struct of the C API filled with its defaults by its `_init`
 * function, e.g. `tlm::defaults<tlm_model_config>()` or
 * `tlm::defaults<tlm_trainer_params>()`. Change the fields you need and
 * pass it on.
 */
template <typename Params>
Params defaults();

/** @cond TLM_DETAIL */
#define TLM_HPP_DEFAULTS_(type, init)                                         \
    template <>                                                               \
    inline type defaults<type>() {                                            \
        type params{};                                                        \
        detail::check(init(&params));                                         \
        return params;                                                        \
    }
TLM_HPP_DEFAULTS_(tlm_context_params, tlm_context_params_init)
TLM_HPP_DEFAULTS_(tlm_tokenizer_params, tlm_tokenizer_params_init)
TLM_HPP_DEFAULTS_(tlm_model_config, tlm_model_config_init)
TLM_HPP_DEFAULTS_(tlm_model_load_params, tlm_model_load_params_init)
TLM_HPP_DEFAULTS_(tlm_model_import_params, tlm_model_import_params_init)
TLM_HPP_DEFAULTS_(tlm_model_export_params, tlm_model_export_params_init)
TLM_HPP_DEFAULTS_(tlm_session_params, tlm_session_params_init)
TLM_HPP_DEFAULTS_(tlm_sampler_params, tlm_sampler_params_init)
TLM_HPP_DEFAULTS_(tlm_generate_params, tlm_generate_params_init)
TLM_HPP_DEFAULTS_(tlm_optimizer_params, tlm_optimizer_params_init)
TLM_HPP_DEFAULTS_(tlm_schedule_params, tlm_schedule_params_init)
TLM_HPP_DEFAULTS_(tlm_dataset_params, tlm_dataset_params_init)
TLM_HPP_DEFAULTS_(tlm_trainer_params, tlm_trainer_params_init)
TLM_HPP_DEFAULTS_(tlm_step_info, tlm_step_info_init)
TLM_HPP_DEFAULTS_(tlm_beam_search_params, tlm_beam_search_params_init)
TLM_HPP_DEFAULTS_(tlm_comm_params, tlm_comm_params_init)
TLM_HPP_DEFAULTS_(tlm_batch, tlm_batch_init)
#undef TLM_HPP_DEFAULTS_
/** @endcond */

/** The library's version, e.g. "0.2.0" (tlm_version_string()). */
inline std::string version() { return tlm_version_string(); }

/** The linked library's TLM_VERSION_NUMBER (tlm_version_number()): compare
 *  with the header's to detect a mismatch. */
inline uint32_t version_number() noexcept { return tlm_version_number(); }

/** The CPU's features, a bitwise OR of ::tlm_cpu_feature (tlm_cpu_features()). */
inline uint32_t cpu_features() noexcept { return tlm_cpu_features(); }

/** The name of one ::tlm_cpu_feature bit, e.g. "avx2"; empty when `feature`
 *  is not exactly one known bit (tlm_cpu_feature_name()). */
inline std::string_view cpu_feature_name(uint32_t feature) noexcept {
    const char *name = tlm_cpu_feature_name(feature);
    return name == nullptr ? std::string_view() : std::string_view(name);
}

/**
 * `size` contiguous values owned by something else (a tensor's buffer),
 * read and written in place: C++17's stand-in for std::span. Valid as long
 * as its owner.
 */
template <typename T>
class array_view {
public:
    /** An empty view. */
    constexpr array_view() noexcept = default;
    /** The `size` values at `data`. */
    constexpr array_view(T *data, size_t size) noexcept : data_(data), size_(size) {}

    /** The first value. */
    constexpr T *data() const noexcept { return data_; }
    /** Number of values. */
    constexpr size_t size() const noexcept { return size_; }
    /** True when it holds no value. */
    constexpr bool empty() const noexcept { return size_ == 0; }
    /** Value `i` (unchecked, as std::span's). */
    constexpr T &operator[](size_t i) const noexcept { return data_[i]; }
    /** Iteration, for range-for and the algorithms. */
    constexpr T *begin() const noexcept { return data_; }
    /** One past the last value. */
    constexpr T *end() const noexcept { return data_ + size_; }

private:
    T *data_ = nullptr;
    size_t size_ = 0;
};

/* ------------------------------------------------------------------------ */

/**
 * The context every other object lives in (tlm_context): allocator, log
 * hook, compute threads, memory limit. Move-only.
 */
class context {
public:
    /** The log hook's signature: a ::tlm_log_level and the message. */
    using log_function = std::function<void(int level, std::string_view message)>;

    /** A context with the default settings. */
    context() : context(defaults<tlm_context_params>()) {}

    /** A context with `params` (its log_fn/log_user are used as given). */
    explicit context(const tlm_context_params &params) {
        tlm_context *raw = nullptr;
        detail::check(tlm_context_create(&raw, &params));
        handle_.reset(raw);
    }

    /**
     * A context whose log messages at `params.log_level` and more severe go
     * to `on_log`. An exception `on_log` throws is caught at the C
     * boundary and rethrown by the tlm.hpp call during which the message
     * was logged (or by the next one on this thread).
     */
    context(tlm_context_params params, log_function on_log)
        : log_(std::make_unique<log_function>(std::move(on_log))) {
        params.log_fn = &log_trampoline;
        params.log_user = log_.get();
        tlm_context *raw = nullptr;
        detail::check(tlm_context_create(&raw, &params));
        handle_.reset(raw);
    }

    /** The C handle (still owned by this object), or NULL once moved from. */
    tlm_context *get() const noexcept { return handle_.get(); }
    /** True while this object holds a context. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** Compute threads in use (tlm_context_thread_count()). */
    int32_t thread_count() const {
        int32_t n = tlm_context_thread_count(get());
        detail::check(n);
        return n;
    }

    /** Bytes the context's objects hold (tlm_context_memory_in_use()). */
    uint64_t memory_in_use() const {
        uint64_t bytes = 0;
        detail::check(tlm_context_memory_in_use(get(), &bytes));
        return bytes;
    }

    /** Seed the context's generator (dropout; tlm_context_set_seed()). */
    void set_seed(uint64_t seed) { detail::check(tlm_context_set_seed(get(), seed)); }

    /** The memory limit in bytes, 0 resolved to what the process may use
     *  (UINT64_MAX: none; tlm_context_memory_limit()). */
    uint64_t memory_limit() const {
        uint64_t bytes = 0;
        detail::check(tlm_context_memory_limit(get(), &bytes));
        return bytes;
    }

    /** Bytes the arena holds for operation results (tlm_context_arena_bytes()). */
    int64_t arena_bytes() const {
        int64_t bytes = tlm_context_arena_bytes(get());
        detail::check(bytes < 0 ? static_cast<int>(bytes) : TLM_OK);
        return bytes;
    }

    /** Zero every gradient of the context's tensors (tlm_context_zero_grad()). */
    void zero_grad() { detail::check(tlm_context_zero_grad(get())); }

    /** Re-run every recorded operation from the current input values
     *  (tlm_context_forward()). */
    void forward() { detail::check(tlm_context_forward(get())); }

    /** Release every operation result and the tape, keeping leaf tensors
     *  (tlm_context_reset()): every tensor_view of a result is then stale. */
    void reset() { detail::check(tlm_context_reset(get())); }

    /** Record operations for backward (true, the default) or not
     *  (tlm_context_set_grad_enabled()). */
    void set_grad_enabled(bool enabled) {
        detail::check(tlm_context_set_grad_enabled(get(), enabled ? 1 : 0));
    }

    /** Training mode (true, the default: dropout on, batch statistics) or
     *  evaluation mode (tlm_context_set_training()). */
    void set_training(bool training) {
        detail::check(tlm_context_set_training(get(), training ? 1 : 0));
    }

private:
    static void log_trampoline(void *user, int level, const char *message) {
        try {
            (*static_cast<log_function *>(user))(level, message);
        } catch (...) {
            detail::store_current_exception();
        }
    }

    // Declared first so that it outlives the context, which may log while
    // it is freed.
    std::unique_ptr<log_function> log_;
    detail::owned<tlm_context, tlm_context_free> handle_;
};

/* ------------------------------------------------------------------------ */

/**
 * A tensor the caller does not own: a model's parameter, or the leaf of a
 * tlm::tensor. Reads and writes values; valid as long as its owner.
 */
class tensor_view {
public:
    /** A view of `raw` (may be NULL). */
    explicit tensor_view(tlm_tensor *raw = nullptr) noexcept : raw_(raw) {}

    /** The C handle. */
    tlm_tensor *get() const noexcept { return raw_; }
    /** True when the view refers to a tensor. */
    explicit operator bool() const noexcept { return raw_ != nullptr; }

    /** The sizes of its dimensions. */
    std::vector<int64_t> shape() const {
        int64_t dims[TLM_MAX_DIMS] = {0, 0, 0, 0};
        int32_t n = tlm_tensor_shape(raw_, dims, TLM_MAX_DIMS);
        detail::check(n);
        return std::vector<int64_t>(dims, dims + n);
    }

    /** Number of elements. */
    int64_t numel() const {
        int64_t n = tlm_tensor_numel(raw_);
        detail::check(n < 0 ? static_cast<int>(n) : TLM_OK);
        return n;
    }

    /** Its ::tlm_dtype. */
    int32_t dtype() const {
        int32_t dtype = tlm_tensor_dtype(raw_);
        detail::check(dtype);
        return dtype;
    }

    /** Its values as floats (quantized tensors dequantized). */
    std::vector<float> to_f32() const {
        std::vector<float> values(static_cast<size_t>(numel()));
        detail::check(tlm_tensor_get_f32(raw_, values.data(), values.size()));
        return values;
    }

    /** Its values as integers (an integer tensor). */
    std::vector<int32_t> to_i32() const {
        std::vector<int32_t> values(static_cast<size_t>(numel()));
        detail::check(tlm_tensor_get_i32(raw_, values.data(), values.size()));
        return values;
    }

    /** Overwrite a float tensor's values (numel of them). */
    void set_f32(const std::vector<float> &values) {
        detail::check(tlm_tensor_set_f32(raw_, values.data(), values.size()));
    }

    /** Overwrite an integer tensor's values (numel of them). */
    void set_i32(const std::vector<int32_t> &values) {
        detail::check(tlm_tensor_set_i32(raw_, values.data(), values.size()));
    }

    /** Its gradient (a float leaf that requires one). */
    std::vector<float> grad() const {
        std::vector<float> values(static_cast<size_t>(numel()));
        detail::check(tlm_tensor_get_grad_f32(raw_, values.data(), values.size()));
        return values;
    }

    /** Number of dimensions, 1..TLM_MAX_DIMS. */
    int32_t ndim() const {
        int32_t n = tlm_tensor_ndim(raw_);
        detail::check(n);
        return n;
    }

    /** Size of dimension `axis` (negative: from the end; TLM_E_RANGE outside). */
    int64_t dim(int32_t axis) const {
        int64_t n = tlm_tensor_dim(raw_, axis);
        detail::check(n < 0 ? static_cast<int>(n) : TLM_OK);
        return n;
    }

    /** True when it has a gradient (tlm_tensor_requires_grad()). */
    bool requires_grad() const {
        int flag = tlm_tensor_requires_grad(raw_);
        detail::check(flag);
        return flag == 1;
    }

    /** Its float values in place (tlm_tensor_data_f32()); TLM_E_INVALID for
     *  an integer or quantized tensor. */
    array_view<float> data_f32() const {
        float *data = tlm_tensor_data_f32(raw_);
        if (data == nullptr)
            fail_access();
        return array_view<float>(data, static_cast<size_t>(numel()));
    }

    /** Its integer values in place (tlm_tensor_data_i32()). */
    array_view<int32_t> data_i32() const {
        int32_t *data = tlm_tensor_data_i32(raw_);
        if (data == nullptr)
            fail_access();
        return array_view<int32_t>(data, static_cast<size_t>(numel()));
    }

    /** Its gradient in place (tlm_tensor_grad_data_f32()); TLM_E_STATE when
     *  it has none. */
    array_view<float> grad_data() const {
        float *grad = tlm_tensor_grad_data_f32(raw_);
        if (grad == nullptr) {
            detail::check(tlm_tensor_requires_grad(raw_));
            throw error(TLM_E_STATE, "tlm::tensor_view::grad_data: the tensor has no gradient");
        }
        return array_view<float>(grad, static_cast<size_t>(numel()));
    }

protected:
    tlm_tensor *raw_; ///< the C handle, or NULL

private:
    // data_f32/_i32 returned NULL: a bad handle (its status) or the other
    // dtype (TLM_E_INVALID, recorded by the library).
    [[noreturn]] void fail_access() const {
        detail::check(tlm_tensor_dtype(raw_));
        throw error(TLM_E_INVALID, tlm_last_error());
    }
};

/**
 * A leaf tensor owned by this object and freed with it (tlm_tensor_free()).
 * Move-only; it converts to a tlm::tensor_view for reading.
 */
class tensor : public tensor_view {
public:
    /** A tensor of `dtype` (TLM_DTYPE_F32 or _I32) and `shape`, zeros. */
    tensor(context &ctx, int32_t dtype, const std::vector<int64_t> &shape) {
        detail::check(tlm_tensor_create(&raw_, ctx.get(), dtype, rank(shape),
                                        shape.data()));
    }

    /** A float tensor of `shape` holding a copy of `values`. */
    static tensor from_f32(context &ctx, const std::vector<int64_t> &shape,
                           const std::vector<float> &values) {
        tensor made;
        check_count(shape, values.size());
        detail::check(tlm_tensor_from_f32(&made.raw_, ctx.get(), rank(shape),
                                          shape.data(), values.data()));
        return made;
    }

    /** An integer tensor of `shape` holding a copy of `values`. */
    static tensor from_i32(context &ctx, const std::vector<int64_t> &shape,
                           const std::vector<int32_t> &values) {
        tensor made;
        check_count(shape, values.size());
        detail::check(tlm_tensor_from_i32(&made.raw_, ctx.get(), rank(shape),
                                          shape.data(), values.data()));
        return made;
    }

    /** Takes `other`'s tensor; `other` is left empty. */
    tensor(tensor &&other) noexcept : tensor_view(other.release()) {}
    /** Frees this tensor and takes `other`'s. */
    tensor &operator=(tensor &&other) noexcept {
        if (this != &other) {
            tlm_tensor_free(raw_);
            raw_ = other.release();
        }
        return *this;
    }
    tensor(const tensor &) = delete;
    tensor &operator=(const tensor &) = delete;
    ~tensor() { tlm_tensor_free(raw_); }

    /** Give up ownership: the caller frees the returned handle. */
    tlm_tensor *release() noexcept {
        tlm_tensor *raw = raw_;
        raw_ = nullptr;
        return raw;
    }

    /** Whether its gradient is tracked (tlm_tensor_set_requires_grad()). */
    void set_requires_grad(bool flag) {
        detail::check(tlm_tensor_set_requires_grad(raw_, flag ? 1 : 0));
    }

private:
    tensor() noexcept = default;

    static int32_t rank(const std::vector<int64_t> &shape) {
        if (shape.empty() || shape.size() > TLM_MAX_DIMS)
            throw error(TLM_E_INVALID, "tlm::tensor: a shape has 1 to TLM_MAX_DIMS sizes");
        return static_cast<int32_t>(shape.size());
    }

    static void check_count(const std::vector<int64_t> &shape, size_t count) {
        int64_t numel = 1;
        for (int64_t size : shape)
            numel *= size;
        if (numel < 0 || static_cast<uint64_t>(numel) != count)
            throw error(TLM_E_SHAPE, "tlm::tensor: the values do not match the shape's element count");
    }
};

/* ------------------------------------------------------------------------ */
/** @name Operations and autodiff
 *
 * The operations of tlm.h as functions of tensor views. Each runs at once,
 * records itself on its context's tape (unless recording is off) and
 * returns its result, a tensor_view of memory the context's arena owns:
 * valid until context::reset() or the context's end, never freed by the
 * caller. Shapes and rules are tlm.h's; a failure throws tlm::error with
 * the message naming the operation and the shapes.
 *  @{ */

/** @cond TLM_DETAIL */
namespace detail {

// Runs `op(&out, args...)` and returns its result.
template <typename Op, typename... Args>
tensor_view result_of(Op op, Args... args) {
    tlm_tensor *out = nullptr;
    check(op(&out, args...));
    return tensor_view(out);
}

// The C handles of `tensors`, for calls that take an array of them.
inline std::vector<tlm_tensor *> raw_tensors(const std::vector<tensor_view> &tensors,
                                             const char *what) {
    if (tensors.size() > static_cast<size_t>(INT32_MAX))
        throw error(TLM_E_RANGE, std::string(what) + ": more than INT32_MAX tensors");
    std::vector<tlm_tensor *> raw;
    raw.reserve(tensors.size());
    for (const tensor_view &t : tensors)
        raw.push_back(t.get());
    return raw;
}

} // namespace detail
/** @endcond */

/** a + b, `b` of a's shape or of its trailing dimensions (tlm_add()). */
inline tensor_view add(const tensor_view &a, const tensor_view &b) {
    return detail::result_of(tlm_add, a.get(), b.get());
}

/** a - b, broadcast as add() (tlm_sub()). */
inline tensor_view sub(const tensor_view &a, const tensor_view &b) {
    return detail::result_of(tlm_sub, a.get(), b.get());
}

/** a * b elementwise, broadcast as add() (tlm_mul()). */
inline tensor_view mul(const tensor_view &a, const tensor_view &b) {
    return detail::result_of(tlm_mul, a.get(), b.get());
}

/** a * factor (tlm_scale()). */
inline tensor_view scale(const tensor_view &a, float factor) {
    return detail::result_of(tlm_scale, a.get(), factor);
}

/** a + value elementwise (tlm_add_scalar()). */
inline tensor_view add_scalar(const tensor_view &a, float value) {
    return detail::result_of(tlm_add_scalar, a.get(), value);
}

/** a [..., M, K] times b [K, N] or [..., K, N] (b's transpose with
 *  TLM_MATMUL_TRANSPOSE_B), plus `bias` [N] when given (tlm_matmul()). */
inline tensor_view matmul(const tensor_view &a, const tensor_view &b,
                          const tensor_view &bias = tensor_view(), int32_t flags = 0) {
    return detail::result_of(tlm_matmul, a.get(), b.get(), bias.get(), flags);
}

/** The same values with another shape, sharing a's memory (tlm_reshape()). */
inline tensor_view reshape(const tensor_view &a, const std::vector<int64_t> &shape) {
    if (shape.size() > TLM_MAX_DIMS)
        throw error(TLM_E_INVALID, "tlm::reshape: a shape has 1 to TLM_MAX_DIMS sizes");
    return detail::result_of(tlm_reshape, a.get(), static_cast<int32_t>(shape.size()),
                             shape.data());
}

/** The last two dimensions swapped (tlm_transpose()). */
inline tensor_view transpose(const tensor_view &a) {
    return detail::result_of(tlm_transpose, a.get());
}

/** [B, T, H*D] to [B, H, T, D] (tlm_split_heads()). */
inline tensor_view split_heads(const tensor_view &a, int32_t n_heads) {
    return detail::result_of(tlm_split_heads, a.get(), n_heads);
}

/** [B, H, T, D] to [B, T, H*D] (tlm_merge_heads()). */
inline tensor_view merge_heads(const tensor_view &a) {
    return detail::result_of(tlm_merge_heads, a.get());
}

/** 1 to 16 tensors joined along `axis` (tlm_concat()). */
inline tensor_view concat(const std::vector<tensor_view> &inputs, int32_t axis) {
    std::vector<tlm_tensor *> raw = detail::raw_tensors(inputs, "tlm::concat");
    return detail::result_of(tlm_concat, raw.data(), static_cast<int32_t>(raw.size()), axis);
}

/** The `length` entries of `axis` from `start`, a copy (tlm_slice()). */
inline tensor_view slice(const tensor_view &a, int32_t axis, int64_t start, int64_t length) {
    return detail::result_of(tlm_slice, a.get(), axis, start, length);
}

/** The sum of all elements, [1] (tlm_sum()). */
inline tensor_view sum(const tensor_view &a) { return detail::result_of(tlm_sum, a.get()); }

/** The mean of all elements, [1] (tlm_mean()). */
inline tensor_view mean(const tensor_view &a) { return detail::result_of(tlm_mean, a.get()); }

/** max(0, a) (tlm_relu()). */
inline tensor_view relu(const tensor_view &a) { return detail::result_of(tlm_relu, a.get()); }

/** GELU in a ::tlm_gelu_form (tlm_gelu()). */
inline tensor_view gelu(const tensor_view &a, int32_t form = TLM_GELU_TANH) {
    return detail::result_of(tlm_gelu, a.get(), form);
}

/** a * sigmoid(a) (tlm_silu()). */
inline tensor_view silu(const tensor_view &a) { return detail::result_of(tlm_silu, a.get()); }

/** silu(gate) * up (tlm_swiglu()). */
inline tensor_view swiglu(const tensor_view &gate, const tensor_view &up) {
    return detail::result_of(tlm_swiglu, gate.get(), up.get());
}

/** LayerNorm over the last dimension; `gain` and `bias` [C] or empty
 *  (tlm_layer_norm()). */
inline tensor_view layer_norm(const tensor_view &a, const tensor_view &gain,
                              const tensor_view &bias, float eps = 1e-5f) {
    return detail::result_of(tlm_layer_norm, a.get(), gain.get(), bias.get(), eps);
}

/** RMSNorm over the last dimension; `gain` [C] or empty (tlm_rms_norm()). */
inline tensor_view rms_norm(const tensor_view &a, const tensor_view &gain, float eps = 1e-5f) {
    return detail::result_of(tlm_rms_norm, a.get(), gain.get(), eps);
}

/** Batch normalization of the last dimension's features; the running
 *  statistics [C] are updated in training mode (tlm_batch_norm()). */
inline tensor_view batch_norm(const tensor_view &a, const tensor_view &gain,
                              const tensor_view &bias, const tensor_view &running_mean,
                              const tensor_view &running_var, float momentum = 0.1f,
                              float eps = 1e-5f) {
    return detail::result_of(tlm_batch_norm, a.get(), gain.get(), bias.get(),
                             running_mean.get(), running_var.get(), momentum, eps);
}

/** Softmax over the last dimension (tlm_softmax()). */
inline tensor_view softmax(const tensor_view &a) {
    return detail::result_of(tlm_softmax, a.get());
}

/** Log-softmax over the last dimension (tlm_log_softmax()). */
inline tensor_view log_softmax(const tensor_view &a) {
    return detail::result_of(tlm_log_softmax, a.get());
}

/** Rows `ids` [...] of `table` [V, D]: [..., D] (tlm_embedding()). */
inline tensor_view embedding(const tensor_view &table, const tensor_view &ids) {
    return detail::result_of(tlm_embedding, table.get(), ids.get());
}

/** a [..., T, D] plus the sinusoidal encoding of positions from `offset`
 *  on (tlm_add_sinusoidal_positions()). */
inline tensor_view add_sinusoidal_positions(const tensor_view &a, int64_t offset = 0) {
    return detail::result_of(tlm_add_sinusoidal_positions, a.get(), offset);
}

/** Rotary position embedding of a [..., T, D] (tlm_rope()). */
inline tensor_view rope(const tensor_view &a, int64_t offset = 0, float base = 10000.0f) {
    return detail::result_of(tlm_rope, a.get(), offset, base);
}

/** softmax(q k^T / sqrt(D) + mask) v on q [B, H, Tq, D], k [B, Hkv, Tk, D],
 *  v [B, Hkv, Tk, Dv]; `key_mask` [B, Tk] or empty; `flags` of
 *  ::tlm_attention_flags (tlm_attention()). */
inline tensor_view attention(const tensor_view &q, const tensor_view &k, const tensor_view &v,
                             const tensor_view &key_mask = tensor_view(), int32_t flags = 0) {
    return detail::result_of(tlm_attention, q.get(), k.get(), v.get(), key_mask.get(), flags);
}

/** Attention on heads packed side by side: q [B, Tq, H*D], k [B, Tk, Hkv*D],
 *  v [B, Tk, Hkv*Dv] (tlm_multi_head_attention()). */
inline tensor_view multi_head_attention(const tensor_view &q, const tensor_view &k,
                                        const tensor_view &v, int32_t n_heads,
                                        const tensor_view &key_mask = tensor_view(),
                                        int32_t flags = 0) {
    return detail::result_of(tlm_multi_head_attention, q.get(), k.get(), v.get(),
                             key_mask.get(), n_heads, flags);
}

/** Dropout with probability `p` in training mode (tlm_dropout()). */
inline tensor_view dropout(const tensor_view &a, float p) {
    return detail::result_of(tlm_dropout, a.get(), p);
}

/** Mean cross-entropy of `logits` [..., V] against integer `targets` [...],
 *  skipping `ignore_index`, [1] (tlm_cross_entropy()). */
inline tensor_view cross_entropy(const tensor_view &logits, const tensor_view &targets,
                                 int32_t ignore_index = -1) {
    return detail::result_of(tlm_cross_entropy, logits.get(), targets.get(), ignore_index);
}

/** Back-propagate from a one-element `loss`, accumulating the gradients of
 *  the leaves that require one (tlm_backward()). */
inline void backward(const tensor_view &loss) { detail::check(tlm_backward(loss.get())); }

/** @} */

/* ------------------------------------------------------------------------ */

/** Token ids, as tokenizer_view::encode() returns them. */
using ids = std::vector<int32_t>;

/**
 * A tokenizer the caller does not own (a model's, from model::tokenizer()),
 * or the tokenizer of a tlm::tokenizer: encoding, decoding, saving.
 */
class tokenizer_view {
public:
    /** A view of `raw` (may be NULL). */
    explicit tokenizer_view(tlm_tokenizer *raw = nullptr) noexcept : raw_(raw) {}

    /** The C handle. */
    tlm_tokenizer *get() const noexcept { return raw_; }
    /** True when the view refers to a tokenizer. */
    explicit operator bool() const noexcept { return raw_ != nullptr; }

    /** Its ::tlm_tokenizer_kind. */
    int32_t kind() const {
        int32_t kind = tlm_tokenizer_kind(raw_);
        detail::check(kind);
        return kind;
    }

    /** Number of ids, special tokens included. */
    int32_t vocab_size() const {
        int32_t n = tlm_tokenizer_vocab_size(raw_);
        detail::check(n);
        return n;
    }

    /** The id of a ::tlm_special_token (TLM_E_RANGE when it has none). */
    int32_t special_id(int32_t which) const {
        int32_t id = tlm_tokenizer_special_id(raw_, which);
        detail::check(id);
        return id;
    }

    /** The ids of `text`. */
    tlm::ids encode(std::string_view text) const {
        // 3 n + 3 is enough for every kind (SentencePiece's worst case).
        tlm::ids out(text.size() * 3 + 3);
        size_t n = 0;
        detail::check(tlm_tokenizer_encode(raw_, text.data(), text.size(),
                                           out.data(), out.size(), &n));
        out.resize(n);
        return out;
    }

    /** The text of `ids` (TLM_E_RANGE for an id outside the vocabulary). */
    std::string decode(const tlm::ids &ids) const {
        size_t length = 0;
        int status = tlm_tokenizer_decode(raw_, ids.data(), ids.size(),
                                          nullptr, 0, &length);
        if (status != TLM_E_RANGE || length == 0)
            detail::check(status);
        std::string text(length, '\0');
        detail::check(tlm_tokenizer_decode(raw_, ids.data(), ids.size(),
                                           &text[0], text.size(), &length));
        return text;
    }

    /** Write it to `path` (tlm_tokenizer_save(); atomic). */
    void save(std::string_view path) const {
        detail::check(tlm_tokenizer_save(raw_, detail::c_string(path).c_str()));
    }

    /** Write it at `path` in a ::tlm_tokenizer_format (tlm_tokenizer_export_as()). */
    void export_as(std::string_view path, int32_t format) const {
        detail::check(tlm_tokenizer_export_as(raw_, detail::c_string(path).c_str(), format));
    }

    /** The bytes token `id` decodes to, owned by the tokenizer (valid as
     *  long as it); TLM_E_RANGE outside the vocabulary
     *  (tlm_tokenizer_token_bytes()). */
    std::string_view token_bytes(int32_t id) const {
        const char *bytes = nullptr;
        size_t length = 0;
        detail::check(tlm_tokenizer_token_bytes(raw_, id, &bytes, &length));
        return std::string_view(bytes, length);
    }

    /** Number of BPE or GPT-2 merges, 0 for the other kinds
     *  (tlm_tokenizer_merge_count()). */
    int32_t merge_count() const {
        int32_t n = tlm_tokenizer_merge_count(raw_);
        detail::check(n);
        return n;
    }

    /** The tokens (left, right) that merge `rank` joins into token
     *  256 + rank (tlm_tokenizer_merge()). */
    std::pair<int32_t, int32_t> merge(int32_t rank) const {
        int32_t left = -1;
        int32_t right = -1;
        detail::check(tlm_tokenizer_merge(raw_, rank, &left, &right));
        return {left, right};
    }

    /** Its file image, as save() writes it (tlm_tokenizer_save_memory()). */
    std::vector<unsigned char> save_memory() const {
        size_t size = 0;
        int status = tlm_tokenizer_save_memory(raw_, nullptr, 0, &size);
        if (status != TLM_E_RANGE || size == 0)
            detail::check(status);
        std::vector<unsigned char> image(size);
        detail::check(tlm_tokenizer_save_memory(raw_, image.data(), image.size(), &size));
        return image;
    }

protected:
    tlm_tokenizer *raw_; ///< the C handle, or NULL
};

/** A tokenizer owned by this object (tlm_tokenizer_free()). Move-only. */
class tokenizer : public tokenizer_view {
public:
    /** Train one on `corpus` (tlm_tokenizer_train()). */
    static tokenizer train(context &ctx, std::string_view corpus,
                           const tlm_tokenizer_params &params) {
        tokenizer made;
        detail::check(tlm_tokenizer_train(&made.raw_, ctx.get(), corpus.data(),
                                          corpus.size(), &params));
        return made;
    }

    /** Read one written by save() (tlm_tokenizer_load()). */
    static tokenizer load(context &ctx, std::string_view path) {
        tokenizer made;
        detail::check(tlm_tokenizer_load(&made.raw_, ctx.get(),
                                         detail::c_string(path).c_str()));
        return made;
    }

    /** Read a file image from save_memory(); any bytes are safe
     *  (tlm_tokenizer_load_memory()). */
    static tokenizer load_memory(context &ctx, const std::vector<unsigned char> &image) {
        tokenizer made;
        detail::check(tlm_tokenizer_load_memory(&made.raw_, ctx.get(), image.data(),
                                                image.size()));
        return made;
    }

    /** Read a published tokenizer: GPT-2, SentencePiece, llama2.c, tiktoken
     *  (tlm_tokenizer_import()). */
    static tokenizer import(context &ctx, std::string_view path) {
        tokenizer made;
        detail::check(tlm_tokenizer_import(&made.raw_, ctx.get(),
                                           detail::c_string(path).c_str()));
        return made;
    }

    /** Takes `other`'s tokenizer; `other` is left empty. */
    tokenizer(tokenizer &&other) noexcept : tokenizer_view(other.release()) {}
    /** Frees this tokenizer and takes `other`'s. */
    tokenizer &operator=(tokenizer &&other) noexcept {
        if (this != &other) {
            tlm_tokenizer_free(raw_);
            raw_ = other.release();
        }
        return *this;
    }
    tokenizer(const tokenizer &) = delete;
    tokenizer &operator=(const tokenizer &) = delete;
    ~tokenizer() { tlm_tokenizer_free(raw_); }

    /** Give up ownership: the caller frees the returned handle. */
    tlm_tokenizer *release() noexcept {
        tlm_tokenizer *raw = raw_;
        raw_ = nullptr;
        return raw;
    }

private:
    tokenizer() noexcept = default;
};

/**
 * A streaming decoder (tlm_token_stream): ids go in one at a time, text
 * comes out in pieces that never end inside a UTF-8 character. The
 * tokenizer must outlive it. Move-only.
 */
class token_stream {
public:
    /** A stream decoding for `tok` (tlm_token_stream_create()). */
    explicit token_stream(const tokenizer_view &tok) {
        tlm_token_stream *raw = nullptr;
        detail::check(tlm_token_stream_create(&raw, tok.get()));
        handle_.reset(raw);
    }
    /** Refused: the tokenizer must outlive the stream. */
    explicit token_stream(tokenizer &&tok) = delete;

    /** The C handle (still owned by this object). */
    tlm_token_stream *get() const noexcept { return handle_.get(); }
    /** True while this object holds a stream. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /**
     * Feed `id`; the text now complete, possibly empty, owned by the
     * stream and valid until its next call (no allocation per token).
     * TLM_E_RANGE for an id outside the vocabulary leaves it unchanged
     * (tlm_token_stream_push()).
     */
    std::string_view push(int32_t id) {
        const char *piece = nullptr;
        size_t length = 0;
        detail::check(tlm_token_stream_push(get(), id, &piece, &length));
        return std::string_view(piece, length);
    }

    /** End the text: the bytes held back, as they are, and start afresh;
     *  valid as push()'s (tlm_token_stream_flush()). */
    std::string_view flush() {
        const char *piece = nullptr;
        size_t length = 0;
        detail::check(tlm_token_stream_flush(get(), &piece, &length));
        return std::string_view(piece, length);
    }

private:
    detail::owned<tlm_token_stream, tlm_token_stream_free> handle_;
};

/* ------------------------------------------------------------------------ */

/** A model (tlm_model): create, load, import, save, export, quantize. */
class model {
public:
    /** A freshly initialised model (tlm_model_create()). */
    static model create(context &ctx, const tlm_model_config &config) {
        tlm_model *raw = nullptr;
        detail::check(tlm_model_create(&raw, ctx.get(), &config));
        return model(raw);
    }

    /** A model saved by save() (tlm_model_load()). */
    static model load(context &ctx, std::string_view path,
                      const tlm_model_load_params &params = defaults<tlm_model_load_params>()) {
        tlm_model *raw = nullptr;
        detail::check(tlm_model_load(&raw, ctx.get(),
                                     detail::c_string(path).c_str(), &params));
        return model(raw);
    }

    /** A model from another program's files, the format detected
     *  (tlm_model_import()). */
    static model import(context &ctx, std::string_view path,
                        const tlm_model_import_params &params = defaults<tlm_model_import_params>()) {
        tlm_model *raw = nullptr;
        detail::check(tlm_model_import(&raw, ctx.get(),
                                       detail::c_string(path).c_str(), &params));
        return model(raw);
    }

    /** Takes ownership of `raw` (NULL gives an empty model). */
    explicit model(tlm_model *raw) noexcept : handle_(raw) {}

    /** The C handle (still owned by this object). */
    tlm_model *get() const noexcept { return handle_.get(); }
    /** True while this object holds a model. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** Save as a .tlm file (tlm_model_save(); atomic). */
    void save(std::string_view path) const {
        detail::check(tlm_model_save(get(), detail::c_string(path).c_str()));
    }

    /** Write in another program's format (tlm_model_export()). */
    void export_to(std::string_view path, const tlm_model_export_params &params) const {
        detail::check(tlm_model_export(get(), detail::c_string(path).c_str(), &params));
    }

    /** A copy whose matrices are stored in a ::tlm_weight_format
     *  (tlm_model_quantize()). */
    model quantize(int32_t format) const {
        tlm_model *raw = nullptr;
        detail::check(tlm_model_quantize(&raw, get(), format));
        return model(raw);
    }

    /** Its ::tlm_weight_format. */
    int32_t weight_format() const {
        int32_t format = tlm_model_weight_format(get());
        detail::check(format);
        return format;
    }

    /** Its configuration, every default resolved. */
    tlm_model_config config() const {
        tlm_model_config config = defaults<tlm_model_config>();
        detail::check(tlm_model_get_config(get(), &config));
        return config;
    }

    /** Number of parameters (scalars). */
    int64_t parameter_count() const {
        int64_t n = tlm_model_parameter_count(get());
        detail::check(n < 0 ? static_cast<int>(n) : TLM_OK);
        return n;
    }

    /** Every parameter tensor, in the model's fixed order. */
    std::vector<tensor_view> parameters() const {
        int32_t n = tlm_model_parameter_tensor_count(get());
        detail::check(n);
        std::vector<tensor_view> all;
        for (int32_t i = 0; i < n; i++) {
            const char *name = nullptr;
            tlm_tensor *raw = nullptr;
            detail::check(tlm_model_parameter(get(), i, &name, &raw));
            all.emplace_back(raw);
        }
        return all;
    }

    /** The parameter called `name` (docs/model.md); TLM_E_RANGE if none. */
    tensor_view parameter(std::string_view name) const {
        tlm_tensor *raw = nullptr;
        detail::check(tlm_model_find_parameter(get(), detail::c_string(name).c_str(), &raw));
        return tensor_view(raw);
    }

    /** True when a tokenizer is attached. */
    bool has_tokenizer() const { return tlm_model_tokenizer(get()) != nullptr; }

    /** The attached tokenizer, owned by the model; TLM_E_STATE if none. */
    tokenizer_view tokenizer() const {
        tlm_tokenizer *raw = tlm_model_tokenizer(get());
        if (raw == nullptr)
            throw error(TLM_E_STATE, "tlm::model::tokenizer: the model has no tokenizer");
        return tokenizer_view(raw);
    }

    /** Attach a copy of `tok` (tlm_model_set_tokenizer()). */
    void set_tokenizer(const tokenizer_view &tok) {
        detail::check(tlm_model_set_tokenizer(get(), tok.get()));
    }

    /** What forward() returns: results in the model's context's arena,
     *  valid until its reset. */
    struct forward_result {
        tensor_view logits; ///< [B, T, V]
        tensor_view loss;   ///< [1], or empty without targets
    };

    /**
     * The training forward pass through the autodiff engine
     * (tlm_model_forward()): `batch` (from tlm::defaults<tlm_batch>()) holds
     * integer tensors of the model's context. backward(result.loss) then
     * computes the parameters' gradients.
     */
    forward_result forward(const tlm_batch &batch) {
        tlm_tensor *logits = nullptr;
        tlm_tensor *loss = nullptr;
        detail::check(tlm_model_forward(get(), &batch, &logits, &loss));
        return forward_result{tensor_view(logits), tensor_view(loss)};
    }

    /** forward() of a decoder-only or encoder-only batch: `ids` [B, T] and
     *  `targets` [B, T] (-1 ignored) or empty. */
    forward_result forward(const tensor_view &ids, const tensor_view &targets = tensor_view()) {
        tlm_batch batch = defaults<tlm_batch>();
        batch.ids = ids.get();
        batch.targets = targets.get();
        return forward(batch);
    }

    /**
     * The self-attention probabilities of decoder layer `layer` for the
     * sequence `ids` (tlm_model_attention_weights()): n_heads * n * n
     * values, [h * n + i] * n + j being how much query i of head h
     * attends to key j.
     */
    std::vector<float> attention_weights(const tlm::ids &ids, int32_t layer) const {
        tlm_model_config c = config();
        size_t n = ids.size();
        if (n == 0 || n > static_cast<size_t>(c.max_context))
            throw error(TLM_E_RANGE,
                        "tlm::model::attention_weights: the sequence has 1 to max_context ids");
        std::vector<float> weights(static_cast<size_t>(c.n_heads) * n * n);
        detail::check(tlm_model_attention_weights(get(), ids.data(), n, layer, weights.data()));
        return weights;
    }

    /** Bytes the model needs for a ::tlm_memory_purpose with `batch`
     *  sequences of `positions` positions (tlm_model_memory_estimate()'s
     *  context). */
    int64_t memory_estimate(int32_t purpose, int32_t batch, int32_t positions) const {
        int64_t bytes = 0;
        detail::check(tlm_model_memory_estimate(get(), purpose, batch, positions, &bytes));
        return bytes;
    }

private:
    detail::owned<tlm_model, tlm_model_free> handle_;
};

/* ------------------------------------------------------------------------ */

/** A sampler (tlm_sampler): turns logits into a token. */
class sampler {
public:
    /** A sampler with `params` (tlm_sampler_create()). */
    sampler(context &ctx, const tlm_sampler_params &params) {
        tlm_sampler *raw = nullptr;
        detail::check(tlm_sampler_create(&raw, ctx.get(), &params));
        handle_.reset(raw);
    }

    /** The C handle (still owned by this object). */
    tlm_sampler *get() const noexcept { return handle_.get(); }
    /** True while this object holds a sampler. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** A token drawn from `logits`, not yet accepted. */
    int32_t sample(const std::vector<float> &logits) {
        int32_t token = -1;
        detail::check(tlm_sampler_sample(get(), logits.data(), vocab(logits),
                                         &token, nullptr));
        return token;
    }

    /** What sample_with_logprob() returns. */
    struct sampled {
        int32_t token;  ///< the chosen id
        float logprob;  ///< its log-probability under the final distribution
    };

    /** A token drawn from `logits` and its log-probability under the
     *  filtered, renormalized distribution (0 in greedy mode). */
    sampled sample_with_logprob(const std::vector<float> &logits) {
        sampled out{-1, 0.0f};
        detail::check(tlm_sampler_sample(get(), logits.data(), vocab(logits),
                                         &out.token, &out.logprob));
        return out;
    }

    /** The distribution sample() would draw from, without drawing
     *  (tlm_sampler_probabilities()). */
    std::vector<float> probabilities(const std::vector<float> &logits) {
        std::vector<float> probs(logits.size());
        detail::check(tlm_sampler_probabilities(get(), logits.data(), vocab(logits),
                                                probs.data()));
        return probs;
    }

    /** Its settings, the seed being the latest (tlm_sampler_get_params()). */
    tlm_sampler_params params() const {
        tlm_sampler_params settings = defaults<tlm_sampler_params>();
        detail::check(tlm_sampler_get_params(get(), &settings));
        return settings;
    }

    /** Record a token in the penalty history (tlm_sampler_accept()). */
    void accept(int32_t token) { detail::check(tlm_sampler_accept(get(), token)); }
    /** Forget the history. */
    void reset() { detail::check(tlm_sampler_reset(get())); }
    /** Reseed the generator. */
    void set_seed(uint64_t seed) { detail::check(tlm_sampler_set_seed(get(), seed)); }

private:
    static int32_t vocab(const std::vector<float> &logits) {
        if (logits.size() > static_cast<size_t>(INT32_MAX))
            throw error(TLM_E_RANGE, "tlm::sampler: more than INT32_MAX logits");
        return static_cast<int32_t>(logits.size());
    }

    detail::owned<tlm_sampler, tlm_sampler_free> handle_;
};

/**
 * The log-probability of token `id` under the softmax of the raw `logits`
 * (tlm_log_softmax_at()): a token's score under the model, without
 * temperature, filters or penalties.
 */
inline float log_softmax_at(const std::vector<float> &logits, int32_t id) {
    if (logits.size() > static_cast<size_t>(INT32_MAX))
        throw error(TLM_E_RANGE, "tlm::log_softmax_at: more than INT32_MAX logits");
    float logprob = 0.0f;
    detail::check(tlm_log_softmax_at(logits.data(), static_cast<int32_t>(logits.size()), id,
                                     &logprob));
    return logprob;
}

/** What session::beam_search() returns. */
struct beam_result {
    tlm::ids ids; ///< the best hypothesis, without bos and eos
    double score; ///< its length-penalised log-probability
};

/** What session::score() returns. */
struct score {
    double logprob;   ///< sum of the scored tokens' log-probabilities, nats
    int64_t n_scored; ///< tokens scored
};

/** What session::generate() returns. */
struct generation {
    std::string text; ///< the generated text (the prompt not included)
    int32_t tokens;   ///< tokens generated
};

/**
 * An inference session with its KV cache (tlm_session): decoding,
 * generation, scoring.
 */
class session {
public:
    /** A session for `m` (tlm_session_create()). */
    explicit session(const model &m,
                     const tlm_session_params &params = defaults<tlm_session_params>()) {
        tlm_session *raw = nullptr;
        detail::check(tlm_session_create(&raw, m.get(), &params));
        handle_.reset(raw);
        tlm_model_config config = m.config();
        vocab_size_ = config.vocab_size;
        max_context_ = config.max_context;
    }
    /** Refused: the model must outlive the session. */
    explicit session(model &&m, const tlm_session_params &params = defaults<tlm_session_params>()) = delete;

    /** The C handle (still owned by this object). */
    tlm_session *get() const noexcept { return handle_.get(); }
    /** True while this object holds a session. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** Forget every position. */
    void reset() { detail::check(tlm_session_reset(get())); }

    /** Positions in the cache. */
    int32_t position() const {
        int32_t n = tlm_session_position(get());
        detail::check(n);
        return n;
    }

    /**
     * Feed `ids` at the next positions and return the logits of the last
     * one ([V]), as tlm_session_decode() with logits_rows 1.
     */
    std::vector<float> decode(const tlm::ids &ids) {
        std::vector<float> logits(static_cast<size_t>(vocab_size_));
        detail::check(tlm_session_decode(get(), ids.data(), ids.size(),
                                         logits.data(), 1));
        return logits;
    }

    /**
     * Feed `ids` at the next positions and return every position's logits,
     * row after row ([n, V]; tlm_session_decode() with logits_rows n).
     */
    std::vector<float> decode_all(const tlm::ids &ids) {
        if (ids.size() > static_cast<size_t>(max_context_))
            throw error(TLM_E_RANGE, "tlm::session::decode_all: more ids than max_context");
        std::vector<float> logits(ids.size() * static_cast<size_t>(vocab_size_));
        detail::check(tlm_session_decode(get(), ids.data(), ids.size(), logits.data(),
                                         static_cast<int32_t>(ids.size())));
        return logits;
    }

    /** Feed `ids` at the next positions without computing logits
     *  (tlm_session_decode() with logits_rows 0). */
    void feed(const tlm::ids &ids) {
        detail::check(tlm_session_decode(get(), ids.data(), ids.size(), nullptr, 0));
    }

    /**
     * Run the encoder over `src_ids` (tlm_session_encode()); `src_mask`
     * empty, or one flag per id (1 token, 0 padding). An encoder-decoder
     * model keeps the encoded source for decode() and beam_search().
     */
    void encode(const tlm::ids &src_ids, const std::vector<int32_t> &src_mask = {}) {
        detail::check(tlm_session_encode(get(), src_ids.data(), src_ids.size(),
                                         mask_of(src_mask, src_ids.size(), "tlm::session::encode"),
                                         nullptr));
    }

    /** encode() for an encoder-only model, returning every position's
     *  output ([n, V]). */
    std::vector<float> encode_logits(const tlm::ids &src_ids,
                                     const std::vector<int32_t> &src_mask = {}) {
        if (src_ids.size() > static_cast<size_t>(max_context_))
            throw error(TLM_E_RANGE, "tlm::session::encode_logits: more ids than max_context");
        std::vector<float> logits(src_ids.size() * static_cast<size_t>(vocab_size_));
        detail::check(tlm_session_encode(get(), src_ids.data(), src_ids.size(),
                                         mask_of(src_mask, src_ids.size(),
                                                 "tlm::session::encode_logits"),
                                         logits.data()));
        return logits;
    }

    /** Continue exactly where `src`, a session of the same model, is
     *  (tlm_session_copy()). */
    void copy_from(const session &src) {
        detail::check(tlm_session_copy(get(), src.get()));
    }

    /**
     * Decode `src_ids` with an encoder-decoder model by beam search
     * (tlm_beam_search(); greedy with beam_width 1). `params` (from
     * tlm::defaults<tlm_beam_search_params>()) needs bos_id and eos_id;
     * its `sessions` may list other sessions' get() as the hypotheses'
     * caches. `src_mask` as for encode().
     */
    beam_result beam_search(const tlm::ids &src_ids, const tlm_beam_search_params &params,
                            const std::vector<int32_t> &src_mask = {}) {
        // max_length ids always suffice, and it is at most max_context (0
        // means max_context; a larger one is refused by the C call).
        int32_t length = max_context_;
        if (params.max_length > 0 && params.max_length < length)
            length = params.max_length;
        size_t capacity = static_cast<size_t>(length);
        beam_result best{tlm::ids(capacity), 0.0};
        size_t n = 0;
        detail::check(tlm_beam_search(get(), src_ids.data(), src_ids.size(),
                                      mask_of(src_mask, src_ids.size(),
                                              "tlm::session::beam_search"),
                                      &params, best.ids.data(), best.ids.size(), &n,
                                      &best.score));
        best.ids.resize(n);
        return best;
    }

    /**
     * Per-token log-probabilities of `ids` (tlm_score_tokens()): entry i
     * scores ids[i + 1] given the ids before it, with its rank and the
     * `top_k` (0..TLM_TOP_LOGPROBS_MAX) most probable alternatives. The
     * session is reset first and left holding the sequence.
     */
    std::vector<tlm_token_logprob> score_tokens(const tlm::ids &ids, int32_t top_k = 0) {
        std::vector<tlm_token_logprob> entries(ids.size() < 2 ? 0 : ids.size() - 1);
        detail::check(tlm_score_tokens(get(), ids.data(), ids.size(), top_k, entries.data()));
        return entries;
    }

    /**
     * Continue `prompt` (tlm_generate(), which resets the session first),
     * calling `on_token(int32_t id, std::string_view piece, float logprob)`
     * for each token (and, as tlm_generate() does, once more with id -1
     * for text left undecoded at the end). `on_token` returns void (go on) or bool (false
     * stops). An exception it throws stops the generation and is rethrown
     * here once tlm_generate() has returned. With `params.continue_session`
     * 1 the session is not reset: the prompt follows what the session
     * holds and the generated tokens stay in it, so a chat loop calls
     * generate() once per turn (tlm_generate_params says what else changes).
     */
    template <typename OnToken>
    generation generate(sampler &s, const tokenizer_view &tok,
                        std::string_view prompt, const tlm_generate_params &params,
                        OnToken &&on_token) {
        using callable = std::remove_reference_t<OnToken>;
        struct state {
            callable *callback;
            std::string text;
        } st{&on_token, std::string()};
        tlm_generate_params p = params;
        p.callback_user = &st;
        p.callback = [](void *user, int32_t id, const char *piece, size_t length,
                        float logprob) -> int {
            state *s = static_cast<state *>(user);
            try {
                std::string_view text(piece, length);
                s->text.append(text);
                using result = std::invoke_result_t<callable &, int32_t, std::string_view, float>;
                if constexpr (std::is_void_v<result>) {
                    (*s->callback)(id, text, logprob);
                    return 0;
                } else {
                    return (*s->callback)(id, text, logprob) ? 0 : 1;
                }
            } catch (...) {
                detail::store_current_exception();
                return 1;
            }
        };
        int32_t generated = 0;
        detail::check(tlm_generate(get(), s.get(), tok.get(), prompt.data(),
                                   prompt.size(), &p, &generated));
        return generation{std::move(st.text), generated};
    }

    /** generate() without a callback. */
    generation generate(sampler &s, const tokenizer_view &tok, std::string_view prompt,
                        const tlm_generate_params &params = defaults<tlm_generate_params>()) {
        return generate(s, tok, prompt, params, [](int32_t, std::string_view, float) {});
    }

    /** The log-probability of `text` (tlm_score_text()). */
    tlm::score score(const tokenizer_view &tok, std::string_view text) {
        tlm::score result{0.0, 0};
        detail::check(tlm_score_text(get(), tok.get(), text.data(), text.size(),
                                     &result.logprob, &result.n_scored));
        return result;
    }

    /** The log-probability of `continuation` after `prompt`
     *  (tlm_score_continuation()). */
    double score_continuation(const tokenizer_view &tok, std::string_view prompt,
                              std::string_view continuation) {
        double logprob = 0.0;
        detail::check(tlm_score_continuation(get(), tok.get(), prompt.data(),
                                             prompt.size(), continuation.data(),
                                             continuation.size(), &logprob));
        return logprob;
    }

private:
    // A source mask as the C calls take it: NULL when empty, else one flag
    // per source id.
    static const int32_t *mask_of(const std::vector<int32_t> &mask, size_t n,
                                  const char *what) {
        if (mask.empty())
            return nullptr;
        if (mask.size() != n)
            throw error(TLM_E_INVALID, std::string(what) + ": the mask has one flag per source id");
        return mask.data();
    }

    detail::owned<tlm_session, tlm_session_free> handle_;
    int32_t vocab_size_ = 0;
    int32_t max_context_ = 0;
};

/* ------------------------------------------------------------------------ */

/** The default settings of a ::tlm_optimizer_kind
 *  (tlm_optimizer_params_init_for()): start SGD from these, not from
 *  defaults<tlm_optimizer_params>(), which are AdamW's. */
inline tlm_optimizer_params optimizer_defaults(int32_t kind) {
    tlm_optimizer_params params{};
    detail::check(tlm_optimizer_params_init_for(&params, kind));
    return params;
}

/**
 * Scale the gradients of `tensors` so that their global norm is at most
 * `max_norm` (+infinity only measures) and return the norm before
 * (tlm_clip_grad_norm()); TLM_E_NONFINITE when it is not finite.
 */
inline double clip_grad_norm(const std::vector<tensor_view> &tensors, float max_norm) {
    std::vector<tlm_tensor *> raw = detail::raw_tensors(tensors, "tlm::clip_grad_norm");
    double norm = 0.0;
    detail::check(tlm_clip_grad_norm(raw.data(), static_cast<int32_t>(raw.size()), max_norm,
                                     &norm));
    return norm;
}

/** The learning rate of a schedule at `step`, 0-based (tlm_schedule_lr()). */
inline float schedule_lr(const tlm_schedule_params &params, int64_t step) {
    float lr = 0.0f;
    detail::check(tlm_schedule_lr(&params, step, &lr));
    return lr;
}

/** An optimizer over a list of parameters (tlm_optimizer). */
class optimizer {
public:
    /** An optimizer over `params_to_train` (tlm_optimizer_create()); the
     *  tensors must outlive it. */
    optimizer(const std::vector<tensor_view> &params_to_train,
              const tlm_optimizer_params &params = defaults<tlm_optimizer_params>()) {
        std::vector<tlm_tensor *> raw_tensors =
            detail::raw_tensors(params_to_train, "tlm::optimizer");
        tlm_optimizer *raw = nullptr;
        detail::check(tlm_optimizer_create(&raw, raw_tensors.data(),
                                           static_cast<int32_t>(raw_tensors.size()),
                                           &params));
        handle_.reset(raw);
    }

    /** The C handle (still owned by this object). */
    tlm_optimizer *get() const noexcept { return handle_.get(); }
    /** True while this object holds an optimizer. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** One update with learning rate `lr` (TLM_OPTIMIZER_LR_DEFAULT: the
     *  settings' lr). */
    void step(float lr = TLM_OPTIMIZER_LR_DEFAULT) {
        detail::check(tlm_optimizer_step(get(), lr));
    }

    /** Steps taken. */
    int64_t step_count() const {
        int64_t n = tlm_optimizer_step_count(get());
        detail::check(n < 0 ? static_cast<int>(n) : TLM_OK);
        return n;
    }

    /** Its state, for load_state() (tlm_optimizer_save_state()). */
    std::vector<unsigned char> save_state() const {
        size_t size = 0;
        detail::check(tlm_optimizer_state_size(get(), &size));
        std::vector<unsigned char> state(size);
        detail::check(tlm_optimizer_save_state(get(), state.data(), state.size()));
        return state;
    }

    /** Restore a state from save_state(); all or nothing. */
    void load_state(const std::vector<unsigned char> &state) {
        detail::check(tlm_optimizer_load_state(get(), state.data(), state.size()));
    }

    /** Its settings, as created or restored; decay_flags NULL: see decay()
     *  (tlm_optimizer_get_params()). */
    tlm_optimizer_params params() const {
        tlm_optimizer_params settings = defaults<tlm_optimizer_params>();
        detail::check(tlm_optimizer_get_params(get(), &settings));
        return settings;
    }

    /** Turn weight decay on or off for parameter `index`, in creation
     *  order (tlm_optimizer_set_decay()). */
    void set_decay(int32_t index, bool decay) {
        detail::check(tlm_optimizer_set_decay(get(), index, decay ? 1 : 0));
    }

    /** Whether weight decay applies to parameter `index`
     *  (tlm_optimizer_get_decay()). */
    bool decay(int32_t index) const {
        int flag = tlm_optimizer_get_decay(get(), index);
        detail::check(flag);
        return flag == 1;
    }

private:
    detail::owned<tlm_optimizer, tlm_optimizer_free> handle_;
};

/* ------------------------------------------------------------------------ */

/**
 * A communicator over every process of the MPI job (tlm_comm), for
 * data-parallel training: set tlm_trainer_params::comm to its get(); it
 * must outlive the trainer. Move-only. In a build without MPI
 * (available() false) creating one throws TLM_E_UNSUPPORTED.
 */
class communicator {
public:
    /** True when this build of tlm has MPI (tlm_comm_available()). */
    static bool available() noexcept { return tlm_comm_available() == 1; }

    /** A communicator over MPI_COMM_WORLD, initialising MPI as `params`
     *  say (tlm_comm_create_world()). */
    explicit communicator(const tlm_comm_params &params = defaults<tlm_comm_params>()) {
        tlm_comm *raw = nullptr;
        detail::check(tlm_comm_create_world(&raw, &params));
        handle_.reset(raw);
    }

    /** The C handle (still owned by this object). */
    tlm_comm *get() const noexcept { return handle_.get(); }
    /** True while this object holds a communicator. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** This process's rank, 0..size()-1. */
    int32_t rank() const {
        int32_t r = tlm_comm_rank(get());
        detail::check(r);
        return r;
    }

    /** Number of ranks. */
    int32_t size() const {
        int32_t n = tlm_comm_size(get());
        detail::check(n);
        return n;
    }

    /** Collective: true on every rank when `flag` is true on at least one
     *  (tlm_comm_any()), so that ranks stop together. */
    bool any(bool flag) {
        int32_t result = 0;
        detail::check(tlm_comm_any(get(), flag ? 1 : 0, &result));
        return result != 0;
    }

private:
    detail::owned<tlm_comm, tlm_comm_free> handle_;
};

/* ------------------------------------------------------------------------ */

/** Token ids split into training and validation parts (tlm_dataset). */
class dataset {
public:
    /** From a stream of ids (tlm_dataset_from_ids()). */
    static dataset from_ids(context &ctx, const tlm::ids &ids,
                            const tlm_dataset_params &params = defaults<tlm_dataset_params>()) {
        tlm_dataset *raw = nullptr;
        detail::check(tlm_dataset_from_ids(&raw, ctx.get(), ids.data(), ids.size(), &params));
        return dataset(raw);
    }

    /** From a text file encoded with `tok` (tlm_dataset_from_text_file()). */
    static dataset from_text_file(context &ctx, std::string_view path,
                                  const tokenizer_view &tok,
                                  const tlm_dataset_params &params = defaults<tlm_dataset_params>()) {
        tlm_dataset *raw = nullptr;
        detail::check(tlm_dataset_from_text_file(&raw, ctx.get(),
                                                 detail::c_string(path).c_str(),
                                                 tok.get(), &params));
        return dataset(raw);
    }

    /**
     * A sequence-to-sequence dataset (tlm_dataset_from_pairs()): pair i's
     * source is ids[offsets[2i] .. offsets[2i+1]) and its target
     * ids[offsets[2i+1] .. offsets[2i+2]); `offsets` holds 2 n + 1 entries.
     */
    static dataset from_pairs(context &ctx, const tlm::ids &ids,
                              const std::vector<int64_t> &offsets,
                              const tlm_dataset_params &params = defaults<tlm_dataset_params>()) {
        if (offsets.size() % 2 != 1)
            throw error(TLM_E_INVALID,
                        "tlm::dataset::from_pairs: offsets holds 2 n_pairs + 1 entries");
        for (int64_t offset : offsets)
            if (offset < 0 || static_cast<uint64_t>(offset) > ids.size())
                throw error(TLM_E_RANGE, "tlm::dataset::from_pairs: an offset is outside the ids");
        tlm_dataset *raw = nullptr;
        detail::check(tlm_dataset_from_pairs(&raw, ctx.get(), ids.data(), offsets.data(),
                                             static_cast<int64_t>(offsets.size() / 2), &params));
        return dataset(raw);
    }

    /** Takes ownership of `raw` (NULL gives an empty dataset). */
    explicit dataset(tlm_dataset *raw) noexcept : handle_(raw) {}

    /** The C handle (still owned by this object). */
    tlm_dataset *get() const noexcept { return handle_.get(); }
    /** True while this object holds a dataset. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /** Tokens (or pairs) in a ::tlm_split. */
    int64_t size(int32_t split) const {
        int64_t n = tlm_dataset_size(get(), split);
        detail::check(n < 0 ? static_cast<int>(n) : TLM_OK);
        return n;
    }

private:
    detail::owned<tlm_dataset, tlm_dataset_free> handle_;
};

/**
 * A trainer (tlm_trainer): steps, evaluation, checkpoints. The model and
 * the dataset must outlive it.
 */
class trainer {
public:
    /** Called after every step; return false to stop (step() then throws
     *  tlm::error with TLM_E_CANCELLED). */
    using progress_function = std::function<bool(const tlm_step_info &)>;

    /** A trainer with `params` as given (tlm_trainer_create()). */
    trainer(model &m, dataset &data,
            const tlm_trainer_params &params = defaults<tlm_trainer_params>()) {
        tlm_trainer *raw = nullptr;
        detail::check(tlm_trainer_create(&raw, m.get(), data.get(), &params));
        handle_.reset(raw);
    }

    /**
     * A trainer whose progress callback is `on_progress`. An exception it
     * throws stops the step's caller loop and is rethrown by step().
     */
    trainer(model &m, dataset &data, tlm_trainer_params params,
            progress_function on_progress)
        : progress_(std::make_unique<progress_function>(std::move(on_progress))) {
        params.progress = &progress_trampoline;
        params.progress_user = progress_.get();
        tlm_trainer *raw = nullptr;
        detail::check(tlm_trainer_create(&raw, m.get(), data.get(), &params));
        handle_.reset(raw);
    }

    /** The C handle (still owned by this object). */
    tlm_trainer *get() const noexcept { return handle_.get(); }
    /** True while this object holds a trainer. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /**
     * One optimisation step. A skipped step (a non-finite loss or gradient,
     * a gradient norm above max_grad_norm) is not an exception: the
     * returned info has `skipped` set, and training may go on.
     */
    tlm_step_info step() {
        tlm_step_info info = defaults<tlm_step_info>();
        int status = tlm_trainer_step(get(), &info);
        if ((status == TLM_E_NONFINITE || status == TLM_E_RANGE) && info.skipped)
            status = TLM_OK;
        detail::check(status);
        return info;
    }

    /** Mean loss over `n_batches` batches of a ::tlm_split. */
    float evaluate(int32_t split, int32_t n_batches) {
        float loss = 0.0f;
        detail::check(tlm_trainer_evaluate(get(), split, n_batches, &loss));
        return loss;
    }

    /** Mean loss over a fixed set of `n_batches` batches named by `seed`,
     * the same for every trainer on the same data and context
     * (tlm_trainer_evaluate_seeded): for comparing runs. */
    float evaluate(int32_t split, int32_t n_batches, uint64_t seed) {
        float loss = 0.0f;
        detail::check(tlm_trainer_evaluate_seeded(get(), split, n_batches, seed, &loss));
        return loss;
    }

    /** Steps completed. */
    int64_t step_count() const {
        int64_t n = tlm_trainer_step_count(get());
        detail::check(n < 0 ? static_cast<int>(n) : TLM_OK);
        return n;
    }

    /** Write a checkpoint that resumes exactly (atomic). */
    void save(std::string_view path) {
        detail::check(tlm_trainer_save(get(), detail::c_string(path).c_str()));
    }

    /** Resume from a checkpoint; all or nothing. */
    void resume(std::string_view path) {
        detail::check(tlm_trainer_resume(get(), detail::c_string(path).c_str()));
    }

    /** What allreduce_time() returns, in milliseconds. */
    struct allreduce_times {
        double last_ms;  ///< in the last step
        double total_ms; ///< in all steps
    };

    /** Time spent averaging gradients across the communicator's ranks; 0
     *  without one (tlm_trainer_allreduce_time()). */
    allreduce_times allreduce_time() const {
        allreduce_times times{0.0, 0.0};
        detail::check(tlm_trainer_allreduce_time(get(), &times.last_ms, &times.total_ms));
        return times;
    }

private:
    static int progress_trampoline(void *user, const tlm_step_info *info) {
        try {
            return (*static_cast<progress_function *>(user))(*info) ? 0 : 1;
        } catch (...) {
            detail::store_current_exception();
            return 1;
        }
    }

    // Declared first so that it outlives the trainer.
    std::unique_ptr<progress_function> progress_;
    detail::owned<tlm_trainer, tlm_trainer_free> handle_;
};

} // namespace tlm

#endif // TLM_HPP
