"""
==============================================
Classification: gate regions and class regions
==============================================

:class:`~sklearn_cosmoe.CosineMoEClassifier` mixes multinomial logistic
experts with the gates of the regressor.  Each expert draws straight class
boundaries; the router decides where each expert answers, so together they
draw boundaries that bend.  This example fits three classes whose
boundaries no straight line can follow, and draws side by side

* the **gate regions**: which expert has the largest gate at each point
  (``predict_gates``; ``apply`` gives the same for given rows), and
* the **class regions**: which class ``predict`` returns at each point,

with the held-out accuracy of a ``LogisticRegression`` for comparison.
"""

# %%
# Data: three classes on two interleaved half moons and a blob
# ------------------------------------------------------------
# ``make_moons`` gives two interleaved half circles; a third class sits in a
# blob to the lower right.  Half of the rows are held out.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from sklearn.datasets import make_moons
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoEClassifier

rng = np.random.default_rng(0)
X_moons, y_moons = make_moons(n_samples=600, noise=0.15, random_state=0)
X_blob = rng.normal([2.2, -1.0], 0.3, size=(300, 2))
X = np.vstack([X_moons, X_blob])
y = np.concatenate([y_moons, np.full(300, 2)])
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5,
                                                    stratify=y, random_state=0)

# %%
# Fit the mixture and a logistic regression
# -----------------------------------------
# A low ``temperature`` lets the cosine router draw sharp gate boundaries
# (its cosine term is at most 1 in size); the ``StandardScaler`` centres the
# data, so the router's cones start from the middle of the data.  The
# likelihood has local optima in which an expert answers few rows or none:
# ``n_init=5`` keeps the best of five fits, each the best of three screened
# starts (a single fit stops in such an optimum here).
moe = make_pipeline(StandardScaler(),
                    CosineMoEClassifier(n_experts=3, temperature=0.1, n_init=5,
                                        random_state=0))
logistic = make_pipeline(StandardScaler(), LogisticRegression())
moe.fit(X_train, y_train)
logistic.fit(X_train, y_train)
print(f"held-out accuracy: CosineMoEClassifier {moe.score(X_test, y_test):.3f}, "
      f"LogisticRegression {logistic.score(X_test, y_test):.3f}")

# %%
# Gate regions and class regions
# ------------------------------
# ``predict_gates`` works on the scaled inputs, so the grid goes through the
# fitted scaler (``moe[:-1]``) first.  Left: the colour of the expert with
# the largest gate, lighter where that gate is below 0.9 (the experts blend
# there).  Right: the predicted class, with the held-out rows on top.
x0, x1 = np.meshgrid(np.linspace(-1.8, 3.4, 261), np.linspace(-2.2, 1.7, 201))
plane = np.column_stack([x0.ravel(), x1.ravel()])
gates = moe[-1].predict_gates(moe[:-1].transform(plane))
winner = gates.argmax(axis=1).reshape(x0.shape)
sure = (gates.max(axis=1) >= 0.9).reshape(x0.shape)
classes = moe.predict(plane).reshape(x0.shape)

expert_colours = ListedColormap(["tab:purple", "tab:olive", "tab:cyan"])
class_colours = ListedColormap(["tab:blue", "tab:orange", "tab:green"])
extent = (x0.min(), x0.max(), x1.min(), x1.max())
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True,
                                  layout="constrained")
left.imshow(winner, origin="lower", extent=extent, cmap=expert_colours,
            vmin=-0.5, vmax=2.5, alpha=np.where(sure, 0.8, 0.35), aspect="auto")
left.scatter(*X_train.T, c="k", s=3, alpha=0.4)
left.set_title("gate regions: expert with the largest gate")
right.imshow(classes, origin="lower", extent=extent, cmap=class_colours,
             vmin=-0.5, vmax=2.5, alpha=0.35, aspect="auto")
right.scatter(*X_test.T, c=y_test, cmap=class_colours, vmin=-0.5, vmax=2.5, s=8,
              edgecolors="k", linewidths=0.2)
right.set_title("class regions (predict) and held-out rows")
for ax in (left, right):
    ax.set_xlabel("$x_1$")
left.set_ylabel("$x_2$")

# %%
# Each expert is a logistic regression: inside its own gate region it can
# only draw straight boundaries.  The class boundary bends where the gate
# regions meet: the mixture follows the moons with a few straight pieces,
# one per expert, where a single logistic regression has one straight line
# between each pair of classes.  How many rows does each expert answer?
# ``apply`` returns the expert with the largest gate of each row.
counts = np.bincount(moe[-1].apply(moe[:-1].transform(X_test)), minlength=3)
print(f"held-out rows answered by each expert: {counts.tolist()}")
plt.show()
