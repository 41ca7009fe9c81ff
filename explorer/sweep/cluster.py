"""Dask: :func:`connect` to a scheduler (probed first, so a wrong address fails in seconds)
or start a local cluster of one-thread workers."""

from __future__ import annotations

import os
from typing import Any

from explorer.errors import InputError


def _probe_scheduler(address: str, timeout: float) -> None:
    """Raise InputError unless a Dask scheduler answers at ``address`` within ``timeout`` s.

    Asks for its identity on a private event loop in a helper thread, so that a closed
    port, an unknown host or a service that is not Dask (whatever it sends back) gives
    one clear message in seconds, not a hang or a traceback."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.core import rpc

    async def identity() -> Any:
        remote = rpc(address, timeout=timeout)
        try:
            return await remote.identity()
        finally:
            await remote.close_rpc()

    def ask() -> Any:
        return asyncio.run(asyncio.wait_for(identity(), timeout))

    pool = ThreadPoolExecutor(1, thread_name_prefix="explorer-probe")
    try:
        info = pool.submit(ask).result(timeout + 5)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InputError(f"--scheduler: cannot reach the Dask scheduler at {address} within "
                         f"{timeout:g} s ({reason[:120]}); is `dask scheduler` running there "
                         "and the port open?") from None
    finally:
        pool.shutdown(wait=False)
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        kind = info.get("type") if isinstance(info, dict) else type(info).__name__
        raise InputError(f"--scheduler: {address} answers, but is a Dask {kind}, not the "
                         "scheduler (its port is usually 8786)")


NO_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
"""Dask config key unset for our workers (see :func:`connect`); for ``dask worker`` on
other machines set it to null in a Dask config file (docs/scaling.md)."""


def default_workers() -> int:
    """Cores this process may use (one Dask worker process per core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def connect(scheduler: str | None = None, workers: int | None = None,
            timeout: float = 3.0) -> tuple[Any, Any]:
    """A Dask ``(client, cluster)``: an existing scheduler (``tcp://HOST:8786``; cluster
    None) or a new ``LocalCluster`` of ``workers`` processes (default: one per core), one
    thread each. An unreachable scheduler raises InputError within ``timeout`` seconds."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if not isinstance(scheduler, str) or "://" not in scheduler or \
                not scheduler.rsplit(":", 1)[-1].isdigit():
            raise InputError(f"--scheduler: expected an address such as tcp://HOST:8786, got "
                             f"{scheduler!r}")
        _probe_scheduler(scheduler, timeout)
        try:
            client = Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
        except Exception as exc:  # it answered the probe, then went away
            raise InputError(f"--scheduler: could not connect to the Dask scheduler at "
                             f"{scheduler} ({type(exc).__name__}: {exc})") from None
        return client, None
    n = default_workers() if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 512:
        raise InputError(f"--workers: must be an integer 1 … 512, got {workers!r}")
    # Dask sets MALLOC_TRIM_THRESHOLD_ for its workers; any value turns off glibc's dynamic
    # mmap threshold, so every large torch buffer is mmapped and zero-filled anew: measured
    # here, it makes an evaluation about twice as slow. Workers start without it.
    with dask.config.set({NO_MALLOC_TRIM: None}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster, set_as_default=False), cluster
