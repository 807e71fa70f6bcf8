// The minimal example from C++, with the installed tlm.hpp: load a model
// written by `tlm train`, stream a completion of a prompt, then show how
// probable the model found each token of the prompt. Every handle
// frees itself (on every path, exceptions included), failures are
// tlm::error exceptions carrying tlm's status and message, and a lambda is
// the streaming callback.
//   cpp_example MODEL.tlm "Once upon a time"
#include <iostream>
#include <string_view>

#include <tlm.hpp>

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: cpp_example MODEL.tlm PROMPT\n";
        return 2;
    }
    try {
        tlm::context ctx;
        tlm::model model = tlm::model::load(ctx, argv[1]);
        tlm::session session(model);

        tlm_sampler_params settings = tlm::defaults<tlm_sampler_params>();
        settings.temperature = 0.8f;
        settings.seed = 42;
        tlm::sampler sampler(ctx, settings);

        tlm_generate_params params = tlm::defaults<tlm_generate_params>();
        params.max_tokens = 100;
        tlm::generation result = session.generate(
            sampler, model.tokenizer(), argv[2], params,
            [](int32_t, std::string_view piece, float) {
                std::cout << piece << std::flush;
            });
        std::cout << "\n(" << result.tokens << " tokens, " << result.text.size()
                  << " bytes)\n";

        // Each prompt token after the first: its log-probability, its rank
        // among the vocabulary and the model's favourite in its place.
        tlm::tokenizer_view tok = model.tokenizer();
        tlm::ids ids = tok.encode(argv[2]);
        if (ids.size() >= 2)
            for (const tlm_token_logprob &t : session.score_tokens(ids, 1))
                std::cout << "'" << tok.token_bytes(t.id) << "' " << t.logprob << " (rank "
                          << t.rank << ", best '" << tok.token_bytes(t.top_ids[0]) << "')\n";
        return 0;
    } catch (const tlm::error &e) {
        std::cerr << "cpp_example: " << e.what() << "\n";
        return 1;
    }
}
