"""Jobs on Dask worker processes (explorer.jobs.DaskJobRunner): results equal to an
in-process evaluation, progress, cancel within a second, owners in turn, a killed worker,
a scheduler that does not answer. One local cluster of one worker for the module.

Work functions live in this module: the workers import it (it is on their sys.path)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from explorer.jobs import CANCELLED, DONE, FAILED, DaskJobRunner

TIMEOUT = 120  # seconds; only reached when something is broken (a loaded 2-core machine)


@pytest.fixture(scope="module")
def runner():
    r = DaskJobRunner(workers=1, torch_threads=1)
    assert r.wait_ready(TIMEOUT), r.start_error
    yield r
    r.shutdown(timeout=TIMEOUT)


def spin_until_cancelled(progress, cancel):
    """Simulated batches of ~10 ms until cancelled; returns when it noticed (epoch s)."""
    step = 0
    while not cancel.is_set():
        progress(min(step / 1e4, 0.99), f"batch {step}")
        time.sleep(0.01)  # one simulated batch of work
        step += 1
    return time.time()


def started_at(name, progress, cancel):
    return name, time.time()


def survive_one_kill(marker, progress, cancel):
    """First attempt: leaves ``marker`` and works until killed; later attempts finish."""
    marker = Path(marker)
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        progress(0.1, "first attempt")
        while not cancel.is_set():
            time.sleep(0.01)
        return "cancelled on the first attempt"
    return f"retried in {os.getpid()}"


def thread_niceness(progress, cancel):
    """The nice value of every thread of the worker process running this job."""
    return {int(t): os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}


def wait_for(job, condition, timeout=TIMEOUT):
    """Block until ``condition(job)`` holds, woken by the job's parameter changes."""
    changed = threading.Event()
    watcher = job.param.watch(lambda *_: changed.set(), ["status", "progress", "message"])
    try:
        deadline = time.monotonic() + timeout
        while not condition(job):
            remaining = deadline - time.monotonic()
            assert remaining > 0, (job.status, job.message)
            changed.wait(remaining)
            changed.clear()
    finally:
        job.param.unwatch(watcher)


def test_an_evaluation_on_a_worker_equals_the_same_settings_evaluated_here(runner):
    from explorer.jobtasks import evaluate_task
    from explorer.settings import Settings, WorkloadSettings
    from explorer.workload import evaluate_settings

    settings = Settings(workload=WorkloadSettings(limit=100, trials=2))
    messages = []
    job = runner.submit(evaluate_task, settings.to_dict(), owner="t")
    job.param.watch(lambda e: messages.append(e.new), "message")
    assert job.wait(TIMEOUT) == DONE, job.error
    here = evaluate_settings(settings, download=False)
    assert job.result["accuracy_mean"] == here.accuracy_mean
    assert job.result["accuracies"] == here.accuracies
    assert job.attempts == 1
    assert messages  # progress came back from the worker process


def test_cancel_stops_the_worker_within_a_second(runner):
    job = runner.submit(spin_until_cancelled, owner="t")
    wait_for(job, lambda j: j.message.startswith("batch"))
    asked = time.time()
    assert job.cancel()
    assert job.wait(TIMEOUT) == CANCELLED
    # the work function returned when it saw the cancel: its timestamp is the result
    assert job.result is not None and 0 <= job.result - asked < 1.0


def test_owners_take_turns_on_the_cluster(runner):
    blocker = runner.submit(spin_until_cancelled, owner="x")
    wait_for(blocker, lambda j: j.message.startswith("batch"))
    jobs = [runner.submit(started_at, name, owner=name[0]) for name in ("a1", "a2", "a3", "b1")]
    blocker.cancel()
    assert [j.wait(TIMEOUT) for j in jobs] == [DONE] * 4
    order = [name for name, _ in sorted((j.result for j in jobs), key=lambda r: r[1])]
    assert order == ["a1", "b1", "a2", "a3"]


def test_a_finished_job_does_not_keep_its_watchers_alive(runner):
    """A finished job's watchers (a closed session's views) die with the job: no thread of
    the runner keeps the last job it dispatched or reported on."""
    import gc
    import weakref

    class View:  # stands in for a session's view watching its job
        def on_status(self, *_events):
            pass

    view = View()
    job = runner.submit(started_at, "watched", owner="closed-session")
    job.param.watch(view.on_status, ["status", "message"])
    assert job.wait(TIMEOUT) == DONE
    gone = weakref.ref(view)
    del view, job
    deadline = time.monotonic() + TIMEOUT  # the runner's done-callback may still run
    while gone() is not None:
        assert time.monotonic() < deadline, [type(r).__name__ for r in gc.get_referrers(gone())]
        gc.collect()
        time.sleep(0.05)


def test_the_dashboards_local_workers_run_below_the_web_server(runner):
    from explorer.jobs import WORKER_NICENESS

    here = os.getpriority(os.PRIO_PROCESS, 0)
    job = runner.submit(thread_niceness, owner="nice")
    assert job.wait(TIMEOUT) == DONE, job.error
    assert here < WORKER_NICENESS
    assert set(job.result.values()) == {WORKER_NICENESS}  # every thread of the worker


def test_a_killed_worker_is_replaced_and_the_job_runs_again(runner, tmp_path):
    marker = tmp_path / "first-attempt"
    job = runner.submit(survive_one_kill, str(marker), owner="t")
    wait_for(job, lambda j: j.message == "first attempt")
    os.kill(int(marker.read_text()), signal.SIGKILL)
    assert job.wait(TIMEOUT) == DONE, job.error
    assert job.result.startswith("retried in ") and job.attempts == 2
    # the runner keeps working afterwards
    after = runner.submit(started_at, "after", owner="t")
    assert after.wait(TIMEOUT) == DONE


def test_a_scheduler_that_does_not_answer_fails_the_job_with_a_clear_message():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = DaskJobRunner(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1.0)
    assert runner.niceness is None  # someone else's cluster: its priorities are theirs
    try:
        job = runner.submit(started_at, "never", owner="t")
        assert job.wait(TIMEOUT) == FAILED
        assert job.error.startswith("EXPLORER_SCHEDULER: cannot reach the Dask scheduler at "
                                    f"tcp://127.0.0.1:{port}")
    finally:
        runner.shutdown(timeout=TIMEOUT)


def test_a_sweep_on_a_worker_sends_its_rows_as_they_finish(runner):
    from explorer.jobtasks import sweep_task
    from explorer.settings import Settings, WorkloadSettings

    settings = Settings(workload=WorkloadSettings(limit=20, trials=1))
    job = runner.submit(sweep_task, settings.to_dict(), {"levels": [4, 16]}, 1, owner="t")
    assert job.wait(TIMEOUT) == DONE, job.error
    assert sorted(job.result["levels"]) == [4, 16]
    rows = [row for batch in job.take_extras() for row in batch]
    assert sorted(r["levels"] for r in rows) == [4, 16]
