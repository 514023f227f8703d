"""The paths of :class:`~sklearn_cosmoe.CosineMoERegressorCV` on one training fold.

For one router and one temperature, a :class:`FoldPath` holds the mixtures
fitted on a fold's training rows at every point of a grid of perturbations
``(tau1, tau2)`` and ridge penalties ``alpha``.  Each call of
:meth:`FoldPath.step` adds one expert: the first point of the warm order
grows its mixture by splitting its worst expert (:func:`split_worst_expert`),
and every further point starts from the optimum of the point before it, which
differs from it in one value (user guide :ref:`cv-path`).  The steps of all
folds are taken in lock-step by the estimator, which stops the growth once
the number of experts they would choose has not changed for a few steps.
"""

from dataclasses import replace

import numpy as np

from ._routers import gate_atoms, gate_coef_of_atoms
from ._solver import fit_least_squares, initial_params, split_worst_expert
from ._solvers._atoms import ATOM_RADIUS
from ._objective import ArrayObjective
from ._validation import params_on_target_scale, standardize_target

#: The data's ceiling on the number of experts: at least this many training
#: rows per fitted parameter (the rule of thumb of ten observations per
#: parameter of a regression model).
ROWS_PER_PARAMETER = 10


def expert_ceiling(n_rows, n_features, spec):
    """The largest number of experts with :data:`ROWS_PER_PARAMETER` rows per parameter (at least 1)."""
    k = 1
    while spec.n_parameters((k + 1, n_features)) * ROWS_PER_PARAMETER <= n_rows:
        k += 1
    return k


def grid_points(router, tau1s, tau2s, alphas):
    """The candidate ``(tau1, tau2, alpha)`` of ``router``, and their warm order.

    The points are in the order of ``cv_results_``: ``alphas``, then
    ``tau1s``, then ``tau2s`` (the last varying fastest), each in the order
    given.  Only the perturbed cosine router has perturbations; the others
    get ``tau1s[0]`` and ``tau2s[0]``, which they ignore.  The warm order
    visits the penalties from the smallest up and the perturbations in a
    snake, ``tau1`` fastest, so that each point differs from the one before
    it in one value, and the points of one ``tau2`` follow each other: a
    move along ``tau1`` keeps the model (:func:`_moved`).

    Returns
    -------
    points : list of (float, float, float)
    order : list of int
        Indices into ``points``.
    """
    if router != "perturbed_cosine":
        tau1s, tau2s = tau1s[:1], tau2s[:1]
    n1, n2 = len(tau1s), len(tau2s)
    points = [(float(t1), float(t2), float(a)) for a in alphas for t1 in tau1s for t2 in tau2s]
    tau_walk = [(i, j) for j in range(n2)
                for i in (range(n1) if j % 2 == 0 else range(n1 - 1, -1, -1))]
    order = []
    for n_pass, a in enumerate(np.argsort(alphas, kind="stable")):
        walk = tau_walk if n_pass % 2 == 0 else tau_walk[::-1]
        order.extend(int(a) * n1 * n2 + i * n2 + j for i, j in walk)
    return points, order


def _moved(params, spec_from, spec_to):
    """``params`` of ``spec_from`` as a start for ``spec_to``: the same gates where the
    routers' atoms allow it.

    Under the perturbed cosine router the gates see only the atoms
    ``beta_1i / (|beta_1i| + tau1)``; a new ``tau1`` gets the ``beta_1i`` of
    the same atoms, and so the same model.
    """
    params = params.copy()
    if spec_to.router == "perturbed_cosine" and spec_to.tau1 != spec_from.tau1:
        atoms = gate_atoms(params.gate_coef, spec_from.router, spec_from.tau1)
        norms = np.linalg.norm(atoms, axis=1, keepdims=True)
        atoms *= np.minimum(1.0, ATOM_RADIUS / np.maximum(norms, ATOM_RADIUS))
        params.gate_coef = gate_coef_of_atoms(atoms, spec_to.tau1)
    return params


def _spec_for(spec, n_experts):
    """Dense gates until the mixture has more experts than ``top_k``."""
    return spec if spec.top_k is None or spec.top_k < n_experts else replace(spec, top_k=None)


class FoldPath:
    """The mixtures of one fold, one router and one temperature over a grid.

    Parameters
    ----------
    train, test : ndarray of int
        The fold's rows.
    spec : MoESpec
        Router, temperature, expert and outputs; its ``tau1``, ``tau2`` and
        ``alpha`` are those of the grid's points.
    points, order : see :func:`grid_points`
    rng : RandomState
        Seeds the splits of experts; carried from step to step.
    """

    def __init__(self, train, test, spec, points, order, rng):
        self.train, self.test = train, test
        self.spec, self.points, self.order, self.rng = spec, points, order, rng
        self.params = [None] * len(points)
        self.n_experts = 0

    def step(self, X, y, score, fit_params):
        """Fit every point with one expert more; return the test scores and training losses.

        ``score(result, spec, y_mean, y_scale)`` scores a fit on the test
        rows.  Returns ``(self, scores, losses)``, each of the last two of
        shape ``(len(points),)``: ``self`` is returned so that a path fitted in
        another process comes back with its state.
        """
        X_train = np.ascontiguousarray(X[self.train])
        weights = np.ones(len(self.train))
        target, y_mean, y_scale = standardize_target(y[self.train], weights)
        self.target_scale = y_mean, y_scale
        data = ArrayObjective(X_train, target, weights)
        k = self.n_experts = self.n_experts + 1
        scores, losses = np.empty(len(self.points)), np.empty(len(self.points))
        previous = None
        for index in self.order:
            tau1, tau2, alpha = self.points[index]
            spec = _spec_for(replace(self.spec, tau1=tau1, tau2=tau2,
                                     alpha=alpha / len(self.train)), k)
            if previous is not None:  # warm, from the point before in the warm order
                start, warm = _moved(previous[0], previous[1], spec), True
            elif k == 1:  # the least-squares fit has the exact experts already
                start, warm = initial_params(data, spec, 1, self.rng), False
            else:
                start = split_worst_expert(data, self.params[index], spec, self.rng)
                warm = False
            result = self.last = fit_least_squares(data, start, spec,
                                                   solve_experts_first=warm, **fit_params)
            self.params[index] = result.params
            previous = result.params, spec
            scores[index] = score(result, spec, y_mean, y_scale, self.test)
            losses[index] = result.loss
        return self, scores, losses


def fitted_attributes(result, spec, y_mean, y_scale):
    """The fitted parameters of ``result`` on the scale of ``y``, or a ValueError if they overflow."""
    with np.errstate(over="ignore"):
        fitted = params_on_target_scale(result.params, y_mean, y_scale, spec.expert)
    if not all(np.all(np.isfinite(value)) for value in fitted.values()):
        raise ValueError(
            f"The fitted parameters of the path's mixture of {result.params.shape[0]} "
            f"experts overflow on the scale of y (standard deviation "
            f"{np.max(y_scale):.3g}); scale y down first."
        )
    return fitted


def choose(score_path):
    """The chosen candidate and number of experts of ``score_path`` (candidate, step, split).

    The best mean test score (on a tie the fewest experts, then the first
    candidate) unless fewer experts do as well within noise: the fewest
    experts whose best candidate trails the best by at most one standard
    error of the per-split differences (the one-standard-error rule, on
    paired differences).  Extra experts that only duplicate others score
    alike on every split, and the rule keeps them out.

    Returns
    -------
    candidate, step : int
        Indices into the first two axes of ``score_path``.
    """
    n_candidates, n_steps, n_splits = score_path.shape
    mean = score_path.mean(axis=2)
    order = np.lexsort((np.repeat(np.arange(n_candidates), n_steps),
                        np.tile(np.arange(n_steps), n_candidates), -mean.ravel()))
    c_best, k_best = divmod(int(order[0]), n_steps)
    if n_splits > 1:
        for k in range(k_best):
            c = int(np.argmax(mean[:, k]))
            diff = score_path[c_best, k_best] - score_path[c, k]
            if diff.mean() <= diff.std(ddof=1) / np.sqrt(n_splits):
                return c, k
    return c_best, k_best


def cv_results(candidates, n_steps, scores, mean, std, ranks, losses):
    """``cv_results_``: one entry per candidate and number of experts, in that nesting."""
    n_splits = scores.shape[1]
    routers = [router for router, _, _ in candidates]
    perturbed = np.repeat([router == "perturbed_cosine" for router in routers], n_steps)
    column = {name: np.repeat([point[i] for _, _, point in candidates], n_steps)
              for i, name in enumerate(("tau1", "tau2", "alpha"))}
    results = {
        "param_router": np.repeat(np.array(routers, dtype=object), n_steps),
        "param_temperature": np.repeat([T for _, T, _ in candidates], n_steps),
        "param_alpha": column["alpha"],
        "param_tau1": np.ma.MaskedArray(column["tau1"], mask=~perturbed),
        "param_tau2": np.ma.MaskedArray(column["tau2"], mask=~perturbed),
        "param_n_experts": np.tile(np.arange(1, n_steps + 1), len(candidates)),
    }
    results["params"] = [
        {"router": results["param_router"][i],
         "temperature": float(results["param_temperature"][i]),
         "alpha": float(column["alpha"][i]),
         **({"tau1": float(column["tau1"][i]), "tau2": float(column["tau2"][i])}
            if perturbed[i] else {}),
         "n_experts": int(results["param_n_experts"][i])}
        for i in range(len(mean))
    ]
    results.update({f"split{j}_test_score": scores[:, j] for j in range(n_splits)})
    results.update(mean_test_score=mean, std_test_score=std, rank_test_score=ranks)
    results.update({f"split{j}_train_loss": losses[:, j] for j in range(n_splits)})
    return results
