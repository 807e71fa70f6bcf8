"""Suite "bindings": the Python binding never touches freed memory and
never lets ctypes wrap an integer (issue #21, finding 5).

Run by Meson as: python3 test_lifetimes.py BINDING_DIR CORPUS, with
TLM_LIBRARY naming the built shared library. In the sanitizer build Meson
preloads the ASan runtime, so a use-after-free here is a report and a
failing test, not a silent wrong value."""
import gc
import itertools
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

with open(CORPUS, "rb") as corpus_file:
    TEXT = corpus_file.read()[:2000]


def small_model(ctx, tok):
    model = tlm.Model(ctx, vocab_size=tok.vocab_size, d_model=8, n_heads=2,
                      n_decoder_layers=1, max_context=8)
    model.tokenizer = tok
    return model


class World:
    """One of every handle the binding wraps, made in one context."""

    def __init__(self, tmp):
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "wb") as f:
            f.write(TEXT)
        self.ctx = tlm.Context(threads=1)
        self.tokenizer = tlm.Tokenizer.train(self.ctx, TEXT, kind="char")
        self.model = small_model(self.ctx, self.tokenizer)
        self.borrowed = self.model.tokenizer
        self.quantized = self.model.quantize("int8")
        self.sampler = tlm.Sampler(self.ctx, temperature=0.0)
        self.session = self.model.session()
        self.trainer = tlm.Trainer(self.model, corpus, batch_size=2, context=8)
        self.leaf = self.ctx.tensor([[1.0, 2.0]])
        self.result = self.leaf * 3.0

    NAMES = ("ctx", "tokenizer", "model", "borrowed", "quantized", "sampler",
             "session", "trainer", "leaf", "result")

    def use(self, name):
        """A call that reaches the C handle of `name`."""
        if name == "ctx":
            return self.ctx.threads
        if name in ("tokenizer", "borrowed"):
            return getattr(self, name).encode("the")
        if name in ("model", "quantized"):
            return getattr(self, name).config
        if name == "sampler":
            return self.sampler.settings
        if name == "session":
            return self.session.position
        if name == "trainer":
            return self.trainer.step()
        return getattr(self, name).values()


class CloseInEveryOrder(unittest.TestCase):
    """Every pair of handles closed in both orders, then every handle used:
    it works, or raises tlm.Error (never freed memory)."""

    def test_every_pair_in_both_orders(self):
        with tempfile.TemporaryDirectory() as tmp:
            for first, second in itertools.permutations(World.NAMES, 2):
                world = World(tmp)
                getattr(world, first).close()
                getattr(world, second).close()
                for name in World.NAMES:
                    try:
                        world.use(name)
                    except tlm.Error as e:
                        self.assertIn("cannot be used", str(e), (first, second, name))
                    else:
                        self.assertNotIn(name, (first, second), "used after close()")
                world.ctx.close()
                for name in World.NAMES:
                    with self.assertRaises(tlm.Error, msg=(first, second, name)):
                        world.use(name)

    def test_the_garbage_collector_in_any_order(self):
        # Cycles hold a context and what was made in it; the collector
        # finalizes them in an order of its choosing.
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(3):
                world = World(tmp)
                world.cycle = world
                del world
                gc.collect()
            for reverse in (False, True):
                ctx = tlm.Context(threads=1)
                tok = tlm.Tokenizer.train(ctx, TEXT, kind="char")
                items = [ctx, tok, small_model(ctx, tok), ctx.tensor([1.0])]
                items[2].tokenizer.encode("the")
                if reverse:
                    items.reverse()
                items.append(items)
                del ctx, tok, items
                gc.collect()


class TokenizerOfAModel(unittest.TestCase):
    def test_model_closed(self):
        with tlm.Context(threads=1) as ctx:
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            tok = model.tokenizer
            model.close()
            with self.assertRaises(tlm.Error) as caught:
                tok.encode("the")
            self.assertIn("the model this tokenizer belongs to was closed", str(caught.exception))
            self.assertEqual(caught.exception.name, "TLM_E_STATE")

    def test_tokenizer_replaced(self):
        with tlm.Context(threads=1) as ctx:
            first = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            model = small_model(ctx, first)
            tok = model.tokenizer
            model.tokenizer = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            with self.assertRaises(tlm.Error) as caught:
                tok.encode("the")
            self.assertIn("replaced", str(caught.exception))
            self.assertEqual(model.tokenizer.encode("the"), first.encode("the"))
            model.tokenizer = None
            self.assertIsNone(model.tokenizer)
            # A refused replacement (wrong vocabulary) keeps the old one.
            model.tokenizer = first
            kept = model.tokenizer
            with self.assertRaises(tlm.Error):
                model.tokenizer = tlm.Tokenizer.train(ctx, TEXT, kind="byte")
            self.assertEqual(kept.encode("the"), first.encode("the"))

    def test_the_model_outlives_its_tokenizer(self):
        with tlm.Context(threads=1) as ctx:
            tok = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char")).tokenizer
            gc.collect()  # only the tokenizer refers to the model now
            self.assertEqual(tok.decode(tok.encode("the sea")), "the sea")

    def test_a_tokenizer_given_to_a_model_is_copied(self):
        with tlm.Context(threads=1) as ctx:
            mine = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            model = small_model(ctx, mine)
            mine.close()
            self.assertEqual(model.tokenizer.decode(model.tokenizer.encode("the")), "the")


class Tensors(unittest.TestCase):
    def test_result_after_reset(self):
        with tlm.Context(threads=1) as ctx:
            x = ctx.tensor([1.0, 2.0])
            doubled = x * 2.0
            ctx.reset()
            tripled = x * 3.0  # may take the slot `doubled` had
            self.assertEqual(tripled.values(), [3.0, 6.0])
            with self.assertRaises(tlm.Error) as caught:
                doubled.values()
            self.assertIn("reset", str(caught.exception))
            with self.assertRaises(tlm.Error):
                doubled + x
            self.assertEqual(x.values(), [1.0, 2.0])  # leaves survive a reset

    def test_leaf_closed_while_a_result_uses_it(self):
        with tlm.Context(threads=1) as ctx:
            x = ctx.tensor([1.0, 2.0], requires_grad=True)
            total = (x * 2.0).sum()
            x.close()
            with self.assertRaises(tlm.Error):
                x.values()
            ctx.forward()  # re-runs the tape, which reads x
            self.assertEqual(total.item(), 6.0)
            total.backward()
            ctx.reset()  # x is freed now
            del x, total
            gc.collect()
            self.assertEqual(ctx.tensor([5.0]).values(), [5.0])

    def test_tensor_after_context_close(self):
        ctx = tlm.Context(threads=1)
        x = ctx.tensor([1.0])
        y = x + 1.0
        ctx.close()
        for t in (x, y):
            with self.assertRaises(tlm.Error) as caught:
                t.values()
            self.assertIn("the context this tensor belongs to was closed", str(caught.exception))


class TrainerLifetime(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.corpus = os.path.join(self.tmp.name, "corpus.txt")
        with open(self.corpus, "wb") as f:
            f.write(TEXT)

    def tearDown(self):
        self.tmp.cleanup()

    def test_model_closed_under_the_trainer(self):
        with tlm.Context(threads=1) as ctx:
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            trainer = tlm.Trainer(model, self.corpus, batch_size=2, context=8)
            trainer.step()
            model.close()
            with self.assertRaises(tlm.Error) as caught:
                trainer.step()
            self.assertIn("the model this trainer belongs to was closed", str(caught.exception))

    def test_reset_while_a_trainer_lives(self):
        with tlm.Context(threads=1) as ctx:
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            trainer = tlm.Trainer(model, self.corpus, batch_size=2, context=8)
            with self.assertRaises(tlm.Error) as caught:
                ctx.reset()
            self.assertIn("trainer", str(caught.exception))
            trainer.step()  # unharmed
            trainer.close()
            ctx.reset()

    def test_tokenizer_replaced_under_the_trainer(self):
        with tlm.Context(threads=1) as ctx:
            tok = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            model = small_model(ctx, tok)
            trainer = tlm.Trainer(model, self.corpus, batch_size=2, context=8)
            model.tokenizer = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            trainer.step()  # the dataset holds ids, not the tokenizer


class Generation(unittest.TestCase):
    """Python code runs inside tlm_generate (the on_text callback): it
    cannot free what the call is using."""

    def test_closing_from_the_callback(self):
        with tlm.Context(threads=1) as ctx:
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            sampler = tlm.Sampler(ctx, temperature=0.0)
            other = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            for action in (model.close, sampler.close, ctx.close, ctx.reset,
                           lambda: setattr(model, "tokenizer", other)):
                with self.assertRaises(tlm.Error) as caught:
                    model.generate("the", max_tokens=3, sampler=sampler,
                                   stop_at_eos=False, on_text=lambda piece: action())
                self.assertIn("generate", str(caught.exception))
            self.assertEqual(len(model.generate("the", max_tokens=3, sampler=sampler,
                                                stop_at_eos=False)), 3)

    def test_closing_from_a_session_callback(self):
        with tlm.Context(threads=1) as ctx:
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            session = model.session()
            for action in (session.close, model.close, ctx.close):
                with self.assertRaises(tlm.Error) as caught:
                    session.generate("the", max_tokens=3, temperature=0.0,
                                     stop_at_eos=False, on_token=lambda *token: action())
                self.assertIn("generate", str(caught.exception))
            session.reset()
            self.assertEqual(len(session.generate("the", max_tokens=3, temperature=0.0,
                                                  stop_at_eos=False)), 3)

    def test_a_session_closes_with_its_model(self):
        with tlm.Context(threads=1) as ctx:
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            session = model.session()
            del model
            gc.collect()
            self.assertEqual(session.position, 0)  # the session keeps its model
            session.model.close()
            with self.assertRaises(tlm.Error) as caught:
                session.position
            self.assertIn("the model this session belongs to was closed", str(caught.exception))


try:
    import numpy
except ImportError:
    numpy = None


@unittest.skipIf(numpy is None, "numpy is not installed for this python3")
class NumpyViews(unittest.TestCase):
    """An array over a tensor's memory pins the tensor: what would free
    that memory raises while the array (or a view of it) lives."""

    def test_close_refused_while_an_array_shares_the_memory(self):
        ctx = tlm.Context(threads=1)
        leaf = ctx.tensor(numpy.arange(6.0).reshape(2, 3))
        view = leaf.numpy()[1:]  # a view of the view
        for close in (leaf.close, ctx.close):
            with self.assertRaises(tlm.Error) as caught:
                close()
            self.assertIn("numpy array", str(caught.exception))
            self.assertEqual(caught.exception.name, "TLM_E_STATE")
        del leaf
        gc.collect()
        self.assertEqual(view.tolist(), [[3.0, 4.0, 5.0]])  # still readable
        del view
        gc.collect()
        ctx.close()

    def test_reset_refused_while_an_array_shares_a_result(self):
        with tlm.Context(threads=1) as ctx:
            leaf = ctx.tensor([1.0, 2.0])
            result = leaf * 2.0
            view = result.numpy()
            keep = leaf.numpy()  # a leaf survives a reset: no refusal for it
            with self.assertRaises(tlm.Error):
                ctx.reset()
            with self.assertRaises(tlm.Error):
                leaf.close()  # results may still read it, and an array does
            self.assertEqual(view.tolist(), [2.0, 4.0])
            copy = result.numpy(copy=True)
            del view
            ctx.reset()
            self.assertEqual(copy.tolist(), [2.0, 4.0])
            self.assertEqual(keep.tolist(), [1.0, 2.0])
            with self.assertRaises(tlm.Error):
                result.numpy()
            del keep

    def test_the_garbage_collector_with_arrays(self):
        for _ in range(3):
            ctx = tlm.Context(threads=1)
            context = ctx._res  # the C context's resource, to see it freed
            arrays = [ctx.tensor(numpy.ones(4)).numpy(), (ctx.tensor([1.0]) + 1.0).numpy()]
            arrays.append(arrays)
            del ctx, arrays
            gc.collect()
            self.assertIsNone(context.pointer)

    def test_a_cycle_through_an_array_frees_the_context(self):
        # numpy arrays are opaque to the garbage collector: a cycle through
        # one is collectable only because the array holds the tensor's
        # resource, not the Tensor. The context's __del__ cannot free it
        # while the array lives; the array's going does.
        class Holder:
            pass

        for make_cycle in range(3):
            ctx = tlm.Context(threads=1)
            context = ctx._res
            leaf = ctx.tensor([1.0, 2.0, 3.0])
            result = leaf * 2.0
            array = (leaf if make_cycle else result).numpy()[1:]
            if make_cycle == 0:
                ctx.array = array          # context -> array -> tensor
            elif make_cycle == 1:
                leaf.array = array
            else:
                holder = Holder()
                holder.ctx, holder.array, holder.me = ctx, array, holder
                del holder
            keep = array if make_cycle == 2 else None
            del ctx, leaf, result, array
            gc.collect()
            if keep is not None:  # the Python objects are gone, not the memory
                self.assertIsNotNone(context.pointer)
                self.assertEqual(keep.tolist(), [2.0, 3.0])
                del keep
                gc.collect()
            self.assertIsNone(context.pointer)


class Integers(unittest.TestCase):
    """Every integer is checked against its C type before ctypes sees it."""

    def assertRefused(self, argument, call, *args, **kwargs):
        with self.assertRaises(tlm.ArgumentError) as caught:
            call(*args, **kwargs)
        self.assertIsInstance(caught.exception, tlm.Error)
        self.assertIsInstance(caught.exception, ValueError)
        self.assertEqual(caught.exception.name, "TLM_E_INVALID")
        self.assertIn(argument, str(caught.exception))
        return caught.exception

    def test_int32(self):
        with tlm.Context(threads=1) as ctx:
            e = self.assertRefused("vocab_size", tlm.Model, ctx, vocab_size=2**32 + 10)
            self.assertIn("int32", str(e))
            tok = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            self.assertRefused("ids[1]", tok.decode, [1, 2**40])
            self.assertRefused("ids[0]", tok.decode, [-2**31 - 1])
            self.assertRefused("threads", tlm.Context, threads=2**31)
            self.assertRefused("top_k", tlm.Sampler, ctx, top_k=2**31)
            self.assertRefused("values[1]", ctx.tensor, [1, 2**32], dtype="int32")
            self.assertRefused("targets", tlm.cross_entropy, ctx.tensor([[0.0, 1.0]]), [2**32])
            self.assertRefused("vocab_size", tlm.Tokenizer.train, ctx, TEXT, kind="bpe",
                               vocab_size=2**32 + 300)
            model = small_model(ctx, tok)
            self.assertRefused("max_tokens", model.generate, "the", max_tokens=2**32 + 1)
            # In int32's range, C judges the id.
            with self.assertRaises(tlm.Error) as caught:
                tok.decode([2**31 - 1])
            self.assertEqual(caught.exception.name, "TLM_E_RANGE")

    def test_int64_uint64_uint32_size_t(self):
        with tlm.Context(threads=1) as ctx:
            self.assertRefused("shape[0]", tlm.Tensor, ctx, [1.0], shape=[2**64 + 1])
            self.assertRefused("shape[1]", ctx.tensor([1.0, 2.0]).reshape, 1, 2**63)
            self.assertRefused("seed", tlm.Context, seed=2**64)
            self.assertRefused("seed", tlm.Context, seed=-1)
            self.assertRefused("seed", tlm.Sampler, ctx, seed=2**64 + 5)
            self.assertRefused("init_seed", tlm.Model, ctx, vocab_size=10, init_seed=-1)
            sampler = tlm.Sampler(ctx)
            self.assertRefused("seed", sampler.reset, seed=-3)
            self.assertEqual(tlm.Context(threads=1, seed=2**64 - 1).threads, 1)
            # No public argument is uint32 or size_t today; their checks
            # are the same helpers.
            self.assertRefused("n", tlm._errors._check_uint32, "n", 2**32)
            self.assertEqual(tlm._errors._check_uint32("n", 2**32 - 1), 2**32 - 1)
            self.assertRefused("n", tlm._errors._check_size, "n", -1)
            self.assertRefused("n", tlm._errors._check_int64, "n", 2**63)
            self.assertRefused("n", tlm._errors._check_uint64, "n", 2**64)

    def test_trainer_integers(self):
        with tempfile.TemporaryDirectory() as tmp, tlm.Context(threads=1) as ctx:
            corpus = os.path.join(tmp, "corpus.txt")
            with open(corpus, "wb") as f:
                f.write(TEXT)
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            self.assertRefused("batch_size", tlm.Trainer, model, corpus, batch_size=2**32 + 2)
            self.assertRefused("steps", tlm.Trainer, model, corpus, steps=2**63)
            self.assertRefused("warmup", tlm.Trainer, model, corpus, warmup=-2**63 - 1)
            self.assertRefused("seed", tlm.Trainer, model, corpus, seed=2**64)
            with tlm.Trainer(model, corpus, batch_size=2, context=8) as trainer:
                self.assertRefused("batches", trainer.evaluate, batches=2**32 + 1)
                self.assertRefused("split", trainer.evaluate, split="valid")

    def test_floats(self):
        with tlm.Context(threads=1) as ctx:
            self.assertRefused("temperature", tlm.Sampler, ctx, temperature=1e300)
            self.assertRefused("values[0]", ctx.tensor, [1e39])
            self.assertRefused("scalar", lambda: ctx.tensor([1.0]) * 1e40)


class Types(unittest.TestCase):
    """A wrong type is tlm.ArgumentError (also a TypeError), never a bare
    TypeError or a silent conversion."""

    def assertRefused(self, argument, call, *args, **kwargs):
        with self.assertRaises(tlm.ArgumentError) as caught:
            call(*args, **kwargs)
        self.assertIsInstance(caught.exception, TypeError)
        self.assertIn(argument, str(caught.exception))

    def test_wrong_types(self):
        with tlm.Context(threads=1) as ctx:
            tok = tlm.Tokenizer.train(ctx, TEXT, kind="char")
            for bad in ("10", 10.0, True, None):
                self.assertRefused("vocab_size", tlm.Model, ctx, vocab_size=bad)
            self.assertRefused("threads", tlm.Context, threads=1.5)
            self.assertRefused("ids[0]", tok.decode, ["a"])
            self.assertRefused("ids", tok.decode, 5)
            self.assertRefused("text", tok.encode, 5)  # not 5 zero bytes
            self.assertRefused("text", tok.encode, None)
            self.assertRefused("values[0]", ctx.tensor, ["a"])
            self.assertRefused("values[0]", ctx.tensor, [True])
            self.assertRefused("temperature", tlm.Sampler, ctx, temperature="hot")
            self.assertRefused("dtype", ctx.tensor, [1.0], dtype=[])
            self.assertRefused("path", tlm.Model.load, ctx, 5)
            self.assertRefused("ctx", tlm.Model, None, vocab_size=10)
            self.assertRefused("ctx", tlm.Sampler, "ctx")
            model = small_model(ctx, tok)
            with self.assertRaises(tlm.ArgumentError):
                model.tokenizer = 5
            self.assertRefused("sampler", model.generate, "the", sampler=5)
            self.assertRefused("model", tlm.Trainer, "model", CORPUS)
            self.assertRefused("b", tlm.matmul, ctx.tensor([[1.0]]), "b")
            self.assertRefused("prompt", model.generate, 5)
            self.assertRefused("stop", model.generate, "the", stop=5)

    def test_wrong_values_that_are_not_integers(self):
        with tlm.Context(threads=1) as ctx:
            with self.assertRaises(tlm.ArgumentError) as caught:
                tlm.Model.load(ctx, "model\0.tlm")  # C would read "model"
            self.assertIn("NUL", str(caught.exception))
            with self.assertRaises(tlm.ArgumentError):
                tlm.Tokenizer.train(ctx, "\udc80", kind="char")  # no UTF-8 form
            model = small_model(ctx, tlm.Tokenizer.train(ctx, TEXT, kind="char"))
            with self.assertRaises(tlm.ArgumentError):
                model.generate("the", max_tokens=2, stop="a\0b")


if __name__ == "__main__":
    unittest.main(verbosity=2)
