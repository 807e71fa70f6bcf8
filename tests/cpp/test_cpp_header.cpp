// Suite "cpp": include/tlm.hpp, the C++17 layer. Each handle class is
// created, used and moved; failing calls throw tlm::error with the C
// status; an exception thrown by a lambda callback comes out of the
// wrapper call after the C call has returned (valgrind runs this program:
// nothing leaks on that path).
#include <tlm.hpp>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include <cmocka.h>

#include "temp_dir.h"
}

namespace {

// Runs `call` and checks that it throws tlm::error with `status`.
template <typename Call>
void expect_status(int status, Call call) {
    bool thrown = false;
    try {
        call();
    } catch (const tlm::error &e) {
        thrown = true;
        assert_int_equal(e.status(), status);
        assert_true(std::string(e.what()).find(tlm_status_name(status)) == 0);
    }
    assert_true(thrown);
}

// One compute thread: no test here starts threads (suite threads).
tlm_context_params one_thread() {
    tlm_context_params params = tlm::defaults<tlm_context_params>();
    params.n_threads = 1;
    return params;
}

// A model small enough for valgrind: byte vocabulary, one layer.
tlm::model tiny_model(tlm::context &ctx) {
    tlm_model_config config = tlm::defaults<tlm_model_config>();
    config.vocab_size = 259;
    config.d_model = 16;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 16;
    config.init_seed = 7;
    tlm::model m = tlm::model::create(ctx, config);
    tlm_tokenizer_params tok_params = tlm::defaults<tlm_tokenizer_params>();
    tok_params.kind = TLM_TOKENIZER_BYTE;
    tlm::tokenizer tok = tlm::tokenizer::train(ctx, "", tok_params);
    m.set_tokenizer(tok);
    return m;
}

struct callback_failure : std::runtime_error {
    callback_failure() : std::runtime_error("from the callback") {}
};

void test_error_carries_status_and_message(void **) {
    tlm::context ctx(one_thread());
    assert_true(static_cast<bool>(ctx));
    assert_int_equal(ctx.thread_count(), 1);
    bool thrown = false;
    try {
        tlm::model::load(ctx, "/nonexistent/dir/model.tlm");
    } catch (const tlm::error &e) {
        thrown = true;
        assert_int_equal(e.status(), TLM_E_IO);
        // The message names the file, as tlm_last_error() does.
        assert_true(e.message().find("/nonexistent/dir/model.tlm") != std::string::npos);
    }
    assert_true(thrown);
    tlm_model_config bad = tlm::defaults<tlm_model_config>();
    bad.vocab_size = 0;
    expect_status(TLM_E_INVALID, [&] { tlm::model::create(ctx, bad); });
    tlm_sampler_params sampling = tlm::defaults<tlm_sampler_params>();
    sampling.temperature = -1.0f;
    expect_status(TLM_E_INVALID, [&] { tlm::sampler s(ctx, sampling); });
}

void test_tensor(void **) {
    tlm::context ctx(one_thread());
    tlm::tensor zeros(ctx, TLM_DTYPE_F32, {2, 3});
    assert_int_equal(zeros.numel(), 6);
    assert_true(zeros.shape() == (std::vector<int64_t>{2, 3}));
    tlm::tensor values = tlm::tensor::from_f32(ctx, {3}, {1.0f, 2.0f, 3.0f});
    assert_true(values.to_f32() == (std::vector<float>{1.0f, 2.0f, 3.0f}));
    values.set_f32({4.0f, 5.0f, 6.0f});
    assert_true(values.to_f32()[2] == 6.0f);
    tlm::tensor ints = tlm::tensor::from_i32(ctx, {2}, {7, 8});
    assert_int_equal(ints.dtype(), TLM_DTYPE_I32);
    assert_true(ints.to_i32() == (std::vector<int32_t>{7, 8}));
    expect_status(TLM_E_SHAPE, [&] { tlm::tensor::from_f32(ctx, {2}, {1.0f}); });
    expect_status(TLM_E_INVALID, [&] { tlm::tensor bad(ctx, TLM_DTYPE_F32, {0}); });
    // A moved-from tensor holds nothing and refuses to work.
    tlm::tensor moved = std::move(values);
    assert_false(static_cast<bool>(values));
    assert_int_equal(moved.numel(), 3);
    expect_status(TLM_E_INVALID, [&] { values.numel(); });
    zeros = std::move(moved); // frees the zeros, takes the values
    assert_int_equal(zeros.numel(), 3);
}

void test_tokenizer(void **) {
    tlm::context ctx(one_thread());
    tlm_tokenizer_params params = tlm::defaults<tlm_tokenizer_params>();
    params.kind = TLM_TOKENIZER_CHAR;
    tlm::tokenizer tok = tlm::tokenizer::train(ctx, "abcabc", params);
    assert_int_equal(tok.kind(), TLM_TOKENIZER_CHAR);
    tlm::ids ids = tok.encode("cab");
    assert_int_equal(ids.size(), 3);
    assert_true(tok.decode(ids) == "cab");
    assert_true(tok.decode({}).empty());
    expect_status(TLM_E_RANGE, [&] { tok.decode({tok.vocab_size()}); });
    char dir[512];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    std::string path = std::string(dir) + "/chars.tok";
    tok.save(path);
    tlm::tokenizer loaded = tlm::tokenizer::load(ctx, path);
    assert_true(loaded.encode("cab") == ids);
    temp_dir_remove(dir);
    expect_status(TLM_E_IO, [&] { tlm::tokenizer::load(ctx, path); });
    tlm::tokenizer moved(std::move(tok));
    assert_false(static_cast<bool>(tok));
    expect_status(TLM_E_INVALID, [&] { tok.encode("a"); });
    assert_true(moved.decode(moved.encode("ba")) == "ba");
}

void test_model_save_load_quantize(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = tiny_model(ctx);
    assert_true(m.parameter_count() > 0);
    assert_int_equal(m.config().vocab_size, 259);
    assert_false(m.parameters().empty());
    assert_int_equal(m.parameter("token_embedding.weight").shape()[0], 259);
    expect_status(TLM_E_RANGE, [&] { m.parameter("no_such_parameter"); });
    char dir[512];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    std::string path = std::string(dir) + "/m.tlm";
    m.save(path);
    tlm::model loaded = tlm::model::load(ctx, path);
    assert_int_equal(loaded.parameter_count(), m.parameter_count());
    assert_true(loaded.has_tokenizer());
    tlm::model q = m.quantize(TLM_WEIGHTS_INT8);
    assert_int_equal(q.weight_format(), TLM_WEIGHTS_INT8);
    expect_status(TLM_E_INVALID, [&] { m.quantize(99); });
    std::string exported = std::string(dir) + "/m.safetensors";
    tlm_model_export_params ex = tlm::defaults<tlm_model_export_params>();
    ex.format = TLM_MODEL_FORMAT_SAFETENSORS;
    m.export_to(exported, ex);
    tlm::model imported = tlm::model::import(ctx, exported);
    assert_int_equal(imported.parameter_count(), m.parameter_count());
    temp_dir_remove(dir);
    tlm::model moved = std::move(m);
    assert_false(static_cast<bool>(m));
    expect_status(TLM_E_INVALID, [&] { m.save("never.tlm"); });
    expect_status(TLM_E_STATE, [&] { imported.tokenizer(); });
}

void test_session_generate_score(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = tiny_model(ctx);
    tlm::session s(m);
    tlm::ids prompt = m.tokenizer().encode("ab");
    std::vector<float> logits = s.decode(prompt);
    assert_int_equal(logits.size(), 259);
    assert_int_equal(s.position(), 2);
    s.reset();
    assert_int_equal(s.position(), 0);

    tlm_sampler_params sampling = tlm::defaults<tlm_sampler_params>();
    sampling.temperature = 0.0f;
    tlm::sampler greedy(ctx, sampling);
    assert_true(greedy.sample(logits) >= 0);
    tlm_generate_params params = tlm::defaults<tlm_generate_params>();
    params.max_tokens = 4;
    params.stop_at_eos = 0;
    std::string streamed;
    int calls = 0;
    tlm::generation g = s.generate(greedy, m.tokenizer(), "ab", params,
                                   [&](int32_t id, std::string_view piece, float) {
                                       streamed += piece;
                                       // id -1: the text left undecoded at the end
                                       calls += id >= 0;
                                   });
    assert_int_equal(g.tokens, 4);
    assert_int_equal(calls, 4);
    assert_true(g.text == streamed);
    // A callback returning false stops after its first token.
    g = s.generate(greedy, m.tokenizer(), "ab", params,
                   [](int32_t, std::string_view, float) { return false; });
    assert_int_equal(g.tokens, 1);
    tlm::score sc = s.score(m.tokenizer(), "abc");
    assert_int_equal(sc.n_scored, 2);
    assert_true(sc.logprob < 0.0);
    assert_true(s.score_continuation(m.tokenizer(), "ab", "c") < 0.0);
    expect_status(TLM_E_INVALID, [&] { s.score(tlm::tokenizer_view(), "abc"); });

    tlm::session moved = std::move(s);
    assert_false(static_cast<bool>(s));
    expect_status(TLM_E_INVALID, [&] { s.position(); });
    tlm::sampler moved_sampler = std::move(greedy);
    expect_status(TLM_E_INVALID, [&] { greedy.reset(); });
    moved_sampler.reset();
}

void test_generate_callback_throws(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = tiny_model(ctx);
    tlm::session s(m);
    tlm::sampler greedy(ctx, tlm::defaults<tlm_sampler_params>());
    tlm_generate_params params = tlm::defaults<tlm_generate_params>();
    params.max_tokens = 8;
    params.stop_at_eos = 0;
    int calls = 0;
    bool caught = false;
    try {
        s.generate(greedy, m.tokenizer(), "ab", params,
                   [&](int32_t, std::string_view, float) {
                       calls++;
                       throw callback_failure();
                   });
    } catch (const callback_failure &) {
        caught = true;
    }
    assert_true(caught);
    assert_int_equal(calls, 1); // the C library stopped at once
    // Nothing is left pending: the next call works.
    tlm::generation g = s.generate(greedy, m.tokenizer(), "ab", params);
    assert_int_equal(g.tokens, 8);
}

void test_log_hook(void **) {
    tlm_context_params params = one_thread();
    params.log_level = TLM_LOG_ERROR;
    std::vector<std::string> messages;
    {
        tlm::context ctx(params, [&](int level, std::string_view message) {
            assert_int_equal(level, TLM_LOG_ERROR);
            messages.emplace_back(message);
        });
        expect_status(TLM_E_IO, [&] { tlm::model::load(ctx, "/nonexistent/m.tlm"); });
        assert_false(messages.empty());
    }
    // A hook that throws: the exception comes out of the wrapper call
    // whose C call logged, not a tlm::error.
    tlm::context throwing(params, [](int, std::string_view) { throw callback_failure(); });
    bool caught = false;
    try {
        tlm::model::load(throwing, "/nonexistent/m.tlm");
    } catch (const callback_failure &) {
        caught = true;
    }
    assert_true(caught);
    tlm::context moved = std::move(throwing);
    assert_false(static_cast<bool>(throwing));
    expect_status(TLM_E_INVALID, [&] { throwing.memory_in_use(); });
    assert_true(moved.thread_count() >= 1);
}

void test_optimizer(void **) {
    tlm::context ctx(one_thread());
    tlm::tensor weight = tlm::tensor::from_f32(ctx, {2}, {1.0f, -1.0f});
    weight.set_requires_grad(true);
    tlm_optimizer_params params;
    assert_int_equal(tlm_optimizer_params_init_for(&params, TLM_OPTIMIZER_SGD), TLM_OK);
    params.lr = 0.5f;
    tlm::optimizer opt({weight}, params);
    tlm_tensor *loss = nullptr;
    assert_int_equal(tlm_sum(&loss, weight.get()), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_true(weight.grad() == (std::vector<float>{1.0f, 1.0f}));
    opt.step();
    assert_int_equal(opt.step_count(), 1);
    assert_true(weight.to_f32() == (std::vector<float>{0.5f, -1.5f}));
    std::vector<unsigned char> state = opt.save_state();
    opt.load_state(state);
    expect_status(TLM_E_FORMAT, [&] {
        opt.load_state(std::vector<unsigned char>(state.begin(), state.end() - 1));
    });
    expect_status(TLM_E_INVALID, [&] { tlm::optimizer none({tlm::tensor_view()}); });
    tlm::optimizer moved = std::move(opt);
    expect_status(TLM_E_INVALID, [&] { opt.step(); });
    assert_int_equal(moved.step_count(), 1);
}

void test_dataset_and_trainer(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = tiny_model(ctx);
    tlm::ids ids;
    for (int i = 0; i < 200; i++)
        ids.push_back(97 + i % 3);
    tlm::dataset data = tlm::dataset::from_ids(ctx, ids);
    assert_int_equal(data.size(TLM_SPLIT_TRAIN) + data.size(TLM_SPLIT_VALIDATION), 200);
    expect_status(TLM_E_INVALID, [&] { tlm::dataset::from_ids(ctx, {}); });

    tlm_trainer_params params = tlm::defaults<tlm_trainer_params>();
    params.batch_size = 2;
    params.context = 8;
    std::vector<int64_t> seen;
    {
    tlm::trainer t(m, data, params, [&](const tlm_step_info &info) {
        seen.push_back(info.step);
        return true;
    });
    tlm_step_info info = t.step();
    assert_int_equal(info.step, 1);
    t.step();
    assert_true(seen == (std::vector<int64_t>{1, 2}));
    assert_int_equal(t.step_count(), 2);
    assert_true(t.evaluate(TLM_SPLIT_VALIDATION, 1) > 0.0f);
    float fixed = 0.0f;
    assert_int_equal(tlm_trainer_evaluate_seeded(t.get(), TLM_SPLIT_VALIDATION, 2, 7, &fixed),
                     TLM_OK);
    assert_true(t.evaluate(TLM_SPLIT_VALIDATION, 2, 7) == fixed);
    expect_status(TLM_E_INVALID, [&] { t.evaluate(TLM_SPLIT_VALIDATION, 0, 7); });
    char dir[512];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    std::string path = std::string(dir) + "/ckpt.tlm";
    t.save(path);
    t.resume(path);
    assert_int_equal(t.step_count(), 2);
    expect_status(TLM_E_IO, [&] { t.resume(std::string(dir) + "/missing.tlm"); });
    temp_dir_remove(dir);
    tlm::trainer moved = std::move(t);
    expect_status(TLM_E_INVALID, [&] { t.step(); });
    }

    // A progress callback that throws: step() rethrows it.
    {
        tlm::trainer throwing(m, data, params,
                              [](const tlm_step_info &) -> bool { throw callback_failure(); });
        bool caught = false;
        try {
            throwing.step();
        } catch (const callback_failure &) {
            caught = true;
        }
        assert_true(caught);
    }
    // One that returns false: the step is cancelled.
    tlm::trainer stopping(m, data, params, [](const tlm_step_info &) { return false; });
    expect_status(TLM_E_CANCELLED, [&] { stopping.step(); });
    tlm::dataset moved_data = std::move(data);
    expect_status(TLM_E_INVALID, [&] { data.size(TLM_SPLIT_TRAIN); });
}

} // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_carries_status_and_message),
        cmocka_unit_test(test_tensor),
        cmocka_unit_test(test_tokenizer),
        cmocka_unit_test(test_model_save_load_quantize),
        cmocka_unit_test(test_session_generate_score),
        cmocka_unit_test(test_generate_callback_throws),
        cmocka_unit_test(test_log_hook),
        cmocka_unit_test(test_optimizer),
        cmocka_unit_test(test_dataset_and_trainer),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
