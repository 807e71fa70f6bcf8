"""tlm from Python: a ctypes binding of libtlm (pure Python, no compiled
extension), with numpy interop when numpy is installed.

    import tlm
    with tlm.Context() as ctx:
        model = tlm.Model.load(ctx, "my.tlm")
        text = model.generate("Once upon a time", max_tokens=100,
                              temperature=0.8, on_text=print)

docs/python.md is the guide: installing (pip, offline), finding the
library, numpy, sessions and scoring, training, lifetimes and threads.

The shared library is found, in this order:
  1. the environment variable TLM_LIBRARY: the file, or a directory
     holding libtlm.so.0 (nothing else is tried then);
  2. the in-tree build of the checkout this package lives in
     (build/lib/libtlm.so.0, when run from bindings/python);
  3. libtlm.so.0 through the dynamic linker (LD_LIBRARY_PATH, the
     ldconfig cache, /usr/lib...), then in the libdir `pkg-config
     --variable=libdir tlm` names (an installed prefix on
     PKG_CONFIG_PATH), then ctypes.util.find_library("tlm").
tlm.library_path() says which file was loaded.

Errors. Every failure raises tlm.Error, whose message is tlm's own (the
function, the argument and the values at fault); .status holds the
negative TLM_E_* code and .name its name ("TLM_E_INVALID", ...). An
argument the binding refuses before calling C raises tlm.ArgumentError, a
subclass of tlm.Error and ValueError (and of TypeError for a wrong type):
every integer is checked against its C type (int32, uint32, int64, uint64,
size_t) instead of being wrapped by ctypes, a float32 must fit a float32,
text must be str or bytes, paths and stop strings hold no NUL byte. A
missing library raises tlm.LibraryNotFound (also an OSError), a numpy call
without numpy tlm.NumpyMissing (also an ImportError).

Lifetimes: no call reaches freed memory, whatever the order of close()
calls and garbage collection.
  * An object keeps the objects it needs alive (a Python reference): what
    is made in a context keeps the context, a session or trainer its
    model, the tokenizer returned by model.tokenizer its model. The
    garbage collector thus never frees a parent before its children,
    even in cycles. A numpy array from tensor.numpy() keeps the tensor's
    memory alive (the C tensor and context), not the Python objects:
    numpy arrays are opaque to the garbage collector, and a cycle through
    one would never be collected. A tensor or context collected while
    such an array lives is freed when the last array over it goes.
  * close() (or the end of a `with` block) frees a handle now, and first
    closes what depends on it: a context everything made in it (models,
    tokenizers, samplers, sessions, trainers, tensors), a model its
    sessions, trainers and the tokenizers model.tokenizer returned. Using
    a closed object raises tlm.Error (TLM_E_STATE) saying why, e.g. "this
    tokenizer cannot be used: the model this tokenizer belongs to was
    closed".
  * model.tokenizer is the model's own tokenizer, not a copy: assigning
    model.tokenizer (which stores a copy of the new one) invalidates it.
  * ctx.reset() invalidates every result tensor computed in the context
    (leaves stay); it raises while a trainer uses the context. A leaf
    closed while results may still read it is freed at the next reset.
  * While a numpy array shares a tensor's memory (tensor.numpy()),
    closing the tensor or its context, or resetting the context when the
    tensor is a result, raises tlm.Error.
  * While generate() runs, its callbacks cannot close or reset the model,
    its context, the session or the sampler, nor replace the model's
    tokenizer (tlm.Error).

Threads: like the C handles, a context and everything made in it are used
by one thread at a time (a lock around them if threads share them). The
one exception tlm allows: sessions of one model may run in different
threads at once while nothing modifies the model (no training, no
close) -- each thread with its own Session and Sampler. ctypes releases
the GIL during every C call, so such threads do run in parallel.
"""

from ._library import load_library, library_path, version, version_number
from ._errors import (Error, ArgumentError, ArgumentTypeError, LibraryNotFound,
                      NumpyMissing)
from .context import Context
from .tensor import Tensor, matmul, cross_entropy
from .tokenizer import Tokenizer
from .sampler import Sampler, log_softmax_at
from .model import Model
from .session import Session, TokenLogprob
from .training import Trainer, StepInfo, train

# The version of this package; the library it loads says its own with
# tlm.version() (the binding checks the layout of every settings struct
# against the library's at run time, so a newer library works too).
__version__ = "0.2.0"

__all__ = [
    "Error", "ArgumentError", "ArgumentTypeError", "LibraryNotFound", "NumpyMissing",
    "version", "version_number", "library_path", "load_library", "Context", "Tensor",
    "Tokenizer", "Model", "Session", "TokenLogprob", "Sampler", "Trainer", "StepInfo",
    "train", "cross_entropy", "matmul", "log_softmax_at", "__version__",
]
