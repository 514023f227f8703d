"""
=================================
Convergence rates (quick version)
=================================

How fast does least squares recover the parameters of a mixture as the sample
size ``n`` grows?  The theory (:ref:`perturbation`) says: the regression
function at about :math:`n^{-1/2}` for every router; the parameters, measured
by the Voronoi loss :math:`\\mathcal{D}_2` (:ref:`voronoi-losses`), at about
:math:`n^{-1/2}` under the perturbed cosine router with strongly identifiable
experts, and possibly far more slowly under the plain cosine router
(:ref:`theory-predictions`).  The paper writes its loss on the raw parameters
(:ref:`raw-voronoi-loss`); the package also measures it on the canonical form,
which leaves out what the data cannot determine.

This example runs the package's experiment, :mod:`sklearn_cosmoe.rates`, with
quick settings -- a short grid of ``n`` and a few replicates -- so that it
finishes in seconds.  Its slopes are therefore rough.  The full experiment
(``python -m sklearn_cosmoe rates``: 8 sizes up to :math:`10^5`, 20
replicates, both expert families, both starts, and a family of random truths),
with its protocol, figures and the tables of measured slopes, is on the
:doc:`results page </rates>`.
"""

# %%
# The protocol
# ------------
# The truth has ``k* = 2`` ``tanh`` experts on ``d = 2`` inputs (uniform on
# :math:`[-1, 1]^2`), noise sd 0.1, and the experiment's default temperature
# (printed below with the rest of the protocol).  Each fit starts near the truth (the
# theory's object of study); in the over-specified setting the fit has
# ``k = 3`` experts and its start splits one true atom in two.
import matplotlib.pyplot as plt
import numpy as np

from sklearn_cosmoe import rates

protocol = rates.Protocol(
    n_grid=(250, 500, 1000, 2000, 4000),
    n_replicates=4,
    routers=("cosine", "perturbed_cosine"),
    experts=("tanh",),
    settings=("exact", "over"),
    inits=("truth",),
    max_iter=100,
    n_test=5000,
)
print(protocol)

# %%
# Run the fits and fit the slopes
# -------------------------------
# :func:`~sklearn_cosmoe.rates.run_experiment` returns one row per fit;
# :func:`~sklearn_cosmoe.rates.summarise` fits the least-squares slope of
# :math:`\log(\text{error})` against :math:`\log n` with a bootstrap 95%
# interval, next to the theory's value.
rows = rates.run_experiment(protocol, n_jobs=1, progress=False)
table = rates.summarise(rows)

print(f"{'router':>17} {'setting':>8} {'metric':>6} {'slope':>6}  95% interval    theory")
for t in (t for t in table if t["metric"] in ("D2", "D2_raw", "L2")):
    theory = "-" if t["theory"] == "" else f"{t['theory']:g}"
    print(f"{t['router']:>17} {t['setting']:>8} {t['metric']:>6} {t['slope']:6.2f}"
          f"  [{t['ci_low']:5.2f}, {t['ci_high']:5.2f}]  {theory:>6}  ({t['theory_note']})")

# %%
# The log-log figure
# ------------------
# One panel per router and setting: the geometric mean over replicates of the
# Voronoi loss :math:`\mathcal{D}_2` (canonical and raw) and of the :math:`L^2`
# error of the regression function, with the fitted lines and their slopes.  The grey
# dotted line has slope :math:`-1/2`.
colours = {"D2": "tab:orange", "D2_raw": "tab:purple", "L2": "tab:green"}
fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True, layout="constrained")
for ax_row, router in zip(axes, protocol.routers):
    for ax, setting in zip(ax_row, protocol.settings):
        group = [r for r in rows if r["router"] == router and r["setting"] == setting]
        sizes = np.array(protocol.n_grid, dtype=float)
        for metric, colour in colours.items():
            means = np.array([np.exp(np.mean(np.log([r[metric] for r in group
                                                      if r["n"] == n])))
                              for n in protocol.n_grid])
            fit = next(t for t in table if (t["router"], t["setting"], t["metric"])
                       == (router, setting, metric))
            ax.plot(sizes, means, "o", color=colour,
                    label=f"{metric}: slope {fit['slope']:.2f} "
                          f"[{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]")
            intercept = np.mean(np.log(means)) - fit["slope"] * np.mean(np.log(sizes))
            ax.plot(sizes, np.exp(intercept) * sizes ** fit["slope"], "--",
                    color=colour, lw=1)
        anchor = 2 * means[0]  # twice the L2 error at the smallest n (the last metric)
        ax.plot(sizes, anchor * (sizes / sizes[0]) ** -0.5, ":", color="grey",
                label="slope -1/2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:g}" for n in protocol.n_grid])
        ax.minorticks_off()
        k = group[0]["k"]
        ax.set_title(f"{router}, {setting} (k* = 2, k = {k})", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
for ax in axes[-1]:
    ax.set_xlabel("n")
plt.show()

# %%
# Reading the quick run
# ---------------------
# * The :math:`L^2` error of the regression function falls at a slope close to
#   :math:`-1/2` for both routers, as the theory says.
# * With four replicates and ``n`` at most 4000, the parameter slopes have wide
#   intervals, and a short grid cannot show a rate that is slower than every
#   power of ``n``.  The :doc:`results page </rates>` reports the full run and
#   investigates what its slopes do and do not show -- for instance why the
#   canonical loss, which sees only the direction of a cosine router's
#   :math:`\beta_{1i}`, falls at about :math:`n^{-1/2}` under both routers,
#   while the raw loss of the cosine router stays where the start left the
#   length of :math:`\beta_{1i}`.
# * To run the experiment yourself with other settings (router, expert,
#   ``tau1``, ``k``), build a :class:`~sklearn_cosmoe.rates.Protocol` as above,
#   or use the command line: ``python -m sklearn_cosmoe rates --help``.
