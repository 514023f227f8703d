"""
=======================================================
The cross-validated path: experts, perturbation, ridge
=======================================================

:class:`~sklearn_cosmoe.CosineMoERegressorCV` grows mixtures one expert at a
time on each training fold and carries each number of experts warm along a
grid of perturbations and ridge penalties (:ref:`cv-path`).  This example
draws its ``cv_results_``: the mean test score along the number of experts for
each perturbation ``tau2``, and the score of the chosen number of experts
along ``tau2`` and ``tau1``.
"""

# %%
# Data drawn from a three-expert model
# ------------------------------------
# A perturbed cosine router with fairly sharp gates, 2-D inputs.  The search
# runs over ``tau1`` and ``tau2`` at one temperature and one penalty.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import KFold

from sklearn_cosmoe import CosineMoERegressorCV
from sklearn_cosmoe.datasets import make_cosine_moe

X, y, _ = make_cosine_moe(600, n_features=2, n_experts=3, temperature=0.2,
                          noise=0.1, inputs="normal", random_state=3)
tau1s, tau2s = [0.3, 1.0, 3.0], [0.1, 0.3, 1.0, 3.0]
search = CosineMoERegressorCV(
    router="perturbed_cosine", temperatures=[0.2], tau1s=tau1s, tau2s=tau2s,
    alphas=[0.1], cv=KFold(3, shuffle=True, random_state=0), random_state=0,
).fit(X, y)
print(f"chosen: {search.n_experts_} experts, tau1={search.tau1_}, tau2={search.tau2_}; "
      f"the path stopped after {len(search.n_experts_path_)} experts "
      f"(ceiling {search.max_experts_})")

# %%
# The score along the path
# ------------------------
# ``cv_results_`` nests the candidates as router, temperature, alpha, tau1,
# tau2, then the number of experts: here an array of shape (tau1, tau2,
# number of experts).  The path stops ``patience`` experts after the best
# score.  Along ``tau1`` the curves coincide: the router's gates see
# ``beta_1 / (|beta_1| + tau1)``, whose range does not depend on ``tau1``.
results = search.cv_results_
n_steps = len(search.n_experts_path_)
mean = results["mean_test_score"].reshape(len(tau1s), len(tau2s), n_steps)
sem = (results["std_test_score"] / np.sqrt(3)).reshape(mean.shape)

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for j, tau2 in enumerate(tau2s):
    left.errorbar(search.n_experts_path_, mean[0, j], yerr=sem[0, j], marker="o",
                  capsize=3, label=f"tau2 = {tau2:g}")
left.axvline(search.n_experts_, color="grey", linestyle=":", label="chosen")
left.set(xlabel="number of experts", ylabel="mean test R² (3 folds)",
         title=f"along the path (tau1 = {tau1s[0]:g})")
left.legend()

k = search.n_experts_ - 1
for i, tau1 in enumerate(tau1s):
    right.plot(tau2s, mean[i, :, k], marker="os^"[i], linestyle="-" if i == 0 else "",
               label=f"tau1 = {tau1:g}")
right.set(xscale="log", xlabel="tau2", ylabel="mean test R²",
          title=f"{search.n_experts_} experts, along the perturbation")
right.legend()
fig.tight_layout()
plt.show()
