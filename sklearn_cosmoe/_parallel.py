"""Threads and compilation for the kernels.

Threads: a kernel runs on a range of row blocks and releases the GIL, so a
small pool of Python threads owned by the package runs the ranges side by
side; the calling thread takes ranges too.  Waiting threads block, they never
spin, so a busy machine costs a fit only the cores it does not get.  The
number of threads follows scikit-learn's convention for its OpenMP code
(:func:`sklearn.utils._openmp_helpers._openmp_effective_n_threads`): it
honours ``OMP_NUM_THREADS``, ``threadpoolctl``'s OpenMP limit and the inner
thread limits of joblib's workers.  Inside a Dask worker, whose task threads
run tasks side by side, a kernel runs on one thread unless the worker's
environment sets ``OMP_NUM_THREADS`` (Dask's nanny sets it to 1 by default).
The pool is made again in a child after ``fork``, and the pool's threads
never submit work themselves.  The only
process-wide setting touched is BLAS's thread count, held to one while a
fit's optimiser runs (:func:`single_threaded_blas`) and then restored.

Compilation: each kernel has one signature, compiled (or read from numba's
disk cache) the first time it is needed, with read-only arrays for what it
only reads, so that writable and read-only inputs (memory-mapped arrays of
joblib's workers) share one machine code.  A compilation logs one message.
"""

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from numba.core import event
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from threadpoolctl import ThreadpoolController

logger = logging.getLogger("sklearn_cosmoe")

#: Rows below which a kernel runs in the calling thread alone.  Handing work
#: to another thread costs tens of microseconds: on the quiet 2-core machine
#: (benchmarks/results/runtime/, 4b522c8; k = 4, d = 10) one evaluation on 2
#: threads was 0.89x as fast as on 1 at 4000 rows and 1.15x at 8000, so the
#: two break even near 5500 rows.  The ``threads`` part of
#: benchmarks/bench_runtime.py measures it.
SERIAL_ROWS = 6000
#: Ranges of blocks per thread: the threads take ranges as they finish the
#: previous one, so a thread slowed by other processes takes fewer.
_RANGES_PER_THREAD = 4

_blas_controller = None  # made once: finding the loaded libraries takes milliseconds


def _reset_state():
    """The module's threads and locks as in a new process.

    Run at import and in the child after ``fork``: a forked child has none of
    the parent's threads, and a lock held by one of them would stay held.
    """
    global _pool, _pool_lock, _compile_lock, _blas_lock, _blas_users, _blas_limiter
    _pool = None  # made on demand
    _pool_lock = threading.Lock()
    _compile_lock = threading.Lock()
    _blas_lock = threading.Lock()
    _blas_users = 0
    _blas_limiter = None


_reset_state()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_state)


def _get_pool():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1) - 1),
                                           thread_name_prefix="sklearn_cosmoe")
    return _pool


def n_threads(n_samples, n_blk):
    """Threads for a pass over ``n_samples`` rows in ``n_blk`` blocks."""
    if n_samples < SERIAL_ROWS or n_blk < 2 or _in_dask_worker_by_default():
        return 1
    return max(1, min(_openmp_effective_n_threads(), n_blk))


def _in_dask_worker_by_default():
    """In a Dask worker's task, with no ``OMP_NUM_THREADS`` to say otherwise."""
    distributed = sys.modules.get("distributed")  # never imported here
    if distributed is None or "OMP_NUM_THREADS" in os.environ:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def run_blocks(kernel, n_blk, n_threads):
    """Call ``kernel(blk_start, blk_stop)`` on ranges that cover ``range(n_blk)``.

    ``kernel`` must release the GIL and write only the blocks of its range.
    The calling thread and ``n_threads - 1`` threads of the pool take ranges
    until none is left; the call returns when every range has run, without
    waiting for a pool thread that has not started one (on a busy machine it
    may not get a core for a while).  The first error of any range is raised.
    """
    if n_threads <= 1:
        kernel(0, n_blk)
        return
    n_ranges = min(n_blk, _RANGES_PER_THREAD * n_threads)
    bounds = [n_blk * r // n_ranges for r in range(n_ranges + 1)]
    lock = threading.Lock()
    all_done = threading.Event()
    state = {"next": 0, "done": 0}
    errors = []

    def work():
        while True:
            with lock:
                r = state["next"]
                if r == n_ranges:
                    return
                state["next"] = r + 1
            try:
                kernel(bounds[r], bounds[r + 1])
            except BaseException as error:  # raised in the calling thread
                errors.append(error)
            finally:
                with lock:
                    state["done"] += 1
                    if state["done"] == n_ranges:
                        all_done.set()

    pool = _get_pool()
    for _ in range(n_threads - 1):
        pool.submit(work)
    work()
    all_done.wait()  # every range has run: no thread writes into the arrays any more
    if errors:
        raise errors[0]


@contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread while the block runs, in every thread that enters.

    For the optimiser's small matrix operations (``scipy.optimize``'s
    L-BFGS-B): with more BLAS threads they wake and spin, 24 ms per iteration
    against 0.2 ms on one thread (OpenBLAS 0.3.30, 2 cores, 88 parameters),
    and OpenBLAS has no limit for one thread only.  The limit is set when the
    first of any concurrent blocks starts and the previous one restored when
    the last ends, so overlapping fits in several threads cannot leave it
    changed (``threadpool_limits`` entered from several threads would).
    The BLAS libraries are those loaded at the first fit (scipy's and
    NumPy's are).
    """
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:
                _blas_controller = ThreadpoolController()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


class _LogCompilation(event.Listener):
    logged = False

    def on_start(self, event):
        if not _LogCompilation.logged:
            _LogCompilation.logged = True
            logger.warning(
                "sklearn_cosmoe: compiling its numba kernels for this machine. This "
                "happens once: they are cached on disk for later processes."
            )

    def on_end(self, event):
        pass


_ready = set()


def compiled(dispatcher, signature):
    """``dispatcher`` with ``signature`` compiled or loaded from the disk cache.

    The first call compiles (logging once per process when numba really
    compiles); later calls convert their arguments to ``signature`` (a
    writable array to a read-only one) instead of compiling another version.
    """
    if dispatcher not in _ready:
        with _compile_lock:
            if dispatcher not in _ready:
                with event.install_listener("numba:compile", _LogCompilation()):
                    dispatcher.compile(signature)
                dispatcher.disable_compile()
                _ready.add(dispatcher)
    return dispatcher
