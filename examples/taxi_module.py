"""Taxi "big tipper" user module (TFX ``module_file`` style) for the streamml Trainer.

Label: the tip is more than 20% of the fare; features: every column but
``tips``; the model: ``Coerce`` → impute + scale numbers, one-hot categories →
logistic regression. The code ships inside the package (read it in
``streamml/examples/taxi_module.py``); this file re-exports it, so a pipeline
may name either ``examples/taxi_module.py`` or ``streamml.examples.taxi_module``.
"""

from streamml.examples.taxi_module import (
    CATEGORICAL,
    LEAKY,
    NUMERIC,
    build_batch_model,
    build_model,
    features,
    label,
)

__all__ = ["CATEGORICAL", "LEAKY", "NUMERIC", "build_batch_model", "build_model", "features",
           "label"]
