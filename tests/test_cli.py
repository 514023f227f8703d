"""The command line: ``python -m sklearn_cosmoe`` and its ``rates`` command."""
import subprocess
import sys

import pytest

from sklearn_cosmoe.__main__ import main
from sklearn_cosmoe.rates import _cli


def test_help_prints_the_full_usage_and_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m sklearn_cosmoe")
    for part in ("the demo", "rates --quick", "rates inspect", "-h, --help"):
        assert part in out
    assert main(["-h"]) == 0


def test_unknown_argument_exits_2_with_the_usage(capsys):
    assert main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown argument '--bogus'" in err and "usage:" in err


def test_module_entry_point_exit_codes():
    run = [sys.executable, "-m", "sklearn_cosmoe"]
    ok = subprocess.run(run + ["--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "rates" in ok.stdout
    bad = subprocess.run(run + ["nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2


def test_rates_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        _cli.main(["--help"])
    assert exit_.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_rates_legend_explains_every_column():
    for column in ("D1, D2", "D1_raw, D2_raw", "L2", "converged", "-1/2"):
        assert column in _cli.LEGEND


def test_rates_conclusion_reports_the_median_slopes():
    table = [{"router": r, "metric": m, "slope": s}
             for r, m, s in (("cosine", "D1", -0.2), ("cosine", "D1", -0.4),
                             ("perturbed_cosine", "D1", -0.5), ("cosine", "L2", -0.45),
                             ("perturbed_cosine", "L2", -0.55),
                             ("perturbed_cosine", "D1", float("nan")))]
    line = _cli.conclusion(table)
    assert line.startswith("Conclusion:") and "\n" not in line
    assert "L2 error -0.50" in line  # median of -0.45 and -0.55
    assert "cosine -0.30" in line and "perturbed_cosine -0.50" in line  # NaN left out
