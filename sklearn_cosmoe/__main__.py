"""``python -m sklearn_cosmoe``: a demo on built-in data; ``... rates``: the experiment.

The demo prints the 5-fold cross-validated R^2 of the three routers beside
Ridge on scikit-learn's diabetes data and on data drawn from a sharp-gated
perturbed-cosine model.  Each mixture is a ``CosineMoERegressorCV``: it
chooses its number of experts (1 to 4) by an inner 3-fold cross-validation.
Then, for the perturbed cosine router fitted on all the rows, the number of
experts it chose and how many rows each expert wins (``apply``).  Last, the
5-fold cross-validated accuracy of ``CosineMoEClassifier`` beside
``LogisticRegression`` on scikit-learn's breast cancer data.
"""

import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import CosineMoEClassifier, CosineMoERegressorCV
from .datasets import make_cosine_moe


def _models(temperature, alpha):
    models = {"ridge": make_pipeline(StandardScaler(), RidgeCV())}
    for router in ("perturbed_cosine", "cosine", "linear"):
        # sharp gates (T = 0.2) can take L-BFGS more than the default 1000
        # iterations to pass the relative stopping rule (user guide: solver)
        models[router] = make_pipeline(
            StandardScaler(),
            CosineMoERegressorCV(max_experts=4, cv=3, router=router,
                                 temperatures=[temperature], alpha=alpha,
                                 max_iter=3000, random_state=0),
        )
    return models


def demo():
    data = {
        "diabetes (n=442, d=10)": (*load_diabetes(return_X_y=True), 1.0, 1e-4),
        "perturbed-cosine model, T=0.2 (n=2000, d=4), alpha=1e-4": (
            *make_cosine_moe(2000, 4, 3, temperature=0.2, noise=0.1, random_state=0)[:2],
            0.2,
            1e-4,
        ),
    }
    cv = KFold(5, shuffle=True, random_state=0)
    for name, (X, y, temperature, alpha) in data.items():
        print(f"\n{name}: 5-fold CV R^2 (mean +- sd)")
        for label, model in _models(temperature, alpha).items():
            start = time.perf_counter()
            scores = cross_val_score(model, X, y, cv=cv)
            print(f"  {label:<17} {scores.mean():.3f} +- {scores.std():.3f}"
                  f"   ({time.perf_counter() - start:.1f} s)")
        scaler, moe = _models(temperature, alpha)["perturbed_cosine"].fit(X, y)
        counts = np.bincount(moe.estimator_.apply(scaler.transform(X)),
                             minlength=moe.n_experts_)
        print(f"  perturbed_cosine on all rows: {moe.n_experts_} expert(s) chosen by CV; "
              f"rows won by each (apply): {counts.tolist()}")
    classification_demo()


def classification_demo():
    """Held-out accuracy of the classifier beside logistic regression."""
    X, y = load_breast_cancer(return_X_y=True)
    models = {
        "logistic regression": LogisticRegression(),
        "CosineMoEClassifier(n_experts=2, alpha=1e-2)": CosineMoEClassifier(
            n_experts=2, alpha=1e-2, random_state=0),
    }
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    print(f"\nbreast cancer (n={len(y)}, d={X.shape[1]}, 2 classes): "
          "5-fold CV accuracy (mean +- sd)")
    for label, model in models.items():
        start = time.perf_counter()
        scores = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=cv)
        print(f"  {label:<45} {scores.mean():.3f} +- {scores.std():.3f}"
              f"   ({time.perf_counter() - start:.1f} s)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "rates":
        from .rates import main as rates_main

        return rates_main(argv[1:])
    if argv:
        sys.exit("usage: python -m sklearn_cosmoe [rates [options]]")
    demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
