"""Client library for users' applications: subscribe to verified model updates.

>>> from streamml.client import ModelSubscriber, ServedModel
>>> ModelSubscriber.__name__, ServedModel.__name__
('ModelSubscriber', 'ServedModel')
"""

from __future__ import annotations

from streamml.client.errors import InvalidInstance, ModelNotFound, PredictionFailed, ServingError
from streamml.client.served import ServedModel
from streamml.client.subscriber import ModelSubscriber
from streamml.client.verify import Refusal, Refused, load_verified

__all__ = [
    "InvalidInstance",
    "ModelNotFound",
    "ModelSubscriber",
    "PredictionFailed",
    "Refusal",
    "Refused",
    "ServedModel",
    "ServingError",
    "load_verified",
]
