"""Example pipelines shipped with the package (``streamml demo`` runs the taxi one).

* :mod:`streamml.examples.taxi_pipeline`: the taxi pipeline (classification, drift);
* :mod:`streamml.examples.taxi_module`: its user module (model, label, features).

The top-level ``examples/`` folder of a checkout re-exports them.
"""
