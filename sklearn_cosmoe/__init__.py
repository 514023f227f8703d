"""Cosine-router mixture of experts for scikit-learn."""

from ._estimator import CosineMoERegressor

__version__ = "0.1.0"
__all__ = ["CosineMoERegressor", "__version__"]
