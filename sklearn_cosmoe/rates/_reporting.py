"""From fits to slopes and tables: what the results page reports."""

import csv
import math

import numpy as np

from ._protocol import METRICS, theory_slope

_TEXT_COLUMNS = ("truth", "router", "expert", "setting", "init")
_INT_COLUMNS = ("n", "replicate", "d", "k_true", "k", "n_iter")
_GROUP = ("truth", "router", "expert", "setting", "init")


def fit_slope(n, values, n_boot=2000, seed=0):
    r"""Least-squares slope of :math:`\log` error against :math:`\log n`, with a 95% interval.

    The slope is that of the line through the points
    :math:`(\log n, \overline{\log \text{error}})` (mean over the replicates
    at each ``n``); the interval is the 2.5 and 97.5 percentiles of the slope
    over ``n_boot`` bootstrap samples that resample the replicates within each
    ``n``.  Errors that are not finite and positive are left out.

    Parameters
    ----------
    n : array-like of shape (n_fits,)
        Sample size of each fit.
    values : array-like of shape (n_fits,)
        Error of each fit.
    n_boot : int, default=2000
        Number of bootstrap samples.
    seed : int, default=0
        Seeds the bootstrap.

    Returns
    -------
    slope : float
        NaN with fewer than two sample sizes.
    low : float
        Lower end of the 95% interval.
    high : float
        Upper end of the 95% interval.
    """
    n = np.asarray(n, dtype=float)
    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values) & (values > 0)
    sizes = np.unique(n[keep])
    if sizes.size < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    logn = np.log(sizes)
    means = np.empty(sizes.size)
    boot = np.empty((n_boot, sizes.size))
    for j, size in enumerate(sizes):
        logs = np.log(values[keep & (n == size)])
        means[j] = logs.mean()
        boot[:, j] = logs[rng.integers(0, logs.size, (n_boot, logs.size))].mean(1)
    centred = logn - logn.mean()
    slope = centred @ means / (centred @ centred)
    boot_slopes = boot @ centred / (centred @ centred)
    low, high = np.percentile(boot_slopes, [2.5, 97.5])
    return float(slope), float(low), float(high)


def _groups(rows):
    """Rows grouped by (truth, router, expert, setting, init), in order of appearance."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in _GROUP), []).append(row)
    return groups


def summarise(rows, n_boot=2000, seed=0):
    """Fit the slopes: one row per truth, router, expert, setting, start and metric.

    Parameters
    ----------
    rows : list of dict
        Fits, as returned by :func:`run_experiment` (the order of the table
        follows theirs).
    n_boot : int, default=2000
        Bootstrap samples per slope (:func:`fit_slope`).
    seed : int, default=0
        Seeds the bootstrap.

    Returns
    -------
    list of dict
        Keys ``truth, router, expert, setting, init, metric, slope, ci_low,
        ci_high, theory`` (empty string where the theory gives no rate),
        ``theory_note`` and ``converged`` (share of fits that met the
        tolerance).
    """
    table = []
    for key, group in _groups(rows).items():
        truth, router, expert, setting, init = key
        n = [r["n"] for r in group]
        for metric in METRICS:
            slope, low, high = fit_slope(n, [r[metric] for r in group], n_boot, seed)
            theory, note = theory_slope(router, expert, setting, metric)
            table.append({
                **dict(zip(_GROUP, key)), "metric": metric, "slope": slope,
                "ci_low": low, "ci_high": high,
                "theory": "" if theory is None else theory, "theory_note": note,
                "converged": float(np.mean([r["converged"] for r in group])),
            })
    return table


def estimator_against_truth(rows):
    """The estimator's own fits against the near-truth fits of the same data.

    For each router, expert and setting of a truth fitted from both starts:
    the share of the estimator's fits whose training objective is higher
    than the near-truth fit's on the same data (by more than ``1e-9``
    relative), and the median ratio of their :math:`L^2` errors.

    Parameters
    ----------
    rows : list of dict
        Fits, as returned by :func:`run_experiment`.

    Returns
    -------
    list of dict
        Keys ``truth, router, expert, setting, pairs, higher_loss,
        median_L2_ratio``.
    """
    by_data = {}
    for row in rows:
        key = (row["truth"], row["router"], row["expert"], row["setting"],
               row["n"], row["replicate"])
        by_data.setdefault(key, {})[row["init"]] = row
    table = {}
    for key, pair in by_data.items():
        if len(pair) == 2:
            table.setdefault(key[:4], []).append(pair)
    out = []
    for (truth, router, expert, setting), pairs in table.items():
        est = np.array([p["estimator"]["loss"] for p in pairs])
        near = np.array([p["truth"]["loss"] for p in pairs])
        ratio = [p["estimator"]["L2"] / p["truth"]["L2"] for p in pairs]
        out.append({"truth": truth, "router": router, "expert": expert,
                    "setting": setting, "pairs": len(pairs),
                    "higher_loss": float(np.mean(est > near * (1 + 1e-9))),
                    "median_L2_ratio": float(np.median(ratio))})
    return out


def family_summary(table):
    """Slopes over the random truths: median and range per setting and metric.

    Parameters
    ----------
    table : list of dict
        Slopes, as returned by :func:`summarise`; the main truth is left out.

    Returns
    -------
    list of dict
        Keys ``router, expert, setting, init, metric, truths, median, low,
        high`` (smallest and largest slope) and ``near_half`` (share of
        truths whose 95% interval reaches within 0.1 of -1/2).
    """
    groups = {}
    for t in table:
        if t["truth"] != "main" and np.isfinite(t["slope"]):
            key = (t["router"], t["expert"], t["setting"], t["init"], t["metric"])
            groups.setdefault(key, []).append(t)
    out = []
    for key, group in groups.items():
        slopes = np.array([t["slope"] for t in group])
        near = [t["ci_low"] - 0.1 <= -0.5 <= t["ci_high"] + 0.1 for t in group]
        out.append({**dict(zip(("router", "expert", "setting", "init", "metric"), key)),
                    "truths": len(group), "median": float(np.median(slopes)),
                    "low": float(slopes.min()), "high": float(slopes.max()),
                    "near_half": float(np.mean(near))})
    return out


def read_csv(path):
    """Read a CSV written by :func:`write_csv` (``rates.csv``, ``slopes.csv``).

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    list of dict
        One dict per row; numbers and flags as Python numbers and bools.
    """
    def parse(key, value):
        if key in _TEXT_COLUMNS or key in ("metric", "theory_note"):
            return value
        if key in _INT_COLUMNS:
            return int(value)
        if key == "converged" and value in ("True", "False"):
            return value == "True"
        return float(value) if value != "" else ""

    with open(path, newline="") as handle:
        return [{key: parse(key, value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def write_csv(rows, path, columns=None):
    """Write rows to a CSV file, floats with 10 significant digits.

    Parameters
    ----------
    rows : list of dict
        The rows; keys not in ``columns`` are left out.
    path : str or pathlib.Path
        The file (overwritten).
    columns : list of str, default=None
        Columns, in order; the keys of the first row when None.
    """
    columns = columns or list(rows[0])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.10g}" if isinstance(value, float) else value
                             for key, value in row.items()})


def _interval(t):
    return f"{t['slope']:.2f} [{t['ci_low']:.2f}, {t['ci_high']:.2f}]"


def markdown_tables(table, against, family):
    """The results as Markdown: the main truth's slopes, the family, the two starts.

    Parameters
    ----------
    table : list of dict
        From :func:`summarise`.
    against : list of dict
        From :func:`estimator_against_truth`.
    family : list of dict
        From :func:`family_summary`.

    Returns
    -------
    str
    """
    lines = []
    # the random truths appear one by one only where no family summary is given
    main = [t for t in table if t["truth"] == "main" or not family]
    if main:
        lines += ["| truth | router | expert | setting | start | " + " | ".join(METRICS)
                  + " | converged |", "|---" * (len(METRICS) + 6) + "|"]
        cells = {}
        for t in main:
            key = tuple(t[k] for k in _GROUP)
            cells.setdefault(key, {"converged": t["converged"]})[t["metric"]] = t
        for key, cell in cells.items():
            lines.append("| " + " | ".join(key) + " | " + " | ".join(
                _interval(cell[m]) for m in METRICS) + f" | {cell['converged']:.0%} |")
    if family:
        lines += ["", "Random truths (near-truth start): median slope [smallest, "
                  "largest] over the truths; share of truths whose interval reaches "
                  "within 0.1 of -1/2", "",
                  "| router | expert | setting | metric | truths | median [min, max] "
                  "| near -1/2 |", "|---|---|---|---|---|---|---|"]
        for f in family:
            lines.append(f"| {f['router']} | {f['expert']} | {f['setting']} | "
                         f"{f['metric']} | {f['truths']} | {f['median']:.2f} "
                         f"[{f['low']:.2f}, {f['high']:.2f}] | {f['near_half']:.0%} |")
    if against:
        lines += ["", "The estimator's own start against the near-truth start, same data",
                  "", "| truth | router | expert | setting | pairs | estimator's "
                  "objective higher | median L2 ratio |", "|---|---|---|---|---|---|---|"]
        for a in against:
            lines.append(f"| {a['truth']} | {a['router']} | {a['expert']} | "
                         f"{a['setting']} | {a['pairs']} | {a['higher_loss']:.0%} | "
                         f"{a['median_L2_ratio']:.2f} |")
    return "\n".join(lines)
