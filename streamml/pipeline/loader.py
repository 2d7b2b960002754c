"""Find a pipeline: ``module:attr`` or a path to a ``.py`` file exposing ``build_pipeline``.

``attr`` may be a :class:`~streamml.pipeline.graph.Pipeline` or a callable
taking the settings (``build_pipeline(settings)``) and, optionally, ``name``.
The loaded pipeline remembers how it was built (:attr:`Pipeline.origin
<streamml.pipeline.graph.Pipeline.origin>`, a :class:`PipelineOrigin`), so
another process can build the same pipeline (``PipelineRun(processes=N)``).

>>> p = load_pipeline("examples/drift_pipeline.py", name="docs")
>>> p.name, len(p.components)
('docs', 5)
>>> p.origin.rebuild().name
'docs'
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from streamml.errors import ConfigError
from streamml.pipeline.graph import Pipeline
from streamml.settings import Settings, load_settings
from streamml.usercode import import_user_module

DEFAULT_ATTR = "build_pipeline"


def resolve(ref: str) -> Any:
    """The object ``ref`` names (``module:attr``, ``file.py[:attr]`` or ``module``)."""
    target, _, attr = ref.partition(":")
    module = import_user_module(target, what="pipeline file" if target.endswith(".py")
                                else "pipeline module")
    attr = attr or DEFAULT_ATTR
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{target} has no attribute {attr!r} (a pipeline file exposes "
                          f"{DEFAULT_ATTR}(settings) -> Pipeline)") from None


@dataclass(frozen=True)
class PipelineOrigin:
    """How a pipeline was built: ``load_pipeline(ref, settings, name=name, **options)``.

    Picklable (settings included), so a spawned process rebuilds the same pipeline.
    """

    ref: str
    settings: Settings | None = None
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def rebuild(self) -> Pipeline:
        """Build the pipeline again (in this process)."""
        return load_pipeline(self.ref, self.settings, name=self.name, **self.options)


def load_pipeline(ref: str, settings: Settings | None = None, *, name: str | None = None,
                  **options: Any) -> Pipeline:
    """Build the pipeline ``ref`` names with ``settings`` (and ``name``, if it accepts one)."""
    obj = resolve(ref)
    if isinstance(obj, Pipeline):
        if name is not None and name != obj.name:
            raise ConfigError(f"{ref} is a fixed pipeline named {obj.name}; it cannot be "
                              f"renamed {name}")
        obj.origin = obj.origin or PipelineOrigin(ref)
        return obj
    if not callable(obj):
        raise ConfigError(f"{ref} is neither a Pipeline nor a callable that builds one")
    settings = settings or load_settings()
    params = inspect.signature(obj).parameters
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in options if k not in params and not any_keyword)
    if unknown:  # a typo (-o mini_bach=500) must not be silently ignored
        takes = [k for k in list(params)[1:] if k != "name"]
        raise ConfigError(f"{ref} takes no option {', '.join(unknown)}; its options: "
                          f"{', '.join(takes) or 'none'}")
    kwargs = {k: v for k, v in {"name": name, **options}.items()
              if v is not None and (k in params or any_keyword)}
    pipeline = obj(settings, **kwargs)
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"{ref} returned {type(pipeline).__name__}, not a Pipeline")
    pipeline.origin = PipelineOrigin(ref, settings, name, dict(options))
    return pipeline
