"""The lifetimes of C handles.

A C handle's lifetime is kept in a _Resource, apart from the Python
object that wraps it: resources form a tree (a context's models, a
model's trainers, ...) in which a parent frees its children first, and
they never refer to Python objects, so the order in which the garbage
collector finalizes a cycle of objects cannot free a parent first.
"""

import itertools

from . import _library
from ._errors import Error, _E_STATE


class _Resource:
    """One C handle: its pointer (None once gone), the function that frees
    it (None when its parent frees it or it is borrowed), the resources to
    free before it, and why it is gone."""
    __slots__ = ("pointer", "kind", "free_name", "parent", "children", "why",
                 "busy", "key", "on_reset", "views", "close_pending")
    _serial = itertools.count()

    def __init__(self, pointer, kind, free_name, parent=None, on_reset=False):
        self.pointer = pointer
        self.kind = kind
        self.free_name = free_name
        self.children = {}  # key -> _Resource, in creation order
        self.why = None
        self.busy = 0       # > 0 while a C call that runs Python code uses it
                            # (generate(), a trainer step with on_step)
        self.on_reset = on_reset  # a result tensor: gone at its context's reset
        self.views = 0      # numpy arrays that share the handle's memory
        # True once the wrapper was garbage collected while numpy arrays
        # shared memory of this subtree: closed when the last one goes.
        self.close_pending = False
        self.key = next(_Resource._serial)
        self.parent = parent
        if parent is not None:
            parent.children[self.key] = self

    def get(self):
        """The pointer; raises once the handle is gone."""
        if self.pointer is None:
            raise Error(_E_STATE, "tlm: this %s cannot be used: %s" % (self.kind, self.why))
        return self.pointer

    def busy_in_tree(self, views=True):
        """The first resource of this subtree a running generate() uses, or
        (with `views`) whose memory a numpy array shares."""
        if self.busy or (views and self.views):
            return self
        for child in list(self.children.values()):
            found = child.busy_in_tree(views)
            if found is not None:
                return found
        return None

    def refuse_if_busy(self, action, views=True):
        busy = self.busy_in_tree(views)
        if busy is not None and busy.busy:
            raise Error(_E_STATE, "tlm: cannot %s while a call that runs Python "
                        "callbacks uses the %s (from generate()'s on_text or on_token, or "
                        "the trainer's on_step)" % (action, busy.kind))
        if busy is not None:
            raise Error(_E_STATE, "tlm: cannot %s: %d numpy array(s) share the "
                        "memory of a %s in it (tensor.numpy()); delete them, or "
                        "take copies (tensor.numpy(copy=True))" % (action, busy.views, busy.kind))

    def refuse_if_viewed(self, action):
        """Refuse `action` while numpy arrays share the memory of a result
        tensor of this subtree (a context's reset frees those)."""
        for child in list(self.children.values()):
            if child.on_reset and child.views:
                raise Error(_E_STATE, "tlm: cannot %s: %d numpy array(s) share the "
                            "memory of a result tensor (tensor.numpy()); delete them, "
                            "or take copies (tensor.numpy(copy=True))" % (action, child.views))

    def find(self, kind):
        """A live resource of `kind` in this subtree, or None."""
        for child in list(self.children.values()):
            if child.kind == kind and child.pointer is not None:
                return child
            found = child.find(kind)
            if found is not None:
                return found
        return None

    def close(self, why="it was closed"):
        if self.pointer is None:
            return
        self.refuse_if_busy("close the %s" % self.kind)
        self.release(why)

    def finish_close(self, why):
        """Free the handle, or, for a leaf tensor that results computed
        since the context's last reset may still read, detach it and let
        that reset free it. The caller checked that nothing uses it."""
        parent = self.parent
        if (self.kind == "tensor" and self.free_name is not None
                and isinstance(parent, _ContextResource) and parent.results > 0):
            parent.deferred.append(self.pointer)
            self.detach(why)
        else:
            self.release(why)

    def view_released(self):
        """A numpy array over this handle's memory went away: close this
        handle and its ancestors whose wrappers were garbage collected
        meanwhile (their __del__ had to leave them open), when nothing in
        their subtree is in use any more."""
        self.views -= 1
        node = self
        while node is not None:
            parent = node.parent
            if (node.close_pending and node.pointer is not None
                    and node.busy_in_tree() is None):
                node.finish_close("it was garbage collected")
            node = parent

    def release(self, why, closed_kind=None):
        """Free the children (newest first), then the handle. `closed_kind`
        names, in the children's messages, what the caller closed."""
        if self.pointer is None:
            return
        closed_kind = closed_kind or self.kind
        for child in reversed(list(self.children.values())):
            child.release("the %s this %s belongs to was closed" % (closed_kind, child.kind),
                          closed_kind)
        pointer, self.pointer, self.why = self.pointer, None, why
        if self.parent is not None:
            self.parent.children.pop(self.key, None)
            self.parent = None
        lib = _library._lib
        if self.free_name is not None and lib is not None:
            getattr(lib, self.free_name)(pointer)

    def detach(self, why):
        """Forget the handle without freeing it (someone else frees it)."""
        if self.pointer is None:
            return
        for child in reversed(list(self.children.values())):
            child.release("the %s this %s belongs to was closed" % (self.kind, child.kind),
                          self.kind)
        self.pointer, self.why = None, why
        if self.parent is not None:
            self.parent.children.pop(self.key, None)
            self.parent = None


class _ContextResource(_Resource):
    """A context's resource: also counts the results computed since the
    last reset (while there are any, the tape may read every leaf) and
    holds the leaves closed meanwhile, freed at the next reset."""
    __slots__ = ("results", "deferred")

    def __init__(self, pointer):
        super().__init__(pointer, "context", "tlm_context_free")
        self.results = 0
        self.deferred = []

    def release(self, why, closed_kind=None):
        self.deferred = []  # tlm_context_free frees every leaf
        super().release(why, closed_kind)

    def after_reset(self):
        for child in list(self.children.values()):
            if child.on_reset:
                child.detach("its context was reset (ctx.reset()) after it was computed")
        self.results = 0
        pointers, self.deferred = self.deferred, []
        for pointer in pointers:
            _library._lib.tlm_tensor_free(pointer)


class _Handle:
    """Base of the classes that wrap a C handle (in self._res)."""
    _kind = "handle"
    _free = None
    _res = None

    def _own(self, pointer, parent=None):
        self._res = _Resource(pointer, self._kind, self._free,
                              parent._res if parent is not None else None)

    @property
    def handle(self):
        """The raw C pointer (an int); raises tlm.Error once it is gone."""
        if self._res is None:
            raise Error(_E_STATE, "tlm: this %s was never created" % self._kind)
        return self._res.get()

    @property
    def closed(self):
        """True once the handle is freed (by close() or with its parent)."""
        return self._res is None or self._res.pointer is None

    def close(self):
        """Free the handle now, after everything that depends on it (later
        calls raise tlm.Error)."""
        if self._res is not None:
            self._res.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        res = self._res
        try:
            self.close()
        except Exception:
            # A numpy array still shares memory of this subtree (it holds
            # the resources, not this object, so that a garbage cycle of
            # Python objects never keeps the C handles alive): the last
            # array to go closes it. Or the interpreter is shutting down.
            if res is not None and res.pointer is not None:
                res.close_pending = True

