"""Import user code (TFX's ``module_file``): a ``.py`` path or a dotted module name.

One place for it, so module files load the same way for the Trainer, pipelines
and workers: a file gets a stable module name derived from its absolute path
and is registered in ``sys.modules`` (pickles of objects defined there resolve
in this process); a failed import leaves nothing behind.

>>> import_user_module("json").__name__
'json'
>>> import_user_module("no_such_file.py", what="pipeline file")
Traceback (most recent call last):
...
streamml.errors.ConfigError: pipeline file 'no_such_file.py' does not exist
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from streamml.errors import ConfigError

if TYPE_CHECKING:
    from streamml.processors.base import Processor


def _import_file(path: Path, what: str) -> ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"streamml_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {what} {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_user_module(target: str | Path, *, what: str = "module file") -> ModuleType:
    """Import ``target``: a path (``.py`` or an existing file) or a dotted module name.

    ``ConfigError`` (naming ``what``) for a missing file or an unimportable module.
    """
    text = str(target)
    path = Path(text)
    if text.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{what} {text!r} does not exist")
        return _import_file(path, what)
    try:
        return importlib.import_module(text)
    except ImportError as exc:
        raise ConfigError(f"cannot import {what} {text!r}: {exc}") from exc


def load_processor(spec: str) -> Processor:
    """Build the processor named ``module:callable`` (a class or a factory; the module
    may be a ``.py`` file, imported by :func:`~streamml.usercode.import_user_module`).

    >>> load_processor("streamml:nothing")
    Traceback (most recent call last):
    ...
    streamml.errors.ConfigError: module 'streamml' has no attribute 'nothing'
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"PROCESSOR must look like module:callable, got {spec!r}")
    module = import_user_module(module_name, what="processor module")
    try:
        factory: Any = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    from streamml.processors.base import Processor

    processor = factory() if callable(factory) else factory
    if not isinstance(processor, Processor):
        raise ConfigError(f"{spec} returned {type(processor).__name__}, not a Processor")
    if not processor.inputs:
        raise ConfigError(f"processor {processor.processor_name!r} declares no input topics")
    return processor
