"""Figures, goal checks and the Markdown report of ``bench_speed.py``."""

import numpy as np

from _common import fmt_time
from _race import (ADAM_LRS, D, KERNEL_ONLY, KERNEL_TORCH, RACE_RUNS, SPEC,
                   STALL_EVALS, STALL_REL)

# the kernel-only ratios: (baseline driver on its own objective, the same driver
# on the package's kernel, column label)
KERNEL_PAIRS = (("numpy+scipy L-BFGS-B", KERNEL_ONLY, "kernel only (scipy)"),
                ("torch LBFGS", KERNEL_TORCH, "kernel only (torch LBFGS)"))


def column(name):
    """Short table heading of a race entry."""
    return {"package": "package", KERNEL_ONLY: "package kernel + scipy",
            "numpy+scipy L-BFGS-B": "NumPy+scipy", "torch LBFGS": "torch LBFGS",
            KERNEL_TORCH: "package kernel + torch LBFGS"}.get(
        name, "torch Adam" if name.startswith("torch Adam") else name)


def plot_scaling(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    labels = {"eval_package": "sklearn_cosmoe (numba)", "eval_numpy": "NumPy",
              "eval_torch": "PyTorch autograd"}
    for col, axis in enumerate(("n", "d", "k")):
        sub = [r for r in rows if r["axis"] == axis]
        x = [r[axis] for r in sub]
        ax = axes[0, col]
        for key, label in labels.items():
            if key in sub[0]:
                ax.plot(x, [r[key] for r in sub], "o-", label=label)
        ax.set(xscale="log", yscale="log", xlabel=axis, ylabel="s per loss+gradient",
               title=f"one evaluation vs {axis}")
        ax.grid(True, which="both", alpha=0.3)
        ax = axes[1, col]
        ax.plot(x, [r["fit_time"] for r in sub], "o-", label="fit (wall time)")
        ax.plot(x, [r["fit_time_per_iter"] for r in sub], "s--", label="fit / iteration")
        ax.set(xscale="log", yscale="log", xlabel=axis, ylabel="s",
               title=f"CosineMoERegressor.fit vs {axis}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend()
    axes[1, 0].legend()
    base = [r for r in rows if r["axis"] == "d"]
    fixed = f"defaults: n = {base[0]['n']:.0e}, d = 10, k = 4" if base else ""
    fig.suptitle(f"Scaling ({fixed}; perturbed cosine router, linear experts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_race(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, m in res["methods"].items():
        t, loss = map(np.asarray, m["trace"])
        if t.size:
            ax.plot(t, np.minimum.accumulate(loss), label=name)
    ax.axhline(res["target"], color="k", ls=":", label="target (best + 1 %)")
    ax.set(xscale="log", yscale="log", xlabel="wall time (s)", ylabel="training loss",
           title=f"n = {res['n']:.0e}, d = {D}, k = {res['k']}, {res['start']} start")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline(report):
    """Goal checks (speed against NumPy and PyTorch per evaluation), one line each."""
    out = []
    for r in report["eval"]:
        if r["n"] >= 100_000:
            ratio = r["torch"] / r["package"]
            out.append(f"per evaluation vs torch autograd, n={r['n']:.0e} k={r['k']}: "
                       f"{ratio:.1f}x ({'met' if ratio >= 2 else 'NOT met'}; goal >= 2x)")
        if r["n"] == 100_000 and r["k"] == 8:
            ratio = r["numpy"] / r["package"]
            out.append(f"per evaluation vs NumPy, n=1e5 k=8: {ratio:.1f}x "
                       f"({'met' if ratio >= 10 else 'NOT met'}; goal >= 10x)")
    goals = {"numpy": 5.0, "torch": 20.0}
    for res in report["race"]:
        for name, m in res["methods"].items():
            if name in ("package", KERNEL_ONLY, KERNEL_TORCH):
                continue
            kind = "numpy" if name.startswith("numpy") else "torch"
            if m["ratio"] is not None:
                val, ok = f"{m['ratio']:.1f}x", m["ratio"] >= goals[kind]
            elif res["methods"]["package"]["time_to_target"] is None:
                val, ok = "package did not reach the target", False
            elif m["status"] == "budget":
                # a miss within the budget bounds the ratio from below only
                bound = res["budget"] / res["methods"]["package"]["time_to_target"]
                val, ok = f"> budget, ratio > {bound:.1f}x", bound >= goals[kind]
            else:
                val, ok = "never", True
            out.append(f"time to target, n={res['n']:.0e} k={res['k']} {res['start']} "
                       f"start, {name}: {val} ({'met' if ok else 'NOT met'}; goal >= "
                       f"{goals[kind]:g}x)")
    for res in report["race"]:
        for baseline, kernel, _ in KERNEL_PAIRS:
            if kernel in res["methods"]:
                out.append(f"kernel-only ratio, n={res['n']:.0e} k={res['k']} {res['start']} "
                           f"start ({baseline} on its own objective / on the package's, "
                           f"same start): {kernel_ratio(res, baseline, kernel)}")
    for r in report["fit"].get("runs", []):
        if r["n"] == 100_000:
            out.append(f"fit n=1e5 d=10 k=4: {r['time']:.2f} s, {r['n_iter']} iterations "
                       f"({'met' if r['time'] < 2 else 'NOT met'}; goal < 2 s)")
    if "growth" in report["fit"]:
        g = report["fit"]["growth"]
        out.append(f"fit growth 1e5 -> 1e6: {g:.1f}x wall, "
                   f"{report['fit']['growth_per_iter']:.1f}x per iteration "
                   f"({'met' if g <= 11 else 'NOT met'}; goal <= 11x)")
    for m in report["memory"]:
        ratio = m["tracemalloc_peak"] / m["X_bytes"]
        out.append(f"peak memory of fit n={m['n']:.0e}: {ratio:.2f}x X (tracemalloc; "
                   f"{'met' if ratio <= 3 else 'NOT met'}; goal <= 3x)")
    return out


def kernel_ratio(res, baseline="numpy+scipy L-BFGS-B", kernel=KERNEL_ONLY):
    """A baseline's time to the target over its driver's on the package's kernel, as text."""
    num = res["methods"][baseline]["time_to_target"]
    ker = res["methods"].get(kernel, {}).get("time_to_target")
    if ker is not None and num is None and res["methods"][baseline]["status"] == "budget":
        return f"> {res['budget'] / ker:.1f}x"   # a miss within the budget: a lower bound
    if num is None or ker is None:
        return "-"
    return f"{num / ker:.1f}x"


def kernel_columns(report):
    """The kernel-only ratios present in every race cell (older results lack some)."""
    return [(b, k, label) for b, k, label in KERNEL_PAIRS
            if report["race"] and all(k in res["methods"] for res in report["race"])]


def stricter_targets(report, rels=(1e-3, 1e-4)):
    """The race again, read off the same traces, with tighter targets."""
    L = []
    for rel in rels:
        names = [column(name) for name in report["race"][0]["methods"]] if report["race"] else []
        L += ["", f"### Time to best + {rel:.2%} (same runs, read off the same traces)", "",
              "| n | k | start | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
        for res in report["race"]:
            target = res["best_loss"] * (1 + rel)
            times = {}
            for name, m in res["methods"].items():
                t, loss = m["trace"]
                hits = np.flatnonzero(np.asarray(loss) <= target)
                times[name] = t[hits[0]] if hits.size else None
            t_pkg = times["package"]
            cells = []
            for name, t in times.items():
                if t is None:
                    cells.append("> budget" if res["methods"][name]["status"] == "budget"
                                 else "never")
                elif name == "package" or t_pkg is None:
                    cells.append(fmt_time(t))
                else:
                    cells.append(f"{fmt_time(t)} = {t / t_pkg:.1f}x")
            L.append(f"| {res['n']:.0e} | {res['k']} | {res['start']} | " + " | ".join(cells)
                     + " |")
    return L


def write_report(report, path):
    L = ["# Speed benchmark", "",
         f"Command: `{report['command']}`  ",
         f"Machine: {report['machine']}  ",
         f"Versions: {report['versions']}  ",
         f"Total run time: {report['total_time']:.0f} s", "",
         "## Headline (speed goals)", "",
         *[f"* {line}" for line in headline(report)], "",
         "Model: perturbed cosine router (tau1 = tau2 = 1, temperature 1), linear experts, "
         f"dense gates, alpha = {SPEC.alpha:g}, d = 10, data drawn from the model (noise-limit "
         "R² 0.9), target standardized.", "",
         "## Correctness of the baselines", "",
         "Relative error against `sklearn_cosmoe._model.objective` (random parameters, "
         "random weights, alpha = 1e-3, temperature 0.5):", "",
         "| router | NumPy loss | NumPy grad | torch loss | torch grad |",
         "|---|---|---|---|---|"]
    for r in report["correctness"]:
        L.append(f"| {r['router']} | {r['numpy_loss']:.1e} | {r['numpy_grad']:.1e} | "
                 f"{r['torch_loss']:.1e} | {r['torch_grad']:.1e} |")
    L += ["", "## One loss+gradient evaluation", "",
          "Median wall time over three rounds in which the implementations take turns. "
          "Ratio = other / package (goal: >= 2x vs torch at n >= 1e5, "
          ">= 10x vs NumPy at n = 1e5, k = 8).", "",
          "| n | k | package | NumPy | torch autograd | NumPy / package | torch / package |",
          "|---|---|---|---|---|---|---|"]
    for r in report["eval"]:
        L.append(f"| {r['n']:.0e} | {r['k']} | {fmt_time(r['package'])} | "
                 f"{fmt_time(r['numpy'])} | {fmt_time(r['torch'])} | "
                 f"{r['numpy'] / r['package']:.1f}x | {r['torch'] / r['package']:.1f}x |")
    L += ["", "## Time to the same training loss", "",
          "Target: the lowest loss any method reached, plus 1 %. Ratio = method's time / "
          "package's time. *random*: every method from the same random start (PyTorch "
          "`nn.Linear` style, uniform on ±1/sqrt(d)). *best*: the package from its own "
          "data-driven start (spherical k-means + least squares; its time included), "
          "the baselines from that same start handed to them for free. "
          f"Adam learning rate tuned on {list(ADAM_LRS)} at the smallest n "
          "(lowest loss within the tuning budget). Each run is capped by a time budget; "
          "'> budget' means it had not reached the target when the budget ran out; "
          "'stuck (loss)' that it stopped above the target (its own convergence test, or "
          f"no relative improvement above {STALL_REL:g} over {STALL_EVALS} evaluations). "
          f"One rule for every method: {RACE_RUNS} runs each, the first to find the target, "
          "the others stopping at it; the time is the median of all its runs (a miss counts "
          "as infinite). *package kernel + scipy* is scipy's L-BFGS-B, as in NumPy+scipy, "
          "on the package's objective: the same algorithm as NumPy+scipy, so NumPy+scipy / "
          "package kernel + scipy is the kernel's share of the gain against NumPy (column "
          "*kernel only (scipy)*); likewise *package kernel + torch LBFGS* is "
          "`torch.optim.LBFGS` on the package's loss and gradient, and torch LBFGS / "
          "package kernel + torch LBFGS the kernel's share against PyTorch (column "
          "*kernel only (torch LBFGS)*). Ratios in the method columns are end to end "
          "(kernel, algorithm and start together), always against the package's own solver.",
          ""]
    names = [column(name) for name in report["race"][0]["methods"]] if report["race"] else []
    kernels = kernel_columns(report)
    L += ["| n | k | start | budget | target | " + " | ".join(names)
          + "".join(f" | {label}" for _, _, label in kernels) + " |",
          "|---|---|---|---|---|" + "---|" * (len(names) + len(kernels))]
    for res in report["race"]:
        cells = []
        for name, m in res["methods"].items():
            if m["time_to_target"] is None:
                cells.append("> budget" if m["status"] == "budget"
                             else f"stuck ({m['best_loss']:.4g})")
            elif name == "package":
                cells.append(f"{fmt_time(m['time_to_target'])} ({m['evals_to_target']} ev)")
            elif m["ratio"] is None:
                cells.append(f"{fmt_time(m['time_to_target'])}")
            else:
                cells.append(f"{fmt_time(m['time_to_target'])} = **{m['ratio']:.1f}x**")
        L.append(f"| {res['n']:.0e} | {res['k']} | {res['start']} | {res['budget']:.0f} s | "
                 f"{res['target']:.5g} | " + " | ".join(cells)
                 + "".join(f" | {kernel_ratio(res, b, k)}" for b, k, _ in kernels) + " |")
    L += ["", "Adam learning rates chosen: " + ", ".join(
        f"{key if isinstance(key, str) else f'k={key[0]} {key[1]}'}: {lr}"
        for key, lr in report["adam_lr"].items()), ""]
    L += stricter_targets(report)
    fit = report["fit"]
    if fit:
        L += ["## `CosineMoERegressor.fit` (k = 4, model data, defaults)", "",
              "| n | wall time | iterations | time / iteration | final loss | converged |",
              "|---|---|---|---|---|---|"]
        for r in fit["runs"]:
            L.append(f"| {r['n']:.0e} | {fmt_time(r['time'])} | {r['n_iter']} | "
                     f"{fmt_time(r['time_per_iter'])} | {r['loss']:.6g} | {r['converged']} |")
        if "growth" in fit:
            L += ["", f"Growth 1e5 -> 1e6: wall time {fit['growth']:.1f}x, time per "
                  f"iteration {fit['growth_per_iter']:.1f}x (goal <= 11x)."]
        L.append("")
    for m in report["memory"]:
        rss = ("n/a" if m["rss_peak_extra"] is None
               else f"{m['rss_peak_extra'] / 2**20:.1f} MiB = {m['rss_peak_extra'] / m['X_bytes']:.2f}x X")
        L += [f"Peak memory of fit at n = {m['n']:.0e} (X is {m['X_bytes'] / 2**20:.1f} MiB): "
              f"tracemalloc {m['tracemalloc_peak'] / 2**20:.1f} MiB = "
              f"{m['tracemalloc_peak'] / m['X_bytes']:.2f}x X (goal <= 3x); "
              f"resident-set high-water mark above the start {rss}.", ""]
    mlp = report["mlp"]
    if mlp:
        L += [f"## Against `MLPRegressor` (n = {mlp['n']:.0e} train, {mlp['n_test']:.0e} test)",
              "",
              f"MoE: {mlp['moe_params']} parameters; MLP: one hidden layer of "
              f"{mlp['mlp_hidden']} units ({mlp['mlp_params']} parameters), default Adam. "
              f"Noise-limit test R²: {mlp['noise_limit_r2']:.4f}.", "",
              "| model | fit time | iterations | test R² | predict rows/s |",
              "|---|---|---|---|---|"]
        for name, r in mlp.items():
            if isinstance(r, dict):
                L.append(f"| {name} | {fmt_time(r['fit_time'])} | {r['n_iter']} | "
                         f"{r['test_r2']:.4f} | {r['predict_rows_per_s']:.3g} |")
        L.append("")
    if report["scaling"]:
        L += ["## Scaling", "", "![scaling](speed_scaling.png)", "",
              "| axis | n | d | k | eval package | eval NumPy | eval torch | fit | iterations |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in report["scaling"]:
            L.append(f"| {r['axis']} | {r['n']:.0e} | {r['d']} | {r['k']} | "
                     f"{fmt_time(r['eval_package'])} | {fmt_time(r.get('eval_numpy'))} | "
                     f"{fmt_time(r.get('eval_torch'))} | {fmt_time(r['fit_time'])} | "
                     f"{r['fit_iter']} |")
        L.append("")
    if report.get("race_figure"):
        L += [f"![race]({report['race_figure']})", ""]
    path.write_text("\n".join(L))
