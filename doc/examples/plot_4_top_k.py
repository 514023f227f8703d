"""
==================================
Sparse (top-K) against dense gates
==================================

With ``top_k=K`` each input is routed to its ``K`` highest-scoring experts
only: the softmax is taken over those ``K`` scores and every other gate is
exactly zero (:ref:`top-k`).  This example fits four experts with dense gates,
``top_k=2`` and ``top_k=1`` on the same data, and draws the gates and the
prediction along a circle around the origin -- the variable a cosine router
actually looks at is the angle.
"""

# %%
# Data
# ----
# Four true experts with dense, fairly sharp gates (perturbed cosine router,
# ``temperature=0.2``) on 2-D standard-normal inputs.
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import softmax
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe.datasets import make_cosine_moe

X, y, true_params = make_cosine_moe(800, n_features=2, n_experts=4, temperature=0.2,
                                    noise=0.1, inputs="normal", random_state=1)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

# %%
# Fit dense, top-2 and top-1 routing
# ----------------------------------
# Sparse fits have more poor local minima (an expert outside a row's top K
# gets no gradient from it), so they get two starts.
settings = {"dense": None, "top_k=2": 2, "top_k=1": 1}
models = {}
for name, top_k in settings.items():
    model = make_pipeline(
        StandardScaler(),
        CosineMoERegressor(n_experts=4, temperature=0.2, top_k=top_k,
                           n_init=1 if top_k is None else 2, random_state=0),
    )
    model.fit(X_train, y_train)
    models[name] = model
    gates = model[-1].predict_gates(model[:-1].transform(X_test))
    print(f"{name:>8}: test R^2 = {model.score(X_test, y_test):.4f}, "
          f"zero gates: {np.mean(gates == 0):.0%}")

# %%
# Along a circle
# --------------
# Points at radius 1.5 around the origin, parametrised by their angle.  Top
# panel: the prediction of each fit against the noise-free truth, computed
# from the true parameters with the formulas of the user guide.  Lower panels:
# the gates of each fit, stacked (they sum to one; each fit numbers its
# experts in its own order, so colours do not correspond across panels).
angle = np.linspace(-np.pi, np.pi, 721)
circle = 1.5 * np.column_stack([np.cos(angle), np.sin(angle)])


def true_function(X, G, temperature, tau2=1.0):
    """f(x) for the perturbed cosine router with linear experts and parameters G."""
    B1 = G.gate_coef
    cos = (X @ B1.T) / np.outer(np.linalg.norm(X, axis=1) + tau2,
                                np.linalg.norm(B1, axis=1) + G.tau1)
    gates = softmax(cos / temperature + G.gate_intercept, axis=1)
    return np.sum(gates * (X @ G.expert_coef.T + G.expert_intercept), axis=1)


fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True, layout="constrained",
                         height_ratios=[2, 1, 1, 1])
axes[0].plot(angle, true_function(circle, true_params, 0.2), color="k", lw=3, alpha=0.3, label="truth")
for name, model in models.items():
    axes[0].plot(angle, model.predict(circle), label=name)
axes[0].set_ylabel("prediction")
axes[0].legend(ncols=2, loc="upper right")
for ax, (name, model) in zip(axes[1:], models.items()):
    gates = model[-1].predict_gates(model[:-1].transform(circle))
    ax.stackplot(angle, gates.T, alpha=0.8)
    ax.set_ylabel(f"gates\n{name}")
    ax.set_ylim(0, 1)
axes[-1].set_xlabel("angle of x (radians)")
plt.show()

# %%
# What to see
# -----------
# * Dense gates blend neighbouring experts smoothly; ``top_k=2`` blends at most
#   two, and ``top_k=1`` switches abruptly, so its prediction jumps where the
#   top expert changes.
# * Sparse routing trades smoothness for sparsity: with ``top_k=1`` most gates
#   are exactly zero, which is what makes large sparse models cheap (only the
#   top experts need evaluating).  On data with smooth transitions, like
#   these, the dense fit is the more accurate.
