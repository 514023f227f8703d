"""The parsing of benchmarks/check_results.py on small texts and a tiny repository."""
import importlib.util
import io
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "check_results.py"
_spec = importlib.util.spec_from_file_location("check_results", _PATH)
cr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cr)


def _tokens(text, suffix=".md"):
    return [tok for _, tok, *_ in cr.quoted_numbers(text, suffix)]


def test_quoted_numbers_in_prose_with_units():
    text = "The fit is 12.3x faster, R² 0.895, 95.1% of truths, 13.3 s and 5.6 ms; k = 4, n = 1e5."
    assert _tokens(text) == ["12.3", "0.895", "95.1%", "13.3", "5.6 ms"]
    (_, _, value, decimals, unit), = cr.quoted_numbers("agree to 8.6e-15", ".md")
    assert (value, decimals, unit) == (Decimal("8.6e-15"), 1, "")


def test_code_versions_and_references_are_not_quoted_numbers():
    md = ("Install `pip install x==1.2` and use `alpha=0.5`; math $0.25 x$.\n"
          "scikit-learn 1.9.1, Python 3.10, requires >=1.24, Theorem 4.2, arXiv:2405.14131.\n"
          "See [the file](results/a/0.77.md).\n\n"
          "```python\nreg.fit(X, y)  # 0.9824\n```\n\n"
          "    python run.py --tol 0.001\n\n"
          ">>> 0.123\n")
    assert _tokens(md) == []
    rst = ("Text 0.5 ``0.25`` :math:`0.75`::\n\n    literal 0.33\n\n"
           ".. code-block:: python\n\n   x = 0.44\n\nAfter 0.66.\n")
    assert _tokens(rst, ".rst") == ["0.5", "0.66"]


def test_rst_section_underlines_are_not_code_fences():
    # "~~~" opens a fenced code block in Markdown only; in reStructuredText it
    # underlines a title, and the prose below it is still checked
    rst = "Title\n~~~~~\n\nR² 0.957 on Friedman.\n\nNext\n````\n\nThen 0.25.\n"
    assert _tokens(rst, ".rst") == ["0.957", "0.25"]


def test_provenance_patterns():
    assert cr.provenance("Versions: pkg (git describe --dirty: 7c9efe7), numpy") == "7c9efe7"
    assert cr.provenance('{"git": "f5c9770", "n": 3}') == "f5c9770"
    assert cr.provenance("Revision: `622b4e7`; run time 429 s") == "622b4e7"
    assert cr.provenance("# Runtime benchmark at fbcc2ab\n") == "fbcc2ab"
    assert cr.provenance("# Dask: fits by chunks (f5c9770)\n") == "f5c9770"
    # a title line followed by the rest of the file
    assert cr.provenance("# The two minimisers (f811527)\n\nCommand: x\n") == "f811527"
    assert cr.provenance("no commit here, 0.5 s") is None


def test_rounding_units_and_citations():
    index = cr.ResultsIndex({"r/a.md": "ratio 2.647, time 0.0056 s, share 0.951",
                             "r/b.md": "value 3.90"})
    assert index.files_holding(Decimal("2.65"), 2) == {"r/a.md"}
    assert index.files_holding(Decimal("2.6"), 1) == {"r/a.md"}
    assert index.files_holding(Decimal("2.7"), 1) == set()  # 2.647 rounds to 2.6
    assert index.files_holding(Decimal("5.6"), 1, "ms") == {"r/a.md"}
    assert index.files_holding(Decimal("95.1"), 1, "%") == {"r/a.md"}
    assert index.files_holding(Decimal("3.9"), 1) == {"r/b.md"}
    assert index.files_holding(Decimal("3.9"), 1, among={"r/a.md"}) == set()
    paths = ["benchmarks/results/memory.md", "benchmarks/results/runtime/runtime.md"]
    assert cr.cited_files("as `results/memory.md` says", paths) == {paths[0]}
    assert cr.cited_files("(`results/runtime/`)", paths) == {paths[1]}
    assert cr.cited_files("no file named", paths) == set()
    assert cr.blocks("a\nb\n\n* c\n* d") == [0, 0, 1, 1, 2]


def test_long_json_arrays_are_not_sources():
    trace = ", ".join(f"{0.5 + i / 1000:.3f}" for i in range(cr.BULK_ARRAY + 1))
    short = ", ".join(f"{0.9 + i / 1000:.3f}" for i in range(cr.BULK_ARRAY))
    index = cr.ResultsIndex({"r/a.json": f'{{"time": 4.76, "loss": [{trace}], "folds": [{short}]}}',
                             "r/a.md": f"loss [{trace}]"})
    assert index.files_holding(Decimal("4.76"), 2) == {"r/a.json"}
    assert index.files_holding(Decimal("0.501"), 3) == {"r/a.md"}  # only the prose file
    assert index.files_holding(Decimal("0.901"), 3) == {"r/a.json"}  # a short array counts


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.mark.parametrize("strict", [False, True])
def test_exit_status_on_a_tiny_repository(tmp_path, strict):
    (tmp_path / "sklearn_cosmoe").mkdir()
    (tmp_path / "sklearn_cosmoe" / "m.py").write_text("x = 1\n")
    res = tmp_path / "benchmarks" / "results"
    res.mkdir(parents=True)
    (tmp_path / "README.md").write_text("Fast: 12.3x (`results/speed.md`).\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "start")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    (res / "speed.md").write_text(f"git describe --dirty: {head}\n\nratio 12.31\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    out = io.StringIO()
    # the package changed since the results' commit: stale, a failure only with --strict
    assert cr.check(tmp_path, strict=strict, out=out) == (1 if strict else 0)
    assert f"benchmarks/results/speed.md  {head}" in out.getvalue()
    assert "changed" in out.getvalue()
    (tmp_path / "README.md").write_text("Fast: 12.4x (`results/speed.md`).\n")
    out = io.StringIO()
    assert cr.check(tmp_path, out=out) == 1
    assert "README.md:1: 12.4" in out.getvalue()
