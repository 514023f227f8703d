"""Accuracy of CosineMoERegressor against the usual tabular regressors.

One command writes a Markdown table and figures into ``benchmarks/results/``::

    python benchmarks/bench_accuracy.py           # full run
    python benchmarks/bench_accuracy.py --quick   # smaller data, 3 folds, 3 data sets

Protocol
--------
* Score: R² on the test folds of a 5-fold ``KFold(shuffle=True, random_state=0)``,
  mean ± sd over the folds, and the fit time per fold.
* Tuning is nested: inside each outer training fold every model is tuned by a
  ``GridSearchCV`` with the same budget (a grid of ``GRID_SIZE`` = 8
  candidates for every model, 3-fold inner CV by default, ``--inner-cv``) and
  refitted on the whole training fold.  The grids tune what each model's
  users tune: the ridge penalty; the MLP's width and ``alpha``; the boosted
  trees' ``learning_rate``, ``max_leaf_nodes`` and ``max_iter`` with early
  stopping; the mixture's ``n_experts`` and ``temperature``, never at the
  values the model data are drawn with (4 experts, temperatures 1 and 0.1).
* Competitors: ``Ridge``, ``MLPRegressor``, ``HistGradientBoostingRegressor``,
  and ``CosineMoERegressor`` with each router; ``RidgeCV`` and
  ``CosineMoERegressorCV`` (``MoE CV``) with their defaults and no grid
  search: they tune themselves (``alpha`` by leave-one-out; the router, the
  temperature and the number of experts by 5-fold cross-validation, whose
  default ``KFold`` does not shuffle); ``MoE CV shuffled`` is ``MoE CV`` with
  shuffled folds (``statsmodels`` stores ``fair`` with its nonzero targets
  first).  ``StandardScaler`` in front of everything but the boosted trees;
  the MLP also gets a standardized target (``TransformedTargetRegressor``);
  the MoE standardizes its target itself.
* Data: scikit-learn's diabetes; Friedman #1, #2, #3 (``make_friedman*``,
  ``random_state=0``, the classic noise levels 1, 125 and 0.1); data drawn
  from the model itself for each router with soft and sharp gates
  (temperature 1 and 0.1); three real data sets shipped inside statsmodels
  (``statsmodels.datasets``, no download): ``star98``, ``fair``, ``randhie``.
* Noise limit: where the true regression function is known (Friedman and the
  model data) the R² of the true function on the same test folds.
"""

import argparse
import importlib.util
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, make_friedman1, make_friedman2, make_friedman3
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_cosmoe
from sklearn_cosmoe import CosineMoERegressor, CosineMoERegressorCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROUTERS, git_describe, log, make_model_data, output_folder  # noqa: E402

ROUTER_LABEL = {"perturbed_cosine": "MoE perturbed cosine", "cosine": "MoE cosine",
                "linear": "MoE linear"}
MODEL_DATA = {"n": 5000, "d": 5, "k": 4}
MODEL_TEMPERATURES = {"soft": 1.0, "sharp": 0.1}


# --------------------------------------------------------------------------
# data sets: name -> (X, y, f_true or None, description)
# --------------------------------------------------------------------------
def load_statsmodels(name):
    """Real regression data shipped inside statsmodels (no download)."""
    import statsmodels.datasets as smd

    if name == "star98":
        # share of students above the national median in maths, per school
        # district; the 12 base covariates (the shipped interaction columns
        # are left out: the nonlinear models should find interactions)
        data = smd.star98.load_pandas().data
        y = data["NABOVE"] / (data["NABOVE"] + data["NBELOW"])
        cols = ["LOWINC", "PERASIAN", "PERBLACK", "PERHISP", "PERMINTE", "AVYRSEXP",
                "AVSALK", "PERSPENK", "PTRATIO", "PCTAF", "PCTCHRT", "PCTYRRND"]
        return data[cols].to_numpy(float), y.to_numpy(float)
    if name == "fair":
        ds = smd.fair.load_pandas()           # time spent in affairs
        return ds.exog.to_numpy(float), ds.endog.to_numpy(float)
    if name == "randhie":
        ds = smd.randhie.load_pandas()        # number of outpatient doctor visits
        return ds.exog.to_numpy(float), ds.endog.to_numpy(float)
    raise ValueError(name)


def datasets(quick, only=None):
    """The data sets whose name contains one of ``only`` (all when None).

    Only those are loaded: statsmodels is needed only for its three.
    """
    def wanted(name):
        return only is None or any(s in name for s in only)

    n_fr = 1000 if quick else 2000
    out = {}
    X, y = load_diabetes(return_X_y=True)
    out["diabetes"] = (X, y, None, f"scikit-learn, n={len(y)}, d={X.shape[1]}")
    for name, make, noise in (("friedman1", make_friedman1, 1.0),
                              ("friedman2", make_friedman2, 125.0),
                              ("friedman3", make_friedman3, 0.1)):
        X, y = make(n_samples=n_fr, noise=noise, random_state=0)
        _, f = make(n_samples=n_fr, noise=0.0, random_state=0)  # same X, no noise
        out[name] = (X, y, f, f"n={n_fr}, d={X.shape[1]}, noise sd {noise:g}")
    n, d, k = MODEL_DATA["n"], MODEL_DATA["d"], MODEL_DATA["k"]
    if quick:
        n = 2000
    routers = ROUTERS[:1] if quick else ROUTERS
    gates = ("sharp",) if quick else ("soft", "sharp")
    for router in routers:
        for gate in gates:
            temp = MODEL_TEMPERATURES[gate]
            X, y, f, _, _ = make_model_data(n, d, k, router=router, temperature=temp,
                                            snr=9.0, seed=0)
            out[f"model {router} {gate}"] = (
                X, y, f, f"n={n}, d={d}, k={k}, T={temp:g}, noise-limit R² ~0.9")
    real = [name for name in (("star98",) if quick else ("star98", "fair", "randhie"))
            if wanted(name)]
    if real and importlib.util.find_spec("statsmodels") is None:
        log(f"statsmodels is not installed (`pip install statsmodels`): {', '.join(real)} "
            "left out of this run")
        real = []
    for name in real:
        X, y = load_statsmodels(name)
        desc = f"statsmodels, n={len(y)}, d={X.shape[1]}"
        if name == "randhie":
            # 20,190 rows: a fixed random 6,000 keep the run within budget
            idx = np.random.default_rng(0).choice(len(y), 6000, replace=False)
            X, y = X[idx], y[idx]
            desc += " (random 6000 rows)"
        out[name] = (X, y, None, desc)
    return out


# --------------------------------------------------------------------------
# competitors, each with a grid of GRID_SIZE candidates
# --------------------------------------------------------------------------
GRID_SIZE = 8
# The mixture's grid leaves out the generating values of the model data
# (MODEL_DATA["k"] = 4 experts, MODEL_TEMPERATURES 1 and 0.1): a grid holding
# them would hand the mixture the answer on those rows.
MOE_GRID = {"n_experts": [3, 6], "temperature": [0.05, 0.2, 0.5, 2.0]}


def competitors(quick, moe_n_init=1):
    """``name -> (estimator, grid)``; ``grid=None`` for a model that tunes itself.

    Every grid has :data:`GRID_SIZE` candidates, spent where the model's
    users spend their tuning: the ridge penalty; the MLP's width, depth and
    ``alpha``; the boosted trees' ``learning_rate``, ``max_leaf_nodes`` and
    ``max_iter`` with early stopping on (``max_iter`` caps the trees); the
    mixture's ``n_experts`` and ``temperature``.
    """
    max_iter = 300 if quick else 1000
    models = {
        "Ridge": (make_pipeline(StandardScaler(), Ridge()),
                  {"ridge__alpha": list(np.logspace(-3, 4, GRID_SIZE))}),
        "MLP": (TransformedTargetRegressor(
                    regressor=make_pipeline(StandardScaler(), MLPRegressor(
                        max_iter=max_iter, early_stopping=True, random_state=0)),
                    transformer=StandardScaler()),
                {"regressor__mlpregressor__hidden_layer_sizes": [(16,), (64,), (256,),
                                                                 (64, 64)],
                 "regressor__mlpregressor__alpha": [1e-4, 1e-1]}),
        "HistGB": (HistGradientBoostingRegressor(early_stopping=True, random_state=0),
                   {"learning_rate": [0.05, 0.2], "max_leaf_nodes": [15, 63],
                    "max_iter": [100, 500]}),
    }
    models["RidgeCV"] = (make_pipeline(StandardScaler(), RidgeCV()), None)
    # the CV estimators run with all their defaults, n_init included
    models["MoE CV"] = (make_pipeline(StandardScaler(), CosineMoERegressorCV(
        random_state=0)), None)
    # its default cv=5 is scikit-learn's unshuffled KFold, which sees the order
    # of the rows: statsmodels stores ``fair`` with its nonzero targets first
    models["MoE CV shuffled"] = (make_pipeline(StandardScaler(), CosineMoERegressorCV(
        cv=KFold(5, shuffle=True, random_state=0), random_state=0)), None)
    for router in ROUTERS:
        models[ROUTER_LABEL[router]] = (
            make_pipeline(StandardScaler(), CosineMoERegressor(
                router=router, n_init=moe_n_init, random_state=0)),
            {f"cosinemoeregressor__{key}": values for key, values in MOE_GRID.items()})
    if (MODEL_DATA["k"] in MOE_GRID["n_experts"]
            or set(MODEL_TEMPERATURES.values()) & set(MOE_GRID["temperature"])):
        raise AssertionError("the mixture's grid holds a generating value of the model data")
    for name, (_, grid) in models.items():
        if grid is not None and len(ParameterGrid(grid)) != GRID_SIZE:
            raise AssertionError(f"{name}'s grid has {len(ParameterGrid(grid))} candidates, "
                                 f"not {GRID_SIZE}")
    return models


def describe_grids(models):
    """One line per model: its grid, or that it tunes itself."""
    out = []
    for name, (_, grid) in models.items():
        if grid is None:
            note = ""
            if name.startswith("MoE CV"):
                note = ("; its default search (routers perturbed cosine, cosine, linear; "
                        "temperatures 1, 0.3, 0.1; ridge alphas 0.1, 1, 10 on Ridge's "
                        "scale; experts grown until 3 more have not changed the choice, "
                        "up to ten training rows per parameter) includes the model "
                        "data's generating values")
            if name == "MoE CV shuffled":
                out.append(f"{name}: as MoE CV, but cv=KFold(5, shuffle=True, "
                           f"random_state=0) instead of the default unshuffled KFold(5){note}")
                continue
            out.append(f"{name}: its own defaults, no grid search (it tunes itself{note})")
            continue
        parts = []
        for key, values in grid.items():
            shown = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values)
            parts.append(f"{key.split('__')[-1]} {{{shown}}}")
        out.append(f"{name}: " + " x ".join(parts) + f" ({len(ParameterGrid(grid))} candidates)")
    return out


def evaluate(model, grid, X, y, f, folds, inner_cv):
    """Outer-CV scores; ``grid=None``: a model that tunes itself, fitted as is."""
    scores, fit_times, refit_times, oracle, chosen = [], [], [], [], []
    for train, test in folds.split(X):
        if grid is None:
            search = sklearn.clone(model)
        else:
            search = GridSearchCV(sklearn.clone(model), grid, cv=inner_cv, scoring="r2",
                                  n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            search.fit(X[train], y[train])
            fit_times.append(time.perf_counter() - t0)
        if grid is None:
            refit_times.append(fit_times[-1])
            last = search[-1] if hasattr(search, "steps") else search
            chosen.append({key: getattr(last, attr) for key, attr in
                           (("n_experts", "n_experts_"), ("temperature", "temperature_"),
                            ("alpha", "alpha_"))
                           if hasattr(last, attr)})
        else:
            refit_times.append(search.refit_time_)
            chosen.append({k.split("__")[-1]: v for k, v in search.best_params_.items()})
        scores.append(r2_score(y[test], search.predict(X[test])))
        if f is not None:
            oracle.append(r2_score(y[test], f[test]))
    return {"r2": np.array(scores), "fit_time": np.array(fit_times),
            "refit_time": np.array(refit_times),
            "oracle": np.array(oracle) if oracle else None, "chosen": chosen}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def write_markdown(results, data_info, model_names, header, path, n_folds):
    L = ["# Accuracy benchmark", "", *header, "",
         f"## Test R² ({n_folds}-fold CV, mean ± sd over folds)", "",
         "Bold: best mean on the row. *Noise limit*: R² of the true regression "
         "function on the same test folds (where it is known).", "",
         "| data | " + " | ".join(model_names) + " | noise limit |",
         "|---|" + "---|" * (len(model_names) + 1)]
    for name, row in results.items():
        means = {m: row[m]["r2"].mean() for m in model_names}
        best = max(means.values())
        cells = []
        for m in model_names:
            text = f"{means[m]:.3f} ± {row[m]['r2'].std():.3f}"
            cells.append(f"**{text}**" if means[m] == best else text)
        oracle = next((row[m]["oracle"] for m in model_names if row[m]["oracle"] is not None),
                      None)
        lim = "" if oracle is None else f"{oracle.mean():.3f} ± {oracle.std():.3f}"
        L.append(f"| {name} | " + " | ".join(cells) + f" | {lim} |")
    model_rows = [n for n in results if n.startswith("model ")]
    if model_rows:
        L += ["", "## Data drawn from the model: gap to the noise limit", "",
              "Mean over folds of (model R² − noise-limit R²) on the same folds; "
              "goal for the matching router: > −0.002.", "",
              "| data | " + " | ".join(model_names) + " |",
              "|---|" + "---|" * len(model_names)]
        for name in model_rows:
            row = results[name]
            oracle = row[model_names[0]]["oracle"]
            L.append(f"| {name} | " + " | ".join(
                f"{(row[m]['r2'] - oracle).mean():+.4f}" for m in model_names) + " |")
    L += ["", "## Fit time per outer fold (s): whole tuned fit (grid search + refit) / "
          "final refit alone", "",
          "| data | " + " | ".join(model_names) + " |",
          "|---|" + "---|" * len(model_names)]
    for name, row in results.items():
        L.append(f"| {name} | " + " | ".join(
            f"{row[m]['fit_time'].mean():.2f} / {row[m]['refit_time'].mean():.3f}"
            for m in model_names) + " |")
    L += ["", "## Hyperparameters chosen by the inner grid search (per outer fold)", ""]
    for name, row in results.items():
        parts = []
        for m in model_names:
            chosen = row[m]["chosen"]
            keys = chosen[0].keys()
            summary = ", ".join(f"{key}: " + "/".join(str(c[key]) for c in chosen)
                                for key in keys)
            parts.append(f"{m} ({summary})")
        L.append(f"* **{name}**: " + "; ".join(parts))
    L += ["", "## Data sets", ""]
    for name, desc in data_info.items():
        L.append(f"* **{name}**: {desc}")
    L += ["", "![R²](accuracy_r2.png)", "", "![fit time](accuracy_time.png)", ""]
    path.write_text("\n".join(L))


def plot(results, model_names, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    width = 0.8 / len(model_names)
    x = np.arange(len(names))
    for kind, fname, ylabel in (("r2", "accuracy_r2.png", "test R² (outer CV folds)"),
                                ("fit_time", "accuracy_time.png",
                                 "s per outer fold (grid search + refit)")):
        fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(names)), 4.8))
        for j, m in enumerate(model_names):
            vals = np.array([results[n][m][kind].mean() for n in names])
            errs = np.array([results[n][m][kind].std() for n in names])
            ax.bar(x + (j - (len(model_names) - 1) / 2) * width, vals, width, yerr=errs,
                   label=m, capsize=1.5)
        if kind == "r2":
            for i, n in enumerate(names):
                oracle = results[n][model_names[0]]["oracle"]
                if oracle is not None:
                    ax.hlines(oracle.mean(), i - 0.42, i + 0.42, colors="k",
                              linestyles=":", label="noise limit" if i == 1 else None)
            lo = min(0.0, min(results[n][m]["r2"].mean() for n in names for m in model_names))
            ax.set_ylim(max(lo, -0.5), 1.0)
        else:
            ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=7, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  frameon=False)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller data, 3 outer folds, fewer data sets")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only the data sets whose name contains one of these")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (BLAS, OpenMP, numba); "
                             "default: all cores")
    parser.add_argument("--models", nargs="*", default=None,
                        help="run only the models named, or whose name contains one of "
                             "these (a model's exact name picks it alone)")
    parser.add_argument("--moe-n-init", type=int, default=1,
                        help="restarts of each CosineMoERegressor fit (default 1, "
                             "the estimator's default)")
    parser.add_argument("--inner-cv", type=int, default=3,
                        help="folds of the inner grid search (default 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: a new temporary one); "
                             "benchmarks/results only from a clean git tree")
    args = parser.parse_args(argv)
    revision = git_describe()     # at the start: the tree the numbers come from
    args.out = output_folder(args.out, prefix="accuracy_")
    if args.threads:
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    n_folds = 3 if args.quick else 5
    folds = KFold(n_folds, shuffle=True, random_state=0)
    inner_cv = KFold(args.inner_cv, shuffle=True, random_state=1)
    data = datasets(args.quick, args.only)
    if args.only:
        data = {k: v for k, v in data.items() if any(s in k for s in args.only)}
    models = competitors(args.quick, args.moe_n_init)
    if args.models:
        # a model's exact name picks it alone ("MoE CV" without "MoE CV shuffled")
        models = {k: v for k, v in models.items()
                  if k in args.models or any(s in k and s not in models
                                             for s in args.models)}
    # quoted as a shell needs it: "--models 'MoE CV'" picks one model, "MoE CV" two words
    command = "python benchmarks/bench_accuracy.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    import numba
    header = [f"Command: `{command.strip()}`  ",
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, threads per "
              f"library {args.threads or os.cpu_count()} (numba {numba.get_num_threads()}); "
              f"load average at start {os.getloadavg()[0]:.1f}  ",
              f"Versions: sklearn_cosmoe {sklearn_cosmoe.__version__} (git "
              f"{revision}), scikit-learn "
              f"{sklearn.__version__}, numpy {np.__version__}, "
              f"python {platform.python_version()}  ",
              f"Protocol: outer {n_folds}-fold CV (shuffled, seed 0); inside each training "
              f"fold a GridSearchCV per model, every grid of {GRID_SIZE} candidates, "
              f"{args.inner_cv}-fold inner CV, refit on the whole training fold. "
              "StandardScaler in front of all but HistGB; the MLP (early stopping) also "
              "gets a standardized target; HistGB has early stopping on, max_iter caps "
              f"its trees; the grid-searched mixtures run with n_init {args.moe_n_init} "
              "and other settings default (the CV estimators with all their defaults), "
              "and their grid leaves out the model data's generating "
              f"values (k = {MODEL_DATA['k']}, temperatures "
              f"{', '.join(f'{t:g}' for t in MODEL_TEMPERATURES.values())}). Grids:  ",
              *[f"* {line}  " for line in describe_grids(models)]]
    log("\n".join(header))
    results, t_start = {}, time.perf_counter()
    for name, (X, y, f, desc) in data.items():
        log(f"\n== {name} ({desc})")
        results[name] = {}
        for m, (model, grid) in models.items():
            res = evaluate(model, grid, X, y, f, folds, inner_cv)
            results[name][m] = res
            extra = ("" if res["oracle"] is None
                     else f"  (noise limit {res['oracle'].mean():.4f}, gap "
                          f"{(res['r2'] - res['oracle']).mean():+.4f})")
            log(f"  {m:22s} R² {res['r2'].mean():.4f} ± {res['r2'].std():.4f}, "
                f"fit {res['fit_time'].mean():.2f} s/fold{extra}")
    total = time.perf_counter() - t_start
    header.insert(3, f"Total run time: {total:.0f} s  ")
    model_names = list(models)
    write_markdown(results, {k: v[3] for k, v in data.items()}, model_names, header,
                   args.out / "accuracy.md", n_folds)
    plot(results, model_names, args.out)
    log(f"\nwrote {args.out / 'accuracy.md'} ({total:.0f} s in all)")


if __name__ == "__main__":
    main()
