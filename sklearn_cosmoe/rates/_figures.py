"""Log-log figures of the errors against ``n``, with their fitted slopes."""

from pathlib import Path

import numpy as np

_STYLE = {"D1": ("tab:blue", "o"), "D2": ("tab:orange", "s"), "L2": ("tab:green", "^"),
          "cosine": ("tab:red", "o"), "perturbed_cosine": ("tab:blue", "s"),
          "linear": ("tab:grey", "^")}
#: The loss of each paper-style figure: the theorem's D2, canonical or raw.
PAPER_FIGURES = {"canonical": "D2", "raw": "D2_raw"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _select(rows, **keys):
    return [r for r in rows if all(r[k] == v for k, v in keys.items())]


def _slope(table, **keys):
    return next(t for t in table if all(t[k] == v for k, v in keys.items()))


def _points(ax, group, metric, fit, label, colour, marker, hollow=False):
    """Geometric means over replicates (bars: 10-90%) and the fitted line."""
    sizes = np.array(sorted({r["n"] for r in group}), dtype=float)
    stats = []
    for size in sizes:
        v = np.array([r[metric] for r in group if r["n"] == size], dtype=float)
        v = v[np.isfinite(v) & (v > 0)]
        stats.append((np.exp(np.log(v).mean()), *np.percentile(v, [10, 90]))
                     if v.size else (np.nan,) * 3)
    centre, low, high = np.array(stats).T
    label = f"{label}: {fit['slope']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]"
    bars = np.clip([centre - low, high - centre], 0, None)
    ax.errorbar(sizes, centre, yerr=bars, fmt=marker, ms=4,
                mfc="none" if hollow else colour, color=colour, label=label, capsize=2)
    ok = np.isfinite(centre)
    if ok.sum() >= 2 and np.isfinite(fit["slope"]):
        logn = np.log(sizes[ok])
        intercept = np.log(centre[ok]).mean() - fit["slope"] * logn.mean()
        ax.plot(sizes, np.exp(intercept + fit["slope"] * np.log(sizes)), "--",
                color=colour, lw=1)
    return sizes, centre


def _finish(ax, sizes, anchor, title):
    from matplotlib.ticker import LogLocator, NullLocator

    if np.isfinite(anchor):
        ax.plot(sizes, anchor * (sizes / sizes[0]) ** -0.5, ":", color="grey",
                lw=1, label="slope -1/2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * (high / low) ** 0.7)  # room for the legend above the data
    # few ticks: matplotlib's default log ticks are slow to lay out
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(numticks=5))
        axis.set_minor_locator(NullLocator())
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("n")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.7)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)
    return Path(path)


def plot(rows, table, out_dir, truth="main"):
    """Figures of one truth: an overview per start and one paper-style figure per loss.

    ``rates_<init>.png``: one panel per (expert, router, setting) with the
    canonical D1, D2 and the L2 error.  ``rates_paper_<form>.png`` (near-truth
    start): one panel per (expert, setting), both routers in each, the loss
    D2 in canonical or raw form (user guide: :ref:`voronoi-losses`,
    :ref:`raw-voronoi-loss`).  Points: geometric mean over the replicates;
    bars: 10-90% of the replicates; dashed: fitted lines with their slope and
    95% interval in the legend; dotted: slope -1/2.

    Parameters
    ----------
    rows : list of dict
        Fits, as returned by :func:`run_experiment`.
    table : list of dict
        Slopes, as returned by :func:`summarise`.
    out_dir : str or pathlib.Path
        Folder of the figures.
    truth : str, default="main"
        The truth to draw.

    Returns
    -------
    list of pathlib.Path
    """
    rows = _select(rows, truth=truth)
    if not rows:
        return []
    plt = _pyplot()
    routers, experts, settings, inits = (list(dict.fromkeys(r[k] for r in rows)) for k in
                                         ("router", "expert", "setting", "init"))
    paths = []
    columns = [(router, setting) for router in routers for setting in settings]
    for init in inits:
        fig, axes = plt.subplots(len(experts), len(columns), squeeze=False,
                                 figsize=(max(3.6 * len(columns), 6.0), 3.3 * len(experts)),
                                 sharex=True)
        for row_axes, expert in zip(axes, experts):
            for ax, (router, setting) in zip(row_axes, columns):
                keys = dict(router=router, expert=expert, setting=setting, init=init)
                group = _select(rows, **keys)
                for metric in ("D1", "D2", "L2"):
                    colour, marker = _STYLE[metric]
                    sizes, centre = _points(ax, group, metric,
                                            _slope(table, truth=truth, metric=metric, **keys),
                                            metric, colour, marker, hollow=metric == "D2")
                _finish(ax, sizes, 2 * np.exp(np.mean(np.log(
                    [r["L2"] for r in group if r["n"] == sizes[0]]))),
                    f"{router}, {expert}\n{setting}: k*={group[0]['k_true']}, "
                    f"k={group[0]['k']}")
        replicates = len(_select(rows, init=init, n=rows[0]["n"], router=routers[0],
                                 expert=experts[0], setting=settings[0]))
        fig.suptitle(f"Convergence rates, start: {init} ({replicates} replicates per n)")
        paths.append(_save(fig, Path(out_dir) / f"rates_{init}.png"))
    if "truth" not in inits:
        return paths
    for form, metric in PAPER_FIGURES.items():
        fig, axes = plt.subplots(1, len(experts) * len(settings), squeeze=False,
                                 figsize=(3.8 * len(experts) * len(settings), 3.6))
        panels = [(e, s) for e in experts for s in settings]
        for ax, (expert, setting) in zip(axes[0], panels):
            for router in routers:
                keys = dict(router=router, expert=expert, setting=setting, init="truth")
                group = _select(rows, **keys)
                colour, marker = _STYLE[router]
                sizes, centre = _points(ax, group, metric,
                                        _slope(table, truth=truth, metric=metric, **keys),
                                        router, colour, marker)
            _finish(ax, sizes, 2 * centre[0], f"{expert}, {setting}: "
                    f"k*={group[0]['k_true']}, k={group[0]['k']}")
            ax.set_ylabel(f"{metric} ({form})")
        fig.suptitle(f"Voronoi loss D2 on {form} parameters, near-truth start")
        paths.append(_save(fig, Path(out_dir) / f"rates_paper_{form}.png"))
    return paths
