"""
========================================================
Prediction intervals and the parameters' standard errors
========================================================

A fit ends with the sandwich covariance of its parameters (:ref:`uncertainty`).
From it, ``predict(X, return_std=True)`` gives the predictive standard
deviation of a new observation, :meth:`~sklearn_cosmoe.CosineMoERegressor.predict_interval`
a prediction interval, and :func:`sklearn_cosmoe.inference.summary` a standard
error for every parameter of the canonical form -- or says that the data do
not determine it.

This example fits the **perturbed cosine** and the **plain cosine** router to
the same data.  Their predictions and intervals are alike; their gate
parameters are not: the perturbed router's gate coefficient
:math:`\\beta_{1i}` enters the gates through its atom
:math:`\\beta_{1i} / (\\|\\beta_{1i}\\| + \\tau_1)`, whose length is estimated
with a finite standard error, while the plain cosine router's gates see only
the direction of :math:`\\beta_{1i}`: its length is not identified, and the
summary marks it so instead of printing a number.
"""

# %%
# Data from a mixture of three experts
# ------------------------------------
# Two standard-normal features, three linear experts with a perturbed cosine
# router at ``temperature=0.5``, noise of standard deviation 0.2.  The first
# 1500 rows train, the other 1500 check the intervals.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe.datasets import make_cosine_moe
from sklearn_cosmoe.inference import summary

X, y, truth = make_cosine_moe(3000, n_features=2, n_experts=3, temperature=0.5,
                              noise=0.2, inputs="normal", random_state=2)
X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]

models = {router: CosineMoERegressor(n_experts=3, router=router, temperature=0.5,
                                     random_state=0).fit(X_train, y_train)
          for router in ("perturbed_cosine", "cosine")}
for router, model in models.items():
    lower, upper = model.predict_interval(X_test, coverage=0.95)
    inside = np.mean((lower <= y_test) & (y_test <= upper))
    print(f"{router:>16}: converged {model.converged_}, test R^2 "
          f"{model.score(X_test, y_test):.4f}, 95% intervals cover {inside:.1%} "
          "of the test rows")

# %%
# The gates' standard errors
# --------------------------
# ``summary`` reports each gate in the canonical form: its weight
# :math:`\pi_i`, the direction of its centred atom :math:`\tilde u_i` and that
# atom's length divided by the temperature (how steeply the gate turns).
# Under the plain cosine router it adds a row ``coef_norm`` for the length of
# :math:`\beta_{1i}`, which its gates never see: NaN, ``identified=False``.
pd.set_option("display.width", 120)
for router, model in models.items():
    table = summary(model)
    print(f"\n{router}\n{table[table['kind'] == 'gate'].to_string(index=False)}")

# %%
# Where the predictions are uncertain
# -----------------------------------
# Along a circle of radius 1.5, the prediction with its 95% interval (top),
# and the part of the predictive standard deviation that comes from the
# parameters, :math:`\sqrt{J(x)\,\mathrm{Cov}\,J(x)^\top}` (bottom): largest
# where the gates turn, where the fit depends on the router's parameters.
angle = np.linspace(-np.pi, np.pi, 361)
circle = 1.5 * np.column_stack([np.cos(angle), np.sin(angle)])
fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True, layout="constrained",
                         height_ratios=[2, 1])
for (router, model), colour in zip(models.items(), ("C0", "C1")):
    mean, std = model.predict(circle, return_std=True)
    lower, upper = model.predict_interval(circle)
    axes[0].plot(angle, mean, color=colour, label=router)
    axes[0].fill_between(angle, lower, upper, color=colour, alpha=0.2)
    parameters = np.sqrt(np.maximum(std ** 2 - model.noise_variance_, 0.0))
    axes[1].plot(angle, parameters, color=colour)
axes[0].set_ylabel("prediction and 95% interval")
axes[0].legend(loc="upper right")
axes[1].set_ylabel("parameters' part\nof the std")
axes[1].set_xlabel("angle of x (radians)")
plt.show()

# %%
# What to see
# -----------
# * On fresh rows the 95% intervals of both fits cover close to 95% of the
#   observations: they assume Gaussian noise of one variance, which these data
#   have.
# * The perturbed router's gates have finite standard errors for every
#   quantity of the canonical form, their lengths included.  The plain cosine
#   router's gate lengths are not parameters of its model at all; the summary
#   says so rather than giving the arbitrary length that ``gate_coef_`` holds.
# * The parameters' part of the predictive standard deviation is a fraction
#   of the noise's 0.2 here: with 1500 rows the fit is precise, and most of
#   an interval's width is the noise itself.
