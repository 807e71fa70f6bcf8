"""tlm.Trainer and tlm.train: training a model on a text file or ids."""

import collections
import os

from . import _numpy
from ._library import _L, _c, _i32, _i64, _f32
from ._errors import (Error, ArgumentError, ArgumentTypeError, _type_name, _check,
                      _check_int32, _check_int64, _check_uint64, _check_float32,
                      _check_path, _check_instance, _check_list, _out,
                      _E_STATE, _E_IO)
from ._structs import (_DatasetParams, _OptimizerParams, _ScheduleParams, _StepInfo,
                       _TrainerParams, _PROGRESS_FN, _init_struct, _named)
from .context import _context_of
from .model import Model
from .tokenizer import Tokenizer
from ._handles import _Handle, _Resource

StepInfo = collections.namedtuple("StepInfo", "step loss lr grad_norm skipped tokens")
StepInfo.__doc__ = """What one training step did: steps completed, mean loss,
learning rate, global gradient norm before clipping, whether the update was
skipped (a non-finite loss or gradient, or a norm above max_grad_norm) and
the target tokens trained on."""

_OPTIMIZERS = {"adamw": 0, "sgd": 1}
_PRECISIONS = {"float32": 0, "bf16": 1}  # enum tlm_precision


def _token_ids(value):
    """A ctypes int32 array of the ids in a list or numpy array."""
    if _numpy.is_array(value):
        np = _numpy.require("numpy ids")
        ids = np.ascontiguousarray(_numpy.checked(value, "int32", "data").reshape(-1),
                                   dtype=np.int32)
        return (_i32 * ids.size).from_buffer_copy(ids)
    ids = _check_list("data", value)
    return (_i32 * len(ids))(*[_check_int32("data[%d]" % i, v) for i, v in enumerate(ids)])

_SPLITS = {"train": 0, "validation": 1}


def _progress_callback(state):
    """The C progress callback of a trainer: calls state["on_step"] with
    a StepInfo; a true return value stops (the step raises tlm.Error,
    TLM_E_CANCELLED), an exception is kept in state["raised"] for step()
    to raise. None when there is no on_step."""
    if state["on_step"] is None:
        return _PROGRESS_FN()

    def progress(user, info):
        i = info.contents
        try:
            stop = state["on_step"](StepInfo(i.step, i.loss, i.lr, i.grad_norm,
                                             bool(i.skipped), i.tokens))
        except BaseException as e:  # re-raised by step()
            state["raised"] = e
            return 1
        return 1 if stop else 0

    return _PROGRESS_FN(progress)


def _pair_ids(model, bos_id, pad_id):
    """The decoder's start and padding ids: as given, else the model's
    tokenizer's."""
    tok = model.tokenizer
    ids = []
    for name, value in (("bos_id", bos_id), ("pad_id", pad_id)):
        if value is None:
            value = tok.special_id(name[:3]) if tok is not None else None
            if value is None:
                raise ArgumentError("pairs: give %s (the model has no tokenizer "
                                    "with one)" % name)
        ids.append(_check_int32(name, value))
    return ids


def _pairs_arrays(pairs):
    """The ids, offsets and count tlm_dataset_from_pairs takes, from a
    sequence of (source ids, target ids) pairs."""
    pairs = _check_list("pairs", pairs)
    flat = []
    offsets = [0]
    for p, pair in enumerate(pairs):
        if _numpy.is_array(pair) or not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ArgumentError("pairs[%d] must be a (source ids, target ids) pair" % p)
        for part, ids in zip(("source", "target"), pair):
            if _numpy.is_array(ids):
                ids = ids.reshape(-1).tolist()
            ids = _check_list("pairs[%d] %s" % (p, part), ids)
            flat.extend(_check_int32("pairs[%d] %s[%d]" % (p, part, i), v)
                        for i, v in enumerate(ids))
            offsets.append(len(flat))
    return ((_i32 * max(1, len(flat)))(*flat), (_i64 * len(offsets))(*offsets),
            len(pairs))


class Trainer(_Handle):
    """Trains a model on a text file (encoded with the model's tokenizer)
    or on a sequence of token ids (a list or numpy array); the end of it
    (validation_fraction, default 10%) is held out for evaluate().

    Trainer(model, "text.txt", batch_size=8, context=32, lr=1e-3,
            steps=None (for a cosine schedule), warmup=0, seed=1)

    Optimizer: optimizer="adamw" (default; betas 0.9/0.99, weight decay 0.1
    on the projection matrices, as nanoGPT) or "sgd", with beta1, beta2,
    eps, momentum and nesterov when given. accumulation: micro-batches per
    step. grad_clip: clip the global gradient norm (0: off).
    max_grad_norm: skip a step whose norm is above it (0: off).
    precision="float32" (default) or "bf16": mixed precision, the step's
    matrix products with bf16 inputs and float32 sums, weights, gradients
    and optimizer state in float32. See docs/training.md and
    docs/optimizers.md.

    Sequence to sequence (an encoder-decoder model, docs/seq2seq.md):
    pairs=[(source ids, target ids), ...] instead of `data`, each target
    ending with the end id the decoder is to produce; bos_id and pad_id
    are the decoder's start id and the padding id (default: the model's
    tokenizer's). Every batch pads and masks the sources, and feeds the
    decoder bos_id then the target shifted right.

    on_step(info) is called after every step with its StepInfo (as
    tlm_trainer_params.progress): a true return value stops, step() then
    raising tlm.Error (TLM_E_CANCELLED; the step itself was taken), and
    an exception it raises comes out of step() unchanged. While it runs,
    the trainer, its model and context cannot be closed and the trainer's
    methods cannot be called (tlm.Error).

    The trainer keeps its model alive; closing the model (or its context)
    closes the trainer, and the context cannot be reset while it lives."""
    _kind = "trainer"
    _free = "tlm_trainer_free"

    def __init__(self, model, data=None, batch_size=12, context=0, lr=1e-3,
                 weight_decay=0.1, steps=None, warmup=0, min_lr=None,
                 grad_clip=1.0, seed=1, validation_fraction=0.1, accumulation=1,
                 max_grad_norm=0.0, optimizer="adamw", beta1=None, beta2=None,
                 eps=None, momentum=None, nesterov=None, pairs=None, bos_id=None,
                 pad_id=None, on_step=None, precision="float32"):
        self.model = _check_instance("model", model, Model)
        self.last_step = None
        if (data is None) == (pairs is None):
            raise ArgumentError("give the training data (a text file or ids) or "
                                "pairs=[(source ids, target ids), ...], one of them")
        if on_step is not None and not callable(on_step):
            raise ArgumentTypeError("on_step must be callable, not %s" % _type_name(on_step))
        dataset_params = _init_struct(_DatasetParams, _L().tlm_dataset_params_init)
        dataset_params.validation_fraction = _check_float32("validation_fraction",
                                                            validation_fraction)
        dataset_params.use_cache = 0
        kind = _named(_OPTIMIZERS, optimizer, "optimizer")
        opt = _init_struct(_OptimizerParams, _L().tlm_optimizer_params_init_for, kind)
        opt.lr = _check_float32("lr", lr)
        if kind == _OPTIMIZERS["adamw"]:
            opt.beta2 = 0.99  # the trainer's defaults (nanoGPT's)
        opt.weight_decay = _check_float32("weight_decay", weight_decay)
        for name, value in (("beta1", beta1), ("beta2", beta2), ("eps", eps),
                            ("momentum", momentum)):
            if value is not None:
                setattr(opt, name, _check_float32(name, value))
        if nesterov is not None:
            opt.nesterov = 1 if nesterov else 0
        sched = _init_struct(_ScheduleParams, _L().tlm_schedule_params_init)
        sched.lr = opt.lr
        sched.warmup_steps = _check_int64("warmup", warmup)
        if steps is not None:
            sched.kind = 1  # cosine decay to min_lr at `steps`
            sched.min_lr = _check_float32("min_lr", lr / 10 if min_lr is None else min_lr)
            sched.decay_end_step = _check_int64("steps", steps)
        params = _init_struct(_TrainerParams, _L().tlm_trainer_params_init)
        params.batch_size = _check_int32("batch_size", batch_size)
        params.context = _check_int32("context", context)
        params.accumulation = _check_int32("accumulation", accumulation)
        params.grad_clip = _check_float32("grad_clip", grad_clip)
        params.max_grad_norm = _check_float32("max_grad_norm", max_grad_norm)
        params.seed = _check_uint64("seed", seed)
        params.precision = _named(_PRECISIONS, precision, "precision")
        params.optimizer = _c.pointer(opt)
        params.schedule = _c.pointer(sched)
        # The callback refers to this state, not to the trainer: no cycle.
        self._progress_state = {"on_step": on_step, "raised": None}
        self._progress_fn = _progress_callback(self._progress_state)
        params.progress = self._progress_fn
        ctx = model.ctx.handle
        if pairs is not None:
            params.bos_id, params.pad_id = _pair_ids(model, bos_id, pad_id)
            ids, offsets, n_pairs = _pairs_arrays(pairs)
            created = _out(_L().tlm_dataset_from_pairs, ctx, ids, offsets, n_pairs,
                           _c.byref(dataset_params))
        elif isinstance(data, (list, tuple)) or _numpy.is_array(data):
            ids = _token_ids(data)
            created = _out(_L().tlm_dataset_from_ids, ctx, ids, len(ids),
                           _c.byref(dataset_params))
        else:
            path = _check_path("data", data)
            tok = _L().tlm_model_tokenizer(model.handle)
            if not tok:
                raise Error(_E_STATE, "tlm: the model has no tokenizer to encode the text")
            created = _out(_L().tlm_dataset_from_text_file, ctx, path, tok,
                           _c.byref(dataset_params))
        # The dataset must outlive the trainer: the trainer's resource is
        # its child, and the dataset the model's.
        self._dataset = _Resource(created, "dataset", "tlm_dataset_free", model._res)
        try:
            handle = _out(_L().tlm_trainer_create, model.handle, self._dataset.pointer,
                          _c.byref(params))
        except BaseException:
            self._dataset.close()
            raise
        self._res = _Resource(handle, self._kind, self._free, self._dataset)

    def step(self):
        """One optimisation step; returns its training loss. What the step
        did is in .last_step (a StepInfo), also after a skipped step, which
        raises tlm.Error (TLM_E_NONFINITE, or TLM_E_RANGE above
        max_grad_norm) and leaves the weights unchanged: training may go
        on."""
        handle = self._usable("step()")
        info = _init_struct(_StepInfo, _L().tlm_step_info_init)
        state = self._progress_state
        state["raised"] = None
        # While on_step runs, nothing may free what the step uses.
        res = self._res
        res.busy += 1
        try:
            status = _L().tlm_trainer_step(handle, _c.byref(info))
        finally:
            res.busy -= 1
        self.last_step = StepInfo(info.step, info.loss, info.lr, info.grad_norm,
                                  bool(info.skipped), info.tokens)
        raised, state["raised"] = state["raised"], None
        if raised is not None:
            raise raised
        _check(status)
        return info.loss

    def _usable(self, what):
        """The handle, unless on_step is running (tlm's trainer calls are
        not reentrant)."""
        handle = self.handle
        if self._res.busy:
            raise Error(_E_STATE, "tlm: Trainer.%s cannot be called from the "
                        "trainer's on_step callback" % what)
        return handle

    @property
    def step_count(self):
        """Steps completed (skipped ones not counted)."""
        n = _L().tlm_trainer_step_count(self.handle)
        if n < 0:
            _check(n)
        return n

    def evaluate(self, batches=8, split="validation", seed=None):
        """Mean loss over `batches` batches of the "validation" (or "train")
        part. With seed=None the batches are drawn from the trainer's own
        generator; with a seed they are a fixed set named by it, the same
        windows for every trainer on the same data and context whatever its
        own seed or batch size (tlm_trainer_evaluate_seeded), for comparing
        runs."""
        loss = _f32()
        handle = self._usable("evaluate()")
        which = _named(_SPLITS, split, "split")
        count = _check_int32("batches", batches)
        if seed is None:
            _check(_L().tlm_trainer_evaluate(handle, which, count, _c.byref(loss)))
        else:
            _check(_L().tlm_trainer_evaluate_seeded(handle, which, count,
                                                    _check_uint64("seed", seed),
                                                    _c.byref(loss)))
        return loss.value

    def save(self, path):
        """Save a checkpoint (model + optimizer state) that Model.load reads."""
        _check(_L().tlm_trainer_save(self._usable("save()"), _check_path("path", path)))

    def resume(self, path):
        """Continue from a checkpoint save() wrote for a model of the same
        configuration: the next steps are bit-identical to an
        uninterrupted run. All or nothing."""
        _check(_L().tlm_trainer_resume(self._usable("resume()"),
                                       _check_path("path", path)))

    def close(self):
        """Free the trainer and its dataset."""
        if self._res is not None:
            self._res.close()
        dataset = getattr(self, "_dataset", None)
        if dataset is not None:
            dataset.close()


def train(ctx, path, steps=200, tokenizer="char", on_step=None, **model_config):
    """Train a new character-level (or "byte") model on the text file at
    `path` for `steps` steps and return it.

    Model settings come as keywords (d_model=64, n_heads=4,
    n_decoder_layers=2, max_context=64, ...), and so do the Trainer's
    (batch_size, lr, ...); on_step(step, loss) is called after every
    step."""
    _context_of(ctx)
    steps = _check_int64("steps", steps)
    path = _check_path("path", path)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise Error(_E_IO, "tlm: train: cannot read %s: %s"
                    % (os.fsdecode(path), e.strerror or e)) from None
    trainer_keys = ("batch_size", "lr", "weight_decay", "warmup", "min_lr", "seed",
                    "grad_clip", "validation_fraction", "accumulation", "max_grad_norm",
                    "optimizer", "beta1", "beta2", "eps", "momentum", "nesterov",
                    "precision")
    trainer_settings = {k: model_config.pop(k) for k in trainer_keys if k in model_config}
    with Tokenizer.train(ctx, text, kind=tokenizer) as tok:
        model_config.setdefault("max_context", 64)
        model = Model(ctx, vocab_size=tok.vocab_size, **model_config)
        model.tokenizer = tok
    with Trainer(model, path, context=model_config["max_context"], steps=steps,
                 **trainer_settings) as trainer:
        for i in range(steps):
            loss = trainer.step()
            if on_step is not None:
                on_step(i + 1, loss)
    return model

