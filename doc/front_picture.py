"""Draw ``doc/_static/front_gates.png``, the picture of README.md.

Run from the repository root: ``python doc/front_picture.py`` (about a minute).
A ``CosineMoERegressorCV`` with its defaults is fitted on 2-D data drawn from
a perturbed-cosine mixture of 3 experts; the picture shows the gate weights of
the mixture it chose over the input plane (one colour per expert, blended by
the gates) beside the target.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_cosmoe import CosineMoERegressorCV  # noqa: E402
from sklearn_cosmoe.datasets import make_cosine_moe  # noqa: E402

OUT = Path(__file__).resolve().parent / "_static" / "front_gates.png"
COLOURS = np.array([[0.85, 0.33, 0.10], [0.00, 0.45, 0.74], [0.47, 0.67, 0.19],
                    [0.49, 0.18, 0.56], [0.93, 0.69, 0.13]])

X, y, _ = make_cosine_moe(2000, n_features=2, n_experts=3, temperature=0.2, random_state=0)
model = make_pipeline(StandardScaler(), CosineMoERegressorCV(random_state=0)).fit(X, y)
cv = model[-1]

lim = np.abs(X).max()
g = np.linspace(-lim, lim, 300)
grid = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
gates = cv.estimator_.predict_gates(model[0].transform(grid))
rgb = (gates @ COLOURS[: gates.shape[1]]).reshape(len(g), len(g), 3)

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
left.imshow(rgb, origin="lower", extent=(-lim, lim, -lim, lim))
left.scatter(*X[::4].T, s=2, c="k", alpha=0.3)
left.set_title(f"gates of the mixture chosen by CV: {cv.n_experts_} experts,\n"
               f"{cv.router_.replace('_', ' ')} router, temperature {cv.temperature_:g}")
sc = right.scatter(*X.T, c=y, s=4, cmap="viridis")
right.set_title("the data: y over the input plane")
fig.colorbar(sc, ax=right, label="y")
for ax in (left, right):
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
fig.savefig(OUT, dpi=90)
print(f"wrote {OUT}")
