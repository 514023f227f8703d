"""Cosine-router mixture of experts for scikit-learn."""

from ._classifier import CosineMoEClassifier
from ._cv import CosineMoERegressorCV
from ._estimator import CosineMoERegressor

__version__ = "0.1.0"
__all__ = ["CosineMoEClassifier", "CosineMoERegressor", "CosineMoERegressorCV",
           "__version__"]
