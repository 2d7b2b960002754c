"""Errors of the subscriber client and the model server.

They derive from :class:`streamml.errors.StreamMLError`, so the CLI prints them
as one line. The model server maps them to HTTP statuses: :class:`InvalidInstance`
and :class:`PredictionFailed` to 400, :class:`ModelNotFound` to 404.

>>> from streamml.errors import StreamMLError
>>> issubclass(InvalidInstance, StreamMLError)
True
"""

from __future__ import annotations

from streamml.errors import StreamMLError


class ServingError(StreamMLError):
    """Base class of serving errors; ``status`` is the HTTP status the server answers."""

    status: int = 400


class InvalidInstance(ServingError):
    """A prediction request does not match the model's signature (missing feature, wrong type)."""


class PredictionFailed(ServingError):
    """The model raised while predicting a well-formed instance (answered 400, never 500)."""


class ModelNotFound(ServingError):
    """No such model, or no such loaded version."""

    status = 404
