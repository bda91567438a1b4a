"""Where tasks run: in this process, on a local pool of worker processes, or on a Dask
cluster; ``compress`` and ``batch`` both run their files through :func:`run_tasks`.

Workers of the local pool are forked after the method's libraries were imported once (from
this process, or from a fork server when forking it is not safe), run single-threaded (one
worker per core), and stop with their run. Dask workers get the same tasks.
"""

from __future__ import annotations

import contextlib
import os

from .errors import InvalidParameterError, MissingDependencyError

__all__ = ["run_tasks", "worker_pool", "dask_client", "usable_cores"]


def run_tasks(function, tasks: list, settings, *, jobs: int | None = None, client=None,
              ordered: bool = False, preload: str = "colorquant.compress", lost=None):
    """Yield ``function(task)`` for every task: in this process when one job (or one task)
    is enough, else on a local process pool of ``jobs`` workers, or on a Dask ``client``.

    Results come as tasks finish, or in the tasks' order with ``ordered``. At most a few
    tasks per worker are in flight, so memory stays flat for any number of tasks.

    lost : callable(task, WorkerLostError) -> result, for a task whose worker process died
        under it (SIGKILL from the out-of-memory killer, say): the pool is rebuilt and the
        other tasks are done. Without it, the error is raised.
    """
    if not tasks:
        return
    if client is not None:
        yield from _run_on_dask(function, tasks, client)
        return
    jobs = min(jobs or usable_cores(), usable_cores(), len(tasks))
    if jobs <= 1:  # one input never starts a process pool
        for task in tasks:
            yield function(task)
        return
    yield from _run_on_pool(function, tasks, settings, jobs, ordered, preload, lost)


def usable_cores() -> int:
    """The cores this process may run on. More workers than that only fight over them, so
    ``--jobs`` is capped here (pngquant's and make's users expect a number, not a crash)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_on_pool(function, tasks, settings, jobs: int, ordered: bool, preload: str, lost):
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    window = 4 * jobs
    pending_tasks = iter(tasks)
    pool = worker_pool(jobs, settings, preload=preload)
    try:
        in_flight = [(_submit(pool, function, task), task) for task in _take(pending_tasks, window)]
        while in_flight:
            futures = [future for future, _ in in_flight]
            if ordered:
                wait(futures[:1])
                done = {futures[0]}
            else:
                done = wait(futures, return_when=FIRST_COMPLETED)[0]
            if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
                # A worker died under its task, and the pool with it: every task in flight
                # is either finished or lost. Those lost are run again, one at a time, so
                # the one that kills its worker again is known; then a new pool goes on.
                _stop_workers(pool)
                for result in _rerun_alone(function, in_flight, settings, preload, lost):
                    yield result
                pool = worker_pool(jobs, settings, preload=preload)
                in_flight = [(_submit(pool, function, task), task) for task in _take(pending_tasks, window)]
                continue
            finished = [(future, task) for future, task in in_flight if future in done]
            for pair in finished:
                in_flight.remove(pair)
                yield pair[0].result()
            in_flight += [(_submit(pool, function, task), task) for task in _take(pending_tasks, len(finished))]
    except BaseException:
        # Ctrl-C, SIGTERM, a closed pipe, the consumer stopping early: queued tasks are
        # dropped and running ones stopped now, not finished first.
        _stop_workers(pool)
        raise
    pool.shutdown()


def _submit(pool, function, task):
    """``pool.submit``, or for a pool that broke since the last wait (a worker died while
    the results before it were taken) a future that failed with BrokenProcessPool, so the
    task is rerun with the others in flight when the break is reached."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    try:
        return pool.submit(function, task)
    except BrokenProcessPool as error:
        future = Future()
        future.set_exception(error)
        return future


def _rerun_alone(function, in_flight, settings, preload: str, lost):
    """Results of the tasks in flight when the pool broke, in their order: those that had
    finished as they were, the others run again alone in a one-worker pool; a task whose
    worker dies again is ``lost``."""
    from concurrent.futures.process import BrokenProcessPool

    from .errors import WorkerLostError

    solo = None
    try:
        for future, task in in_flight:
            if future.done() and not future.cancelled() and not isinstance(future.exception(), BrokenProcessPool):
                yield future.result()  # finished before the break (its own error raised as ever)
                continue
            solo = solo or worker_pool(1, settings, preload=preload)
            try:
                yield solo.submit(function, task).result()
            except BrokenProcessPool:
                _stop_workers(solo)
                solo = None
                error = WorkerLostError("its worker process died while compressing it (killed by "
                                        "the system, perhaps for want of memory); the other "
                                        "inputs were done")
                if lost is None:
                    raise error from None
                yield lost(task, error)
    except BaseException:
        if solo is not None:
            _stop_workers(solo)  # Ctrl-C, SIGTERM: stop now, as the pool does
        raise
    if solo is not None:
        solo.shutdown()


def _stop_workers(pool) -> None:
    """Cancel what has not started and stop the workers (SIGTERM: each removes its temporary
    file and exits; SIGKILL for one that has not gone within two seconds)."""
    # ProcessPoolExecutor has no public way to stop running tasks before Python 3.14
    # (terminate_workers); its ``_processes`` has held the worker processes since 3.2.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(1)


@contextlib.contextmanager
def dask_client(scheduler: str | None, jobs: int | None):
    """A Dask client for ``scheduler`` ('local' starts a LocalCluster), or None without one.

    Connecting comes first, before any file is touched, so a wrong address fails fast.
    """
    if not scheduler:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError(
            "--scheduler needs Dask: pip install 'colorquant[dask]'") from None
    cluster = None
    if scheduler == "local":
        import logging

        # Dask's own log lines (a worker removed, a task cancelled) are not the user's news:
        # the run says what happened, in one line
        for name in ("distributed", "tornado"):  # tornado: callbacks cut short by the workers' stop
            logging.getLogger(name).setLevel(logging.CRITICAL)
        cluster = LocalCluster(n_workers=min(jobs or usable_cores(), usable_cores()), threads_per_worker=1,
                               processes=True, dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        # Our own workers: on Ctrl-C they are stopped at once, as the local pool's are (a
        # cancelled Dask task that is running finishes, and would write its output after the
        # run said it stopped)
        _LOCAL_WORKERS[id(client)] = sorted(client.run(os.getpid).values())
    else:
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, ValueError, TypeError) as error:
            raise InvalidParameterError(
                f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        yield client
    finally:
        _LOCAL_WORKERS.pop(id(client), None)
        client.close()
        if cluster is not None:
            cluster.close()


# id(client) -> worker process ids, for clusters this process started (--scheduler local)
_LOCAL_WORKERS: dict = {}


def stop_local_workers(client) -> None:
    """SIGKILL the worker processes of a local cluster this process started (nothing for a
    remote scheduler's workers, which are not ours to stop); their temporary files are the
    caller's to remove."""
    import signal

    for pid in _LOCAL_WORKERS.get(id(client), ()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _run_on_dask(function, tasks, client):
    from dask.distributed import as_completed

    window = 4 * max(1, sum(client.nthreads().values()))
    pending_tasks = iter(tasks)
    in_flight = {client.submit(function, task, pure=False) for task in _take(pending_tasks, window)}
    futures = as_completed(in_flight)
    try:
        for future in futures:
            in_flight.discard(future)
            yield future.result()
            for task in _take(pending_tasks, 1):
                submitted = client.submit(function, task, pure=False)
                in_flight.add(submitted)
                futures.add(submitted)
    except BaseException:
        if id(client) in _LOCAL_WORKERS:
            stop_local_workers(client)  # our own cluster: its running tasks stop now, with it
        else:
            client.cancel(list(in_flight))  # another's cluster: queued tasks are dropped
        raise


def _take(iterator, count: int) -> list:
    taken = []
    while len(taken) < count:
        item = next(iterator, None)
        if item is None:
            break
        taken.append(item)
    return taken


def worker_pool(jobs: int, settings, preload: str = "colorquant.compress"):
    """A process pool for compressing files in parallel, one single-threaded worker per job.

    Workers fork from this process when that is safe (Linux, no other thread, no OpenMP
    runtime or numba loaded), after it imported the method's libraries once: starting two
    workers this way took 0.02 s, against 0.2 s through a fork server. Otherwise they fork
    from a fresh server process that imported the libraries (safe after OpenMP code ran:
    GNU OpenMP's thread pool does not survive fork and spins forever), or are spawned where
    there is no fork at all. Workers exit when the process that started them dies.
    """
    import importlib
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    modules = [preload, *settings.method_spec.imports, *_PRELOADED]
    if _fork_is_safe():
        for module in modules:
            importlib.import_module(module)
        context = multiprocessing.get_context("fork")
    elif "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(modules)
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(),))


# Imported before the workers start, so that no worker pays for them.
_PRELOADED = ("deflate",)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _fork_is_safe() -> bool:
    """Whether forking this process gives sound workers: only Linux (macOS's system
    libraries do not survive fork), one thread (a lock held by another thread stays locked in
    the child forever), and no thread pool that does not survive fork (OpenMP's, numba's)."""
    import sys
    import threading

    if sys.platform != "linux" or threading.active_count() > 1 or "numba" in sys.modules:
        return False
    from threadpoolctl import threadpool_info

    return not any(pool["user_api"] == "openmp" for pool in threadpool_info())


def _start_worker(run_pid: int) -> None:
    """Ties a worker's life to the run's and makes it single-threaded."""
    import signal

    # The run decides when to stop: Ctrl-C reaches the whole process group, but only the
    # run acts on it, by sending its workers SIGTERM; a worker stops at once, removing the
    # temporary file it is writing (unwinding would not do: the pool's worker loop catches
    # every exception and would go on to the next task).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda number, frame: _stop_now())
    _exit_with(run_pid)
    # One process per core: threads inside each would only fight over the cores (measured:
    # 0.65 s per photo with two workers left multi-threaded, 0.45 s single-threaded).
    # Thread pools not started yet read the variables (numba's); those already
    # loaded (OpenMP, BLAS) are limited by threadpoolctl.
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _exit_with(run_pid: int) -> None:
    """Stop this worker as soon as the run that started it ends, however it ends: killed by
    SIGKILL, nothing else would tell it. A fork server's workers would
    otherwise wait for tasks for good, and keep the fork server alive with them."""
    import threading

    try:
        handle = os.pidfd_open(run_pid)  # Linux: readable once the process has exited
    except ProcessLookupError:
        _stop_now()
    except (AttributeError, OSError):
        handle = None  # elsewhere: look every half second
    threading.Thread(target=_watch, args=(run_pid, handle), name="colorquant-run-watch", daemon=True).start()


def _watch(run_pid: int, handle: int | None) -> None:
    import select
    import time

    if handle is not None:
        select.select([handle], [], [])
    else:
        while _running(run_pid):
            time.sleep(0.5)
    _stop_now()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_now() -> None:
    """Exit at once (status 143, as for SIGTERM), leaving no temporary file behind; an
    output already renamed into place is whole, and a batch re-run adopts it."""
    from .storage import discard_live_temporaries

    discard_live_temporaries()
    os._exit(128 + 15)
