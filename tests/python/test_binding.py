"""Suite "bindings": the tlm package (bindings/python/tlm) against the built
libtlm.

Run by Meson as: python3 test_binding.py BINDING_DIR CORPUS, with
TLM_LIBRARY naming the built shared library. Exit status 77 (Meson's
"skipped") when TLM_SKIP_BINDINGS says why the library cannot be loaded
into this Python (a sanitizer build)."""
import ctypes.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

# In the sanitizer build, Meson preloads the sanitizer runtime. It is in
# this process now; the programs this one starts (ASan's llvm-symbolizer)
# must not get it: the symbolizer hangs at exit with it.
os.environ.pop("LD_PRELOAD", None)

if os.environ.get("TLM_SKIP_BINDINGS"):
    print("skipped:", os.environ["TLM_SKIP_BINDINGS"])
    sys.exit(77)

BINDING_DIR, CORPUS = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BINDING_DIR)
import tlm  # noqa: E402

try:
    import numpy
except ImportError:  # the numpy tests skip; NoNumpy runs in any case
    numpy = None
needs_numpy = unittest.skipIf(numpy is None, "numpy is not installed for this python3")

_MODELS = {}


def trained_model(ctx):
    """A small character model trained briefly on the corpus (once per
    context)."""
    if id(ctx) not in _MODELS:
        _MODELS.clear()
        _MODELS[id(ctx)] = tlm.train(ctx, CORPUS, steps=30, d_model=32, n_heads=2,
                                     n_decoder_layers=1, max_context=32, batch_size=8,
                                     lr=3e-3)
    return _MODELS[id(ctx)]


class Basics(unittest.TestCase):
    def test_version(self):
        self.assertRegex(tlm.version(), r"^\d+\.\d+\.\d+$")
        major, minor, patch = map(int, tlm.version().split("."))
        self.assertEqual(tlm.version_number(), major * 10000 + minor * 100 + patch)

    def test_errors_are_exceptions_with_tlms_message(self):
        with tlm.Context(threads=1) as ctx:
            with self.assertRaises(tlm.Error) as caught:
                tlm.Model.load(ctx, "/nonexistent/model.tlm")
            self.assertEqual(caught.exception.name, "TLM_E_IO")
            self.assertEqual(caught.exception.status, -6)
            self.assertIn("/nonexistent/model.tlm", str(caught.exception))
            with self.assertRaises(tlm.Error) as caught:
                tlm.Context(threads=-5)
            self.assertIn("n_threads", str(caught.exception))
            with self.assertRaises(tlm.Error) as caught:
                tlm.Sampler(ctx, temperature=-1.0)
            self.assertEqual(caught.exception.name, "TLM_E_INVALID")
            with self.assertRaises(tlm.Error):
                tlm.Sampler(ctx, no_such_setting=1)


class Package(unittest.TestCase):
    def test_versions_agree(self):
        # The package, the library and meson.build say the same version.
        self.assertEqual(tlm.__version__, tlm.version())
        self.assertEqual(tlm.__version__, os.environ.get("TLM_PROJECT_VERSION", tlm.__version__))
        with open(os.path.join(BINDING_DIR, "pyproject.toml"), encoding="utf-8") as f:
            self.assertIn('\nversion = "%s"\n' % tlm.__version__, f.read())

    def test_the_library_it_loaded(self):
        self.assertTrue(os.path.samefile(tlm.library_path(), os.environ["TLM_LIBRARY"]))

    @unittest.skipIf(os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"),
                     "a sanitizer build: a python3 started here has no sanitizer runtime")
    def test_found_without_tlm_library(self):
        # An installed package (a copy outside the checkout) finds the
        # library in a prefix through pkg-config, or through the dynamic
        # linker's path.
        if ctypes.util.find_library("tlm"):
            self.skipTest("a libtlm is installed on this system: it would be found first")
        if shutil.which("pkg-config") is None:
            self.skipTest("no pkg-config")
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(BINDING_DIR, "tlm"), os.path.join(tmp, "site", "tlm"))
            libdir = os.path.join(tmp, "prefix", "lib")
            os.makedirs(os.path.join(libdir, "pkgconfig"))
            library = os.path.join(libdir, "libtlm.so.0")
            os.symlink(os.path.realpath(os.environ["TLM_LIBRARY"]), library)
            with open(os.path.join(libdir, "pkgconfig", "tlm.pc"), "w", encoding="utf-8") as f:
                f.write("prefix=%s\nlibdir=${prefix}/lib\nName: tlm\nDescription: tlm\n"
                        "Version: %s\nLibs: -L${libdir} -ltlm\n"
                        % (os.path.join(tmp, "prefix"), tlm.__version__))
            script = "import tlm; print(tlm.library_path()); print(tlm.version())"
            base = {k: v for k, v in os.environ.items()
                    if k not in ("TLM_LIBRARY", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH")}
            base["PYTHONPATH"] = os.path.join(tmp, "site")
            for extra in ({"PKG_CONFIG_PATH": os.path.join(libdir, "pkgconfig")},
                          {"LD_LIBRARY_PATH": libdir}):
                out = subprocess.run([sys.executable, "-c", script], cwd=tmp,
                                     env=dict(base, **extra), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, check=False)
                lines = out.stdout.decode().splitlines()
                self.assertEqual(out.returncode, 0, (extra, lines))
                self.assertTrue(os.path.samefile(lines[0], library), (extra, lines))
                self.assertEqual(lines[1], tlm.__version__)
            if subprocess.run(["pkg-config", "--exists", "tlm"], env=base,
                              check=False).returncode == 0:
                return  # an installed tlm.pc: found, rightly
            out = subprocess.run([sys.executable, "-c", script], cwd=tmp, env=base,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("tlm.LibraryNotFound", out.stdout.decode().replace("_errors.", ""))

    def test_errors_without_the_library(self):
        with self.assertRaises(tlm.LibraryNotFound) as caught:
            tlm.load_library("/nonexistent/libtlm.so.0")
        self.assertIsInstance(caught.exception, tlm.Error)
        self.assertIsInstance(caught.exception, OSError)
        self.assertEqual(caught.exception.name, "TLM_E_IO")
        self.assertIn("/nonexistent/libtlm.so.0", str(caught.exception))

    def test_a_missing_file_is_a_tlm_error(self):
        with tlm.Context(threads=1) as ctx:
            with self.assertRaises(tlm.Error) as caught:
                tlm.train(ctx, "/nonexistent/corpus.txt", steps=1)
            self.assertEqual(caught.exception.name, "TLM_E_IO")


class ContextSettings(unittest.TestCase):
    def test_memory_limit(self):
        with tlm.Context(threads=1, memory_limit=100000) as ctx:
            self.assertEqual(ctx.memory_limit, 100000)
            self.assertGreaterEqual(ctx.memory_in_use, 0)
            with self.assertRaises(tlm.Error) as caught:
                tlm.Model(ctx, vocab_size=1000, d_model=64, n_heads=4, max_context=64)
            self.assertEqual(caught.exception.name, "TLM_E_NOMEM")
            self.assertIn("limit", str(caught.exception))
        with tlm.Context(threads=1, memory_limit=None) as ctx:
            self.assertIsNone(ctx.memory_limit)
        with tlm.Context(threads=1) as ctx:  # 0: what the process has
            self.assertGreater(ctx.memory_limit, 0)
        for bad in (-1, 2**64, 2**64 - 1):
            with self.assertRaises(tlm.ArgumentError):
                tlm.Context(memory_limit=bad)


class Tensors(unittest.TestCase):
    def test_create_read_and_ops(self):
        with tlm.Context(threads=1) as ctx:
            a = ctx.tensor([[1, 2], [3, 4]])
            b = tlm.Tensor(ctx, [[5, 6], [7, 8]])
            self.assertEqual(a.shape, (2, 2))
            self.assertEqual(a.dtype, "float32")
            self.assertEqual((a + b).tolist(), [[6, 8], [10, 12]])
            self.assertEqual((b - a).values(), [4, 4, 4, 4])
            self.assertEqual((a * b).values(), [5, 12, 21, 32])
            self.assertEqual((a * 2).values(), [2, 4, 6, 8])
            self.assertEqual((a @ b).tolist(), [[19, 22], [43, 50]])
            self.assertEqual(a.transpose().tolist(), [[1, 3], [2, 4]])
            self.assertEqual(a.reshape(4).shape, (4,))
            self.assertEqual(a.sum().item(), 10)
            self.assertAlmostEqual(a.mean().item(), 2.5)
            self.assertEqual(ctx.tensor([-1, 2]).relu().values(), [0, 2])
            p = ctx.tensor([[0.0, math.log(3.0)]]).softmax().values()
            self.assertAlmostEqual(p[0], 0.25, places=6)
            ids = ctx.tensor([1, 0], dtype="int32")
            self.assertEqual(ids.dtype, "int32")
            self.assertEqual(ids.values(), [1, 0])
            with self.assertRaises(tlm.Error) as caught:
                a @ ctx.tensor([1, 2, 3])
            self.assertEqual(caught.exception.name, "TLM_E_SHAPE")
            with self.assertRaises(tlm.Error):
                ctx.tensor([[1, 2], [3]])  # ragged

    def test_backward(self):
        with tlm.Context(threads=1) as ctx:
            x = ctx.tensor([1.0, 2.0, 3.0], requires_grad=True)
            w = ctx.tensor([0.5, -1.0, 2.0], requires_grad=True)
            loss = (x * w).sum()  # d/dx = w, d/dw = x
            loss.backward()
            self.assertEqual(x.grad, [0.5, -1.0, 2.0])
            self.assertEqual(w.grad, [1.0, 2.0, 3.0])
            # Re-run with new values, no rebuilding of the graph.
            ctx.zero_grad()
            x.set([2.0, 2.0, 2.0])
            ctx.forward()
            self.assertEqual(loss.item(), 3.0)
            loss.backward()
            self.assertEqual(w.grad, [2.0, 2.0, 2.0])

    def test_cross_entropy_gradient_descent(self):
        with tlm.Context(threads=1) as ctx:
            logits = ctx.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
            loss = tlm.cross_entropy(logits, [2])
            self.assertAlmostEqual(loss.item(), math.log(3.0), places=5)
            first = loss.item()
            for _ in range(20):
                ctx.zero_grad()
                loss.backward()
                logits.set([v - 0.5 * g for v, g in zip(logits.values(), logits.grad)])
                ctx.forward()
            self.assertLess(loss.item(), first / 4)


class Models(unittest.TestCase):
    def test_train_save_load_generate(self):
        steps = []
        with tlm.Context(threads=1) as ctx:
            model = tlm.train(ctx, CORPUS, steps=40, d_model=32, n_heads=2,
                              n_decoder_layers=1, max_context=32, batch_size=8,
                              lr=3e-3, on_step=lambda s, l: steps.append((s, l)))
            self.assertEqual(len(steps), 40)
            self.assertTrue(all(math.isfinite(l) for _, l in steps))
            self.assertLess(sum(l for _, l in steps[-10:]), sum(l for _, l in steps[:10]))
            self.assertGreater(model.parameter_count, 1000)
            self.assertEqual(model.config["d_model"], 32)
            self.assertEqual(model.config["n_kv_heads"], 2)  # resolved: n_heads
            with tlm.Model(ctx, vocab_size=11, d_model=16, n_heads=4,
                           n_kv_heads=2) as gqa:
                self.assertEqual(gqa.config["n_kv_heads"], 2)
            with self.assertRaises(tlm.Error):
                tlm.Model(ctx, vocab_size=11, d_model=16, n_heads=4, n_kv_heads=3)
            tok = model.tokenizer
            self.assertEqual(tok.decode(tok.encode("the sea")), "the sea")

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "m.tlm")
                model.save(path)
                loaded = tlm.Model.load(ctx, path)
            self.assertEqual(loaded.parameter_count, model.parameter_count)

            # Other programs' formats: back from each with the same config.
            with tempfile.TemporaryDirectory() as tmp:
                for fmt, name in (("hf", "hf_dir"), ("llmc", "m.bin")):
                    path = os.path.join(tmp, name)
                    model.export(path, fmt)
                    back = tlm.Model.import_(ctx, path)
                    self.assertEqual(back.config, model.config)
                    self.assertIsNone(back.tokenizer)
                with self.assertRaises(tlm.Error):
                    model.export(os.path.join(tmp, "x.bin"), "llmc", dtype="f16")
                with self.assertRaises(tlm.Error):
                    model.export(os.path.join(tmp, "x"), "onnx")
                # llama2.c holds a Llama-shaped model (rotary 2, RMSNorm 1,
                # SwiGLU 3, no biases), grouped-query attention included,
                # and refuses this GPT-2.
                with tlm.Model(ctx, vocab_size=11, d_model=16, n_heads=4, n_kv_heads=2,
                               n_decoder_layers=1, max_context=8, position=2, norm=1,
                               activation=3, bias=0, tied_output=0) as llama:
                    path = os.path.join(tmp, "llama.bin")
                    llama.export(path, "llama2c")
                    back = tlm.Model.import_(ctx, path, format="llama2c")
                    self.assertEqual(back.config, llama.config)
                with self.assertRaises(tlm.Error):
                    model.export(os.path.join(tmp, "gpt.bin"), "llama2c")

            # Streaming: the callback sees every piece, in order.
            pieces = []
            text = loaded.generate("Once upon", max_tokens=30, temperature=0.8,
                                   seed=7, on_text=pieces.append)
            self.assertEqual("".join(pieces), text)
            self.assertGreater(len(pieces), 0)
            # The same seed gives the same text; greedy is deterministic.
            again = loaded.generate("Once upon", max_tokens=30, temperature=0.8, seed=7)
            self.assertEqual(again, text)
            sampler = tlm.Sampler(ctx, temperature=0.0)
            self.assertEqual(sampler.settings["temperature"], 0.0)
            g1 = loaded.generate("The keeper", max_tokens=20, sampler=sampler)
            g2 = loaded.generate("The keeper", max_tokens=20, sampler=sampler)
            self.assertEqual(g1, g2)
            # The callback can stop the generation early.
            seen = []
            short = loaded.generate("The", max_tokens=50, top_k=5,
                                    on_text=lambda p: seen.append(p) or len(seen) >= 3)
            self.assertEqual(len(seen), 3)
            self.assertEqual(short, "".join(seen))
            # An exception in the callback comes back out of generate().
            def boom(piece):
                raise KeyError("from the callback")
            with self.assertRaises(KeyError):
                loaded.generate("The", max_tokens=5, on_text=boom)

    def test_trainer_evaluate_and_checkpoint(self):
        with tlm.Context(threads=1) as ctx:
            with open(CORPUS, "rb") as corpus:
                tok = tlm.Tokenizer.train(ctx, corpus.read(), kind="char")
            model = tlm.Model(ctx, vocab_size=tok.vocab_size, d_model=32, n_heads=2,
                              n_decoder_layers=1, max_context=16)
            model.tokenizer = tok
            with tlm.Trainer(model, CORPUS, batch_size=4, context=16, lr=3e-3,
                             steps=10) as trainer:
                for _ in range(10):
                    self.assertTrue(math.isfinite(trainer.step()))
                self.assertTrue(math.isfinite(trainer.evaluate(batches=2)))
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "ckpt.tlm")
                    trainer.save(path)
                    self.assertEqual(tlm.Model.load(ctx, path).config["max_context"], 16)


class Quantization(unittest.TestCase):
    def test_quantize_keeps_the_tokenizer_and_the_quality(self):
        with tlm.Context(threads=1) as ctx, tempfile.TemporaryDirectory() as tmp:
            model = tlm.train(ctx, CORPUS, steps=30, d_model=32, n_heads=2,
                              n_decoder_layers=1, max_context=32)
            self.assertEqual(model.weight_format, "f32")
            with open(CORPUS, encoding="utf-8") as f:
                text = f.read()[:600]
            base = model.perplexity(text)
            for fmt, bound in (("int8", 0.01), ("bf16", 0.01)):
                q = model.quantize(fmt)
                self.assertEqual(q.weight_format, fmt)
                self.assertEqual(model.weight_format, "f32")  # unchanged
                self.assertIsNotNone(q.tokenizer)
                self.assertEqual(q.config, model.config)
                self.assertLess(abs(q.perplexity(text) / base - 1.0), bound, fmt)
                path = os.path.join(tmp, fmt + ".tlm")
                q.save(path)
                self.assertEqual(tlm.Model.load(ctx, path).weight_format, fmt)
                back = q.quantize("f32")
                self.assertEqual(back.weight_format, "f32")
                q.generate("Once", max_tokens=5, temperature=0.0)
            with self.assertRaises(tlm.Error):
                model.quantize("int4")
            with self.assertRaises(tlm.Error) as caught:
                tlm.Trainer(model.quantize("int8"), CORPUS, batch_size=2, context=16)
            self.assertEqual(caught.exception.name, "TLM_E_UNSUPPORTED")
            self.assertIn("dequantize first", str(caught.exception))


class Sessions(unittest.TestCase):
    def test_logits_of_fed_tokens(self):
        with tlm.Context(threads=1) as ctx:
            model = trained_model(ctx)
            vocab = model.config["vocab_size"]
            ids = model.tokenizer.encode("the sea")
            with model.session() as session:
                self.assertEqual(session.position, 0)
                self.assertIsNone(session.feed(ids[:2], logits=None))
                self.assertEqual(session.position, 2)
                if numpy is None:
                    with self.assertRaises(tlm.NumpyMissing):
                        session.feed(ids[2:3])
                    return
                last = session.feed(ids[2:])
                self.assertEqual(last.shape, (vocab,))
                self.assertEqual(last.dtype, numpy.float32)
                self.assertEqual(session.position, len(ids))
                fork = session.copy()
                session.reset()
                every = session.feed(numpy.array(ids), logits="all")
                self.assertEqual(every.shape, (len(ids), vocab))
                self.assertTrue(numpy.allclose(every[-1], last, atol=1e-5))
                # The copy continues where the session was.
                self.assertEqual(fork.position, len(ids))
                nxt = ids[:1]
                self.assertTrue(numpy.allclose(fork.feed(nxt), session.feed(nxt), atol=1e-5))
                with self.assertRaises(tlm.Error) as caught:
                    session.feed(ids * 10)  # past max_context
                self.assertEqual(caught.exception.name, "TLM_E_RANGE")
                self.assertEqual(session.position, len(ids) + 1)  # nothing consumed
                with self.assertRaises(tlm.ArgumentError):
                    session.feed([2**31])
                with self.assertRaises(tlm.ArgumentError):
                    session.feed(ids, logits="first")
                fork.close()

    def test_a_chat_continues_the_session(self):
        with tlm.Context(threads=1) as ctx:
            model = trained_model(ctx)
            tok = model.tokenizer
            sampler = tlm.Sampler(ctx, temperature=0.0)
            with model.session() as session:
                expected = 0
                replies = []
                for turn, prompt in enumerate(["The", " sea", " and"]):
                    tokens = []
                    reply = session.generate(prompt, max_tokens=4, sampler=sampler,
                                             stop_at_eos=False,
                                             on_token=lambda i, piece, lp: tokens.append(i))
                    replies.append(reply)
                    # Only the new prompt and the reply were computed: the
                    # earlier turns stay in the cache.
                    expected += len(tok.encode(prompt)) + len(tokens)
                    self.assertEqual(session.position, expected, turn)
                    self.assertEqual(len(tokens), 4)
                # continue_session=False starts over, as Model.generate does.
                again = session.generate("The", max_tokens=4, sampler=sampler,
                                         stop_at_eos=False, continue_session=False)
                self.assertEqual(again, replies[0])
                self.assertEqual(again, model.generate("The", max_tokens=4, temperature=0.0,
                                                       stop_at_eos=False))
                with self.assertRaises(tlm.Error) as caught:
                    session.generate("x" * 100, max_tokens=1)  # does not fit
                self.assertEqual(caught.exception.name, "TLM_E_RANGE")

    def test_per_token_scores(self):
        with tlm.Context(threads=1) as ctx:
            model = trained_model(ctx)
            text = "the sea was calm"
            ids = model.tokenizer.encode(text)
            entries = model.score(text, top_k=3)
            self.assertEqual(len(entries), len(ids) - 1)
            self.assertEqual([e.id for e in entries], ids[1:])
            self.assertEqual("".join(e.text for e in entries), text[1:])
            with model.session() as session:
                total, count = session.score_text(text)
                self.assertEqual(count, len(entries))
                self.assertAlmostEqual(sum(e.logprob for e in entries), total, places=3)
                self.assertAlmostEqual(math.exp(-total / count), model.perplexity(text),
                                       places=4)
                by_ids = session.score(ids, top_k=0)
                self.assertEqual(session.position, len(ids))
                self.assertEqual([e.logprob for e in by_ids], [e.logprob for e in entries])
                self.assertTrue(all(e.top == [] for e in by_ids))
                cont = session.score_continuation("the sea", " was calm")
                self.assertLess(cont, 0.0)
            for e in entries:
                self.assertLessEqual(e.logprob, 0.0)
                self.assertEqual(len(e.top), 3)
                top_logprobs = [lp for _, _, lp in e.top]
                self.assertEqual(top_logprobs, sorted(top_logprobs, reverse=True))
                self.assertGreaterEqual(top_logprobs[0], e.logprob)
                if e.rank == 0:
                    self.assertEqual(e.top[0][0], e.id)
                else:
                    self.assertLess(e.logprob, top_logprobs[0])
            with self.assertRaises(tlm.ArgumentError):
                model.score(text, top_k=21)
            with self.assertRaises(tlm.Error) as caught:
                model.score("t")
            self.assertEqual(caught.exception.name, "TLM_E_INVALID")
            with self.assertRaises(tlm.Error) as caught:
                model.score([0, model.config["vocab_size"]])
            self.assertEqual(caught.exception.name, "TLM_E_RANGE")


class Training(unittest.TestCase):
    def test_trainer_settings_and_ids(self):
        with tlm.Context(threads=1) as ctx:
            with open(CORPUS, "rb") as corpus:
                text = corpus.read()[:3000]
            tok = tlm.Tokenizer.train(ctx, text, kind="char")
            ids = tok.encode(text)
            model = tlm.Model(ctx, vocab_size=tok.vocab_size, d_model=16, n_heads=2,
                              n_decoder_layers=1, max_context=16)
            data = numpy.array(ids, dtype=numpy.int64) if numpy is not None else ids
            with tlm.Trainer(model, data, batch_size=2, context=16, accumulation=2,
                             optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True,
                             max_grad_norm=1e6) as trainer:
                losses = [trainer.step() for _ in range(6)]
                self.assertEqual(trainer.step_count, 6)
                info = trainer.last_step
                self.assertEqual(info.step, 6)
                self.assertEqual(info.loss, losses[-1])
                self.assertFalse(info.skipped)
                self.assertEqual(info.tokens, 2 * 2 * 16)  # batch x accumulation x context
                self.assertTrue(math.isfinite(info.grad_norm))
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "ckpt.tlm")
                    trainer.save(path)
                    after = trainer.step()
                    trainer.resume(path)
                    self.assertEqual(trainer.step_count, 6)
                    self.assertEqual(trainer.step(), after)  # bit-identical
            # A tiny max_grad_norm skips the step, which raises and says so.
            with tlm.Trainer(model, ids, batch_size=2, context=16,
                             max_grad_norm=1e-9) as trainer:
                with self.assertRaises(tlm.Error) as caught:
                    trainer.step()
                self.assertEqual(caught.exception.name, "TLM_E_RANGE")
                self.assertTrue(trainer.last_step.skipped)
                self.assertEqual(trainer.step_count, 0)
            # bf16 mixed precision reaches the C struct: same data, same seed,
            # a different first loss than float32 (the products' inputs are
            # rounded), finite and close to it.
            losses = {}
            for precision in ("float32", "bf16"):
                fresh = tlm.Model(ctx, vocab_size=tok.vocab_size, d_model=16, n_heads=2,
                                  n_decoder_layers=1, max_context=16, init_seed=3)
                with tlm.Trainer(fresh, ids, batch_size=2, context=16,
                                 precision=precision) as trainer:
                    losses[precision] = trainer.step()
            self.assertNotEqual(losses["float32"], losses["bf16"])
            self.assertLess(abs(losses["float32"] - losses["bf16"]), 0.05)
            with self.assertRaises(tlm.ArgumentError):
                tlm.Trainer(model, ids, precision="fp16")
            # A seeded evaluation is the same fixed set for trainers of
            # different seeds; the unseeded one follows the trainer's seed.
            seeded = []
            for seed in (1, 2):
                with tlm.Trainer(model, ids, batch_size=2, context=16, seed=seed) as trainer:
                    seeded.append(trainer.evaluate(batches=2, seed=7))
                    self.assertNotEqual(trainer.evaluate(batches=2, seed=8), seeded[-1])
            self.assertEqual(seeded[0], seeded[1])
            with tlm.Trainer(model, ids) as trainer, \
                    self.assertRaises(tlm.ArgumentError):
                trainer.evaluate(seed=-1)
            with self.assertRaises(tlm.ArgumentError):
                tlm.Trainer(model, ids, optimizer="lion")
            with self.assertRaises(tlm.ArgumentError):
                tlm.Trainer(model, ids + [2**31])

    def test_import_refuses_nonfinite_weights_unless_allowed(self):
        with tlm.Context(threads=1) as ctx, tempfile.TemporaryDirectory() as tmp:
            model = tlm.Model(ctx, vocab_size=11, d_model=16, n_heads=2,
                              n_decoder_layers=1, max_context=8)
            path = os.path.join(tmp, "m.bin")
            model.export(path, "llmc")
            with open(path, "r+b") as f:  # the first weight (after 256 int32s): NaN
                f.seek(256 * 4)
                f.write(bytes([0, 0, 0xc0, 0x7f]))
            with self.assertRaises(tlm.Error) as caught:
                tlm.Model.import_(ctx, path)
            self.assertEqual(caught.exception.name, "TLM_E_FORMAT")
            back = tlm.Model.import_(ctx, path, allow_nonfinite=True)
            self.assertEqual(back.config, model.config)


class NumpyArrays(unittest.TestCase):
    @needs_numpy
    def test_tensors_from_arrays_of_any_numeric_dtype(self):
        with tlm.Context(threads=1) as ctx:
            t = ctx.tensor(numpy.arange(6))
            self.assertEqual(t.dtype, "float32")
            self.assertEqual(t.shape, (6,))
            self.assertEqual(t.tolist(), [0, 1, 2, 3, 4, 5])
            for dtype in (numpy.int8, numpy.uint16, numpy.int64, numpy.float16,
                          numpy.float64, numpy.bool_):
                a = numpy.ones((2, 3), dtype=dtype)
                self.assertEqual(ctx.tensor(a).tolist(), [[1.0] * 3] * 2, dtype)
                self.assertEqual(ctx.tensor(a, dtype="int32").tolist(), [[1] * 3] * 2, dtype)
            # Not C-contiguous: converted in the one copy.
            a = numpy.arange(12.0).reshape(3, 4).T[::2]
            self.assertEqual(ctx.tensor(a).tolist(), a.tolist())
            self.assertEqual(ctx.tensor(numpy.float64(2.5)).tolist(), [2.5])
            self.assertEqual(ctx.tensor(numpy.arange(6), shape=[3, 2]).shape, (3, 2))
            ids = ctx.tensor(numpy.array([3, 1], dtype=numpy.uint64), dtype="int32")
            self.assertEqual(ids.numpy().dtype, numpy.int32)

    @needs_numpy
    def test_what_does_not_convert_is_refused(self):
        with tlm.Context(threads=1) as ctx:
            for bad in (numpy.array([object()]), numpy.array(["a"]),
                        numpy.array([1j])):
                with self.assertRaises(tlm.ArgumentTypeError):
                    ctx.tensor(bad)
            cases = ((numpy.array([1.0, 1e39]), "float32", "(1,)"),
                     (numpy.array([0, 2**31]), "int32", "2147483648"),
                     (numpy.array([-2**40]), "int32", "(0,)"),
                     (numpy.array([0.5]), "int32", "not an integer"),
                     (numpy.array([numpy.nan]), "int32", "not an integer"),
                     (numpy.array([2**64 - 1], dtype=numpy.uint64), "int32", "range"),
                     (numpy.zeros((0, 3)), "float32", "empty"))
            for array, dtype, message in cases:
                with self.assertRaises(tlm.ArgumentError) as caught:
                    ctx.tensor(array, dtype=dtype)
                self.assertIn(message, str(caught.exception))
            with self.assertRaises(tlm.Error) as caught:
                ctx.tensor(numpy.zeros((2, 2, 2, 2, 2)))
            self.assertEqual(caught.exception.name, "TLM_E_INVALID")
            # NaN and infinity are values a float32 tensor holds.
            self.assertTrue(math.isnan(ctx.tensor(numpy.array([numpy.nan])).item()))

    @needs_numpy
    def test_round_trip_shares_memory(self):
        with tlm.Context(threads=1) as ctx:
            source = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
            x = ctx.tensor(source, requires_grad=True)
            source[0, 0] = 100.0  # the tensor holds its own copy
            self.assertEqual(x.tolist()[0][0], 0.0)
            view = x.numpy()
            self.assertEqual(view.shape, (2, 3))
            self.assertEqual(view.dtype, numpy.float32)
            self.assertTrue(view.flags["C_CONTIGUOUS"])
            self.assertTrue(numpy.array_equal(view, numpy.arange(6).reshape(2, 3)))
            y = (x * x).sum()
            y.backward()
            self.assertTrue(numpy.array_equal(x.grad_numpy(), 2 * view))
            view[1, 2] = 10.0  # writes the tensor
            self.assertEqual(x.values()[5], 10.0)
            x.set(numpy.zeros(6))
            self.assertEqual(float(view.sum()), 0.0)
            result = (x + 1.0).numpy()
            ctx.forward()
            x.set(numpy.ones((2, 3), dtype=numpy.int64))
            ctx.forward()
            self.assertTrue(numpy.array_equal(result, numpy.full((2, 3), 2.0)))
            copy = numpy.asarray(x)
            self.assertFalse(numpy.shares_memory(copy, view))
            with self.assertRaises(tlm.Error):
                x.set(numpy.zeros(7))
            del view, result

    def test_without_numpy(self):
        # As if numpy were not installed: the array calls raise
        # tlm.NumpyMissing, the rest works.
        saved = (tlm._numpy._numpy, tlm._numpy._tried)
        tlm._numpy._numpy, tlm._numpy._tried = None, True
        try:
            with tlm.Context(threads=1) as ctx:
                t = ctx.tensor([1.0, 2.0])
                self.assertEqual(t.values(), [1.0, 2.0])
                for call in (t.numpy, t.grad_numpy, lambda: t.numpy(copy=True)):
                    with self.assertRaises(tlm.NumpyMissing) as caught:
                        call()
                    self.assertIsInstance(caught.exception, tlm.Error)
                    self.assertIn("numpy", str(caught.exception))
        finally:
            tlm._numpy._numpy, tlm._numpy._tried = saved


class GPT2Tokenizer(unittest.TestCase):
    def test_import_encode_export(self):
        # A tiny vocabulary in GPT-2's files: the 256 bytes in GPT-2's byte
        # alphabet, merges "h e" and "\u0120 t" (" t"), <|endoftext|>.
        printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
        alphabet, n = {}, 0
        for b in range(256):
            if b in printable:
                alphabet[b] = chr(b)
            else:
                alphabet[b] = chr(256 + n)
                n += 1
        encoder = {alphabet[b]: b for b in range(256)}
        encoder["he"] = 256
        encoder[alphabet[32] + "t"] = 257
        encoder["<|endoftext|>"] = 258
        with tempfile.TemporaryDirectory() as tmp, tlm.Context(threads=1) as ctx:
            with open(os.path.join(tmp, "encoder.json"), "w", encoding="utf-8") as f:
                json.dump(encoder, f)
            with open(os.path.join(tmp, "vocab.bpe"), "w", encoding="utf-8") as f:
                f.write("#version: 0.2\nh e\n%s t\n" % alphabet[32])
            tok = tlm.Tokenizer.import_(ctx, tmp)
            self.assertEqual(tok.kind, "gpt2")
            self.assertEqual(tok.vocab_size, 259)
            ids = tok.encode(" the<|endoftext|>")
            self.assertEqual(ids[:2], [257, 256])
            self.assertNotIn(258, ids)
            self.assertEqual(tok.decode(ids), " the<|endoftext|>")
            out = os.path.join(tmp, "exported")
            tok.export(out)
            again = tlm.Tokenizer.import_(ctx, out)
            self.assertEqual(again.encode(" the the"), tok.encode(" the the"))
            with self.assertRaises(tlm.Error):
                tlm.Tokenizer.import_(ctx, os.path.join(tmp, "missing"))


class SentencePieceTokenizer(unittest.TestCase):
    # The sentencepiece-made fixture of the tokenizer suite, in both forms.
    FIXTURES = os.path.join(BINDING_DIR, "..", "..", "tests", "tokenizer")

    def test_both_forms_encode_as_sentencepiece(self):
        with tlm.Context(threads=1) as ctx:
            for name in ("sp_bpe.model", "sp_bpe.bin"):
                tok = tlm.Tokenizer.import_(ctx, os.path.join(self.FIXTURES, name))
                self.assertEqual(tok.kind, "sentencepiece")
                self.assertEqual(tok.vocab_size, 1000)
                # sentencepiece's own ids (tests/tokenizer/sp_ids.txt).
                self.assertEqual(tok.encode("Hello world"), [709, 339, 360, 717, 887, 889])
                # More ids than bytes: the dummy prefix, then U+FFFD's
                # three byte pieces for each invalid byte.
                ids = tok.encode(b"\xff\xfe")
                self.assertGreater(len(ids), 2)
                self.assertEqual(tok.decode(ids), "\ufffd\ufffd")
            with tempfile.TemporaryDirectory() as tmp:
                tok.export(tmp)
                again = tlm.Tokenizer.import_(ctx, os.path.join(tmp, "tokenizer.model"))
                self.assertEqual(again.encode("Hello world"), tok.encode("Hello world"))


class TokenizerDetails(unittest.TestCase):
    def test_special_ids_and_token_bytes_of_a_character_tokenizer(self):
        with tlm.Context(threads=1) as ctx:
            tok = tlm.Tokenizer.train(ctx, "abcé", kind="char")
            vocab = tok.vocab_size
            self.assertEqual(vocab, 4 + 4)  # 4 characters + 4 special tokens
            self.assertEqual((tok.unk_id, tok.bos_id, tok.eos_id, tok.pad_id),
                             (vocab - 4, vocab - 3, vocab - 2, vocab - 1))
            self.assertEqual(tok.special_id("eos"), tok.eos_id)
            for ch in "abcé":
                (i,) = tok.encode(ch)
                self.assertEqual(tok.token_bytes(i), ch.encode())
            self.assertEqual(tok.token_bytes(tok.unk_id), "\ufffd".encode())
            for special in (tok.bos_id, tok.eos_id, tok.pad_id):
                self.assertEqual(tok.token_bytes(special), b"")
            self.assertEqual(tok.merges, [])
            for bad in (-1, vocab):
                with self.assertRaises(tlm.Error) as caught:
                    tok.token_bytes(bad)
                self.assertEqual(caught.exception.name, "TLM_E_RANGE")
            with self.assertRaises(tlm.ArgumentError):
                tok.special_id("sep")
            with self.assertRaises(tlm.ArgumentError):
                tok.token_bytes(2**31)

    def test_byte_and_bpe_tokenizers(self):
        with tlm.Context(threads=1) as ctx:
            byte = tlm.Tokenizer.train(ctx, b"", kind="byte")
            self.assertIsNone(byte.unk_id)  # every byte has its id
            self.assertEqual(byte.token_bytes(ord("A")), b"A")
            self.assertEqual(byte.token_bytes(0xff), b"\xff")  # part of no character
            with open(CORPUS, "rb") as corpus:
                text = corpus.read()[:4000]
            bpe = tlm.Tokenizer.train(ctx, text, kind="bpe", vocab_size=300)
            merges = bpe.merges
            self.assertEqual(len(merges), bpe.vocab_size - 259)
            self.assertGreater(len(merges), 0)
            for rank, (left, right) in enumerate(merges):
                self.assertEqual(bpe.token_bytes(256 + rank),
                                 bpe.token_bytes(left) + bpe.token_bytes(right))
            self.assertIsNone(bpe.unk_id)
            self.assertEqual(bpe.pad_id, bpe.vocab_size - 1)

    def test_save_load_and_bytes(self):
        with tlm.Context(threads=1) as ctx, tempfile.TemporaryDirectory() as tmp:
            tok = tlm.Tokenizer.train(ctx, "the cat sat on the mat " * 20, kind="bpe",
                                      vocab_size=270)
            path = os.path.join(tmp, "tok.bin")
            tok.save(path)
            image = tok.to_bytes()
            with open(path, "rb") as f:
                self.assertEqual(f.read(), image)
            for again in (tlm.Tokenizer.load(ctx, path), tlm.Tokenizer.from_bytes(None, image)):
                self.assertEqual(again.kind, "bpe")
                self.assertEqual(again.merges, tok.merges)
                self.assertEqual(again.encode("the mat"), tok.encode("the mat"))
            with self.assertRaises(tlm.Error) as caught:
                tlm.Tokenizer.from_bytes(ctx, image[:len(image) // 2])
            self.assertEqual(caught.exception.name, "TLM_E_FORMAT")
            with self.assertRaises(tlm.Error) as caught:
                tlm.Tokenizer.load(ctx, os.path.join(tmp, "missing"))
            self.assertEqual(caught.exception.name, "TLM_E_IO")


def docs_example(marker):
    """The python block after `marker` in docs/python.md."""
    path = os.path.join(BINDING_DIR, "..", "..", "docs", "python.md")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    start = lines.index(marker)
    begin = lines.index("```python", start) + 1
    return "\n".join(lines[begin:lines.index("```", begin)])


def seq2seq_model(ctx, vocab_size=7, encoder_layers=1, decoder_layers=1):
    return tlm.Model(ctx, vocab_size=vocab_size, d_model=16, n_heads=2, d_ff=32,
                     n_encoder_layers=encoder_layers, n_decoder_layers=decoder_layers,
                     max_context=6, init_seed=3)


class Seq2Seq(unittest.TestCase):
    def test_the_documented_example(self):
        # docs/python.md's string reversal: trained, then checked.
        code = docs_example("<!-- example: tests/python/test_binding.py Seq2Seq -->")
        namespace = {"__name__": "docs_example"}
        exec(compile(code, "docs/python.md", "exec"), namespace)
        self.assertLess(namespace["losses"][-1], namespace["losses"][0] / 10)

    @needs_numpy
    def test_greedy_beam_search_is_the_argmax_loop(self):
        bos = 5
        with tlm.Context(threads=1) as ctx:
            model = seq2seq_model(ctx)
            src = [0, 3, 2, 1]
            for eos in (4, 2, -1):  # -1: no end id, max_length ids
                ids, score = model.beam_search(src, bos, eos, beam_width=1, max_length=4)
                with model.session() as session:
                    self.assertIsNone(session.encode(src))
                    self.assertEqual(session.position, 0)
                    logits = session.feed([bos])
                    expected, logprob = [], 0.0
                    while True:
                        best = int(numpy.argmax(logits))
                        shifted = logits.astype(numpy.float64) - logits.max()
                        logprob += shifted[best] - math.log(numpy.exp(shifted).sum())
                        if best == eos:
                            break
                        expected.append(best)
                        if len(expected) == 4:
                            break
                        logits = session.feed([best])
                self.assertEqual(ids, expected)
                self.assertAlmostEqual(score, logprob, places=4)
            # A wider beam scores at least as well here, and a source mask
            # of ones changes nothing.
            ids, score = model.beam_search(src, bos, 4, beam_width=1)
            wide, wide_score = model.beam_search(src, bos, 4, beam_width=4)
            self.assertGreaterEqual(wide_score, score - 1e-6)
            masked, masked_score = model.beam_search(src, bos, 4, beam_width=4,
                                                     src_mask=[1, 1, 1, 1])
            self.assertEqual(masked, wide)
            self.assertAlmostEqual(masked_score, wide_score, places=5)

    @needs_numpy
    def test_encoder_only_logits(self):
        with tlm.Context(threads=1) as ctx:
            model = seq2seq_model(ctx, encoder_layers=1, decoder_layers=0)
            with model.session() as session:
                out = session.encode(numpy.array([1, 2, 3]), logits=True)
                self.assertEqual(out.shape, (3, 7))
                self.assertTrue(numpy.isfinite(out).all())

    def test_refusals(self):
        with tlm.Context(threads=1) as ctx:
            decoder_only = seq2seq_model(ctx, encoder_layers=0)
            with decoder_only.session() as session:
                with self.assertRaises(tlm.Error) as caught:
                    session.encode([1, 2])
                self.assertEqual(caught.exception.name, "TLM_E_STATE")
                with self.assertRaises(tlm.Error) as caught:
                    session.beam_search([1, 2], 5, 4)
                self.assertEqual(caught.exception.name, "TLM_E_STATE")
            model = seq2seq_model(ctx)
            with model.session() as session:
                with self.assertRaises(tlm.Error) as caught:
                    session.feed([5], logits=None)  # nothing encoded yet
                self.assertEqual(caught.exception.name, "TLM_E_STATE")
                with self.assertRaises(tlm.ArgumentError):
                    session.encode([])
                with self.assertRaises(tlm.ArgumentError):
                    session.beam_search([1, 2], 5, 4, src_mask=[1])
                with self.assertRaises(tlm.Error) as caught:
                    session.beam_search([1, 2], 5, 4, beam_width=0)
                self.assertEqual(caught.exception.name, "TLM_E_INVALID")
                with self.assertRaises(tlm.Error) as caught:
                    session.encode([1, 99])
                self.assertEqual(caught.exception.name, "TLM_E_RANGE")
            pairs = [([0, 1], [1, 0, 4])] * 4
            with self.assertRaises(tlm.ArgumentError):
                tlm.Trainer(model, [0, 1, 2], pairs=pairs, bos_id=5, pad_id=6)
            with self.assertRaises(tlm.ArgumentError):
                tlm.Trainer(model)
            with self.assertRaises(tlm.ArgumentError):  # no tokenizer to ask
                tlm.Trainer(model, pairs=pairs)
            with self.assertRaises(tlm.ArgumentError):
                tlm.Trainer(model, pairs=[([0, 1],)], bos_id=5, pad_id=6)
            with self.assertRaises(tlm.Error) as caught:
                tlm.Trainer(model, pairs=pairs, bos_id=7, pad_id=6)
            self.assertEqual(caught.exception.name, "TLM_E_RANGE")
            with self.assertRaises(tlm.Error) as caught:
                tlm.Trainer(decoder_only, pairs=pairs, bos_id=5, pad_id=6)
            self.assertEqual(caught.exception.name, "TLM_E_INVALID")

    def test_pairs_take_the_tokenizers_special_ids(self):
        with tlm.Context(threads=1) as ctx:
            tok = tlm.Tokenizer.train(ctx, "abc", kind="char")
            model = seq2seq_model(ctx, vocab_size=tok.vocab_size)
            model.tokenizer = tok
            pairs = [(tok.encode(w), tok.encode(w[::-1]) + [tok.eos_id])
                     for w in ("ab", "bca", "cab", "ba")]
            with tlm.Trainer(model, pairs=pairs, batch_size=2,
                             validation_fraction=0.25) as trainer:
                self.assertTrue(math.isfinite(trainer.step()))
                self.assertTrue(math.isfinite(trainer.evaluate(batches=1)))


class TrainerProgress(unittest.TestCase):
    @staticmethod
    def model(ctx):
        return tlm.Model(ctx, vocab_size=8, d_model=16, n_heads=2, n_decoder_layers=1,
                         max_context=8)

    IDS = list(range(8)) * 20

    def test_on_step_sees_every_step(self):
        with tlm.Context(threads=1) as ctx:
            seen = []
            with tlm.Trainer(self.model(ctx), self.IDS, batch_size=2, context=8,
                             on_step=seen.append) as trainer:
                losses = [trainer.step() for _ in range(3)]
            self.assertEqual([info.step for info in seen], [1, 2, 3])
            self.assertEqual([info.loss for info in seen], losses)
            self.assertTrue(all(isinstance(info, tlm.StepInfo) for info in seen))
            with self.assertRaises(tlm.ArgumentTypeError):
                tlm.Trainer(self.model(ctx), self.IDS, on_step=1)

    def test_a_true_return_value_stops(self):
        with tlm.Context(threads=1) as ctx:
            with tlm.Trainer(self.model(ctx), self.IDS, batch_size=2, context=8,
                             on_step=lambda info: info.step >= 2) as trainer:
                trainer.step()
                with self.assertRaises(tlm.Error) as caught:
                    trainer.step()
                self.assertEqual(caught.exception.name, "TLM_E_CANCELLED")
                self.assertEqual(trainer.step_count, 2)  # the step was taken
                self.assertEqual(trainer.last_step.step, 2)

    def test_an_exception_comes_out_of_step(self):
        class Stop(Exception):
            pass

        def on_step(info):
            if info.step == 2:
                raise Stop(info.step)

        with tlm.Context(threads=1) as ctx:
            with tlm.Trainer(self.model(ctx), self.IDS, batch_size=2, context=8,
                             on_step=on_step) as trainer:
                trainer.step()
                with self.assertRaises(Stop) as caught:
                    trainer.step()
                self.assertEqual(caught.exception.args, (2,))
                trainer.step()  # training goes on
                self.assertEqual(trainer.step_count, 3)

    def test_on_step_cannot_free_what_the_step_uses(self):
        with tlm.Context(threads=1) as ctx:
            model = self.model(ctx)
            refused = []
            holder = {}

            def on_step(info):
                for what in (holder["trainer"].close, model.close, ctx.close,
                             holder["trainer"].step, holder["trainer"].evaluate):
                    try:
                        what()
                    except tlm.Error as e:
                        refused.append(e.name)

            with tlm.Trainer(model, self.IDS, batch_size=2, context=8,
                             on_step=on_step) as trainer:
                holder["trainer"] = trainer
                trainer.step()
                self.assertEqual(refused, ["TLM_E_STATE"] * 5)
                self.assertEqual(trainer.step(), trainer.last_step.loss)
            holder.clear()


class Sampling(unittest.TestCase):
    def test_sample_probabilities_and_accept(self):
        with tlm.Context(threads=1) as ctx:
            logits = [0.0, 2.0, 1.0, float("-inf")]
            greedy = tlm.Sampler(ctx, temperature=0.0)
            self.assertEqual(greedy.sample(logits), (1, 0.0))
            self.assertEqual(greedy.probabilities(logits), [0.0, 1.0, 0.0, 0.0])
            sampler = tlm.Sampler(ctx, temperature=1.0, seed=7)
            probs = sampler.probabilities(logits)
            total = sum(math.exp(v) for v in logits[:3])
            for p, v in zip(probs, logits):
                self.assertAlmostEqual(p, math.exp(v) / total, places=5)
            draws = [sampler.sample(logits) for _ in range(50)]
            self.assertTrue(all(0 <= i < 3 for i, _ in draws))  # never the -inf one
            for i, logprob in draws:
                self.assertAlmostEqual(logprob, math.log(probs[i]), places=4)
            sampler.reset(seed=7)
            self.assertEqual([sampler.sample(logits) for _ in range(50)], draws)
            # An accepted token is penalized from then on.
            penalized = tlm.Sampler(ctx, temperature=1.0, repetition_penalty=2.0)
            before = penalized.probabilities(logits)[1]
            penalized.accept(1)
            self.assertLess(penalized.probabilities(logits)[1], before)
            self.assertAlmostEqual(tlm.log_softmax_at(logits, 1),
                                   2.0 - math.log(total), places=5)
            with self.assertRaises(tlm.Error) as caught:
                sampler.sample([float("nan"), 1.0])
            self.assertEqual(caught.exception.name, "TLM_E_NONFINITE")
            with self.assertRaises(tlm.ArgumentError):
                sampler.sample([])
            with self.assertRaises(tlm.Error) as caught:
                tlm.log_softmax_at(logits, 4)
            self.assertEqual(caught.exception.name, "TLM_E_RANGE")
            with self.assertRaises(tlm.Error):
                sampler.accept(-1)
            if numpy is not None:
                self.assertEqual(greedy.sample(numpy.array(logits)), (1, 0.0))


class ApiCoverage(unittest.TestCase):
    def test_every_c_function_is_wrapped_or_listed_as_not(self):
        # docs/python.md, "What the package does not wrap", lists the rest.
        root = os.path.join(BINDING_DIR, "..", "..")
        with open(os.path.join(root, "include", "tlm.h"), encoding="utf-8") as f:
            header = f.read()
        declared = set(re.findall(r"^TLM_API\b[^(]*?\b(tlm_\w+)\s*\(", header, re.M))
        self.assertGreater(len(declared), 150)
        from tlm import _library
        wrapped = set(_library._FUNCTIONS)
        self.assertEqual(wrapped - declared, set())
        with open(os.path.join(root, "docs", "python.md"), encoding="utf-8") as f:
            doc = f.read()
        section = doc[doc.index("## What the package does not wrap"):]
        section = section[:section.index("\n## ")]
        listed = set(re.findall(r"`(tlm_\w+)", section))
        prefixes = {name[:-1] for name in re.findall(r"`(tlm_\w+_)\*`", section)}
        missing = sorted(name for name in declared - wrapped - listed
                         if not any(name.startswith(p) for p in prefixes))
        self.assertEqual(missing, [], "neither wrapped nor listed in docs/python.md")


if __name__ == "__main__":
    unittest.main(verbosity=2)
