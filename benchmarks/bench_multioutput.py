"""Cost of one evaluation of the objective against the number of outputs ``m``.

With ``m`` outputs the gates are shared and each output has its own experts;
the objective is the sum over the outputs of single-output objectives
(user guide, :ref:`multi-output`), computed by running the fused loss and
gradient kernel once per output.  This script times one evaluation of
``sklearn_cosmoe._model.objective`` (loss and exact gradient) for a 1-d ``y``
and for ``y`` of shape ``(n, m)``, ``m = 1, 2, 4``, on the same rows, and
prints each against the 1-d evaluation, in the same process, under one timing
rule: the median of repeated calls (:func:`_common.time_call`), and of that
the median over ``--rounds`` sweeps over the rows, interleaved so that a busy
machine slows every row alike.  It also
times the exact least-squares step of linear experts (one gated Gram matrix,
``m`` right-hand sides) the same way.

    python benchmarks/bench_multioutput.py [--n 100000] [--d 10] [--k 8] [--rounds 5]
                                           [--out DIR]

Results go to ``multioutput.md`` / ``multioutput.json`` in a new temporary
folder or in ``--out``; ``--out benchmarks/results`` is refused from a dirty
tree.
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_time, git_describe, output_folder, time_call  # noqa: E402

from sklearn_cosmoe import _kernels  # noqa: E402
from sklearn_cosmoe._model import (MoEParams, MoESpec, gate_weights, objective,  # noqa: E402
                                   row_norms)

OUTPUTS = (1, 2, 4)


def random_params(rng, k, d, m):
    """Parameters of ``m`` outputs (``m = None``: the single-output layout)."""
    shape = (k, d) if m is None else (k, m, d)
    return MoEParams(rng.standard_normal((k, d)), rng.standard_normal(k),
                     rng.standard_normal(shape) / np.sqrt(d),
                     rng.standard_normal(shape[:-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = output_folder(args.out, prefix="bench_multioutput_")
    n, d, k = args.n, args.d, args.k
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    Y = np.asfortranarray(rng.standard_normal((n, max(OUTPUTS))))
    w = np.ones(n)
    x_norms = row_norms(X)
    base = MoESpec(alpha=1e-4)
    calls = {}
    for m in (None, *OUTPUTS):
        spec = replace(base, n_outputs=m)
        params = random_params(rng, k, d, m)
        theta = params.to_vector(spec)
        y = Y[:, 0] if m is None else Y[:, :m]
        gates = gate_weights(X, params, spec, x_norms)
        calls[m] = (
            lambda theta=theta, y=y, spec=spec: objective(theta, X, y, w, (k, d), spec,
                                                          x_norms),
            lambda y=y, gates=gates: _kernels.gated_gram(X, y, w, gates),
        )
    times = {m: ([], []) for m in calls}
    for _ in range(args.rounds):
        for m, (evaluate, least_squares) in calls.items():
            times[m][0].append(time_call(evaluate))
            times[m][1].append(time_call(least_squares))
    rows = [{"n_outputs": m, "evaluation_s": float(np.median(t_eval)),
             "least_squares_s": float(np.median(t_gram))}
            for m, (t_eval, t_gram) in times.items()]
    ref = rows[0]
    for row in rows:
        row["evaluation_ratio"] = row["evaluation_s"] / ref["evaluation_s"]
        row["least_squares_ratio"] = row["least_squares_s"] / ref["least_squares_s"]
    command = "python benchmarks/bench_multioutput.py " + " ".join(sys.argv[1:])
    report = {"git": git_describe(), "command": command.strip(), "n": n, "d": d, "k": k,
              "rounds": args.rounds, "rows": rows}
    lines = [
        "# Objective evaluation against the number of outputs",
        "",
        f"`{report['command']}`; git describe --dirty: `{report['git']}`; n = {n}, "
        f"d = {d}, k = {k}, linear experts, perturbed cosine router, dense gates. "
        f"Median wall time of one call (median over {args.rounds} interleaved rounds); "
        "ratios against the 1-d `y` in the same process.",
        "",
        "| y | objective + gradient | ratio | gated Gram (least squares) | ratio |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        label = "(n,)" if row["n_outputs"] is None else f"(n, {row['n_outputs']})"
        lines.append(f"| {label} | {fmt_time(row['evaluation_s'])} | "
                     f"{row['evaluation_ratio']:.2f}x | {fmt_time(row['least_squares_s'])} | "
                     f"{row['least_squares_ratio']:.2f}x |")
    text = "\n".join(lines) + "\n"
    (out / "multioutput.md").write_text(text)
    (out / "multioutput.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
