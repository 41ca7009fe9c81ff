"""Background jobs: one worker thread, progress, cancel, status and results.

A :class:`JobRunner` owns exactly one worker thread and a bounded queue. Work functions
are called as ``fn(*args, progress=report, cancel=event, **kwargs)`` where
``report(fraction, message)`` records progress (fraction in [0, 1]) and ``event`` is a
:class:`threading.Event` that is set when the job is cancelled; the function should check
it between batches and return (or raise :class:`JobCancelled`). This is exactly the
``progress=`` / ``cancel=`` signature of :func:`explorer.evaluate.evaluate`.

Each job is a :class:`Job` (a ``param.Parameterized``): its ``status``, ``progress``,
``message``, ``error`` and ``result`` parameters can be watched or polled. A job belongs
to an ``owner`` (a browser session, say), and :meth:`JobRunner.cancel_owner` cancels all
of an owner's jobs when the owner goes away.

No GUI imports: the dashboard keeps one runner per process (in ``pn.state.cache``);
scripts use :func:`default_runner`.
"""

from __future__ import annotations

import itertools
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import param

from explorer.errors import InputError

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
STATUSES = (QUEUED, RUNNING, DONE, CANCELLED, FAILED)
FINISHED = frozenset({DONE, CANCELLED, FAILED})

ProgressCallback = Callable[[float, str], None]

_job_ids = itertools.count(1)


class JobCancelled(Exception):
    """Raised by a work function that noticed its cancel event (optional: returning works too)."""


class Job(param.Parameterized):
    """One unit of background work; its parameters are updated by the worker thread."""

    job_id = param.Integer(default=0, bounds=(0, None), constant=True,
                           doc="Number of the job, unique within the process.", label="Job id")
    label = param.String(default="", doc="What the job does, in words shown to the user.",
                         label="Job")
    owner = param.String(default="", doc="Who submitted the job (e.g. a browser session id); "
                         "JobRunner.cancel_owner cancels all of an owner's jobs.", label="Owner")
    status = param.Selector(default=QUEUED, objects=list(STATUSES),
                            doc="queued, running, done, cancelled or failed.", label="Status")
    progress = param.Number(default=0.0, bounds=(0.0, 1.0),
                            doc="Fraction of the work done, 0 to 1.", label="Progress")
    message = param.String(default="", doc="Latest progress message from the work function.",
                           label="Message")
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
        self.cancel_event = threading.Event()
        self.future: Future[str] = Future()  # resolves to the final status, never raises
        self.traceback = ""

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

        The call happens in the worker thread (or the caller's thread if already finished):
        a GUI must hand the update to its own event loop.
        """
        self.future.add_done_callback(lambda _future: fn(self))

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
        return True

    def report(self, fraction: float, message: str = "") -> None:
        """Record progress: ``fraction`` of the work done (0 to 1) and a short message."""
        self.param.update(progress=float(fraction), message=str(message))

    # -- worker side -----------------------------------------------------------------------
    def _start(self) -> bool:
        with self._lock:
            if self.status != QUEUED:
                return False
            self.status = RUNNING
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
                self.traceback = traceback.format_exc()
                first_line = (str(exc).splitlines() or [""])[0]
                self._finish(FAILED, error=f"{type(exc).__name__}: {first_line}".rstrip(": "))
        else:
            if self.cancel_event.is_set():
                self._finish(CANCELLED, message="cancelled", result=result)
            else:
                self._finish(DONE, result=result, progress=1.0)

    def _finish(self, status: str, **values: Any) -> None:
        with self._lock:
            if self.finished:
                return
            self.param.update(status=status, **values)
        self.future.set_result(status)


class JobRunner:
    """One worker thread running submitted jobs one after another, with a bounded queue.

    ``max_pending`` bounds the jobs queued or running overall, ``max_pending_per_owner``
    those of one owner; :meth:`submit` raises :class:`~explorer.errors.InputError` beyond.
    """

    def __init__(self, max_pending: int = 32, max_pending_per_owner: int = 4,
                 name: str = "explorer-jobs") -> None:
        if max_pending < 1 or max_pending_per_owner < 1:
            raise InputError("jobs: max_pending and max_pending_per_owner must be >= 1")
        self.max_pending = max_pending
        self.max_pending_per_owner = max_pending_per_owner
        self.name = name
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "", owner: str = "",
               **kwargs: Any) -> Job:
        """Queue ``fn(*args, progress=..., cancel=..., **kwargs)``; returns its :class:`Job`."""
        with self._lock:
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
            self._ensure_worker()
            self._queue.put(job)
        return job

    def pending(self, owner: str | None = None) -> list[Job]:
        """Jobs queued or running, oldest first (all owners when ``owner`` is None)."""
        with self._lock:
            self._pending = [j for j in self._pending if not j.finished]
            return [j for j in self._pending if owner is None or j.owner == owner]

    def cancel_owner(self, owner: str) -> int:
        """Cancel every unfinished job of ``owner``; returns how many were cancelled."""
        return sum(job.cancel() for job in self.pending(owner))

    def shutdown(self, cancel: bool = True, timeout: float | None = None) -> None:
        """Stop accepting jobs; cancel pending ones (default) and wait for the worker."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if cancel:
            for job in self.pending():
                job.cancel()
        self._queue.put(None)
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
            job = self._queue.get()
            if job is None:
                return
            job._run()


_default_runner: JobRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide runner for scripts and notebooks (created on first use)."""
    global _default_runner
    with _default_lock:
        if _default_runner is None:
            _default_runner = JobRunner()
        return _default_runner
