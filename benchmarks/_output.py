"""Where the benchmarks write their results, and from which tree.

Light on purpose (no NumPy, no sklearn_cosmoe): ``bench_runtime.py`` imports
it before anything that loads the package's kernels.
"""

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: The checkout these benchmarks belong to.
CHECKOUT = RESULTS.parent.parent


def git_describe():
    """``git describe --always --dirty`` of the checkout, or ``'unknown'``."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"],
                              cwd=RESULTS.parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def imported_package():
    """The folder ``import sklearn_cosmoe`` would load, found without loading it."""
    spec = importlib.util.find_spec("sklearn_cosmoe")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent


def output_folder(out, prefix="bench_"):
    """Where to write: ``out``, or a new temporary folder when it is None.

    Refuses the committed ``benchmarks/results`` (or a folder inside it) when
    the working tree has uncommitted changes, whose numbers no commit could
    reproduce, or when the package would be imported from another checkout
    than this one (an installed copy of another commit).
    """
    if out is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    out = Path(out)
    resolved = out.resolve()
    if resolved == RESULTS or RESULTS in resolved.parents:
        revision = git_describe()
        if revision == "unknown" or revision.endswith("-dirty"):
            sys.exit(f"refusing to write into {RESULTS}: the working tree is not clean "
                     f"(git describe: {revision}). Commit first, or pass another --out.")
        package = imported_package()
        if package is None or CHECKOUT not in package.parents:
            sys.exit(f"refusing to write into {RESULTS}: sklearn_cosmoe would be imported "
                     f"from {package}, not from this checkout, whose commit the results "
                     f"would name. Install this checkout (pip install -e .) or set "
                     f"PYTHONPATH={CHECKOUT}.")
    out.mkdir(parents=True, exist_ok=True)
    return out
