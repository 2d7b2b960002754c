"""Model server: REST in TF Serving's conventions over verified, hot-swapped models.

>>> from streamml.serving import ModelServer, ModelRegistry
>>> ModelRegistry(keep_versions=2).names()
[]
"""

from __future__ import annotations

from streamml.serving.app import make_app
from streamml.serving.registry import ModelEntry, ModelRegistry
from streamml.serving.server import ModelServer

__all__ = ["ModelEntry", "ModelRegistry", "ModelServer", "make_app"]
