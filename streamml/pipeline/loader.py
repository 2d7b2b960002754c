"""Find a pipeline: ``module:attr`` or a path to a ``.py`` file exposing ``build_pipeline``.

``attr`` may be a :class:`~streamml.pipeline.graph.Pipeline` or a callable
taking the settings (``build_pipeline(settings)``) and, optionally, ``name``.

>>> p = load_pipeline("examples/drift_pipeline.py", name="docs")
>>> p.name, len(p.components)
('docs', 5)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from streamml.errors import ConfigError
from streamml.pipeline.graph import Pipeline
from streamml.settings import Settings, load_settings

DEFAULT_ATTR = "build_pipeline"


def _module_from_path(path: Path) -> ModuleType:
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    name = f"streamml_pipeline_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load pipeline file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve(ref: str) -> Any:
    """The object ``ref`` names (``module:attr``, ``file.py[:attr]`` or ``module``)."""
    target, _, attr = ref.partition(":")
    if target.endswith(".py") or Path(target).is_file():
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"pipeline file {target} does not exist")
        module = _module_from_path(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"cannot import pipeline module {target!r}: {exc}") from exc
    attr = attr or DEFAULT_ATTR
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{target} has no attribute {attr!r} (a pipeline file exposes "
                          f"{DEFAULT_ATTR}(settings) -> Pipeline)") from None


def load_pipeline(ref: str, settings: Settings | None = None, *, name: str | None = None,
                  **options: Any) -> Pipeline:
    """Build the pipeline ``ref`` names with ``settings`` (and ``name``, if it accepts one)."""
    obj = resolve(ref)
    if isinstance(obj, Pipeline):
        if name is not None and name != obj.name:
            raise ConfigError(f"{ref} is a fixed pipeline named {obj.name}; it cannot be "
                              f"renamed {name}")
        return obj
    if not callable(obj):
        raise ConfigError(f"{ref} is neither a Pipeline nor a callable that builds one")
    settings = settings or load_settings()
    params = inspect.signature(obj).parameters
    kwargs = {k: v for k, v in {"name": name, **options}.items()
              if v is not None and (k in params or any(
                  p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()))}
    pipeline = obj(settings, **kwargs)
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"{ref} returned {type(pipeline).__name__}, not a Pipeline")
    return pipeline
