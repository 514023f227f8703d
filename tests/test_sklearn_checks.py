"""scikit-learn's estimator checks, one pytest item per check."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_cosmoe import CosineMoERegressor, CosineMoERegressorCV

ESTIMATORS = [
    CosineMoERegressor(random_state=0),
    CosineMoERegressor(router="cosine", random_state=0),
    CosineMoERegressor(router="linear", random_state=0),
    CosineMoERegressor(expert="tanh", random_state=0),
    CosineMoERegressor(n_experts=3, top_k=2, random_state=0),
    CosineMoERegressorCV(max_experts=2, cv=2, temperatures=[1.0], random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
