// Suite "cpp": the parts of include/tlm.hpp beyond the handle classes of
// test_cpp_header.cpp: the operations and autodiff, forward passes,
// attention weights, sessions (all logits, encoding, copies, beam search,
// per-token scores, continued generation), token streams, tokenizer
// internals, sampler distributions, optimizer settings, schedules, the
// communicator. Each wrapper's result is compared with the C call made
// directly on the same inputs, and its failure paths throw tlm::error
// with the C status.
#include <tlm.hpp>

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include <cmocka.h>
}

namespace {

// Runs `call` and checks that it throws tlm::error with `status` and a
// message that contains `names` (the failing C call's own message).
template <typename Call>
void expect_status(int status, Call call, const char *names = "") {
    bool thrown = false;
    try {
        call();
    } catch (const tlm::error &e) {
        thrown = true;
        assert_int_equal(e.status(), status);
        assert_false(e.message().empty());
        assert_true(e.message().find(names) != std::string::npos);
    }
    assert_true(thrown);
}

tlm_context_params one_thread() {
    tlm_context_params params = tlm::defaults<tlm_context_params>();
    params.n_threads = 1;
    return params;
}

// The values of the C operation `op` on `args`, called directly.
template <typename Op, typename... Args>
std::vector<float> c_values(Op op, Args... args) {
    tlm_tensor *out = nullptr;
    assert_int_equal(op(&out, args...), TLM_OK);
    return tlm::tensor_view(out).to_f32();
}

tlm_model_config small_config(int32_t vocab, int32_t encoder_layers, int32_t decoder_layers) {
    tlm_model_config config = tlm::defaults<tlm_model_config>();
    config.vocab_size = vocab;
    config.d_model = 16;
    config.n_heads = 2;
    config.n_encoder_layers = encoder_layers;
    config.n_decoder_layers = decoder_layers;
    config.max_context = 16;
    config.init_seed = 11;
    return config;
}

// A decoder-only model with a byte tokenizer, as test_cpp_header.cpp's.
tlm::model byte_model(tlm::context &ctx) {
    tlm::model m = tlm::model::create(ctx, small_config(259, 0, 1));
    tlm_tokenizer_params params = tlm::defaults<tlm_tokenizer_params>();
    params.kind = TLM_TOKENIZER_BYTE;
    m.set_tokenizer(tlm::tokenizer::train(ctx, "", params));
    return m;
}

void test_operations_match_c(void **) {
    tlm::context ctx(one_thread());
    tlm::tensor a = tlm::tensor::from_f32(ctx, {2, 3}, {0.5f, -1.0f, 2.0f, -0.25f, 1.5f, 3.0f});
    tlm::tensor b = tlm::tensor::from_f32(ctx, {3}, {1.0f, -2.0f, 0.75f});
    tlm::tensor w = tlm::tensor::from_f32(ctx, {3, 4}, {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f,
                                                        0.7f, 0.8f, -0.9f, 1.0f, 1.1f, -1.2f});
    tlm::tensor wt = tlm::tensor::from_f32(ctx, {4, 3}, w.to_f32());
    tlm::tensor bias = tlm::tensor::from_f32(ctx, {4}, {0.5f, 0.25f, -0.5f, 1.0f});
    tlm::tensor x = tlm::tensor::from_f32(ctx, {1, 2, 4}, {1, 2, 3, 4, -1, -2, -3, -4});

    assert_true(tlm::add(a, b).to_f32() == c_values(tlm_add, a.get(), b.get()));
    assert_true(tlm::sub(a, b).to_f32() == c_values(tlm_sub, a.get(), b.get()));
    assert_true(tlm::mul(a, b).to_f32() == c_values(tlm_mul, a.get(), b.get()));
    assert_true(tlm::scale(a, 2.5f).to_f32() == c_values(tlm_scale, a.get(), 2.5f));
    assert_true(tlm::add_scalar(a, 1.0f).to_f32() == c_values(tlm_add_scalar, a.get(), 1.0f));
    assert_true(tlm::matmul(a, w, bias).to_f32() ==
                c_values(tlm_matmul, a.get(), w.get(), bias.get(), 0));
    assert_true(tlm::matmul(a, wt, tlm::tensor_view(), TLM_MATMUL_TRANSPOSE_B).to_f32() ==
                c_values(tlm_matmul, a.get(), wt.get(), nullptr, TLM_MATMUL_TRANSPOSE_B));
    tlm::tensor_view reshaped = tlm::reshape(a, {3, 2});
    assert_true(reshaped.shape() == (std::vector<int64_t>{3, 2}));
    assert_true(reshaped.to_f32() == a.to_f32());
    assert_true(tlm::transpose(a).to_f32() == c_values(tlm_transpose, a.get()));
    tlm::tensor_view heads = tlm::split_heads(x, 2);
    assert_true(heads.shape() == (std::vector<int64_t>{1, 2, 2, 2}));
    assert_true(heads.to_f32() == c_values(tlm_split_heads, x.get(), 2));
    assert_true(tlm::merge_heads(heads).to_f32() == x.to_f32());
    tlm_tensor *pair[2] = {a.get(), a.get()};
    assert_true(tlm::concat({a, a}, 0).to_f32() == c_values(tlm_concat, pair, 2, 0));
    assert_true(tlm::slice(a, 1, 1, 2).to_f32() ==
                c_values(tlm_slice, a.get(), 1, int64_t{1}, int64_t{2}));
    assert_true(tlm::sum(a).to_f32() == c_values(tlm_sum, a.get()));
    assert_true(tlm::mean(a).to_f32() == c_values(tlm_mean, a.get()));
    assert_true(tlm::relu(a).to_f32() == c_values(tlm_relu, a.get()));
    assert_true(tlm::gelu(a).to_f32() == c_values(tlm_gelu, a.get(), TLM_GELU_TANH));
    assert_true(tlm::gelu(a, TLM_GELU_EXACT).to_f32() ==
                c_values(tlm_gelu, a.get(), TLM_GELU_EXACT));
    assert_true(tlm::silu(a).to_f32() == c_values(tlm_silu, a.get()));
    assert_true(tlm::swiglu(a, a).to_f32() == c_values(tlm_swiglu, a.get(), a.get()));
    assert_true(tlm::layer_norm(a, b, b, 1e-5f).to_f32() ==
                c_values(tlm_layer_norm, a.get(), b.get(), b.get(), 1e-5f));
    assert_true(tlm::layer_norm(a, tlm::tensor_view(), tlm::tensor_view()).to_f32() ==
                c_values(tlm_layer_norm, a.get(), nullptr, nullptr, 1e-5f));
    assert_true(tlm::rms_norm(a, b, 1e-6f).to_f32() ==
                c_values(tlm_rms_norm, a.get(), b.get(), 1e-6f));
    tlm::tensor mean_cpp(ctx, TLM_DTYPE_F32, {3});
    tlm::tensor var_cpp = tlm::tensor::from_f32(ctx, {3}, {1.0f, 1.0f, 1.0f});
    tlm::tensor mean_c(ctx, TLM_DTYPE_F32, {3});
    tlm::tensor var_c = tlm::tensor::from_f32(ctx, {3}, {1.0f, 1.0f, 1.0f});
    assert_true(tlm::batch_norm(a, b, b, mean_cpp, var_cpp, 0.2f, 1e-5f).to_f32() ==
                c_values(tlm_batch_norm, a.get(), b.get(), b.get(), mean_c.get(), var_c.get(),
                         0.2f, 1e-5f));
    assert_true(mean_cpp.to_f32() == mean_c.to_f32());
    assert_true(var_cpp.to_f32() == var_c.to_f32());
    assert_true(tlm::softmax(a).to_f32() == c_values(tlm_softmax, a.get()));
    assert_true(tlm::log_softmax(a).to_f32() == c_values(tlm_log_softmax, a.get()));
    tlm::tensor ids = tlm::tensor::from_i32(ctx, {2}, {3, 0});
    assert_true(tlm::embedding(wt, ids).to_f32() == c_values(tlm_embedding, wt.get(), ids.get()));
    assert_true(tlm::add_sinusoidal_positions(x, 1).to_f32() ==
                c_values(tlm_add_sinusoidal_positions, x.get(), int64_t{1}));
    assert_true(tlm::rope(x, 2, 100.0f).to_f32() ==
                c_values(tlm_rope, x.get(), int64_t{2}, 100.0f));
    tlm::tensor q = tlm::tensor::from_f32(ctx, {1, 2, 2, 2}, {1, 0, 0, 1, 0.5f, 0.5f, -1, 2});
    tlm::tensor mask = tlm::tensor::from_i32(ctx, {1, 2}, {1, 0});
    assert_true(tlm::attention(q, q, q, tlm::tensor_view(), TLM_ATTENTION_CAUSAL).to_f32() ==
                c_values(tlm_attention, q.get(), q.get(), q.get(), nullptr,
                         TLM_ATTENTION_CAUSAL));
    assert_true(tlm::attention(q, q, q, mask).to_f32() ==
                c_values(tlm_attention, q.get(), q.get(), q.get(), mask.get(), 0));
    assert_true(tlm::multi_head_attention(x, x, x, 2, tlm::tensor_view(),
                                          TLM_ATTENTION_CAUSAL).to_f32() ==
                c_values(tlm_multi_head_attention, x.get(), x.get(), x.get(), nullptr, 2,
                         TLM_ATTENTION_CAUSAL));
    ctx.set_seed(5);
    std::vector<float> dropped = tlm::dropout(a, 0.5f).to_f32();
    ctx.set_seed(5);
    assert_true(dropped == c_values(tlm_dropout, a.get(), 0.5f));
    tlm::tensor targets = tlm::tensor::from_i32(ctx, {2}, {2, -1});
    assert_true(tlm::cross_entropy(a, targets).to_f32() ==
                c_values(tlm_cross_entropy, a.get(), targets.get(), -1));

    // Failures: the C statuses, with the library's message.
    expect_status(TLM_E_SHAPE, [&] { tlm::add(a, w); }, "tlm_add");
    expect_status(TLM_E_RANGE, [&] { tlm::slice(a, 1, 2, 2); }, "tlm_slice");
    tlm::tensor bad_targets = tlm::tensor::from_i32(ctx, {2}, {3, 0});
    expect_status(TLM_E_RANGE, [&] { tlm::cross_entropy(a, bad_targets); });
    expect_status(TLM_E_INVALID, [&] { tlm::layer_norm(a, b, b, 0.0f); }, "tlm_layer_norm");
    expect_status(TLM_E_INVALID, [&] { tlm::concat({}, 0); });
    expect_status(TLM_E_INVALID, [&] { tlm::reshape(a, {1, 1, 1, 1, 6}); });
    expect_status(TLM_E_INVALID, [&] { tlm::sum(tlm::tensor_view()); });
}

void test_autodiff_and_tensor_access(void **) {
    tlm::context ctx(one_thread());
    tlm::tensor w = tlm::tensor::from_f32(ctx, {2, 3}, {1, -2, 3, 0.5f, 0, -1});
    assert_false(w.requires_grad());
    expect_status(TLM_E_STATE, [&] { w.grad_data(); });
    w.set_requires_grad(true);
    assert_true(w.requires_grad());
    assert_int_equal(w.ndim(), 2);
    assert_int_equal(w.dim(-1), 3);
    assert_int_equal(w.dim(0), 2);
    expect_status(TLM_E_RANGE, [&] { w.dim(2); });

    // loss = sum(w * w): the gradient is 2 w, as the C calls give it.
    tlm::tensor_view loss = tlm::sum(tlm::mul(w, w));
    assert_true(loss.requires_grad());
    tlm::backward(loss);
    std::vector<float> grad = w.grad();
    for (size_t i = 0; i < grad.size(); i++)
        assert_true(grad[i] == 2.0f * w.to_f32()[i]);
    tlm::array_view<float> in_place = w.grad_data();
    assert_int_equal(in_place.size(), 6);
    assert_true(std::vector<float>(in_place.begin(), in_place.end()) == grad);
    ctx.zero_grad();
    assert_true(w.grad() == std::vector<float>(6, 0.0f));
    tlm_tensor *squared = nullptr;
    tlm_tensor *c_loss = nullptr;
    assert_int_equal(tlm_mul(&squared, w.get(), w.get()), TLM_OK);
    assert_int_equal(tlm_sum(&c_loss, squared), TLM_OK);
    assert_int_equal(tlm_backward(c_loss), TLM_OK);
    assert_true(w.grad() == grad);
    expect_status(TLM_E_SHAPE, [&] { tlm::backward(w); });

    // Writing in place, then re-running the tape.
    tlm::array_view<float> values = w.data_f32();
    for (float &v : values)
        v = 1.0f;
    ctx.forward();
    assert_true(loss.to_f32()[0] == 6.0f);
    assert_true(ctx.arena_bytes() > 0);
    assert_true(ctx.arena_bytes() == tlm_context_arena_bytes(ctx.get()));
    ctx.reset();

    tlm::tensor ids = tlm::tensor::from_i32(ctx, {3}, {4, 5, 6});
    assert_int_equal(ids.data_i32()[2], 6);
    expect_status(TLM_E_INVALID, [&] { ids.data_f32(); });
    expect_status(TLM_E_INVALID, [&] { w.data_i32(); });
    expect_status(TLM_E_INVALID, [&] { tlm::tensor_view().data_f32(); });

    // Without recording, nothing can be back-propagated.
    ctx.set_grad_enabled(false);
    tlm::tensor_view unrecorded = tlm::sum(w);
    assert_false(unrecorded.requires_grad());
    expect_status(TLM_E_STATE, [&] { tlm::backward(unrecorded); });
    ctx.set_grad_enabled(true);
    // Evaluation mode: dropout passes its input through.
    ctx.set_training(false);
    assert_true(tlm::dropout(w, 0.5f).to_f32() == w.to_f32());
    ctx.set_training(true);

    uint64_t limit = 0;
    assert_int_equal(tlm_context_memory_limit(ctx.get(), &limit), TLM_OK);
    assert_true(ctx.memory_limit() == limit);
    assert_true(limit > 0);
}

void test_model_forward_and_attention(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = byte_model(ctx);
    tlm::tensor ids = tlm::tensor::from_i32(ctx, {1, 4}, {104, 101, 108, 108});
    tlm::tensor targets = tlm::tensor::from_i32(ctx, {1, 4}, {101, 108, 108, -1});
    tlm::model::forward_result r = m.forward(ids, targets);
    assert_true(r.logits.shape() == (std::vector<int64_t>{1, 4, 259}));
    assert_true(static_cast<bool>(r.loss));
    tlm_batch batch;
    assert_int_equal(tlm_batch_init(&batch), TLM_OK);
    batch.ids = ids.get();
    batch.targets = targets.get();
    tlm_tensor *logits = nullptr;
    tlm_tensor *loss = nullptr;
    assert_int_equal(tlm_model_forward(m.get(), &batch, &logits, &loss), TLM_OK);
    assert_true(r.logits.to_f32() == tlm::tensor_view(logits).to_f32());
    assert_true(r.loss.to_f32() == tlm::tensor_view(loss).to_f32());
    tlm::backward(r.loss);
    assert_true(m.parameter("token_embedding.weight").grad() != std::vector<float>(259 * 16, 0.0f));
    assert_false(static_cast<bool>(m.forward(ids).loss));
    expect_status(TLM_E_INVALID, [&] { m.forward(tlm::tensor_view()); });

    tlm::ids seq = {104, 105, 33};
    std::vector<float> weights = m.attention_weights(seq, 0);
    assert_int_equal(weights.size(), 2 * 3 * 3);
    std::vector<float> c_weights(weights.size());
    assert_int_equal(tlm_model_attention_weights(m.get(), seq.data(), seq.size(), 0,
                                                 c_weights.data()),
                     TLM_OK);
    assert_true(weights == c_weights);
    expect_status(TLM_E_RANGE, [&] { m.attention_weights(seq, 1); },
                  "tlm_model_attention_weights");
    expect_status(TLM_E_RANGE, [&] { m.attention_weights({}, 0); });
    expect_status(TLM_E_RANGE, [&] { m.attention_weights({300}, 0); });

    int64_t bytes = 0;
    assert_int_equal(tlm_model_memory_estimate(m.get(), TLM_MEMORY_TRAINING, 2, 8, &bytes), TLM_OK);
    assert_true(m.memory_estimate(TLM_MEMORY_TRAINING, 2, 8) == bytes);
    expect_status(TLM_E_INVALID, [&] { m.memory_estimate(7, 1, 16); });
}

void test_session_logits_copy_and_scores(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = byte_model(ctx);
    tlm::session s(m);
    tlm_session *c_session = nullptr;
    assert_int_equal(tlm_session_create(&c_session, m.get(), nullptr), TLM_OK);

    tlm::ids ids = {104, 101, 121};
    std::vector<float> all = s.decode_all(ids);
    std::vector<float> c_all(3 * 259);
    assert_int_equal(tlm_session_decode(c_session, ids.data(), 3, c_all.data(), 3), TLM_OK);
    assert_true(all == c_all);

    // feed() then decode() is the C pair of calls with 0 rows, then 1.
    s.reset();
    s.feed({104, 101});
    assert_int_equal(s.position(), 2);
    std::vector<float> last = s.decode({121});
    assert_int_equal(tlm_session_reset(c_session), TLM_OK);
    assert_int_equal(tlm_session_decode(c_session, ids.data(), 2, nullptr, 0), TLM_OK);
    std::vector<float> c_last(259);
    assert_int_equal(tlm_session_decode(c_session, ids.data() + 2, 1, c_last.data(), 1), TLM_OK);
    assert_true(last == c_last);
    expect_status(TLM_E_RANGE, [&] { s.decode_all(tlm::ids(17, 1)); });

    // A copy continues exactly where its source is.
    tlm::session copy(m);
    copy.copy_from(s);
    assert_int_equal(copy.position(), 3);
    assert_true(copy.decode({33}) == s.decode({33}));
    tlm::model other = byte_model(ctx);
    tlm::session foreign(other);
    expect_status(TLM_E_INVALID, [&] { foreign.copy_from(s); });

    // Per-token log-probabilities with alternatives.
    tlm::ids text = {104, 101, 108, 108, 111};
    std::vector<tlm_token_logprob> scored = s.score_tokens(text, 3);
    assert_int_equal(scored.size(), 4);
    std::vector<tlm_token_logprob> c_scored(4);
    assert_int_equal(tlm_score_tokens(c_session, text.data(), text.size(), 3, c_scored.data()),
                     TLM_OK);
    for (size_t i = 0; i < scored.size(); i++) {
        assert_int_equal(scored[i].id, text[i + 1]);
        assert_true(scored[i].logprob == c_scored[i].logprob);
        assert_int_equal(scored[i].rank, c_scored[i].rank);
        assert_int_equal(scored[i].n_top, 3);
        assert_memory_equal(scored[i].top_ids, c_scored[i].top_ids, sizeof scored[i].top_ids);
        assert_memory_equal(scored[i].top_logprobs, c_scored[i].top_logprobs,
                            3 * sizeof(float));
    }
    assert_int_equal(s.position(), 5);
    expect_status(TLM_E_INVALID, [&] { s.score_tokens({104}); }, "tlm_score_tokens");
    expect_status(TLM_E_INVALID, [&] { s.score_tokens(text, TLM_TOP_LOGPROBS_MAX + 1); });
    expect_status(TLM_E_RANGE, [&] { s.score_tokens({104, 999}); });
    // A decoder-only model has no encoder.
    expect_status(TLM_E_STATE, [&] { s.encode({1, 2}); });
    tlm_session_free(c_session);
}

void test_sampler_and_log_softmax(void **) {
    tlm::context ctx(one_thread());
    std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.0f, 0.0f};
    tlm_sampler_params params = tlm::defaults<tlm_sampler_params>();
    params.top_k = 3;
    params.seed = 9;
    tlm::sampler s(ctx, params);
    tlm_sampler *c_sampler = nullptr;
    assert_int_equal(tlm_sampler_create(&c_sampler, ctx.get(), &params), TLM_OK);
    for (int i = 0; i < 4; i++) {
        tlm::sampler::sampled got = s.sample_with_logprob(logits);
        int32_t token = -1;
        float logprob = 0.0f;
        assert_int_equal(tlm_sampler_sample(c_sampler, logits.data(), 5, &token, &logprob), TLM_OK);
        assert_int_equal(got.token, token);
        assert_true(got.logprob == logprob);
    }
    std::vector<float> probs = s.probabilities(logits);
    std::vector<float> c_probs(5);
    assert_int_equal(tlm_sampler_probabilities(c_sampler, logits.data(), 5, c_probs.data()),
                     TLM_OK);
    assert_true(probs == c_probs);
    assert_true(probs[2] == 0.0f); // outside the top 3
    s.set_seed(42);
    tlm_sampler_params got = s.params();
    assert_int_equal(got.top_k, 3);
    assert_true(got.seed == 42);
    expect_status(TLM_E_NONFINITE, [&] { s.probabilities({NAN, 1.0f}); });
    expect_status(TLM_E_INVALID, [&] { s.sample_with_logprob({}); });
    tlm_sampler_free(c_sampler);

    float c_logprob = 0.0f;
    assert_int_equal(tlm_log_softmax_at(logits.data(), 5, 3, &c_logprob), TLM_OK);
    assert_true(tlm::log_softmax_at(logits, 3) == c_logprob);
    expect_status(TLM_E_RANGE, [&] { tlm::log_softmax_at(logits, 5); });
}

// A C token callback appending each piece to a std::string.
int append_piece(void *user, int32_t, const char *piece, size_t length, float) {
    static_cast<std::string *>(user)->append(piece, length);
    return 0;
}

// generate() with continue_session: each turn follows the session's
// positions, as the same C calls do, and generates the same text.
void test_generate_continue_session(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = byte_model(ctx);
    tlm::session s(m);
    tlm_sampler_params sampling = tlm::defaults<tlm_sampler_params>();
    sampling.seed = 3;
    tlm::sampler sampler(ctx, sampling);
    tlm_generate_params params = tlm::defaults<tlm_generate_params>();
    params.max_tokens = 3;
    params.stop_at_eos = 0;
    params.continue_session = 1;

    tlm_session *c_session = nullptr;
    tlm_sampler *c_sampler = nullptr;
    assert_int_equal(tlm_session_create(&c_session, m.get(), nullptr), TLM_OK);
    assert_int_equal(tlm_sampler_create(&c_sampler, ctx.get(), &sampling), TLM_OK);
    int32_t position = 0;
    for (const char *turn : {"hi", "ok"}) {
        tlm::generation g = s.generate(sampler, m.tokenizer(), turn, params);
        assert_int_equal(g.tokens, 3);
        position += 2 + 3;
        assert_int_equal(s.position(), position);
        int32_t n = 0;
        std::string c_text;
        tlm_generate_params c_params = params;
        c_params.callback = append_piece;
        c_params.callback_user = &c_text;
        assert_int_equal(tlm_generate(c_session, c_sampler, m.tokenizer().get(), turn, 2,
                                      &c_params, &n),
                         TLM_OK);
        assert_int_equal(n, g.tokens);
        assert_true(g.text == c_text);
        assert_int_equal(tlm_session_position(c_session), position);
    }
    // A prompt that does not fit fails and changes nothing.
    std::string too_long(16, 'x');
    expect_status(TLM_E_RANGE, [&] { s.generate(sampler, m.tokenizer(), too_long, params); });
    assert_int_equal(s.position(), position);
    tlm_sampler_free(c_sampler);
    tlm_session_free(c_session);
}

void test_seq2seq(void **) {
    tlm::context ctx(one_thread());
    tlm::model m = tlm::model::create(ctx, small_config(12, 1, 1));
    tlm::session s(m);
    tlm_session *c_session = nullptr;
    assert_int_equal(tlm_session_create(&c_session, m.get(), nullptr), TLM_OK);
    tlm::ids src = {3, 4, 5, 0};
    std::vector<int32_t> mask = {1, 1, 1, 0};
    s.encode(src, mask);
    assert_int_equal(tlm_session_encode(c_session, src.data(), 4, mask.data(), nullptr), TLM_OK);
    std::vector<float> c_logits(12);
    int32_t bos = 1;
    assert_int_equal(tlm_session_decode(c_session, &bos, 1, c_logits.data(), 1), TLM_OK);
    assert_true(s.decode({1}) == c_logits);
    expect_status(TLM_E_INVALID, [&] { s.encode(src, {1, 1}); });
    expect_status(TLM_E_INVALID, [&] { s.encode_logits(src); }); // logits: encoder-only

    tlm_beam_search_params params = tlm::defaults<tlm_beam_search_params>();
    params.beam_width = 2;
    params.max_length = 5;
    params.bos_id = 1;
    params.eos_id = 2;
    tlm::beam_result best = s.beam_search(src, params, mask);
    int32_t c_ids[5];
    size_t n = 0;
    double score = 0.0;
    assert_int_equal(tlm_beam_search(c_session, src.data(), 4, mask.data(), &params, c_ids, 5, &n,
                                     &score),
                     TLM_OK);
    assert_true(best.ids == tlm::ids(c_ids, c_ids + n));
    assert_true(best.score == score);
    params.beam_width = 0;
    expect_status(TLM_E_INVALID, [&] { s.beam_search(src, params); });
    tlm_session_free(c_session);

    // An encoder-only model gives every position's output.
    tlm::model encoder = tlm::model::create(ctx, small_config(12, 1, 0));
    tlm::session e(encoder);
    std::vector<float> outputs = e.encode_logits(src);
    assert_int_equal(outputs.size(), 4 * 12);
    assert_int_equal(tlm_session_create(&c_session, encoder.get(), nullptr), TLM_OK);
    std::vector<float> c_outputs(4 * 12);
    assert_int_equal(tlm_session_encode(c_session, src.data(), 4, nullptr, c_outputs.data()),
                     TLM_OK);
    assert_true(outputs == c_outputs);
    expect_status(TLM_E_RANGE, [&] { e.encode_logits({3, 12}); });
    expect_status(TLM_E_RANGE, [&] { e.encode_logits(tlm::ids(17, 3)); });
    tlm_session_free(c_session);

    // Pairs: sources then targets, 2 n + 1 offsets.
    tlm::ids pair_ids = {3, 4, 5, 6, 7, 3, 8, 9};
    tlm::dataset pairs = tlm::dataset::from_pairs(ctx, pair_ids, {0, 2, 4, 5, 8});
    assert_int_equal(pairs.size(TLM_SPLIT_TRAIN) + pairs.size(TLM_SPLIT_VALIDATION), 2);
    expect_status(TLM_E_INVALID, [&] { tlm::dataset::from_pairs(ctx, pair_ids, {0, 2}); });
    expect_status(TLM_E_RANGE, [&] { tlm::dataset::from_pairs(ctx, pair_ids, {0, 2, 9}); });
    expect_status(TLM_E_INVALID, [&] { tlm::dataset::from_pairs(ctx, pair_ids, {0, 3, 2}); });
}

void test_tokenizer_internals_and_stream(void **) {
    tlm::context ctx(one_thread());
    tlm_tokenizer_params params = tlm::defaults<tlm_tokenizer_params>();
    params.vocab_size = 262;
    tlm::tokenizer bpe = tlm::tokenizer::train(ctx, "abababab cdcdcd abab", params);
    assert_int_equal(bpe.merge_count(), tlm_tokenizer_merge_count(bpe.get()));
    assert_true(bpe.merge_count() > 0);
    std::pair<int32_t, int32_t> first = bpe.merge(0);
    int32_t left = -1;
    int32_t right = -1;
    assert_int_equal(tlm_tokenizer_merge(bpe.get(), 0, &left, &right), TLM_OK);
    assert_int_equal(first.first, left);
    assert_int_equal(first.second, right);
    std::string joined(bpe.token_bytes(left));
    joined += bpe.token_bytes(right);
    assert_true(bpe.token_bytes(256) == joined);
    assert_true(bpe.token_bytes('a') == "a");
    expect_status(TLM_E_RANGE, [&] { bpe.merge(bpe.merge_count()); });
    expect_status(TLM_E_RANGE, [&] { bpe.token_bytes(bpe.vocab_size()); });

    std::vector<unsigned char> image = bpe.save_memory();
    size_t size = 0;
    assert_int_equal(tlm_tokenizer_save_memory(bpe.get(), nullptr, 0, &size), TLM_OK);
    assert_int_equal(image.size(), size);
    tlm::tokenizer copy = tlm::tokenizer::load_memory(ctx, image);
    assert_true(copy.encode("abcd abab") == bpe.encode("abcd abab"));
    image[image.size() / 2] ^= 0x5a;
    expect_status(TLM_E_FORMAT, [&] { tlm::tokenizer::load_memory(ctx, image); });
    expect_status(TLM_E_FORMAT, [&] { tlm::tokenizer::load_memory(ctx, {}); });

    // A stream holds back an unfinished UTF-8 character.
    params.kind = TLM_TOKENIZER_BYTE;
    tlm::tokenizer bytes = tlm::tokenizer::train(ctx, "", params);
    tlm::token_stream stream(bytes);
    std::string text = "h\xc3\xa9!";
    tlm::ids ids = bytes.encode(text);
    std::string streamed;
    assert_true(stream.push(ids[0]) == "h");
    assert_true(stream.push(ids[1]).empty());
    streamed = "h";
    for (size_t i = 2; i < ids.size(); i++)
        streamed += stream.push(ids[i]);
    streamed += stream.flush();
    assert_true(streamed == text);
    assert_true(stream.push(0xc3).empty());
    assert_true(stream.flush() == "\xc3");
    expect_status(TLM_E_RANGE, [&] { stream.push(bytes.vocab_size()); },
                  "tlm_token_stream_push");
    tlm::token_stream moved = std::move(stream);
    assert_false(static_cast<bool>(stream));
    expect_status(TLM_E_INVALID, [&] { stream.push(1); });
    assert_true(moved.push('x') == "x");
    expect_status(TLM_E_INVALID, [&] { tlm::token_stream none{tlm::tokenizer_view()}; });
}

void test_optimizer_settings_and_schedules(void **) {
    tlm::context ctx(one_thread());
    tlm_optimizer_params c_sgd;
    assert_int_equal(tlm_optimizer_params_init_for(&c_sgd, TLM_OPTIMIZER_SGD), TLM_OK);
    tlm_optimizer_params sgd = tlm::optimizer_defaults(TLM_OPTIMIZER_SGD);
    assert_int_equal(sgd.kind, TLM_OPTIMIZER_SGD);
    assert_true(sgd.lr == c_sgd.lr && sgd.weight_decay == c_sgd.weight_decay);
    expect_status(TLM_E_INVALID, [&] { tlm::optimizer_defaults(99); });

    tlm::tensor matrix = tlm::tensor::from_f32(ctx, {2, 2}, {1, 2, 3, 4});
    tlm::tensor bias = tlm::tensor::from_f32(ctx, {2}, {1, 1});
    matrix.set_requires_grad(true);
    bias.set_requires_grad(true);
    tlm::optimizer opt({matrix, bias});
    assert_true(opt.decay(0));
    assert_false(opt.decay(1));
    opt.set_decay(1, true);
    assert_true(opt.decay(1));
    assert_int_equal(tlm_optimizer_get_decay(opt.get(), 1), 1);
    expect_status(TLM_E_RANGE, [&] { opt.decay(2); }, "tlm_optimizer_get_decay");
    expect_status(TLM_E_RANGE, [&] { opt.set_decay(-1, false); });
    tlm_optimizer_params got = opt.params();
    assert_int_equal(got.kind, TLM_OPTIMIZER_ADAMW);
    assert_true(got.lr == tlm::defaults<tlm_optimizer_params>().lr);
    assert_null(got.decay_flags);

    // The gradients of sum(matrix) + sum(bias) are all 1: norm sqrt(6).
    tlm::backward(tlm::add(tlm::sum(matrix), tlm::sum(bias)));
    double norm = tlm::clip_grad_norm({matrix, bias}, 1.0f);
    assert_true(std::fabs(norm - std::sqrt(6.0)) < 1e-6);
    float scaled = matrix.grad()[0];
    ctx.zero_grad();
    tlm::backward(tlm::add(tlm::sum(matrix), tlm::sum(bias)));
    tlm_tensor *both[2] = {matrix.get(), bias.get()};
    double c_norm = 0.0;
    assert_int_equal(tlm_clip_grad_norm(both, 2, 1.0f, &c_norm), TLM_OK);
    assert_true(norm == c_norm);
    assert_true(matrix.grad()[0] == scaled);
    expect_status(TLM_E_INVALID, [&] { tlm::clip_grad_norm({matrix}, 0.0f); });
    expect_status(TLM_E_INVALID, [&] { tlm::clip_grad_norm({}, 1.0f); });

    tlm_schedule_params schedule = tlm::defaults<tlm_schedule_params>();
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.warmup_steps = 2;
    schedule.decay_end_step = 10;
    schedule.min_lr = 1e-4f;
    for (int64_t step : {0, 1, 2, 6, 10, 20}) {
        float lr = 0.0f;
        assert_int_equal(tlm_schedule_lr(&schedule, step, &lr), TLM_OK);
        assert_true(tlm::schedule_lr(schedule, step) == lr);
    }
    expect_status(TLM_E_INVALID, [&] { tlm::schedule_lr(schedule, -1); });
    schedule.decay_end_step = 1;
    expect_status(TLM_E_INVALID, [&] { tlm::schedule_lr(schedule, 0); });
}

void test_library_and_communicator(void **) {
    assert_true(tlm::version_number() == tlm_version_number());
    assert_true(tlm::version_number() == TLM_VERSION_NUMBER);
    assert_true(tlm::cpu_features() == tlm_cpu_features());
    assert_true(tlm::cpu_feature_name(TLM_CPU_AVX2) == "avx2");
    assert_true(tlm::cpu_feature_name(TLM_CPU_SSE2 | TLM_CPU_AVX).empty());
    assert_int_equal(tlm::communicator::available(), tlm_comm_available() == 1);
    if (!tlm::communicator::available()) {
        expect_status(TLM_E_UNSUPPORTED, [] { tlm::communicator world; });
    } else {
        // Never initialise MPI here (the suite is not run by mpirun): a
        // communicator that may not do it refuses when MPI is not running.
        tlm_comm_params params = tlm::defaults<tlm_comm_params>();
        params.init_mpi = 0;
        expect_status(TLM_E_STATE, [&] { tlm::communicator world(params); });
    }

    // Without a communicator the allreduce time is 0.
    tlm::context ctx(one_thread());
    tlm::model m = byte_model(ctx);
    tlm::ids ids(64);
    for (size_t i = 0; i < ids.size(); i++)
        ids[i] = 97 + static_cast<int32_t>(i % 5);
    tlm::dataset data = tlm::dataset::from_ids(ctx, ids);
    tlm_trainer_params params = tlm::defaults<tlm_trainer_params>();
    params.batch_size = 1;
    params.context = 4;
    tlm::trainer t(m, data, params);
    t.step();
    tlm::trainer::allreduce_times times = t.allreduce_time();
    assert_true(times.last_ms == 0.0 && times.total_ms == 0.0);
    tlm::trainer moved = std::move(t);
    expect_status(TLM_E_INVALID, [&] { t.allreduce_time(); });
}

} // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations_match_c),
        cmocka_unit_test(test_autodiff_and_tensor_access),
        cmocka_unit_test(test_model_forward_and_attention),
        cmocka_unit_test(test_session_logits_copy_and_scores),
        cmocka_unit_test(test_sampler_and_log_softmax),
        cmocka_unit_test(test_generate_continue_session),
        cmocka_unit_test(test_seq2seq),
        cmocka_unit_test(test_tokenizer_internals_and_stream),
        cmocka_unit_test(test_optimizer_settings_and_schedules),
        cmocka_unit_test(test_library_and_communicator),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
