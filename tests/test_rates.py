import csv
import json
import tempfile
import time
from dataclasses import replace

import numpy as np
import pytest

from sklearn_cosmoe import rates
from sklearn_cosmoe.metrics import voronoi_loss
from sklearn_cosmoe.mixing import MixingMeasure


def test_default_protocol_spans_the_papers_experiment():
    p, family = rates.STUDIES["main"]
    assert p == rates.Protocol()
    assert len(p.n_grid) >= 8
    assert min(p.n_grid) == 1000 and max(p.n_grid) >= 100_000
    ratios = np.diff(np.log(p.n_grid))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-3)  # geometric
    assert p.n_replicates >= 20
    assert {"cosine", "perturbed_cosine"} <= set(p.routers)
    assert set(p.settings) == {"exact", "over"}
    assert set(p.experts) == {"tanh", "linear"}
    assert set(p.inits) == {"truth", "estimator"}
    # more than one truth: d in {2, 5}, k* in {2, 3}, several seeds each
    dims = {(rates.truth_measure(t, "cosine", "tanh").n_features,
             rates.truth_measure(t, "cosine", "tanh").n_experts) for t in family.truths}
    assert dims == {(2, 2), (2, 3), (5, 2), (5, 3)}
    assert len(family.truths) >= 2 * len(dims)
    assert set(family.routers) == set(p.routers) and set(family.experts) == set(p.experts)
    assert set(family.settings) == {"exact", "over"}


def test_truth_measure():
    G = rates.truth_measure("d5-k3-s1", "perturbed_cosine", "tanh")
    H = rates.truth_measure("d5-k3-s1", "cosine", "tanh")
    assert (G.n_features, G.n_experts) == (5, 3)
    # the same arrays for both routers (tau1 = 1), as for the main truth
    np.testing.assert_array_equal(G.gate_coef, H.gate_coef)
    main = rates.truth_measure("main", "cosine", "linear")
    np.testing.assert_array_equal(main.gate_coef, rates.true_measure("cosine", "linear").gate_coef)
    with pytest.raises(ValueError, match="truth must be 'main' or"):
        rates.truth_measure("d5k3", "cosine", "tanh")


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
    assert rates.theory_slope("perturbed_cosine", "tanh", "over", "D1_raw")[0] == -0.25
    assert rates.theory_slope("cosine", "tanh", "exact", "D2_raw")[1] == "as slow as 1/log^tau n"
    with pytest.raises(ValueError, match="metric must be one of"):
        rates.theory_slope("cosine", "tanh", "exact", "D3")


def _strip(rows):
    # timings go; NaN (no gate-norm change from the estimator's start) compares equal
    return [{k: "nan" if v != v else v for k, v in r.items()
             if k not in ("seconds", "cpu_seconds")} for r in rows]


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
        assert row["D1_raw"] >= 0 and row["D2_raw"] >= 0
        # the near-truth start records how far the gate norms moved
        assert np.isfinite(row["gate_norm_change"]) == (row["init"] == "truth")


def test_random_truths_are_fitted_and_seeded_apart():
    protocol = replace(rates.QUICK, n_grid=(300,), n_replicates=1, truths=("main", "d5-k3-s1"),
                       routers=("cosine",), experts=("tanh",), settings=("over",),
                       inits=("truth",), max_iter=5, n_test=200)
    main, family = rates.run_experiment(protocol, progress=False)
    assert (family["truth"], family["d"], family["k_true"], family["k"]) == ("d5-k3-s1", 5, 3, 4)
    assert (main["d"], main["k"]) == (2, 3)
    # the raw loss sees the cosine router's gate lengths; the canonical one does not
    assert family["D1_raw"] != family["D1"]


def test_near_truth_fit_improves_on_its_start():
    protocol = replace(rates.QUICK, n_grid=(4000,), n_replicates=1, truths=("main",),
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
    assert "wall time" in out and "| truth | router |" in out

    main, family = (rates.quick(p) for p in rates.STUDIES["main"])
    with open(tmp_path / "rates.csv") as handle:
        rows = list(csv.DictReader(handle))
    n_main = len(main.n_grid) * main.n_replicates * 2 * 2 * 2 * 2
    n_family = len(family.n_grid) * len(family.truths) * 2 * 2 * 2
    assert len(rows) == n_main + n_family
    assert set(rows[0]) >= {"truth", "router", "expert", "setting", "init", "n",
                            "D1", "D2", "D1_raw", "D2_raw", "L2"}
    assert {r["router"] for r in rows} == {"cosine", "perturbed_cosine"}
    assert {r["truth"] for r in rows} == {"main", *family.truths}
    assert all(float(r["L2"]) > 0 for r in rows)

    slopes = rates.read_csv(tmp_path / "slopes.csv")
    assert len(slopes) == (16 + 8 * len(family.truths)) * len(rates.METRICS)
    l2 = [s["slope"] for s in slopes if s["metric"] == "L2" and s["init"] == "truth"
          and s["truth"] == "main"]
    assert all(-1.0 < v < -0.2 for v in l2), l2  # rough even on the quick grid
    assert "Random truths" in (tmp_path / "tables.md").read_text()
    assert len(rates.read_csv(tmp_path / "family.csv")) == 8 * len(rates.METRICS)

    figures = ("rates_truth.png", "rates_estimator.png", "rates_paper_canonical.png",
               "rates_paper_raw.png")
    for name in figures:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((tmp_path / "protocol.json").read_text())
    assert record["parts"][0]["n_grid"] == list(main.n_grid)
    assert record["study"] == "main" and record["quick"] is True
    assert record["commit"] == rates.git_state()["commit"]
    # (its wall time, under a minute on a quiet machine, is reported by the
    # command and in doc/rates.md: speed is not asserted in tests)
    assert record["wall_seconds"] <= wall

    # slopes, tables and figures are a pure function of the CSV: --replot gives the same bytes
    outputs = ("slopes.csv", "tables.md", "family.csv", "estimator_vs_truth.csv", *figures)
    before = {name: (tmp_path / name).read_bytes() for name in outputs}
    assert rates.main(["--out", str(tmp_path), "--replot"]) == 0
    for name in outputs:
        assert (tmp_path / name).read_bytes() == before[name], name


def test_outputs_go_to_a_temporary_folder_and_committed_ones_need_a_clean_tree(
        tmp_path, monkeypatch, capsys):
    from sklearn_cosmoe.rates import _cli

    small = ["--study", "temperature", "--quick", "--routers", "cosine", "--no-figure",
             "--n-jobs", "1"]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert rates.main(small) == 0
    (made,) = tmp_path.iterdir()
    assert (made / "rates.csv").exists() and str(made) in capsys.readouterr().out

    committed = tmp_path / "committed"
    monkeypatch.setattr(_cli, "COMMITTED", committed)
    monkeypatch.setattr(_cli, "git_state", lambda: {"describe": "abc-dirty",
                                                    "commit": "abc", "dirty": True})
    with pytest.raises(SystemExit, match="refusing to write into .*clean commit"):
        rates.main([*small, "--out", str(committed / "main")])
    assert not committed.exists()
    monkeypatch.setattr(_cli, "git_state", lambda: {"describe": "abc", "commit": "abc",
                                                    "dirty": False})
    assert rates.main([*small, "--out", str(committed / "main")]) == 0
    assert json.loads((committed / "main" / "protocol.json").read_text())["commit"] == "abc"


def test_inspect_prints_a_fit_beside_the_truth(capsys):
    assert rates.main(["inspect", "--router", "cosine",
                       "--expert", "tanh", "--setting", "exact", "--n", "1000"]) == 0
    out = capsys.readouterr().out
    assert out.count("  atom ") == 4 and "fitted:" in out and "true:" in out
    with pytest.raises(SystemExit, match="--n must be one of the grid"):
        rates.main(["inspect", "--n", "7"])


def test_command_line_options(monkeypatch):
    from sklearn_cosmoe.rates._cli import _parser, protocols_from

    args = _parser().parse_args(
        ["--n-min", "100", "--n-max", "400", "--n-sizes", "3", "--routers",
         "linear", "--experts", "tanh", "--settings", "exact", "--inits", "truth",
         "--replicates", "2", "--seed", "5", "--max-iter", "10", "--study", "long"])
    (protocol,) = protocols_from(args)
    assert protocol.n_grid == (100, 200, 400)
    assert protocol.routers == ("linear",)
    assert (protocol.n_replicates, protocol.seed, protocol.max_iter) == (2, 5, 10)
    assert protocol.tol == 1e-15  # the study's own settings stay
    # two parts of a study may not repeat a fit: their rows could not be told apart
    from sklearn_cosmoe.rates import _cli

    monkeypatch.setitem(_cli.STUDIES, "twice", (rates.QUICK, rates.QUICK))
    with pytest.raises(ValueError, match="must not repeat a fit"):
        protocols_from(_parser().parse_args(["--study", "twice"]))
    bad = _parser().parse_args(["--settings", "under"])
    with pytest.raises(ValueError, match="--settings must be among"):
        protocols_from(bad)
    bad = _parser().parse_args(["--n-min", "500", "--n-max", "100"])
    with pytest.raises(ValueError, match="--n-min"):
        protocols_from(bad)
