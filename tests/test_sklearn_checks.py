"""scikit-learn's estimator checks, one pytest item per check."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_cosmoe import CosineMoEClassifier, CosineMoERegressor, CosineMoERegressorCV

ESTIMATORS = [
    CosineMoERegressor(random_state=0),
    CosineMoERegressor(router="cosine", random_state=0),
    CosineMoERegressor(router="linear", random_state=0),
    CosineMoERegressor(expert="tanh", random_state=0),
    CosineMoERegressor(n_experts=3, top_k=2, random_state=0),
    CosineMoERegressorCV(max_experts=2, cv=2, temperatures=[1.0], random_state=0),
    # every regressor is tagged multi-output (check_regressor_multioutput,
    # check_supervised_y_2d); these add the experts not covered above
    CosineMoERegressor(n_experts=3, router="cosine", expert="sigmoid", random_state=0),
    CosineMoERegressor(n_experts=3, router="linear", expert="gelu", top_k=1,
                       random_state=0),
    CosineMoEClassifier(n_experts=2, max_iter=100, random_state=0),
    CosineMoEClassifier(n_experts=2, router="cosine", max_iter=100, random_state=0),
    CosineMoEClassifier(n_experts=2, router="linear", max_iter=100, random_state=0),
    CosineMoEClassifier(n_experts=3, top_k=2, max_iter=100, random_state=0),
    CosineMoEClassifier(n_experts=3, router="linear", top_k=1, max_iter=100,
                        random_state=0),
]



def expected_failed_checks(estimator):
    if hasattr(estimator, "cv"):
        return {}
    # The check fits 15 rows with 30 features, which the mixture
    # interpolates: its optimum is a manifold, and the weighted and the
    # repeated fits, equal in exact arithmetic, drift along it apart by
    # rounding (predictions agree to 1e-4 to 1e-6, not 1e-7).  Top-K gates
    # add jumps where the K-th and (K+1)-th scores cross, and a fit that ends
    # near one can land on either side.  It passes or fails by rounding;
    # test_estimator.py checks the equivalence on data that determine the fit.
    reason = "the check's 15 rows and 30 features are interpolated: no unique optimum"
    if getattr(estimator, "top_k", None) is not None:
        reason += "; top-K routing makes the objective discontinuous"
    return {"check_sample_weight_equivalence_on_dense_data": reason}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
