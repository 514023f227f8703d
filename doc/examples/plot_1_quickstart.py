"""
===========
Quick start
===========

Fit a :class:`~sklearn_cosmoe.CosineMoERegressor` in a scikit-learn
``Pipeline`` behind a ``StandardScaler``, and estimate its accuracy with
``cross_val_score``, next to a linear model.
"""

# %%
# Data with regimes
# -----------------
# :func:`~sklearn_cosmoe.datasets.make_cosine_moe` draws data from the model
# itself: three experts, each a linear function of three features, mixed by a
# perturbed cosine router.  We then give the features their own units (an
# offset and a scale each), as real measurements would have.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe.datasets import make_cosine_moe

Z, y, true_params = make_cosine_moe(
    600, n_features=3, n_experts=3, temperature=0.1, noise=0.2,
    inputs="normal", random_state=0,
)
X = Z * [1.0, 20.0, 0.1] + [5.0, 100.0, -3.0]  # what we observe

# %%
# The pipeline
# ------------
# ``StandardScaler`` puts the origin in the middle of the data and gives every
# feature the same scale; the cosine router needs both, since it routes by the
# direction of ``x`` seen from the origin.
moe = make_pipeline(
    StandardScaler(),
    CosineMoERegressor(n_experts=3, temperature=0.1, random_state=0),
)
ridge = make_pipeline(StandardScaler(), Ridge())

cv = KFold(n_splits=5, shuffle=True, random_state=0)
scores = {
    "CosineMoERegressor": cross_val_score(moe, X, y, cv=cv),
    "Ridge": cross_val_score(ridge, X, y, cv=cv),
}
for name, s in scores.items():
    print(f"{name:>18}: R^2 = {s.mean():.3f} +/- {s.std():.3f}")

# %%
# Look at the predictions
# -----------------------
# Fit on a training split and predict the held-out rows: the mixture follows
# each regime, the single linear model averages them.  Colours show which
# expert has the largest gate (``apply``).
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
moe.fit(X_train, y_train)
ridge.fit(X_train, y_train)
expert = moe[-1].apply(moe[:-1].transform(X_test))

fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True, layout="constrained")
for ax, (name, model) in zip(axes, [("CosineMoERegressor", moe), ("Ridge", ridge)]):
    ax.scatter(y_test, model.predict(X_test), c=expert, s=10, cmap="viridis")
    lims = [y_test.min(), y_test.max()]
    ax.plot(lims, lims, "k--", lw=1)
    ax.set_title(f"{name}: test $R^2$ = {model.score(X_test, y_test):.3f}")
    ax.set_xlabel("true y")
axes[0].set_ylabel("prediction (colour: heaviest expert)")

# %%
# Without the scaler, every row points in nearly the same direction (the
# features sit far from the origin), and the cosine router cannot tell the
# regimes apart:
raw = CosineMoERegressor(n_experts=3, temperature=0.1, random_state=0)
raw.fit(X_train, y_train)
print(f"without StandardScaler: test R^2 = {raw.score(X_test, y_test):.3f}")

# %%
# The fitted estimator
# --------------------
# The last step of the pipeline holds the parameters -- gate coefficients (one
# direction per expert, in the scaled feature space), expert coefficients --
# and the diagnostics of the solver.
est = moe[-1]
print("gate_coef_ (one row per expert):\n", np.round(est.gate_coef_, 2))
print("gate_intercept_:", np.round(est.gate_intercept_, 2))
print("expert_coef_:\n", np.round(est.expert_coef_, 2))
print(f"converged: {est.converged_}, iterations: {est.n_iter_}, "
      f"training objective: {est.loss_:.4f}")
print("test rows per expert:", np.bincount(expert, minlength=3))
plt.show()
