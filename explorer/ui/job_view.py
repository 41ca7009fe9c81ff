"""What every dashboard component that runs background jobs shares: the runner, the
session that owns its jobs (cancelled when the session ends), and handing job updates to
the session's event loop, coalesced (one update in flight; a few a second)."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from explorer.jobs import Job
from explorer.ui.session import call_in_session, job_runner, on_session_end, served_document

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
"""Shortest time between two progress updates sent to the page (a status change always
goes at once). Updating after every LeNet5 batch made an evaluation ~40 % slower."""


class JobView:
    """Mixin: call :meth:`_init_jobs` in ``__init__``, :meth:`watch_job` for each new job,
    and implement :meth:`show_job` (runs in the session, may touch widgets)."""

    def _init_jobs(self, runner: Any, owner: str | None, prefix: str) -> None:
        self.runner = runner if runner is not None else job_runner()
        self._doc = served_document()
        self.owner = owner or (
            f"session-{self._doc.session_context.id}" if self._doc else f"{prefix}-{id(self)}"
        )
        self._update_pending = False
        self._next_progress = 0.0
        on_session_end(self.close)

    def watch_job(self, job: Job) -> None:
        """Show ``job``'s progress and end in this session from now on."""
        job.param.watch(partial(self._on_job_event, job, True), ["progress", "message", "extras"])
        job.param.watch(partial(self._on_job_event, job, False), ["status"])
        self._schedule(job)  # it may already be running (or done) by now

    def close(self) -> None:
        """The session ended: cancel its jobs."""
        self.runner.cancel_owner(self.owner)

    def cancel_jobs(self) -> int:
        """Cancel this session's queued and running jobs of this runner; returns how many."""
        return self.runner.cancel_owner(self.owner)

    def show_job(self, job: Job) -> None:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    # -- job -> session ----------------------------------------------------------------
    def _on_job_event(self, job: Job, progress_only: bool, *_events: Any) -> None:
        # called in a runner thread: a display problem must not fail the job
        try:
            self._schedule(job, progress_only)
        except Exception:
            log.exception("could not hand job %s over to the session", job.job_id)

    def _schedule(self, job: Job, progress_only: bool = False) -> None:
        if progress_only:
            now = time.monotonic()
            if self._update_pending or now < self._next_progress:
                return  # one update in flight, and a few a second, are enough
            self._update_pending = True
            self._next_progress = now + PROGRESS_INTERVAL_S
        call_in_session(self._doc, partial(self._sync_job, job))

    def _sync_job(self, job: Job) -> None:
        self._update_pending = False
        self.show_job(job)
