"""Coverage and cost of the intervals of ``CosineMoERegressor``.

Four parts, in one process:

* **model data**: for each router, linear and tanh experts and n = 1e3 and
  1e4 training rows, data drawn from the model itself (``make_cosine_moe``: a
  new random truth per seed, normal inputs, Gaussian noise at a noise-limit R²
  of 0.9), fitted with the true number of experts, expert and temperature:
  by default, and as the user guide advises for inference (``INFERENCE``:
  no ridge penalty, three starts), and from the truth.  On 2000 fresh rows
  from the same truth: the coverage of the default fit's 95% prediction
  intervals (``predict_interval``), and of each fit's 95% confidence
  intervals of the regression function, ``f_hat -+ z sqrt(J Cov J')``,
  against the true ``f*`` (a direct check of the delta method's variance).
  The Wald intervals of the identified quantities of ``inference.summary``
  against the truth's.  Mean over seeds with its standard error.
* **heteroscedastic**: the same for linear experts at n = 1e4 with noise
  whose scale grows with the first feature, with the sandwich covariance and
  with the classical one beside it.
* **real data**: diabetes and Friedman #1 (scikit-learn), shuffled 5-fold
  cross-validation: the held-out coverage and mean width of the model's 95%
  intervals (fitted on the training fold) beside a split-conformal interval
  (fitted on 75% of the training fold, the 95% quantile of the absolute
  residuals on the other 25%, scikit-learn and NumPy only).
* **cost**: at n = 1e5, d = 10, k = 8 (perturbed cosine router, linear
  experts): the wall time of ``predict(X)``, ``predict(X, return_std=True)``,
  the covariance's pass at the end of ``fit`` and the fit itself, as ratios in
  the same process (median of repeated calls, median over interleaved rounds),
  after the other parts (``--jobs`` processes only serve the seeds).

    python benchmarks/bench_uncertainty.py [--seeds 200] [--jobs 2] [--quick]
                                           [--skip cost ...] [--out DIR]

Results go to ``uncertainty.md`` / ``uncertainty.json`` (and each seed's and
fold's numbers to ``uncertainty_rows.npz``) in a new temporary folder or in
``--out``; ``--out benchmarks/results/...`` is refused from a
dirty tree.
"""

import argparse
import copy
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import norm
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (ROUTERS, fmt_time, git_describe, make_model_data,  # noqa: E402
                     output_folder, time_call)

from sklearn_cosmoe.datasets import make_cosine_moe  # noqa: E402
from sklearn_cosmoe.inference import _quantities  # noqa: E402
from sklearn_cosmoe._sandwich import predictive_variance, standard_error  # noqa: E402
from sklearn_cosmoe._uncertainty import statistics_on_rows  # noqa: E402

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
#: Noise variance ``Var(f*) / SNR``: a noise-limit R² of 0.9.
SNR = 9.0
#: Rows that set each truth's noise level (not the training rows, so the
#: level does not depend on n).
N_REFERENCE = 20_000
#: The fits read for inference (the user guide's advice): least squares
#: without the default ridge penalty, whose bias does not shrink with n while
#: the standard errors do, and the best of three starts.
INFERENCE = {"alpha": 0.0, "n_init": 3}
#: A fit whose training objective exceeds that of the fit started at the truth
#: by more than this fraction stopped at another, poorer, local minimum.
LOSS_GAP = 1e-6
EXPERTS = ("linear", "tanh")
#: The cells with heteroscedastic noise: (router, expert, n).
HETEROSCEDASTIC = tuple((router, "linear", 10_000) for router in ROUTERS)


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def inside(y, lower, upper):
    return float(np.mean((lower <= y) & (y <= upper)))


def noise_scale(X, heteroscedastic):
    """The noise's standard deviation at each row, relative to its root mean square:
    1, or growing with the first feature (``E[x_0^2] = 1``), where the
    leverage of the rows is largest."""
    if not heteroscedastic:
        return np.ones(X.shape[0])
    return np.sqrt((0.1 + X[:, 0] ** 2) / 1.1)


def model_data(router, expert, n, seed, heteroscedastic=False):
    """Training rows, fresh rows, the true function on the fresh rows and the truth.

    The truth is ``make_cosine_moe``'s random draw for ``seed`` (normal inputs);
    the noise is Gaussian with mean square ``Var(f*) / SNR``.
    """
    d, k, temperature = MODEL["d"], MODEL["k"], MODEL["temperature"]
    common = dict(router=router, temperature=temperature, expert=expert, noise=0.0,
                  inputs="normal")
    _, _, truth = make_cosine_moe(1, d, k, random_state=seed, **common)
    X_ref, f_ref, _ = make_cosine_moe(N_REFERENCE, params=truth, random_state=seed, **common)
    sigma = np.sqrt(np.var(f_ref) / SNR)
    rng = np.random.default_rng([seed, n, int(heteroscedastic)])
    X, f, _ = make_cosine_moe(n, params=truth, random_state=rng.integers(2 ** 31), **common)
    y = f + sigma * noise_scale(X, heteroscedastic) * rng.standard_normal(n)
    X_new, f_new, _ = make_cosine_moe(N_TEST, params=truth,
                                      random_state=rng.integers(2 ** 31), **common)
    y_new = f_new + sigma * noise_scale(X_new, heteroscedastic) * rng.standard_normal(N_TEST)
    return X, y, X_new, y_new, f_new, truth


def at_truth(reg, truth):
    """A copy of ``reg`` holding the true parameters, set to start from them."""
    model = copy.deepcopy(reg).set_params(warm_start=True, n_init=1)
    for name in ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept",
                 "output_scale", "output_intercept"):
        setattr(model, f"{name}_", np.array(getattr(truth, name), dtype=np.float64))
    return model


def function_coverage(reg, statistics, X_new, f_new):
    """Coverage of ``f_hat -+ z sqrt(J Cov J')`` of the true function."""
    mean = reg.predict(X_new)
    with single_threaded_blas():
        variance = predictive_variance(reg._validate_X(X_new), reg._params(),
                                       reg._fitted_spec(), statistics)
    half = Z * np.sqrt(variance)
    return inside(f_new, mean - half, mean + half)


def _quantity_values(reg):
    return {row: value for row, value, _ in _quantities(reg)}


def wald_coverage(reg, statistics, truth_model):
    """Coverage of the truth by the 95% Wald intervals of the identified quantities
    of :func:`sklearn_cosmoe.inference.summary`, split into the gates' and the
    experts': ``(covered, identified)`` counts of each.  The fit's experts
    (canonical order) are matched to the truth's by the permutation nearest in
    the experts' coefficients and intercepts."""
    truth = _quantity_values(truth_model)
    rows = [(row, value, gradient) for row, value, gradient in _quantities(reg)]
    k = reg.gate_coef_.shape[0]

    def expert_vector(values, i):
        return np.array([value for (kind, e, _, _), value in values.items()
                         if kind == "expert" and e == i])

    fitted = {row: value for row, value, _ in rows}
    permutation = min(itertools.permutations(range(k)), key=lambda perm: sum(
        np.sum((expert_vector(fitted, i) - expert_vector(truth, perm[i])) ** 2)
        for i in range(k)))
    counts = {"gate": [0, 0], "expert": [0, 0]}
    for (kind, i, j, name), value, gradient in rows:
        if kind not in counts:
            continue
        error = standard_error(statistics, gradient)
        true = truth[(kind, permutation[i], j, name)]
        if not (np.isfinite(error) and np.isfinite(true)):
            continue  # not identified
        counts[kind][0] += bool(abs(value - true) <= Z * error)
        counts[kind][1] += 1
    return counts


def model_cell(router, expert, n, seed, heteroscedastic=False):
    """Coverages of the fits of one truth (module docstring)."""
    X, y, X_new, y_new, f_new, truth = model_data(router, expert, n, seed, heteroscedastic)
    k, temperature = MODEL["k"], MODEL["temperature"]

    def make(**params):
        return CosineMoERegressor(n_experts=k, router=router, expert=expert,
                                  temperature=temperature, random_state=seed, **params)

    fits = {"default": fit(make(), X, y),
            "inference": fit(make(**INFERENCE), X, y)}
    references = {name: fit(at_truth(model, truth), X, y) for name, model in fits.items()}
    fits["truth"] = references["inference"]
    truth_model = at_truth(fits["inference"], truth)
    mean, std = fits["default"].predict(X_new, return_std=True)
    noise = float(fits["default"].noise_variance_)
    row = {"router": router, "expert": expert, "n": n, "seed": seed,
           "converged": bool(fits["inference"].converged_),
           "prediction": inside(y_new, mean - Z * std, mean + Z * std),
           "noise_only": inside(y_new, mean - Z * np.sqrt(noise), mean + Z * np.sqrt(noise)),
           "parameters_share": float(np.mean(std ** 2 - noise) / np.mean(std ** 2))}
    for name, reference in references.items():
        row[f"local_minimum_{name}"] = bool(
            fits[name].loss_ > reference.loss_ * (1 + LOSS_GAP))
    for name, model in fits.items():
        for kind, statistics in (("", model._covariance),
                                 ("classical_", statistics_on_rows(model, X, y, robust=False))):
            row[f"{kind}function_{name}"] = function_coverage(model, statistics, X_new, f_new)
            counts = wald_coverage(model, statistics, truth_model)
            for part, (covered, total) in counts.items():
                row[f"{kind}wald_{part}_{name}"] = covered / total if total else np.nan
    return row


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
    """Mean over the rows ± its standard error, of each key (NaN rows left out)."""
    result = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        result[key] = (float(values.mean()) if values.size else float("nan"),
                       float(values.std(ddof=1) / np.sqrt(values.size))
                       if values.size > 1 else float("nan"))
    return result


def _mean_se(summary, key):
    mean, se = summary[key]
    return f"{mean:.3f} ± {se:.3f}"


def report_lines(report):
    lines = [
        "# Predictive intervals: coverage and cost",
        "",
        f"`{report['command']}`; git describe --dirty: `{report['git']}`; "
        f"{report['seconds']:.0f} s.",
        "",
        f"## Model data (d = {MODEL['d']}, k = {MODEL['k']}, temperature "
        f"{MODEL['temperature']}, normal inputs, Gaussian noise at noise-limit R² "
        f"{SNR / (1 + SNR):.1f})",
        "",
        f"{report['seeds']} seeds per cell (a new truth each, `make_cosine_moe`), "
        f"{N_TEST} fresh rows each; coverage of 95% intervals, mean over the seeds ± its "
        "standard error. Fits: *default* (`CosineMoERegressor` with the true k, router, "
        f"expert and temperature); *inference* (the same with `alpha={INFERENCE['alpha']:g}, "
        f"n_init={INFERENCE['n_init']}`, the user guide's advice for inference); *truth* "
        "(the inference fit started at the true parameters). *prediction*: "
        "`predict_interval` of the default fit against fresh `y`; *function*: "
        "`f_hat -+ z sqrt(J Cov J')` against the true `f*`; *Wald*: the identified "
        "quantities of `inference.summary` (gates: weights, directions, lengths; experts: "
        "coefficients and intercepts), the fraction whose interval holds the true value "
        "(experts matched to the truth's by the nearest permutation); *local minima*: "
        "the fraction of fits whose training objective is above that of the same "
        f"estimator started at the truth by more than {LOSS_GAP:g} of it.",
        "",
        "| router | expert | n | prediction | function, default | function, inference "
        "| function, truth | Wald gates, inference | Wald experts, inference | Wald gates, "
        "truth | Wald experts, truth | local minima, default / inference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in report["model_cells"]:
        if cell["heteroscedastic"]:
            continue
        s = cell["summary"]
        lines.append(
            f"| {cell['router']} | {cell['expert']} | {cell['n']} | "
            + " | ".join(_mean_se(s, key) for key in (
                "prediction", "function_default", "function_inference", "function_truth",
                "wald_gate_inference", "wald_expert_inference", "wald_gate_truth",
                "wald_expert_truth"))
            + f" | {s['local_minimum_default'][0]:.2f} / "
            f"{s['local_minimum_inference'][0]:.2f} |")
    lines += [
        "",
        "## Heteroscedastic noise: sandwich against classical",
        "",
        "The same, with the noise's standard deviation proportional to "
        "`sqrt((0.1 + x_0^2) / 1.1)` (largest where the rows' leverage is): the "
        "sandwich (HC1) covariance that the package computes, beside the classical "
        "`s^2 A^+` (one noise variance), on the same fits.",
        "",
        "| router | expert | n | fit | function, sandwich | function, classical | Wald gates, "
        "sandwich | Wald gates, classical | Wald experts, sandwich | Wald experts, "
        "classical |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in report["model_cells"]:
        if not cell["heteroscedastic"]:
            continue
        s = cell["summary"]
        for name in ("inference", "truth"):
            lines.append(
                f"| {cell['router']} | {cell['expert']} | {cell['n']} | {name} | "
                + " | ".join(_mean_se(s, f"{kind}{what}_{name}") for what in
                             ("function", "wald_gate", "wald_expert")
                             for kind in ("", "classical_")) + " |")
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
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e3, 1e4])
    parser.add_argument("--experts", nargs="+", default=list(EXPERTS), choices=EXPERTS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes for the seeds (not for the cost part)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["model", "heteroscedastic", "real", "cost"])
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
    cells = []
    if "model" not in args.skip:
        cells += [(router, expert, int(n), False) for n in args.sizes
                  for expert in args.experts for router in ROUTERS]
    if "heteroscedastic" not in args.skip:
        cells += [(router, expert, n, True) for router, expert, n in HETEROSCEDASTIC]
    for router, expert, n, heteroscedastic in cells:
        rows = Parallel(n_jobs=args.jobs)(
            delayed(model_cell)(router, expert, n, seed, heteroscedastic)
            for seed in range(args.seeds))
        keys = [key for key in rows[0] if key not in ("router", "expert", "n", "seed")]
        cell = {"router": router, "expert": expert, "n": n,
                "heteroscedastic": heteroscedastic, "fits": len(rows),
                "summary": summarise(rows, keys), "rows": rows}
        report["model_cells"].append(cell)
        s = cell["summary"]
        print(router, expert, n, "heteroscedastic" if heteroscedastic else "",
              {key: round(s[key][0], 3) for key in ("prediction", "function_inference",
                                                    "wald_gate_inference",
                                                    "wald_expert_inference")},
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
        name = cell.get("data") or "_".join(
            [cell["router"], cell["expert"], str(cell["n"])]
            + (["heteroscedastic"] if cell["heteroscedastic"] else []))
        cell_rows = cell.pop("rows")
        for key in cell_rows[0]:
            rows[f"{name}:{key}"] = np.array([row[key] for row in cell_rows])
    np.savez_compressed(out / "uncertainty_rows.npz", **rows)
    (out / "uncertainty.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
