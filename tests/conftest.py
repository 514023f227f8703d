import numpy as np
import pytest

from sklearn_cosmoe._model import MoEParams

ROUTERS = ["perturbed_cosine", "cosine", "linear"]
EXPERTS = ["linear", "tanh", "sigmoid", "gelu"]


def random_params(rng, k, d, scale=1.0):
    return MoEParams(scale * rng.standard_normal((k, d)), rng.standard_normal(k),
                     rng.standard_normal((k, d)), rng.standard_normal(k),
                     output_scale=1.3, output_intercept=-0.2)


@pytest.fixture
def small_data():
    """40 rows, 3 features, with an exactly zero row and non-uniform weights."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    X[5] = 0.0
    y = rng.standard_normal(40)
    w = rng.uniform(0.5, 2.0, 40)
    return X, y, w
