"""Settle a model after pickling: attribute access as fast as a never-pickled model's.

On CPython 3.11 and 3.12 an instance keeps its attributes in an inline
"values" array, which the specializing interpreter reads directly
(``LOAD_ATTR_INSTANCE_VALUE``). Reading ``obj.__dict__`` — which ``pickle``
does for every object it saves, and unpickling does for every object it
builds — *materializes* a split-table dict for good, and attribute accesses
on such an object can no longer be specialized at all: each one takes the
generic lookup path. A River pipeline does hundreds of attribute accesses per
``learn_one``, so a model that has been checkpointed, published as a candidate
or loaded from an artifact learned and predicted about 5% slower (measured
with callgrind: 805k instead of 765k instructions per taxi example).

:func:`settle` gives every such instance reachable from a root a fresh
*combined* dict, whose attribute accesses specialize again
(``LOAD_ATTR_WITH_HINT`` reads a combined table; on a split one it deoptimizes
every time): 770k instructions per example in the same measurement.
On CPython 3.13+, where a materialized dict keeps the inline values, this part
does nothing.

(Set order is the other difference pickling makes: a set's iteration order
depends on its insertion history and on the process's hash seed, so it is not
restored. Models that need a fixed feature order use
:class:`~streamml.learning.transform.SelectInOrder` instead of River's
``Select``.)

:mod:`streamml.learning.artifact` calls it after every model dump and load,
the Trainer after packing or unpacking its state,
the Evaluator after packing or unpacking its state, the subscriber client after
loading a release.

>>> import pickle
>>> from river import preprocessing
>>> scaler = preprocessing.StandardScaler(); _ = pickle.dumps(scaler)
>>> settle(scaler) >= (1 if NEEDED else 0), scaler.with_std
(True, True)
"""

from __future__ import annotations

import functools
import gc
import sys
import types
from typing import Any

#: whether this interpreter needs it (3.13 keeps inline values beside a materialized dict)
NEEDED = sys.version_info < (3, 13)

_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT (3.11, 3.12)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
# never walked into: they lead to modules, classes and code, not to a model's state
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
           types.MethodType, functools.partial, types.CodeType, types.FrameType,
           types.MethodDescriptorType, types.WrapperDescriptorType, types.GetSetDescriptorType,
           types.MemberDescriptorType, str, bytes, bytearray, int, float, complex)


def settle(root: Any, *, limit: int = 1_000_000) -> int:
    """Give every plain instance reachable from ``root`` a combined ``__dict__``.

    Walks containers and instances (not classes, modules, functions or bound
    methods), at most ``limit`` objects, and changes only River objects
    (``river.base.Base``: estimators, transformers, statistics, optimizers) whose
    class keeps ``object.__setattr__``. Values are untouched: the objects are the
    same objects with the same attributes. Returns how many got a new dict.
    """
    if not NEEDED:
        return 0
    from river.base import Base

    seen: set[int] = set()
    stack = [root]
    changed = 0
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        flags = type(obj).__flags__
        if (flags & _MANAGED_DICT and flags & _HEAPTYPE and isinstance(obj, Base)
                and type(obj).__setattr__ is object.__setattr__):
            d = obj.__dict__
            if type(d) is dict:
                try:
                    obj.__dict__ = {**d}
                    changed += 1
                except (AttributeError, TypeError):  # a class that forbids it
                    pass
        stack.extend(gc.get_referents(obj))
    return changed
