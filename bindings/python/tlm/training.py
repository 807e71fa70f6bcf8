"""tlm.Trainer and tlm.train: training a model on a text file or ids."""

import collections
import os

from . import _numpy
from ._library import _L, _c, _i32, _f32
from ._errors import (Error, _check, _check_int32, _check_int64, _check_uint64,
                      _check_float32, _check_path, _check_instance, _check_list, _out,
                      _E_STATE, _E_IO)
from ._structs import (_DatasetParams, _OptimizerParams, _ScheduleParams, _StepInfo,
                       _TrainerParams, _init_struct, _named)
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
    max_grad_norm: skip a step whose norm is above it (0: off). See
    docs/training.md and docs/optimizers.md.

    The trainer keeps its model alive; closing the model (or its context)
    closes the trainer, and the context cannot be reset while it lives."""
    _kind = "trainer"
    _free = "tlm_trainer_free"

    def __init__(self, model, data, batch_size=12, context=0, lr=1e-3,
                 weight_decay=0.1, steps=None, warmup=0, min_lr=None,
                 grad_clip=1.0, seed=1, validation_fraction=0.1, accumulation=1,
                 max_grad_norm=0.0, optimizer="adamw", beta1=None, beta2=None,
                 eps=None, momentum=None, nesterov=None):
        self.model = _check_instance("model", model, Model)
        self.last_step = None
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
        params.optimizer = _c.pointer(opt)
        params.schedule = _c.pointer(sched)
        ctx = model.ctx.handle
        if isinstance(data, (list, tuple)) or _numpy.is_array(data):
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
        handle = self.handle
        info = _init_struct(_StepInfo, _L().tlm_step_info_init)
        status = _L().tlm_trainer_step(handle, _c.byref(info))
        self.last_step = StepInfo(info.step, info.loss, info.lr, info.grad_norm,
                                  bool(info.skipped), info.tokens)
        _check(status)
        return info.loss

    @property
    def step_count(self):
        """Steps completed (skipped ones not counted)."""
        n = _L().tlm_trainer_step_count(self.handle)
        if n < 0:
            _check(n)
        return n

    def evaluate(self, batches=8, split="validation"):
        """Mean loss over `batches` batches of the "validation" (or "train")
        part."""
        loss = _f32()
        _check(_L().tlm_trainer_evaluate(self.handle, _named(_SPLITS, split, "split"),
                                         _check_int32("batches", batches),
                                         _c.byref(loss)))
        return loss.value

    def save(self, path):
        """Save a checkpoint (model + optimizer state) that Model.load reads."""
        _check(_L().tlm_trainer_save(self.handle, _check_path("path", path)))

    def resume(self, path):
        """Continue from a checkpoint save() wrote for a model of the same
        configuration: the next steps are bit-identical to an
        uninterrupted run. All or nothing."""
        _check(_L().tlm_trainer_resume(self.handle, _check_path("path", path)))

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
                    "optimizer", "beta1", "beta2", "eps", "momentum", "nesterov")
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

