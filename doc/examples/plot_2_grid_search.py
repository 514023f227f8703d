"""
====================================
Tuning the router with a grid search
====================================

:class:`~sklearn_cosmoe.CosineMoERegressor` is an ordinary scikit-learn
estimator, so ``GridSearchCV`` tunes it inside a pipeline.  This example
searches two grids and draws the cross-validated :math:`R^2` as heat maps:

* ``temperature`` against ``n_experts`` -- the two that matter most;
* ``tau1`` against ``tau2`` -- the perturbations of the router.

See :ref:`tuning` for what each hyperparameter does.
"""

# %%
# Data drawn from a sharp-gated model
# -----------------------------------
# Three true experts, a perturbed cosine router with a low temperature (sharp
# gates), 2-D standard-normal inputs.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe.datasets import make_cosine_moe

X, y, _ = make_cosine_moe(400, n_features=2, n_experts=3, temperature=0.1,
                          noise=0.1, inputs="normal", random_state=3)

pipe = Pipeline([
    ("scale", StandardScaler()),
    ("moe", CosineMoERegressor(random_state=0)),
])
cv = KFold(n_splits=3, shuffle=True, random_state=0)


def heat_map(ax, search, row, col):
    """Draw the mean CV score of ``search`` on the grid ``row`` x ``col``."""
    results = search.cv_results_
    rows = sorted(set(results[f"param_moe__{row}"]))
    cols = sorted(set(results[f"param_moe__{col}"]))
    table = np.empty((len(rows), len(cols)))
    for value, r, c in zip(results["mean_test_score"], results[f"param_moe__{row}"],
                           results[f"param_moe__{col}"]):
        table[rows.index(r), cols.index(c)] = value
    image = ax.imshow(table, cmap="viridis", origin="lower")
    for (i, j), value in np.ndenumerate(table):
        ax.text(j, i, f"{value:.3f}", ha="center", va="center",
                color="white" if value < table.max() - 0.1 * np.ptp(table) else "black")
    ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols])
    ax.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="mean CV $R^2$")


# %%
# ``temperature`` and ``n_experts``
# ---------------------------------
search_t = GridSearchCV(
    pipe,
    {"moe__temperature": [0.03, 0.1, 0.3, 1.0], "moe__n_experts": [2, 3, 4]},
    cv=cv,
)
search_t.fit(X, y)
print("best:", search_t.best_params_, f"CV R^2 = {search_t.best_score_:.3f}")

# %%
# ``tau1`` and ``tau2``, at the best temperature and number of experts
# --------------------------------------------------------------------
best = search_t.best_params_
pipe.set_params(moe__temperature=best["moe__temperature"],
                moe__n_experts=best["moe__n_experts"])
search_tau = GridSearchCV(
    pipe, {"moe__tau1": [0.1, 1.0, 10.0], "moe__tau2": [0.1, 1.0, 10.0]}, cv=cv,
)
search_tau.fit(X, y)
print("best:", search_tau.best_params_, f"CV R^2 = {search_tau.best_score_:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
heat_map(axes[0], search_t, "n_experts", "temperature")
axes[0].set_title("CV $R^2$: temperature x n_experts")
heat_map(axes[1], search_tau, "tau1", "tau2")
axes[1].set_title("CV $R^2$: tau1 x tau2")
plt.show()

# %%
# Reading the maps
# ----------------
# * Too few experts cannot represent the three regimes: ``n_experts=2`` loses
#   the most.  More experts than needed cost little in prediction (it is their
#   parameters, not the predictions, that converge more slowly).
# * ``temperature=1`` comes next: a cosine router's cosine term is at most 1 in
#   size, so with ``T = 1`` its gates stay soft, and these data have sharp
#   regimes.  Below the true value (0.1) the score hardly changes.
# * ``tau1`` changes only the scale of the router's parameters, not the set of
#   gates the model can express, so the rows of the right map are nearly equal.
#   ``tau2`` is the radius of the soft core around the origin: a large value
#   blends the experts for most rows and costs accuracy.
