"""Background jobs: progress, cancel, status and results, on a worker thread of this
process (:class:`JobRunner`) or on Dask worker processes (:class:`DaskJobRunner`).

Work functions are called as ``fn(*args, progress=report, cancel=event, **kwargs)`` where
``report(fraction, message, extra=None)`` records progress (fraction in [0, 1]; ``extra``:
optional picklable partial results, e.g. a sweep's finished rows) and ``event`` has
``is_set()`` (a :class:`threading.Event`, or on Dask a flag that polls a distributed Event);
the function should check it between batches and return (or raise :class:`JobCancelled`).
This is the ``progress=`` / ``cancel=`` signature of :func:`explorer.evaluate.evaluate`.

Each job is a :class:`Job` (a ``param.Parameterized``): its ``status``, ``progress``,
``message``, ``error`` and ``result`` parameters can be watched or polled. A job belongs
to an ``owner`` (a browser session, say), and ``cancel_owner`` cancels all of an owner's
jobs when the owner goes away. Both runners serve owners in turn (round-robin): one
session's four jobs do not hold back another session's first.

No GUI imports: the dashboard keeps one runner per process (in ``pn.state.cache``);
scripts use :func:`default_runner`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import param

from explorer.errors import InputError

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
STATUSES = (QUEUED, RUNNING, DONE, CANCELLED, FAILED)
FINISHED = frozenset({DONE, CANCELLED, FAILED})

ProgressCallback = Callable[..., None]

log = logging.getLogger(__name__)
_job_ids = itertools.count(1)

PROGRESS_INTERVAL_S = 0.25
"""Shortest time between two progress reports a Dask worker sends (the last one and any
carrying partial results always go): each is a message through the scheduler."""
CANCEL_POLL_S = 0.2
"""How often a Dask worker asks the scheduler whether its job was cancelled (at most; the
work function asks between batches): a cancelled job stops within this plus one batch."""


class JobCancelled(Exception):
    """Raised by a work function that noticed its cancel event (optional: returning works too)."""


class Job(param.Parameterized):
    """One unit of background work; its parameters are updated by the runner."""

    job_id = param.Integer(default=0, bounds=(0, None), constant=True,
                           doc="Number of the job, unique within the process.", label="Job id")
    label = param.String(default="", doc="What the job does, in words shown to the user.",
                         label="Job")
    owner = param.String(default="", doc="Who submitted the job (e.g. a browser session id); "
                         "cancel_owner cancels all of an owner's jobs.", label="Owner")
    status = param.Selector(default=QUEUED, objects=list(STATUSES),
                            doc="queued, running, done, cancelled or failed.", label="Status")
    progress = param.Number(default=0.0, bounds=(0.0, 1.0),
                            doc="Fraction of the work done, 0 to 1.", label="Progress")
    message = param.String(default="", doc="Latest progress message from the work function.",
                           label="Message")
    extras = param.Integer(default=0, bounds=(0, None), label="Partial results",
                           doc="How many partial results (report(..., extra=...)) arrived.")
    error = param.String(default="", doc="'ExceptionType: message' of a failed job, else empty.",
                         label="Error")
    result = param.Parameter(default=None, precedence=-1,
                             doc="What the work function returned (None until done).",
                             label="Result")

    def __init__(self, fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None,
                 **params: Any) -> None:
        params.setdefault("job_id", next(_job_ids))
        super().__init__(**params)
        self._fn = fn
        self._args = args
        self._kwargs = dict(kwargs or {})
        self._lock = threading.RLock()
        self._extras: list[Any] = []
        self._on_cancel: list[Callable[[], None]] = []
        self.cancel_event = threading.Event()
        self.future: Future[str] = Future()  # resolves to the final status, never raises
        self.traceback = ""
        self.attempts = 0
        """How many times a worker started the job (more than 1: a worker died, retried)."""

    # -- queries ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the job is done, cancelled or failed."""
        return self.status in FINISHED

    def wait(self, timeout: float | None = None) -> str:
        """Block until the job has finished (at most ``timeout`` seconds); returns its status.

        Raises :class:`TimeoutError` when the timeout passes first.
        """
        return self.future.result(timeout)

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """Call ``fn(job)`` once the job has finished (at once if it already has).

        The call happens in a runner thread (or the caller's thread if already finished):
        a GUI must hand the update to its own event loop.
        """
        self.future.add_done_callback(lambda _future: fn(self))

    def take_extras(self) -> list[Any]:
        """The partial results that arrived since the last call (oldest first)."""
        with self._lock:
            out, self._extras = self._extras, []
        return out

    # -- control ---------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Ask the job to stop. A queued job is cancelled at once; a running job when its
        work function next checks ``cancel``. Returns False when it had already finished."""
        with self._lock:
            if self.finished:
                return False
            self.cancel_event.set()
            if self.status == QUEUED:
                self._finish(CANCELLED, message="cancelled before it started")
            hooks = list(self._on_cancel)
        for hook in hooks:
            try:
                hook()
            except Exception:  # the job is marked cancelled here anyway
                log.exception("jobs: could not pass the cancel of job %s on", self.job_id)
        return True

    def report(self, fraction: float, message: str = "", extra: Any = None) -> None:
        """Record progress: ``fraction`` of the work done (0 to 1), a short message and
        optional partial results (``extra``, collected by :meth:`take_extras`)."""
        if self.finished:
            return  # a late report (from a worker, say) changes nothing
        values: dict[str, Any] = {"progress": float(fraction),
                                  "message": str(message)}
        if extra is not None:
            with self._lock:
                self._extras.append(extra)
                values["extras"] = self.extras + 1
        self.param.update(**values)

    # -- runner side -----------------------------------------------------------------------
    def _start(self) -> bool:
        with self._lock:
            if self.status != QUEUED:
                return False
            self.status = RUNNING
            self.attempts += 1
            return True

    def _run(self) -> None:
        if not self._start():
            return
        try:
            result = self._fn(*self._args, progress=self.report, cancel=self.cancel_event,
                              **self._kwargs)
        except JobCancelled:
            self._finish(CANCELLED, message="cancelled")
        except Exception as exc:  # the job failed; the worker carries on
            if self.cancel_event.is_set():
                self._finish(CANCELLED, message="cancelled")
            else:
                self._fail(exc, traceback.format_exc())
        else:
            if self.cancel_event.is_set():
                self._finish(CANCELLED, message="cancelled", result=result)
            else:
                self._finish(DONE, result=result, progress=1.0)

    def _fail(self, exc: BaseException, trace: str = "") -> None:
        self.traceback = trace
        first_line = (str(exc).splitlines() or [""])[0]
        self._finish(FAILED, error=f"{type(exc).__name__}: {first_line}".rstrip(": "))

    def _finish(self, status: str, **values: Any) -> None:
        with self._lock:
            if self.finished:
                return
            self.param.update(status=status, **values)
        self.future.set_result(status)


class RoundRobin:
    """Waiting jobs, one line per owner; :meth:`pop` serves the owners in turn (the owner
    served longest ago first), skipping jobs cancelled while they waited."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[Job]] = {}  # dict order: whose turn comes first

    def put(self, job: Job) -> None:
        self._lines.setdefault(job.owner, deque()).append(job)

    def pop(self) -> Job | None:
        """The next job to run (None when none waits)."""
        for owner in list(self._lines):
            line = self._lines[owner]
            while line and line[0].finished:
                line.popleft()
            if line:
                job = line.popleft()
                del self._lines[owner]  # to the back of the turn order
                if line:
                    self._lines[owner] = line
                return job
            del self._lines[owner]
        return None

    def discard(self, job: Job) -> None:
        """Forget ``job`` if it still waits here (it finished: cancelled while queued)."""
        line = self._lines.get(job.owner)
        if line is not None and job in line:
            line.remove(job)
            if not line:
                del self._lines[job.owner]

    def __len__(self) -> int:
        return sum(1 for line in self._lines.values() for job in line if not job.finished)


def turn_violations(events: Iterable[tuple[str, str]]) -> list[str]:
    """Breaches of round-robin in a job log: ``events`` are ``("queued" | "started",
    owner)`` in the order they happened (each start is of the owner's oldest waiting job).

    A breach: an owner is started twice while another owner was waiting the whole time in
    between (a job of it queued before the first of those starts) and was not served at
    all meanwhile. An owner with several jobs waiting is served once per turn, so its
    second job waiting on across another owner's two turns is no breach.
    """
    waiting: dict[str, deque[int]] = {}  # owner -> positions its waiting jobs were queued at
    last_start: dict[str, int] = {}
    problems = []
    for pos, (kind, owner) in enumerate(events):
        if kind == "queued":
            waiting.setdefault(owner, deque()).append(pos)
            continue
        previous = last_start.get(owner)
        if previous is not None:
            for other, queued in waiting.items():
                if (other != owner and queued and queued[0] < previous
                        and last_start.get(other, -1) < previous):
                    problems.append(f"{owner} served twice while {other} waited")
        last_start[owner] = pos
        if waiting.get(owner):
            waiting[owner].popleft()
    return problems


class _Admission:
    """The bounds on pending jobs (overall and per owner) both runners enforce."""

    def __init__(self, max_pending: int, max_pending_per_owner: int) -> None:
        if max_pending < 1 or max_pending_per_owner < 1:
            raise InputError("jobs: max_pending and max_pending_per_owner must be >= 1")
        self.max_pending = max_pending
        self.max_pending_per_owner = max_pending_per_owner
        self._pending: list[Job] = []
        self._waiting = RoundRobin()
        self._lock = threading.Lock()
        self._closed = False

    def _admit(self, fn: Callable[..., Any], args: tuple, kwargs: dict, label: str,
               owner: str) -> Job:
        """A new job within the bounds (call with ``self._lock`` held)."""
        if self._closed:
            raise RuntimeError("jobs: this runner has been shut down")
        self._pending = [j for j in self._pending if not j.finished]
        if len(self._pending) >= self.max_pending:
            raise InputError(f"jobs: {len(self._pending)} jobs are already waiting "
                             f"(at most {self.max_pending}); wait or cancel one")
        mine = sum(1 for j in self._pending if j.owner == owner)
        if mine >= self.max_pending_per_owner:
            raise InputError(f"jobs: you already have {mine} jobs waiting or running "
                             f"(at most {self.max_pending_per_owner}); wait or cancel one")
        job = Job(fn, args, kwargs, label=label, owner=owner)
        self._pending.append(job)
        # a finished job leaves at once: its watchers hold a closed session's views
        job.future.add_done_callback(lambda _f, job=job: self._forget(job))
        return job

    def _forget(self, job: Job) -> None:
        # a job cancelled while it waited leaves the queue now, not at the next turn
        with self._lock:
            if job in self._pending:
                self._pending.remove(job)
            self._waiting.discard(job)

    def pending(self, owner: str | None = None) -> list[Job]:
        """Jobs queued or running, oldest first (all owners when ``owner`` is None)."""
        with self._lock:
            self._pending = [j for j in self._pending if not j.finished]
            return [j for j in self._pending if owner is None or j.owner == owner]

    def cancel_owner(self, owner: str) -> int:
        """Cancel every unfinished job of ``owner``; returns how many were cancelled."""
        return sum(job.cancel() for job in self.pending(owner))


class JobRunner(_Admission):
    """One worker thread in this process running submitted jobs one after another, owners
    in turn (tests, notebooks, scripts).

    ``max_pending`` bounds the jobs queued or running overall, ``max_pending_per_owner``
    those of one owner; :meth:`submit` raises :class:`~explorer.errors.InputError` beyond.
    """

    kind = "thread"

    def __init__(self, max_pending: int = 32, max_pending_per_owner: int = 4,
                 name: str = "explorer-jobs") -> None:
        super().__init__(max_pending, max_pending_per_owner)
        self.name = name
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "", owner: str = "",
               **kwargs: Any) -> Job:
        """Queue ``fn(*args, progress=..., cancel=..., **kwargs)``; returns its :class:`Job`."""
        with self._lock:
            job = self._admit(fn, args, kwargs, label, owner)
            self._waiting.put(job)
            self._ensure_worker()
            self._wake.notify()
        return job

    def shutdown(self, cancel: bool = True, timeout: float | None = None) -> None:
        """Stop accepting jobs; cancel pending ones (default) and wait for the worker."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if cancel:
            for job in self.pending():
                job.cancel()
        with self._lock:
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def worker(self) -> threading.Thread | None:
        """The worker thread (None until the first job is submitted)."""
        return self._thread

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # daemon: an unfinished evaluation must not keep the interpreter alive at exit
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._waiting.pop()
                while job is None:
                    if self._closed:
                        return
                    self._wake.wait()
                    job = self._waiting.pop()
            job._run()


# ----------------------------------------------------------------------------- Dask
class _PolledFlag:
    """``is_set()`` of a distributed Event, asked at most every ``interval`` seconds (a
    work function asks between batches: every few milliseconds for a small network)."""

    def __init__(self, event: Any, interval: float = CANCEL_POLL_S) -> None:
        self._event = event
        self._interval = interval
        self._next = 0.0
        self._set = False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now >= self._next:
            self._next = now + self._interval
            try:
                self._set = bool(self._event.is_set())
            except Exception:  # the scheduler is away: carry on, ask again later
                log.debug("jobs: cancel flag not readable", exc_info=True)
        return self._set


WORKER_NICENESS = 10
"""Unix niceness of the dashboard's own local workers: on a shared machine the web server
and the students' browsers come first (a worker at 10 gets about a tenth of a contended
core against nice 0; alone it runs at full speed)."""


def lower_priority(niceness: int) -> None:
    """Give every thread of this process at least ``niceness`` (Linux keeps nice values per
    thread; left unchanged where not allowed)."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process value
        threads = [0]
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except (AttributeError, OSError):  # no such call here, or the thread has ended
            pass


def run_on_worker(fn: Callable[..., Any], args: tuple, kwargs: dict, job_id: int,
                  channel: str, torch_threads: int | None, niceness: int | None = None
                  ) -> tuple[str, Any]:
    """What a Dask worker runs for a :class:`DaskJobRunner` job: ``fn`` with a progress
    report sent through the distributed Queue ``channel`` and a cancel flag read from the
    distributed Event ``{channel}-cancel-{job_id}``; the worker at ``niceness`` first (a
    local cluster: see :data:`WORKER_NICENESS`). Returns ``(status, result)``."""
    from distributed import Event, Queue

    if niceness:
        lower_priority(niceness)
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    queue = Queue(channel)
    cancel = _PolledFlag(Event(f"{channel}-cancel-{job_id}"))
    last = [0.0]

    def report(fraction: float, message: str = "", extra: Any = None) -> None:
        now = time.monotonic()
        if extra is None and fraction < 1.0 and now - last[0] < PROGRESS_INTERVAL_S:
            return
        last[0] = now
        queue.put((job_id, float(fraction), str(message), extra))

    queue.put((job_id, 0.0, "started on a worker", None))
    try:
        result = fn(*args, progress=report, cancel=cancel, **kwargs)
    except JobCancelled:
        return CANCELLED, None
    except Exception:
        if cancel.is_set():
            return CANCELLED, None
        raise
    return (CANCELLED, result) if cancel.is_set() else (DONE, result)


def local_cluster_size(cores: int | None = None) -> tuple[int, int]:
    """``(workers, torch threads per worker)`` for a local cluster on ``cores`` cores (this
    process's by default): one core stays with the web server, the rest are shared out;
    at least one worker of one thread."""
    from explorer.sweep.cluster import default_workers

    cores = default_workers() if cores is None else cores
    workers = max(1, cores - 1)
    return workers, max(1, (cores - 1) // workers)


def start_local_cluster(workers: int) -> tuple[Any, Any]:
    """A ``(client, cluster)``: a ``LocalCluster`` of ``workers`` one-thread worker
    processes, as :func:`explorer.sweep.cluster.connect` starts it (without Dask's
    MALLOC_TRIM_THRESHOLD_), but its scheduler's HTTP endpoint on a free loopback port: the
    default 8787 is often taken on a shared machine (another cluster, another dashboard)."""
    import logging as _logging

    import dask
    from distributed import Client, LocalCluster

    from explorer.sweep.cluster import NO_MALLOC_TRIM

    with dask.config.set({NO_MALLOC_TRIM: None}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=_logging.ERROR,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    return Client(cluster, set_as_default=False), cluster


class DaskJobRunner(_Admission):
    """Jobs on Dask worker processes: a ``LocalCluster`` (workers = cores − 1, at least
    one; torch threads per worker chosen so the server keeps a core) or the scheduler at
    ``scheduler`` (``tcp://HOST:8786``, as ``explorer sweep --scheduler``).

    The same interface as :class:`JobRunner`. Jobs wait here, owners in turn, and go to
    Dask only when a worker thread is free (so the turn order holds on the cluster too).
    Progress comes back through one distributed Queue (a listener thread), cancel goes out
    through a distributed Event per job, results through the Dask future. A worker that
    dies is replaced by its nanny and Dask runs the job again (up to its
    ``allowed-failures``); after that the job fails with a message saying so. The cluster
    starts in a background thread: jobs submitted meanwhile wait; if it cannot start (a
    scheduler that does not answer) they fail with the reason.

    The work function and its arguments must be picklable by reference (a module-level
    function of a module the workers can import, plain data).
    """

    kind = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 torch_threads: int | None = None, max_pending: int = 64,
                 max_pending_per_owner: int = 4, connect_timeout: float = 3.0,
                 niceness: int | None = None) -> None:
        super().__init__(max_pending, max_pending_per_owner)
        if scheduler is None:
            n, threads = local_cluster_size()
            workers = n if workers is None else workers
            torch_threads = threads if torch_threads is None else torch_threads
            niceness = WORKER_NICENESS if niceness is None else niceness
        self.scheduler = scheduler
        self.niceness = niceness  # None on someone else's cluster: theirs to set
        self.workers = workers
        self.torch_threads = torch_threads
        self.channel = f"explorer-jobs-{uuid.uuid4().hex[:12]}"
        self.client: Any = None
        self.cluster: Any = None
        self.start_error = ""
        self._connect_timeout = connect_timeout
        self._running: dict[int, tuple[Job, Any]] = {}
        self._wake = threading.Condition(self._lock)
        self._ready = threading.Event()
        self._threads = [threading.Thread(target=self._start_and_dispatch, daemon=True,
                                          name="explorer-dask-dispatch")]
        self._threads[0].start()

    # -- public ----------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "", owner: str = "",
               **kwargs: Any) -> Job:
        """Queue ``fn(*args, progress=..., cancel=..., **kwargs)`` for a Dask worker."""
        with self._lock:
            job = self._admit(fn, args, kwargs, label, owner)
            job._on_cancel.append(lambda: self._cancel_remote(job))
            self._waiting.put(job)
            log.info("jobs: queued %s %s %s", job.job_id, owner or "-", label or "-")
            self._wake.notify_all()
        return job

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the cluster is up (or failed to start); True when it is up."""
        self._ready.wait(timeout)
        return self.client is not None

    def worker_pids(self) -> dict[str, int]:
        """Process id of each worker (address -> pid)."""
        import os

        return self.client.run(os.getpid) if self.client is not None else {}

    def shutdown(self, cancel: bool = True, timeout: float | None = 10.0) -> None:
        """Stop accepting jobs, cancel pending ones (default), close the client and the
        cluster this runner started."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if cancel:
            for job in self.pending():
                job.cancel()
        self._ready.wait(timeout)
        client, cluster = self.client, self.cluster
        if client is not None:
            try:
                self._queue.put(None)  # ends the listener
            except Exception:
                log.debug("jobs: could not stop the progress listener", exc_info=True)
        self.client = None
        for thing in (client, cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing at exit: nothing more to do
                    log.debug("jobs: closing %r failed", thing, exc_info=True)

    # -- threads ---------------------------------------------------------------------------
    def _connect(self) -> None:
        from explorer.sweep.cluster import connect

        try:
            if self.scheduler is not None:
                client, cluster = connect(self.scheduler, timeout=self._connect_timeout)
            else:
                client, cluster = start_local_cluster(self.workers)
        except InputError as exc:
            self.start_error = f"EXPLORER_SCHEDULER: {str(exc).removeprefix('--scheduler: ')}"
            return
        except Exception as exc:  # e.g. no free port, no memory for workers
            self.start_error = f"Dask workers could not start: {type(exc).__name__}: {exc}"
            log.exception("jobs: Dask cluster failed to start")
            return
        from distributed import Queue

        self._queue = Queue(self.channel, client=client)
        self.client, self.cluster = client, cluster
        listener = threading.Thread(target=self._listen, daemon=True,
                                    name="explorer-dask-progress")
        self._threads.append(listener)
        listener.start()

    def _start_and_dispatch(self) -> None:
        self._connect()
        self._ready.set()
        while self._dispatch_one():
            pass

    def _dispatch_one(self) -> bool:
        """Wait for a waiting job and a free worker thread, send the job; False once the
        runner is shut down. (One call per job: no local of this thread keeps the last job,
        and through its watchers a closed session's views, alive while it waits.)"""
        with self._lock:
            while not self._closed and not (len(self._waiting) and self._free_slot()):
                self._wake.wait()
            if self._closed:
                return False
            job = self._waiting.pop()
            if job is None or not job._start():
                return True
            # logged under the lock: the log's order is the order of the queue
            log.info("jobs: started %s %s %s", job.job_id, job.owner or "-", job.label or "-")
        if self.client is None:
            job._finish(FAILED, error=self.start_error)
        else:
            self._send(job)
        return True

    def _free_slot(self) -> bool:
        if self.client is None:
            return True  # to fail the waiting jobs with the start error
        return len(self._running) < self._slots()

    def _slots(self) -> int:
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:
            return 1

    def _send(self, job: Job) -> None:
        job.attempts = 0  # counted from the workers' "started" reports
        try:
            future = self.client.submit(
                run_on_worker, job._fn, job._args, job._kwargs, job.job_id, self.channel,
                self.torch_threads, self.niceness,
                key=f"explorer-job-{self.channel}-{job.job_id}", pure=False)
        except Exception as exc:
            job._fail(exc, traceback.format_exc())
            return
        with self._lock:
            self._running[job.job_id] = (job, future)
        job.param.update(message="sent to a worker")
        future.add_done_callback(lambda f, job=job: self._done(job, f))

    def _done(self, job: Job, future: Any) -> None:
        try:
            if future.status == "finished":
                status, result = future.result()
                if status == DONE and not job.cancel_event.is_set():
                    job._finish(DONE, result=result, progress=1.0)
                else:
                    job._finish(CANCELLED, message="cancelled", result=result)
            elif job.cancel_event.is_set() or future.status == "cancelled":
                job._finish(CANCELLED, message="cancelled")
            else:
                exc = future.exception()
                if type(exc).__name__ == "KilledWorker":
                    job._finish(FAILED, error="WorkerDied: the worker process running this "
                                "job died each time it was tried (out of memory, or killed); "
                                "the page still works – try fewer images or trials")
                else:
                    trace = "".join(traceback.format_tb(future.traceback()))
                    job._fail(exc, trace)
        except Exception as exc:  # e.g. the client closed under us
            job._fail(exc, traceback.format_exc())
        finally:
            with self._lock:
                self._running.pop(job.job_id, None)
                self._wake.notify_all()
            self._forget_event(job)

    def _cancel_remote(self, job: Job) -> None:
        client = self.client
        if client is None or job.job_id not in self._running:
            return
        from distributed import Event

        # called on the server's event loop: send it from a helper thread, do not wait
        event = Event(f"{self.channel}-cancel-{job.job_id}", client=client)
        threading.Thread(target=event.set, daemon=True, name="explorer-cancel").start()

    def _forget_event(self, job: Job) -> None:
        client = self.client
        if client is None:
            return
        from distributed import Event

        try:
            Event(f"{self.channel}-cancel-{job.job_id}", client=client).clear()
        except Exception:
            log.debug("jobs: could not clear the cancel event", exc_info=True)

    def _listen(self) -> None:
        """Progress reports from the workers, handed to their jobs (until the ``None``
        that :meth:`shutdown` sends: a blocking read, no time-outs to poll with)."""
        while self._listen_once():
            pass

    def _listen_once(self) -> bool:
        """Wait for progress reports and hand them on; False when listening should end.
        (One call per batch: no local keeps a finished job alive while the read waits.)"""
        try:
            items = [self._queue.get()]
            items += self._queue.get(batch=True)
        except Exception:
            if self._closed or self.client is None:
                return False
            log.debug("jobs: progress queue read failed", exc_info=True)
            return True
        if None in items:
            return False
        self._hand_on(items)
        return True

    def _hand_on(self, items: list[tuple[int, float, str, Any]]) -> None:
        """Progress reports ``(job_id, fraction, message, extra)`` to their jobs."""
        latest: dict[int, tuple[float, str]] = {}
        for job_id, fraction, message, extra in items:
            entry = self._running.get(job_id)
            if entry is None:
                continue
            if message == "started on a worker":
                entry[0].attempts += 1
            if extra is not None:
                entry[0].report(fraction, message, extra)
            latest[job_id] = (fraction, message)
        for job_id, (fraction, message) in latest.items():  # coalesced: the last one
            entry = self._running.get(job_id)
            if entry is not None:
                job = entry[0]
                if job.attempts > 1 and message:
                    message = f"{message} (attempt {job.attempts}: a worker died)"
                job.report(fraction, message)


_default_runner: JobRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide in-process runner for scripts and notebooks (created on first use)."""
    global _default_runner
    with _default_lock:
        if _default_runner is None:
            _default_runner = JobRunner()
        return _default_runner
