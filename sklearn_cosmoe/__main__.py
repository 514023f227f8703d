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
import warnings

USAGE = """usage: python -m sklearn_cosmoe [-h | rates [options] | rates inspect [options]]

  (no argument)   the demo: the three routers beside RidgeCV on scikit-learn's
                  diabetes data and on data drawn from the model, then the
                  classifier beside logistic regression (about 40 s on 2 cores)
  rates           the paper's convergence-rate experiment ('rates --help' lists its
                  options; 'rates --quick' is a small run of about a minute)
  rates inspect   one fit of that experiment, its atoms beside the truth's
  -h, --help      this message
"""
#: wall time of the whole demo on two cores, kernels already compiled
DEMO_SECONDS = 40

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import CosineMoEClassifier, CosineMoERegressorCV
from .datasets import make_cosine_moe


def _models(temperature):
    models = {"RidgeCV": make_pipeline(StandardScaler(), RidgeCV())}
    for router in ("perturbed_cosine", "cosine", "linear"):
        models[router] = make_pipeline(
            StandardScaler(),
            CosineMoERegressorCV(max_experts=4, cv=3, router=router,
                                 temperatures=[temperature], random_state=0),
        )
    return models


def demo():
    # max_experts=4 keeps the demo short; the mixtures would say each time that
    # their best is that cap, which on the model's data is one above the truth's 3
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The best number of experts", UserWarning)
        _demo()


def _demo():
    print(f"sklearn_cosmoe demo: about {DEMO_SECONDS} s on two cores (the first run in a new "
          "environment first compiles the kernels, once).\n"
          "Each line is a 5-fold cross-validated R^2 (mean +- sd over the folds; 1 is "
          "perfect, 0 is predicting the mean) and the time it took.\n"
          "RidgeCV: linear regression with its ridge penalty chosen by cross-validation. "
          "perturbed_cosine, cosine, linear: CosineMoERegressorCV with that router,\n"
          "choosing 1 to 4 experts and the ridge penalty of its experts by an inner "
          "3-fold cross-validation.")
    summary = {}
    data = {
        "diabetes (n=442, d=10)": (*load_diabetes(return_X_y=True), 1.0),
        "perturbed-cosine model, T=0.2 (n=2000, d=4)": (
            *make_cosine_moe(2000, 4, 3, temperature=0.2, noise=0.1, random_state=0)[:2],
            0.2,
        ),
    }
    cv = KFold(5, shuffle=True, random_state=0)
    for name, (X, y, temperature) in data.items():
        print(f"\n{name}: 5-fold CV R^2 (mean +- sd)")
        for label, model in _models(temperature).items():
            start = time.perf_counter()
            scores = cross_val_score(model, X, y, cv=cv)
            print(f"  {label:<17} {scores.mean():.3f} +- {scores.std():.3f}"
                  f"   ({time.perf_counter() - start:.1f} s)")
            summary.setdefault(name.split(" ")[0], {})[label] = scores.mean()
        scaler, moe = _models(temperature)["perturbed_cosine"].fit(X, y)
        counts = np.bincount(moe.estimator_.apply(scaler.transform(X)),
                             minlength=moe.n_experts_)
        print(f"  perturbed_cosine refitted on all rows: {moe.n_experts_} expert(s) chosen "
              f"by CV; rows on which each expert has the largest gate (apply): "
              f"{counts.tolist()}")
        if moe.n_experts_ == 1:
            print("  (one expert: the mixture is a linear model, as RidgeCV; no split of "
                  "the rows paid for itself in cross-validation)")
        elif np.any(counts == 0):
            print("  (the cross-validation may choose more experts than the data were drawn "
                  "from when an extra one lowers the error a little; an expert that wins "
                  "0 rows\n   is never the heaviest anywhere and only adds to the blends "
                  "near the borders between regions)")
    accuracy = classification_demo()
    diabetes, model_data = summary["diabetes"], summary["perturbed-cosine"]
    best = max(("perturbed_cosine", "cosine", "linear"), key=model_data.get)
    print(f"\nIn short: on data drawn from a mixture the {best} router's R^2 is "
          f"{model_data[best]:.3f} against RidgeCV's {model_data['RidgeCV']:.3f}; on diabetes, "
          f"where one linear law fits, the mixtures are level with RidgeCV "
          f"({max(v for k, v in diabetes.items() if k != 'RidgeCV'):.3f} against "
          f"{diabetes['RidgeCV']:.3f}).\nThe classifier's accuracy on breast cancer is "
          f"{accuracy[1]:.3f} against logistic regression's {accuracy[0]:.3f}. "
          "Next: README.md, the user guide, or 'python -m sklearn_cosmoe rates --quick'.")


def classification_demo():
    """Print the cross-validated accuracy of the classifier and logistic regression.

    Returns
    -------
    list of float
        The two mean accuracies, logistic regression first.
    """
    X, y = load_breast_cancer(return_X_y=True)
    models = {
        "logistic regression": LogisticRegression(),
        "CosineMoEClassifier(n_experts=2, alpha=1e-2)": CosineMoEClassifier(
            n_experts=2, alpha=1e-2, random_state=0),
    }
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    means = []
    print(f"\nbreast cancer (n={len(y)}, d={X.shape[1]}, 2 classes): "
          "5-fold CV accuracy (mean +- sd)")
    for label, model in models.items():
        start = time.perf_counter()
        scores = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=cv)
        print(f"  {label:<45} {scores.mean():.3f} +- {scores.std():.3f}"
              f"   ({time.perf_counter() - start:.1f} s)")
        means.append(scores.mean())
    return means


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "rates":
        from .rates import main as rates_main

        return rates_main(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if argv:
        print(f"unknown argument {argv[0]!r}\n{USAGE}", end="", file=sys.stderr)
        return 2
    demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
