import csv
import json
import time
from dataclasses import replace

import numpy as np
import pytest

from sklearn_cosmoe import rates
from sklearn_cosmoe.metrics import voronoi_loss
from sklearn_cosmoe.mixing import MixingMeasure


def test_default_protocol_meets_the_issue():
    p = rates.Protocol()
    assert len(p.n_grid) >= 8
    assert min(p.n_grid) == 1000 and max(p.n_grid) >= 100_000
    ratios = np.diff(np.log(p.n_grid))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-3)  # geometric
    assert p.n_replicates >= 20
    assert {"cosine", "perturbed_cosine"} <= set(p.routers)
    assert set(p.settings) == {"exact", "over"}
    assert set(p.experts) == {"tanh", "linear"}
    assert set(p.inits) == {"truth", "estimator"}


@pytest.mark.parametrize("k", [2, 3, 4])
def test_near_truth_start_without_noise_is_the_truth(k):
    true = rates.true_measure("perturbed_cosine", "tanh")
    start = rates.near_truth_start(true, k, 0.0, np.random.default_rng(0))
    assert start.shape == (k, 2)
    G = MixingMeasure(start.gate_coef, start.gate_intercept, start.expert_coef,
                      start.expert_intercept, expert="tanh")
    # the split copies keep the first atom's weight: the same measure
    assert voronoi_loss(G, true, "D1") == pytest.approx(0.0, abs=1e-14)
    assert (start.output_scale, start.output_intercept) == (1.0, 0.0)


def test_near_truth_start_noise_and_errors():
    true = rates.true_measure("cosine", "linear")
    a = rates.near_truth_start(true, 3, 0.1, np.random.default_rng(0))
    b = rates.near_truth_start(true, 3, 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(a.gate_coef, b.gate_coef)
    G = MixingMeasure(a.gate_coef, a.gate_intercept, a.expert_coef,
                      a.expert_intercept, router="cosine")
    assert 0 < voronoi_loss(G, true) < 1
    with pytest.raises(ValueError, match="n_experts must be >="):
        rates.near_truth_start(true, 1, 0.1, np.random.default_rng(0))


def test_fit_slope_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e3, 1e5, 8), 20)
    values = 3.0 * n ** -0.5 * np.exp(0.3 * rng.standard_normal(n.size))
    slope, low, high = rates.fit_slope(n, values)
    assert low < slope < high
    assert low < -0.5 < high
    assert high - low < 0.1
    # non-positive or NaN errors are left out, not propagated
    values[:5] = np.nan
    values[5] = 0.0
    assert np.isfinite(rates.fit_slope(n, values)[0])
    assert np.isnan(rates.fit_slope([10, 10], [1.0, 2.0])[0])


def test_theory_table():
    assert rates.theory_slope("cosine", "linear", "over", "L2")[0] == -0.5
    assert rates.theory_slope("perturbed_cosine", "tanh", "exact", "D2")[0] == -0.5
    assert rates.theory_slope("perturbed_cosine", "tanh", "over", "D1")[0] == -0.25
    assert rates.theory_slope("cosine", "tanh", "exact", "D1")[0] is None
    assert rates.theory_slope("perturbed_cosine", "linear", "exact", "D1")[0] is None


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in rows]


def test_results_do_not_depend_on_n_jobs():
    protocol = replace(rates.QUICK, n_grid=(150, 300), n_replicates=2,
                       routers=("perturbed_cosine",), max_iter=20, n_test=500)
    serial = rates.run_experiment(protocol, n_jobs=1, progress=False)
    parallel = rates.run_experiment(protocol, n_jobs=2, progress=False)
    assert len(serial) == 2 * 2 * 2 * 2 * 2
    assert _strip(serial) == _strip(parallel)
    for row in serial:
        assert row["k"] == row["k_true"] + (row["setting"] == "over")
        assert row["D2"] >= 0 and row["D1"] >= 0 and row["L2"] > 0


def test_near_truth_fit_improves_on_its_start():
    protocol = replace(rates.QUICK, n_grid=(4000,), n_replicates=1,
                       routers=("perturbed_cosine",), experts=("tanh",),
                       settings=("exact",), inits=("truth",), max_iter=200)
    (row,) = rates.run_experiment(protocol, progress=False)
    assert row["converged"]
    # the start's D1 is about 0.1 * sqrt(5) per atom; the fit is much closer
    assert row["D1"] < 0.1
    assert row["L2"] < 0.01  # noise 0.1, 4000 rows, 12 parameters
    assert abs(row["output_scale"] - 1) < 0.1 and abs(row["output_intercept"]) < 0.1


def test_quick_command_writes_csv_slopes_and_figures(tmp_path, capsys):
    start = time.perf_counter()
    assert rates.main(["--quick", "--out", str(tmp_path), "--n-jobs", "2"]) == 0
    wall = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "wall time" in out and "| router |" in out

    p = rates.QUICK
    with open(tmp_path / "rates.csv") as handle:
        rows = list(csv.DictReader(handle))
    per_setting = len(p.n_grid) * p.n_replicates
    assert len(rows) == per_setting * 2 * 2 * 2 * 2
    assert set(rows[0]) >= {"router", "expert", "setting", "init", "n", "D1", "D2", "L2"}
    assert {r["router"] for r in rows} == {"cosine", "perturbed_cosine"}
    assert all(float(r["L2"]) > 0 for r in rows)

    with open(tmp_path / "slopes.csv") as handle:
        slopes = list(csv.DictReader(handle))
    assert len(slopes) == 16 * 3
    l2 = [float(s["slope"]) for s in slopes if s["metric"] == "L2" and s["init"] == "truth"]
    assert all(-1.0 < v < -0.2 for v in l2), l2  # rough even on the quick grid

    for init in ("truth", "estimator"):
        figure = tmp_path / f"rates_{init}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "protocol.json").read_text())["n_grid"] == list(p.n_grid)
    # the issue's bar; generous because the test machine is shared
    assert wall < 120

    # slopes and figures are a pure function of the CSV: --replot gives the same bytes
    outputs = ("slopes.csv", "rates_truth.png", "rates_estimator.png")
    before = {name: (tmp_path / name).read_bytes() for name in outputs}
    assert rates.main(["--out", str(tmp_path), "--replot"]) == 0
    for name in outputs:
        assert (tmp_path / name).read_bytes() == before[name], name


def test_command_line_options(tmp_path):
    args = rates._parser().parse_args(
        ["--n-min", "100", "--n-max", "400", "--n-sizes", "3", "--routers",
         "linear", "--experts", "tanh", "--settings", "exact", "--inits", "truth",
         "--replicates", "2", "--seed", "5", "--max-iter", "10"])
    protocol = rates._protocol_from(args)
    assert protocol.n_grid == (100, 200, 400)
    assert protocol.routers == ("linear",)
    assert (protocol.n_replicates, protocol.seed, protocol.max_iter) == (2, 5, 10)
    bad = rates._parser().parse_args(["--settings", "under"])
    with pytest.raises(ValueError, match="--settings must be among"):
        rates._protocol_from(bad)
    bad = rates._parser().parse_args(["--n-min", "500", "--n-max", "100"])
    with pytest.raises(ValueError, match="--n-min"):
        rates._protocol_from(bad)
