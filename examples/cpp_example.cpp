// The minimal example from C++: load a model written by `tlm train` and
// stream a completion of a prompt, with every handle owned by a
// std::unique_ptr (freed on every path, exceptions included), failures
// turned into exceptions carrying tlm's message, and a lambda as the
// streaming callback.
//   cpp_example MODEL.tlm "Once upon a time"
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include <tlm.h>

namespace tlmxx {

// A handle that frees itself: Free is the matching tlm_*_free function.
template <typename T, void (*Free)(T *)>
struct deleter {
    void operator()(T *handle) const { Free(handle); }
};
template <typename T, void (*Free)(T *)>
using handle = std::unique_ptr<T, deleter<T, Free>>;

using context = handle<tlm_context, tlm_context_free>;
using model = handle<tlm_model, tlm_model_free>;
using session = handle<tlm_session, tlm_session_free>;
using sampler = handle<tlm_sampler, tlm_sampler_free>;

// A failed call: what tlm_last_error() said, with the status's name.
struct error : std::runtime_error {
    int status;
    error(int s, const char *message)
        : std::runtime_error(std::string(tlm_status_name(s)) + ": " + message),
          status(s) {}
};

inline void check(int status) {
    if (status != TLM_OK)
        throw error(status, tlm_last_error());
}

// tlm_generate() with any callable taking the text of each new token,
// lambdas that capture included: the callable travels in callback_user and
// a plain function calls it back.
template <typename OnPiece>
int generate(tlm_session *s, tlm_sampler *sm, tlm_tokenizer *tok,
             const std::string &prompt, int max_tokens, OnPiece on_piece) {
    tlm_generate_params params;
    check(tlm_generate_params_init(&params));
    params.max_tokens = max_tokens;
    params.callback_user = &on_piece;
    params.callback = [](void *user, int32_t, const char *piece, size_t length,
                         float) -> int {
        (*static_cast<OnPiece *>(user))(std::string(piece, length));
        return 0;
    };
    int32_t generated = 0;
    check(tlm_generate(s, sm, tok, prompt.data(), prompt.size(), &params,
                       &generated));
    return generated;
}

} // namespace tlmxx

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: cpp_example MODEL.tlm PROMPT\n";
        return 2;
    }
    try {
        tlm_context *raw_ctx = nullptr;
        tlmxx::check(tlm_context_create(&raw_ctx, nullptr));
        tlmxx::context ctx(raw_ctx);

        tlm_model *raw_model = nullptr;
        tlmxx::check(tlm_model_load(&raw_model, ctx.get(), argv[1], nullptr));
        tlmxx::model model(raw_model);

        tlm_session *raw_session = nullptr;
        tlmxx::check(tlm_session_create(&raw_session, model.get(), nullptr));
        tlmxx::session session(raw_session);

        tlm_sampler_params settings;
        tlmxx::check(tlm_sampler_params_init(&settings));
        settings.temperature = 0.8f;
        settings.seed = 42;
        tlm_sampler *raw_sampler = nullptr;
        tlmxx::check(tlm_sampler_create(&raw_sampler, ctx.get(), &settings));
        tlmxx::sampler sampler(raw_sampler);

        std::string text;
        int n = tlmxx::generate(session.get(), sampler.get(),
                                tlm_model_tokenizer(model.get()), argv[2], 100,
                                [&text](const std::string &piece) {
                                    std::cout << piece << std::flush;
                                    text += piece;
                                });
        std::cout << "\n(" << n << " tokens, " << text.size() << " bytes)\n";
        return 0;
    } catch (const tlmxx::error &e) {
        std::cerr << "cpp_example: " << e.what() << "\n";
        return 1;
    }
}
