/**
 * @file tlm.hpp
 * @brief C++17 interface to tlm: RAII handles, exceptions, lambdas.
 *
 * A header-only layer over include/tlm.h, installed beside it. Every handle
 * (context, tokenizer, model, session, sampler, optimizer, dataset, trainer,
 * tensor) is a move-only class that owns its C handle the way a
 * std::unique_ptr does and frees it in its destructor; a moved-from handle
 * holds nothing (`explicit operator bool` is false, and calls on it throw
 * tlm::error with TLM_E_INVALID from the C library's own argument checks).
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
 * docs/tutorial.md, "From C++", walks through an example.
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
#undef TLM_HPP_DEFAULTS_
/** @endcond */

/** The library's version, e.g. "0.2.0" (tlm_version_string()). */
inline std::string version() { return tlm_version_string(); }

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

protected:
    tlm_tensor *raw_; ///< the C handle, or NULL
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
        vocab_size_ = m.config().vocab_size;
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
     * Continue `prompt` (tlm_generate(), which resets the session first),
     * calling `on_token(int32_t id, std::string_view piece, float logprob)`
     * for each token (and, as tlm_generate() does, once more with id -1
     * for text left undecoded at the end). `on_token` returns void (go on) or bool (false
     * stops). An exception it throws stops the generation and is rethrown
     * here once tlm_generate() has returned.
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
    detail::owned<tlm_session, tlm_session_free> handle_;
    int32_t vocab_size_ = 0;
};

/* ------------------------------------------------------------------------ */

/** An optimizer over a list of parameters (tlm_optimizer). */
class optimizer {
public:
    /** An optimizer over `params_to_train` (tlm_optimizer_create()); the
     *  tensors must outlive it. */
    optimizer(const std::vector<tensor_view> &params_to_train,
              const tlm_optimizer_params &params = defaults<tlm_optimizer_params>()) {
        std::vector<tlm_tensor *> raw_tensors;
        for (const tensor_view &t : params_to_train)
            raw_tensors.push_back(t.get());
        if (raw_tensors.size() > static_cast<size_t>(INT32_MAX))
            throw error(TLM_E_RANGE, "tlm::optimizer: more than INT32_MAX tensors");
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

private:
    detail::owned<tlm_optimizer, tlm_optimizer_free> handle_;
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
