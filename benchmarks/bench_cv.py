"""CosineMoERegressorCV: the number of experts it finds, its warm grid, its n_jobs, RidgeCV.

Four parts, each writing one markdown file into ``--out``:

* ``experts``: data drawn from random truths with ``k*`` experts (``k*`` in
  2..8, n = 5000, d = 4, perturbed cosine router, noise-limit R² 0.9); the
  CV estimator with the truth's router and temperature (so that only the
  number of experts is chosen) and its default ceiling and patience.  How
  often it chooses ``k*``, and whether its choice is ever the ceiling.
* ``grid``: a 5 x 5 grid of ``(tau1, tau2)`` at 3 temperatures and 1 to 4
  experts on model data: the CV estimator's warm path against
  ``GridSearchCV`` over :class:`CosineMoERegressor` with the same candidates
  and folds; the chosen candidates, their scores, the times (one run each).
* ``jobs``: the CV estimator's default search on Friedman #1 with
  ``n_jobs=1`` and ``n_jobs=2``.
* ``ridge``: the accuracy benchmark's real data (diabetes; star98, fair and
  randhie from statsmodels, randhie's fixed 6,000 rows), outer 5-fold shuffled CV: the CV estimator with its defaults
  (and with a shuffled inner ``KFold``) against ``RidgeCV``, the mean and
  standard error of the per-fold difference of R².

``python benchmarks/bench_cv.py --out DIR [--parts experts grid jobs ridge] [--quick]``
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_friedman1
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor, CosineMoERegressorCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, make_model_data  # noqa: E402
from _output import git_describe, output_folder  # noqa: E402

TAUS = (0.25, 0.5, 1.0, 2.0, 4.0)
TEMPERATURES = (1.0, 0.3, 0.1)
#: rows of the n_jobs part's data: a search of over 20 s on one core
JOBS_ROWS = 2000


def _fit_seconds(model, X, y):
    """Wall time of ``model.fit(X, y)``, its warnings (convergence, ceiling) silenced."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return time.perf_counter() - t0


def header(title, command, revision, seconds):
    return (f"# {title}\n\nCommand: `{command}`; git describe --dirty: "
            f"`{revision}`; {seconds:.0f} s.\n\n")


def part_experts(quick):
    truths = range(2) if quick else range(3)
    sizes = (2, 3) if quick else range(2, 9)
    n, d, temperature = (2000 if quick else 5000), 4, 0.3
    rows, chosen_right, at_ceiling, total = [], 0, 0, 0
    for k in sizes:
        for seed in truths:
            X, y, *_ = make_model_data(n, d, k, temperature=temperature, seed=seed)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                reg = CosineMoERegressorCV(router="perturbed_cosine",
                                           temperatures=[temperature],
                                           cv=KFold(5, shuffle=True, random_state=0),
                                           random_state=0).fit(X, y)
            seconds = time.perf_counter() - t0
            warned = any("best number of experts" in str(w.message) for w in caught)
            total += 1
            chosen_right += reg.n_experts_ == k
            at_ceiling += reg.n_experts_ == reg.max_experts_
            best_mean = reg.score_path_.mean(axis=2).max(axis=0)
            # a miss: do independent fits (3 screened starts each) tell k* apart?
            alone = "" if reg.n_experts_ == k else " / ".join(
                f"{_independent_score(X, y, n_experts, temperature):.5f}"
                for n_experts in (reg.n_experts_, k))
            rows.append(f"| {k} | {seed} | {reg.n_experts_} | {int(np.argmax(best_mean)) + 1} "
                        f"| {len(reg.n_experts_path_)} | {reg.max_experts_} | "
                        f"{'yes' if warned else 'no'} | {seconds:.1f} | {alone} |")
            log(rows[-1])
    text = (f"Data: `make_model_data(n={n}, d={d}, k*, temperature={temperature}, "
            f"seed)` (benchmarks/_common.py: X ~ N(0, I), noise-limit R² 0.9), "
            f"seeds {list(truths)} for each k*. Estimator: "
            f"`CosineMoERegressorCV(router='perturbed_cosine', temperatures=[{temperature}], "
            "cv=KFold(5, shuffle=True, random_state=0), random_state=0)`, its default "
            "ceiling, patience and alphas. *Independent fits*, for a miss only: the "
            "mean 5-fold CV R² (the same folds) of `CosineMoERegressor(n_experts, "
            "temperature, n_init=3)` at the chosen number / at k*: where the first is "
            "as high, the data do not reward k* experts even from fresh starts.\n\n"
            f"**Chosen = k\\*: {chosen_right}/{total} ({100 * chosen_right / total:.0f}%); "
            f"chosen = ceiling: {at_ceiling}/{total}.**\n\n"
            "| k* | seed | chosen | best mean score at | steps fitted | ceiling | "
            "ceiling warning | fit time (s) | independent fits |\n"
            "|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    return text


def _independent_score(X, y, n_experts, temperature):
    """Mean 5-fold CV R² of a fit from fresh k-means starts, the CV estimator's folds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cross_val_score(CosineMoERegressor(
            n_experts=n_experts, router="perturbed_cosine", temperature=temperature,
            n_init=3, random_state=0), X, y,
            cv=KFold(5, shuffle=True, random_state=0)).mean()


def _grid_data(quick, n=1500):
    n = 600 if quick else n
    X, y, *_ = make_model_data(n, 4, 3, temperature=0.3, seed=0)
    return X, y


def _warm(n_jobs, quick, X, y, folds):
    n_train = len(X) - len(X) // folds.get_n_splits()
    return CosineMoERegressorCV(
        max_experts=4, patience=4, cv=folds, router="perturbed_cosine",
        temperatures=TEMPERATURES, tau1s=TAUS[:2] if quick else TAUS,
        tau2s=TAUS[:2] if quick else TAUS,
        # the regressor's default alpha=1e-4, on Ridge's scale of the folds
        alphas=[1e-4 * n_train], n_jobs=n_jobs, random_state=0)


def part_grid(quick):
    X, y = _grid_data(quick)
    folds = KFold(5, shuffle=True, random_state=0)
    taus = TAUS[:2] if quick else TAUS
    warm = _warm(1, quick, X, y, folds)
    t_warm = _fit_seconds(warm, X, y)
    log(f"warm path: {t_warm:.1f} s")
    grid = GridSearchCV(
        CosineMoERegressor(router="perturbed_cosine", random_state=0),
        {"n_experts": [1, 2, 3, 4], "tau1": list(taus), "tau2": list(taus),
         "temperature": list(TEMPERATURES)}, cv=folds)
    t_grid = _fit_seconds(grid, X, y)
    log(f"GridSearchCV: {t_grid:.1f} s")
    res = grid.cv_results_
    best = grid.best_index_
    chosen = {"n_experts": warm.n_experts_, "tau1": warm.tau1_, "tau2": warm.tau2_,
              "temperature": warm.temperature_}
    match = next(i for i, p in enumerate(res["params"])
                 if all(np.isclose(p[key], value) for key, value in chosen.items()))
    se = res["std_test_score"][best] / np.sqrt(folds.get_n_splits())
    gap = res["mean_test_score"][best] - res["mean_test_score"][match]
    same = {key: res["params"][best][key] for key in chosen}
    # tau1 changes no model: the warm path's losses along tau1 (same tau2, T, k)
    losses = warm.cv_results_["split0_train_loss"].reshape(
        len(TEMPERATURES), len(taus), len(taus), -1)
    spread = float(np.max(np.abs(losses - losses[:, :1]) / losses[:, :1]))
    return (f"Data: `make_model_data(n={len(X)}, d=4, k=3, temperature=0.3, seed=0)`; "
            f"folds `KFold(5, shuffle=True, random_state=0)` for both. Candidates: "
            f"tau1 x tau2 in {list(taus)}, temperature in {list(TEMPERATURES)}, 1 to 4 "
            "experts (the CV estimator with max_experts=4, patience=4, so that it "
            f"fits all {len(taus) ** 2 * len(TEMPERATURES) * 4} as GridSearchCV does), "
            "alpha 1e-4 (the regressor's default). GridSearchCV fits each candidate "
            "from scratch with the regressor's default fit (three screened starts); "
            "the warm path grows one expert at a time and carries each number of "
            "experts along the grid. One run each, n_jobs=1.\n\n"
            "| search | time (s) | chosen (n_experts, tau1, tau2, T) | its GridSearchCV "
            "mean score |\n|---|---|---|---|\n"
            f"| GridSearchCV | {t_grid:.1f} | {tuple(same.values())} | "
            f"{res['mean_test_score'][best]:.5f} |\n"
            f"| warm path | {t_warm:.1f} | {tuple(chosen.values())} | "
            f"{res['mean_test_score'][match]:.5f} |\n\n"
            f"**Time ratio warm / GridSearchCV: {t_warm / t_grid:.3f}** (goal at most "
            f"1/3). The warm choice trails GridSearchCV's best by {gap:.2e} in "
            f"GridSearchCV's own mean score; one standard error of that best is "
            f"{se:.2e}: **{'within' if gap <= se else 'not within'} one standard "
            "error**.\n\nAlong tau1 (same tau2, temperature and number of experts) the "
            "warm path's training objectives on the first fold differ by at most "
            f"{spread:.1e} relative: the perturbed router's model does not depend on "
            "tau1.\n")


def part_jobs(quick):
    n = 500 if quick else JOBS_ROWS
    X, y = make_friedman1(n, noise=1.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    times, fits = {}, {}
    for n_jobs in (1, 2):
        reg = CosineMoERegressorCV(n_jobs=n_jobs, random_state=0)
        times[n_jobs], fits[n_jobs] = _fit_seconds(reg, X, y), reg
        log(f"n_jobs={n_jobs}: {times[n_jobs]:.1f} s")
    same = (np.array_equal(fits[1].score_path_, fits[2].score_path_)
            and np.array_equal(fits[1].predict(X), fits[2].predict(X)))
    return (f"`CosineMoERegressorCV(random_state=0)` with its defaults (3 routers x 3 "
            f"temperatures x 3 alphas, 5 folds) on Friedman #1 (n={n}, noise sd 1, "
            "standardized), fitted with n_jobs=1 and then n_jobs=2 (joblib's default "
            "loky backend), one run each; the path stopped after "
            f"{len(fits[1].n_experts_path_)} experts.\n\n"
            "| n_jobs | time (s) |\n|---|---|\n"
            f"| 1 | {times[1]:.1f} |\n| 2 | {times[2]:.1f} |\n\n"
            f"**Speed-up: {times[1] / times[2]:.2f}x** (goal at least 1.6x on a search "
            f"of at least 20 s). Scores and predictions bit-identical: "
            f"**{'yes' if same else 'no'}**.\n")


REAL_DATA = ("diabetes", "star98", "fair", "randhie")


def _real_data(names):
    """The accuracy benchmark's real data sets (randhie: its fixed 6,000 rows)."""
    from bench_accuracy import datasets
    sets = datasets(False, only=names)
    return {name: sets[name][:2] for name in names}


def part_ridge(quick, names=REAL_DATA):
    outer = KFold(5, shuffle=True, random_state=0)
    rows = []
    for name, (X, y) in _real_data(names[:1] if quick else names).items():
        models = {
            "RidgeCV": make_pipeline(StandardScaler(), RidgeCV()),
            "MoE CV": make_pipeline(StandardScaler(), CosineMoERegressorCV(random_state=0)),
            "MoE CV shuffled": make_pipeline(StandardScaler(), CosineMoERegressorCV(
                cv=KFold(5, shuffle=True, random_state=0), random_state=0)),
        }
        scores = {label: [] for label in models}
        seconds = {label: 0.0 for label in models}
        chosen = {label: [] for label in models}
        for train, test in outer.split(X):
            for label, model in models.items():
                seconds[label] += _fit_seconds(model, X[train], y[train])
                scores[label].append(model.score(X[test], y[test]))
                if label != "RidgeCV":
                    est = model[-1]
                    chosen[label].append(f"{est.router_[0]}{est.n_experts_}/"
                                         f"{est.alpha_:g}")
        ridge = np.array(scores["RidgeCV"])
        for label in ("MoE CV", "MoE CV shuffled"):
            diff = np.array(scores[label]) - ridge
            se = diff.std(ddof=1) / np.sqrt(len(diff))
            ok = diff.mean() >= -se
            rows.append(f"| {name} | {label} | {np.mean(scores[label]):.4f} | "
                        f"{ridge.mean():.4f} | {diff.mean():+.4f} | {se:.4f} | "
                        f"{'yes' if ok else 'no'} | {seconds[label] / 5:.1f} | "
                        f"{' '.join(chosen[label])} |")
            log(rows[-1])
    return ("Outer `KFold(5, shuffle=True, random_state=0)`; StandardScaler in front; "
            "each model fitted on the outer training fold. *MoE CV*: "
            "`CosineMoERegressorCV(random_state=0)`, all defaults (its inner cv=5 is "
            "an unshuffled KFold); *MoE CV shuffled*: the same with "
            "`cv=KFold(5, shuffle=True, random_state=0)`. Goal: mean R² difference "
            "to RidgeCV at least minus one standard error of the per-fold "
            "difference. *chosen*: router initial, number of experts / alpha_ per "
            "outer fold.\n\n"
            "| data | model | mean R² | RidgeCV mean R² | difference | its SE | goal met "
            "| fit time per fold (s) | chosen |\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


PARTS = {"experts": ("Number of experts found on model data", part_experts),
         "grid": ("Warm perturbation path against GridSearchCV", part_grid),
         "jobs": ("n_jobs", part_jobs),
         "ridge": ("Against RidgeCV on real data", part_ridge)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="small sizes, for the tests")
    parser.add_argument("--ridge-data", nargs="*", default=list(REAL_DATA),
                        choices=list(REAL_DATA), help="the ridge part's data sets")
    args = parser.parse_args(argv)
    out = output_folder(args.out, prefix="bench_cv_")
    # read once, before any part writes: a part's file written into the
    # repository makes the tree dirty for the parts after it
    revision = git_describe()
    # compile (or load) the kernels before anything is timed
    X, y = _grid_data(True)
    CosineMoERegressor(n_experts=2, router="perturbed_cosine").fit(X, y)
    command = "python benchmarks/bench_cv.py " + " ".join(argv or sys.argv[1:])
    for part in args.parts:
        title, run = PARTS[part]
        t0 = time.perf_counter()
        body = (run(args.quick, tuple(args.ridge_data)) if part == "ridge"
                else run(args.quick))
        text = header(title, command, revision, time.perf_counter() - t0) + body
        (out / f"cv_{part}.md").write_text(text)
        log(text)
    return out


if __name__ == "__main__":
    main()
