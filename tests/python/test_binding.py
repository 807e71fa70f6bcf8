"""Suite "bindings": bindings/python/tlm.py against the built libtlm.

Run by Meson as: python3 test_binding.py BINDING_DIR CORPUS, with
TLM_LIBRARY naming the built shared library. Exit status 77 (Meson's
"skipped") when TLM_SKIP_BINDINGS says why the library cannot be loaded
into this Python (a sanitizer build)."""
import json
import math
import os
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
            tok = tlm.Tokenizer.train(ctx, open(CORPUS, "rb").read(), kind="char")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
