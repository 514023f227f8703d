"""
=======================
What the router learned
=======================

The router decides which expert answers where.  This example fits the same
data with the three routers and draws the gate weights over the input plane:
each of the three experts gets a colour channel (red, green, blue), so a pure
colour means one expert answers alone and a mixed colour means a blend.

* The **linear** router's regions are separated by straight lines that need not
  pass through the origin.
* The **cosine** router sees only the direction of ``x``: its regions are
  cones with their apex at the origin.
* The **perturbed cosine** router has the same cones far from the origin and a
  soft core around it, where the experts are blended; the core grows with
  ``tau2`` and ``temperature``.

The data have three regimes that are sectors of the plane (cones from the
origin).
"""

# %%
# Data: three linear regimes in three sectors
# -------------------------------------------
# Inputs are standard normal in 2-D (already centred and scaled, so a
# ``StandardScaler`` would change almost nothing; it stays in the pipeline as
# it would for real data).  Regime ``j`` covers the angles of sector ``j``
# and has its own linear function.
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor

rng = np.random.default_rng(0)
n = 900
X = rng.standard_normal((n, 2))


def sector_of(X):
    """Index 0, 1, 2 of the 120-degree sector that each row points into."""
    angle = np.arctan2(X[:, 1], X[:, 0]) + np.pi
    return np.minimum((angle / (2 * np.pi / 3)).astype(int), 2)


sector = sector_of(X)
slopes = np.array([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]])
offsets = np.array([1.0, -1.0, 0.0])
y = np.einsum("nd,nd->n", X, slopes[sector]) + offsets[sector]
y += 0.1 * rng.standard_normal(n)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

# %%
# Fit the three routers
# ---------------------
# A low ``temperature`` lets the cosine routers draw sharp boundaries: their
# cosine term is at most 1 in size, so with ``T = 1`` the gates could never
# separate the sectors cleanly.
routers = ["linear", "cosine", "perturbed_cosine"]
models = {}
for router in routers:
    model = make_pipeline(
        StandardScaler(),
        CosineMoERegressor(n_experts=3, router=router, temperature=0.03,
                           random_state=0),
    )
    model.fit(X_train, y_train)
    models[router] = model
    print(f"{router:>17}: test R^2 = {model.score(X_test, y_test):.3f}")

# %%
# Gate weights over the plane
# ---------------------------
# ``predict_gates`` works on the scaled inputs, so the grid goes through the
# fitted scaler (``model[:-1]``) first.  The white cross marks the origin.
grid = np.linspace(-3, 3, 241)
xx, yy = np.meshgrid(grid, grid)
plane = np.column_stack([xx.ravel(), yy.ravel()])

fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), sharey=True, layout="constrained")
for ax, router in zip(axes, routers):
    model = models[router]
    moe = model[-1]
    gates = moe.predict_gates(model[:-1].transform(plane))
    # match experts to sectors (largest mean gate), so colours agree across panels
    train_gates = moe.predict_gates(model[:-1].transform(X_train))
    sector_train = sector_of(X_train)
    mean_gate = np.array([train_gates[sector_train == j].mean(axis=0) for j in range(3)])
    order = linear_sum_assignment(-mean_gate)[1]
    image = gates[:, order].reshape(len(grid), len(grid), 3)
    ax.imshow(image, origin="lower", extent=(-3, 3, -3, 3), interpolation="bilinear")
    ax.plot(0, 0, "w+", markersize=12, markeredgewidth=2)
    ax.set_title(f"router={router!r}")
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")
fig.suptitle("Gate weights $g(x)$ as RGB: one colour channel per expert")

# %%
# All three routers found the three sectors, but they draw them differently.
#
# * The cosine router's blending zones (mixed colours) are wedges of constant
#   angle: how sharply it switches depends only on the direction of ``x``.
# * The perturbed cosine router has the same wedges far from the origin; close
#   to it the factor ``|x| / (|x| + tau2)`` damps the cosine term, so the
#   experts blend in a core around the origin.  At this low temperature the
#   core is tiny; it grows with ``temperature`` and ``tau2``.
# * The linear router switches more sharply the further a row is from the
#   origin (its scores grow with ``|x|``).  Three sectors meeting at one point
#   are exactly what a linear softmax with three experts draws, which is why
#   it fits these data well too: the routers differ less in *which* regions
#   they can draw than in how sharp the boundaries are and in how well their
#   parameters can be estimated (see the user guide).
#
# How many rows does each expert answer?
# --------------------------------------
# ``apply`` returns the index of the heaviest expert of each row.  Balanced
# counts mean every expert is used; an expert with no rows is wasted (a sign
# that ``n_experts`` is too large or that the fit found a poor local minimum).
fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
width = 0.25
for j, router in enumerate(routers):
    model = models[router]
    counts = np.bincount(model[-1].apply(model[:-1].transform(X_test)), minlength=3)
    ax.bar(np.arange(3) + (j - 1) * width, counts, width, label=router)
    print(f"{router:>17}: apply counts on the test set {counts.tolist()}")
ax.set_xticks(range(3), [f"expert {i}" for i in range(3)])
ax.set_ylabel("test rows")
ax.legend(loc="lower right")
plt.show()
