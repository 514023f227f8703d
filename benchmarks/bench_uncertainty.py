"""Coverage and cost of the predictive intervals of ``CosineMoERegressor``.

Three parts, in one process:

* **model data**: for each router with linear experts and n = 1e3 and 1e4
  training rows, data drawn from the model itself (``_common.make_model_data``:
  a new random truth per seed, Gaussian noise), fitted with the true number of
  experts and temperature.  On 2000 fresh rows from the same truth: the
  coverage of the 95% prediction intervals (``predict_interval``), of the
  noise-only intervals ``f_hat -+ z sigma_hat`` (what the parameters' part
  adds), and of the 95% confidence intervals of the regression function,
  ``f_hat -+ z sqrt(J Cov J')``, against the true ``f*`` (a direct check of the
  delta method's variance).  Mean over seeds with its standard error.
* **real data**: diabetes and Friedman #1 (scikit-learn), shuffled 5-fold
  cross-validation: the held-out coverage and mean width of the model's 95%
  intervals (fitted on the training fold) beside a split-conformal interval
  (fitted on 75% of the training fold, the 95% quantile of the absolute
  residuals on the other 25%, scikit-learn and NumPy only).
* **cost**: at n = 1e5, d = 10, k = 8 (perturbed cosine router, linear
  experts): the wall time of ``predict(X)``, ``predict(X, return_std=True)``,
  the covariance's pass at the end of ``fit`` and the fit itself, as ratios in
  the same process (median of repeated calls, median over interleaved rounds).

    python benchmarks/bench_uncertainty.py [--seeds 400] [--quick] [--skip cost]
                                           [--out DIR]

Results go to ``uncertainty.md`` / ``uncertainty.json`` (and each seed's and
fold's numbers to ``uncertainty_rows.npz``) in a new temporary folder or in
``--out``; ``--out benchmarks/results/...`` is refused from a
dirty tree.
"""

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (ROUTERS, fmt_time, git_describe, make_model_data,  # noqa: E402
                     output_folder, time_call)

from sklearn_cosmoe import CosineMoERegressor  # noqa: E402
from sklearn_cosmoe._objective import ArrayObjective  # noqa: E402
from sklearn_cosmoe._parallel import single_threaded_blas  # noqa: E402
from sklearn_cosmoe._uncertainty import fit_statistics  # noqa: E402
from sklearn_cosmoe._validation import (params_on_standardized_scale,  # noqa: E402
                                        standardize_target)

COVERAGE = 0.95
Z = float(norm.ppf(0.5 + COVERAGE / 2))
N_TEST = 2000
MODEL = {"d": 4, "k": 3, "temperature": 0.3}
#: A fit whose training objective exceeds that of the fit started at the truth
#: by more than this fraction stopped at another, poorer, local minimum.
LOSS_GAP = 1e-6


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def inside(y, lower, upper):
    return float(np.mean((lower <= y) & (y <= upper)))


def model_cell(router, n, seed):
    """Coverages of one fit on model data (module docstring)."""
    d, k, temperature = MODEL["d"], MODEL["k"], MODEL["temperature"]
    X, y, _, truth, _ = make_model_data(n, d, k, router=router, temperature=temperature,
                                        seed=seed)
    X_new, y_new, f_new, _, _ = make_model_data(N_TEST, d, k, router=router,
                                                temperature=temperature, seed=seed,
                                                sample_seed=10_000 + seed)
    reg = fit(CosineMoERegressor(n_experts=k, router=router, temperature=temperature,
                                 random_state=seed), X, y)
    at_truth = copy.deepcopy(reg).set_params(warm_start=True)
    for name in ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept"):
        setattr(at_truth, f"{name}_", np.array(getattr(truth, name), dtype=np.float64))
    fit(at_truth, X, y)
    mean, std = reg.predict(X_new, return_std=True)
    noise = float(reg.noise_variance_)
    parameters = np.sqrt(np.maximum(std ** 2 - noise, 0.0))
    truth_mean, truth_std = at_truth.predict(X_new, return_std=True)
    truth_parameters = np.sqrt(np.maximum(truth_std ** 2 - at_truth.noise_variance_, 0.0))
    return {"router": router, "n": n, "seed": seed, "converged": bool(reg.converged_),
            "prediction": inside(y_new, mean - Z * std, mean + Z * std),
            "noise_only": inside(y_new, mean - Z * np.sqrt(noise), mean + Z * np.sqrt(noise)),
            "function": inside(f_new, mean - Z * parameters, mean + Z * parameters),
            "function_at_truth": inside(f_new, truth_mean - Z * truth_parameters,
                                        truth_mean + Z * truth_parameters),
            "local_minimum": bool(reg.loss_ > at_truth.loss_ * (1 + LOSS_GAP)),
            "parameters_share": float(np.mean(parameters ** 2) / np.mean(std ** 2))}


def real_data(name):
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return X, y, 2, 1.0
    X, y = make_friedman1(2000, noise=1.0, random_state=0)
    return X, y, 4, 0.3


def real_cell(name, n_splits=5):
    """Per fold: the model's 95% intervals and split-conformal ones (module docstring)."""
    X, y, k, temperature = real_data(name)
    rows = []
    folds = KFold(n_splits, shuffle=True, random_state=0).split(X)
    for fold, (train, test) in enumerate(folds):
        def make():
            return make_pipeline(StandardScaler(), CosineMoERegressor(
                n_experts=k, temperature=temperature, random_state=fold))
        pipe = fit(make(), X[train], y[train])
        lower, upper = pipe[-1].predict_interval(pipe[:-1].transform(X[test]), COVERAGE)
        proper, calibration = train_test_split(train, test_size=0.25, random_state=fold)
        split = fit(make(), X[proper], y[proper])
        scores = np.sort(np.abs(y[calibration] - split.predict(X[calibration])))
        # the ceil((n + 1) coverage)-th smallest score: coverage >= 95% for exchangeable rows
        rank = int(np.ceil((len(scores) + 1) * COVERAGE))
        q = scores[min(rank, len(scores)) - 1]
        centre = split.predict(X[test])
        rows.append({"data": name, "fold": fold, "n_train": len(train),
                     "r2": float(pipe.score(X[test], y[test])),
                     "model_coverage": inside(y[test], lower, upper),
                     "model_width": float(np.mean(upper - lower)),
                     "conformal_coverage": inside(y[test], centre - q, centre + q),
                     "conformal_width": float(2 * q)})
    return rows


def cost(rounds, n=100_000, d=10, k=8):
    """Wall times of predict, return_std, the covariance's pass and the fit."""
    X, y, _, _, _ = make_model_data(n, d, k, seed=0)
    reg = CosineMoERegressor(n_experts=k, random_state=0)
    start = time.perf_counter()
    fit(reg, X, y)
    fit_time = time.perf_counter() - start
    w = np.ones(n)
    target, y_mean, y_scale = standardize_target(y, w)
    data = ArrayObjective(X, target, w)
    params = params_on_standardized_scale(reg._params(), y_mean, y_scale, "linear")
    spec = reg._spec(None)

    def covariance():
        with single_threaded_blas():
            fit_statistics(data, params, spec, y_scale)

    calls = {"predict": lambda: reg.predict(X),
             "return_std": lambda: reg.predict(X, return_std=True),
             "covariance": covariance}
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name].append(time_call(call))
    result = {name: float(np.median(t)) for name, t in times.items()}
    result.update(fit=fit_time, n=n, d=d, k=k, converged=bool(reg.converged_),
                  n_iter=int(reg.n_iter_))
    return result


def summarise(rows, keys):
    values = {key: np.array([row[key] for row in rows]) for key in keys}
    return {key: (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))
                  if len(v) > 1 else float("nan")) for key, v in values.items()}


def report_lines(report):
    lines = [
        "# Predictive intervals: coverage and cost",
        "",
        f"`{report['command']}`; git describe --dirty: `{report['git']}`; "
        f"{report['seconds']:.0f} s.",
        "",
        f"## Model data (d = {MODEL['d']}, k = {MODEL['k']}, temperature "
        f"{MODEL['temperature']}, linear experts, Gaussian noise at noise-limit R² 0.9)",
        "",
        f"{report['seeds']} seeds per cell (a new truth each), {N_TEST} fresh rows each; "
        "coverage of 95% intervals, mean over the seeds ± its standard error. "
        "*prediction*: `predict_interval` against fresh `y`; *noise only*: "
        "`f_hat -+ z sigma_hat`; *function*: `f_hat -+ z sqrt(J Cov J')` against the "
        "true `f*`; *at truth*: the same for the fit started at the true parameters; "
        "*local minima*: the fraction of default fits whose training objective is above "
        f"that fit's (by more than {LOSS_GAP:g} of it); *parameters' share*: mean "
        "`J Cov J'` over mean `std**2`.",
        "",
        "| router | n | converged | prediction | noise only | function | at truth "
        "| local minima | parameters' share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in report["model_cells"]:
        s = cell["summary"]
        lines.append(
            f"| {cell['router']} | {cell['n']} | {cell['converged']}/{cell['fits']} | "
            + " | ".join(f"{s[key][0]:.4f} ± {s[key][1]:.4f}"
                         for key in ("prediction", "noise_only", "function",
                                     "function_at_truth"))
            + f" | {s['local_minimum'][0]:.2f} | {s['parameters_share'][0]:.4f} |")
    lines += [
        "",
        "## Real data: 5-fold shuffled cross-validation, 95% intervals",
        "",
        "Model: `predict_interval` of the pipeline's estimator fitted on the training fold. "
        "Split conformal: fitted on 75% of the training fold, the "
        "ceil((n_cal + 1) 0.95)-th smallest absolute residual of the other 25%. "
        "Mean over the folds ± its standard error.",
        "",
        "| data | n_train | test R² | model coverage | model width | conformal coverage "
        "| conformal width |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in report["real_cells"]:
        s = cell["summary"]
        lines.append(
            f"| {cell['data']} | {cell['n_train']} | {s['r2'][0]:.3f} | "
            + " | ".join(f"{s[key][0]:.4f} ± {s[key][1]:.4f}" for key in
                         ("model_coverage", "model_width", "conformal_coverage",
                          "conformal_width")) + " |")
    if report.get("cost"):
        c = report["cost"]
        lines += [
            "",
            f"## Cost at n = {c['n']}, d = {c['d']}, k = {c['k']} (perturbed cosine, "
            "linear experts)",
            "",
            "Median wall time of one call (median over interleaved rounds), BLAS on one "
            f"thread as in the package; the fit itself once ({c['n_iter']} iterations, "
            f"converged: {c['converged']}).",
            "",
            "| call | time | ratio |",
            "|---|---|---|",
            f"| `predict(X)` | {fmt_time(c['predict'])} | 1.00x predict |",
            f"| `predict(X, return_std=True)` | {fmt_time(c['return_std'])} | "
            f"{c['return_std'] / c['predict']:.1f}x predict |",
            f"| covariance at the end of `fit` | {fmt_time(c['covariance'])} | "
            f"{c['covariance'] / c['return_std']:.2f}x return_std |",
            f"| `fit` (covariance included) | {fmt_time(c['fit'])} | "
            f"covariance {c['covariance'] / c['fit']:.3f} of it |",
        ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e3, 1e4])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], choices=["model", "real", "cost"])
    parser.add_argument("--quick", action="store_true", help="3 seeds, n = 1e3, 2 rounds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sizes, args.rounds = 3, [1e3], 2
    out = output_folder(args.out, prefix="bench_uncertainty_")
    command = "python benchmarks/bench_uncertainty.py " + " ".join(sys.argv[1:])
    report = {"git": git_describe(), "command": command.strip(), "seeds": args.seeds,
              "model_cells": [], "real_cells": [], "cost": None}
    start = time.perf_counter()
    if "model" not in args.skip:
        for n in (int(size) for size in args.sizes):
            for router in ROUTERS:
                rows = [model_cell(router, n, seed) for seed in range(args.seeds)]
                cell = {"router": router, "n": n, "fits": len(rows),
                        "converged": sum(row["converged"] for row in rows),
                        "summary": summarise(rows, ("prediction", "noise_only", "function",
                                                    "function_at_truth", "local_minimum",
                                                    "parameters_share")),
                        "rows": rows}
                report["model_cells"].append(cell)
                print(router, n, {k: round(v[0], 4) for k, v in cell["summary"].items()},
                      f"{time.perf_counter() - start:.0f} s", flush=True)
    if "real" not in args.skip:
        for name in ("diabetes", "friedman1"):
            rows = real_cell(name)
            cell = {"data": name, "n_train": rows[0]["n_train"], "rows": rows,
                    "summary": summarise(rows, ("r2", "model_coverage", "model_width",
                                                "conformal_coverage", "conformal_width"))}
            report["real_cells"].append(cell)
            print(name, {k: round(v[0], 4) for k, v in cell["summary"].items()}, flush=True)
    if "cost" not in args.skip:
        report["cost"] = cost(args.rounds)
        print(report["cost"], flush=True)
    report["seconds"] = time.perf_counter() - start
    text = "\n".join(report_lines(report)) + "\n"
    (out / "uncertainty.md").write_text(text)
    # the seeds' and folds' rows in a binary file: thousands of numbers in a text
    # file would pass for the sources of unrelated numbers (check_results.py)
    rows = {}
    for cell in report["model_cells"] + report["real_cells"]:
        name = cell.get("data") or f"{cell['router']}_{cell['n']}"
        cell_rows = cell.pop("rows")
        for key in cell_rows[0]:
            rows[f"{name}:{key}"] = np.array([row[key] for row in cell_rows])
    np.savez_compressed(out / "uncertainty_rows.npz", **rows)
    (out / "uncertainty.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
