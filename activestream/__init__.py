"""activestream: streaming active learning — rank, label, retrain, prove the savings."""

__version__ = "0.1.0"
