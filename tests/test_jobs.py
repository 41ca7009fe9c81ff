"""The background job runner, without any GUI: synchronised through events, never sleeps."""

from __future__ import annotations

import threading

import pytest

from explorer.errors import InputError
from explorer.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    JobCancelled,
    JobRunner,
    default_runner,
)

TIMEOUT = 30  # seconds; only reached when something is broken


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown(cancel=True, timeout=TIMEOUT)


def blocked_until(gate: threading.Event, started: threading.Event | None = None):
    """A work function that reports progress, then waits for ``gate`` or its cancel event."""

    def work(progress, cancel):
        progress(0.5, "half way")
        if started is not None:
            started.set()
        while not gate.is_set():
            if cancel.wait(0.01):
                return "stopped early"
        return "finished"

    return work


def test_job_returns_its_result_and_reports_done(runner):
    job = runner.submit(lambda x, progress, cancel: x * 2, 21, label="double")
    assert job.wait(TIMEOUT) == DONE
    assert (job.status, job.result, job.progress, job.error) == (DONE, 42, 1.0, "")
    assert job.label == "double"
    assert job.finished


def test_progress_is_visible_while_running(runner):
    gate, started = threading.Event(), threading.Event()
    job = runner.submit(blocked_until(gate, started))
    assert started.wait(TIMEOUT)
    assert (job.status, job.progress, job.message) == (RUNNING, 0.5, "half way")
    assert not job.finished
    gate.set()
    assert job.wait(TIMEOUT) == DONE
    assert job.result == "finished"


def test_cancel_stops_a_running_job(runner):
    started = threading.Event()
    job = runner.submit(blocked_until(threading.Event(), started))
    assert started.wait(TIMEOUT)
    assert job.cancel() is True
    assert job.wait(TIMEOUT) == CANCELLED
    assert job.cancel_event.is_set()
    assert job.cancel() is False  # already finished


def test_cancel_of_a_queued_job_never_runs_it(runner):
    gate, started = threading.Event(), threading.Event()
    first = runner.submit(blocked_until(gate, started))
    ran = threading.Event()
    second = runner.submit(lambda progress, cancel: ran.set())
    assert started.wait(TIMEOUT)
    assert second.status == QUEUED
    assert second.cancel() is True
    assert second.status == CANCELLED  # at once, not when the worker reaches it
    gate.set()
    assert first.wait(TIMEOUT) == DONE
    third = runner.submit(lambda progress, cancel: "after")
    assert third.wait(TIMEOUT) == DONE  # the worker went past the cancelled job
    assert not ran.is_set()


def test_job_cancelled_exception_means_cancelled(runner):
    def work(progress, cancel):
        raise JobCancelled

    job = runner.submit(work)
    assert job.wait(TIMEOUT) == CANCELLED
    assert job.error == ""


def test_failure_is_recorded_and_the_worker_keeps_going(runner):
    def broken(progress, cancel):
        raise RuntimeError("ADC exploded\nsecond line")

    bad = runner.submit(broken)
    assert bad.wait(TIMEOUT) == FAILED
    assert bad.error == "RuntimeError: ADC exploded"
    assert "Traceback" in bad.traceback
    good = runner.submit(lambda progress, cancel: "ok")
    assert good.wait(TIMEOUT) == DONE


def test_progress_outside_zero_one_fails_the_job_with_the_parameter_name(runner):
    job = runner.submit(lambda progress, cancel: progress(1.5, "too far"))
    assert job.wait(TIMEOUT) == FAILED
    assert "progress" in job.error


def test_one_worker_thread_runs_jobs_one_after_another(runner):
    threads, active, overlaps = [], [0], []
    lock = threading.Lock()

    def work(progress, cancel):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        threads.append(threading.get_ident())
        for i in range(20):
            progress(i / 20, "")
        with lock:
            active[0] -= 1

    jobs = [runner.submit(work) for _ in range(4)]
    assert [j.wait(TIMEOUT) for j in jobs] == [DONE] * 4
    assert len(set(threads)) == 1
    assert threads[0] != threading.get_ident()
    assert max(overlaps) == 1
    assert runner.worker is not None and runner.worker.daemon


def test_cancel_owner_cancels_only_that_owners_jobs(runner):
    gate, started = threading.Event(), threading.Event()
    a1 = runner.submit(blocked_until(gate, started), owner="a")
    a2 = runner.submit(lambda progress, cancel: "a2", owner="a")
    b1 = runner.submit(lambda progress, cancel: "b1", owner="b")
    assert started.wait(TIMEOUT)
    assert {j.job_id for j in runner.pending("a")} == {a1.job_id, a2.job_id}
    assert runner.cancel_owner("a") == 2
    assert a1.wait(TIMEOUT) == CANCELLED and a2.wait(TIMEOUT) == CANCELLED
    assert b1.wait(TIMEOUT) == DONE and b1.result == "b1"
    assert runner.pending() == []


def test_queue_is_bounded_per_owner_and_overall():
    runner = JobRunner(max_pending=3, max_pending_per_owner=2)
    gate = threading.Event()
    try:
        runner.submit(blocked_until(gate), owner="a")
        runner.submit(blocked_until(gate), owner="a")
        with pytest.raises(InputError, match="at most 2"):
            runner.submit(blocked_until(gate), owner="a")
        runner.submit(blocked_until(gate), owner="b")
        with pytest.raises(InputError, match="at most 3"):
            runner.submit(blocked_until(gate), owner="c")
    finally:
        gate.set()
        runner.shutdown(timeout=TIMEOUT)
    with pytest.raises(RuntimeError, match="shut down"):
        runner.submit(lambda progress, cancel: None)


def test_watchers_see_every_status_change_and_done_callbacks_fire(runner):
    seen: list[str] = []
    done_calls: list[str] = []
    gate, started = threading.Event(), threading.Event()
    job = runner.submit(blocked_until(gate, started))
    job.param.watch(lambda event: seen.append(event.new), "status")
    job.add_done_callback(lambda j: done_calls.append(j.status))
    assert started.wait(TIMEOUT)
    gate.set()
    assert job.wait(TIMEOUT) == DONE
    assert seen == [DONE] or seen == [RUNNING, DONE]  # watcher may attach after the start
    assert done_calls == [DONE]
    late: list[str] = []
    job.add_done_callback(lambda j: late.append(j.status))
    assert late == [DONE]  # already finished: called at once


def test_shutdown_cancels_pending_jobs():
    runner = JobRunner()
    started = threading.Event()
    running = runner.submit(blocked_until(threading.Event(), started))
    queued = runner.submit(lambda progress, cancel: "never")
    assert started.wait(TIMEOUT)
    runner.shutdown(cancel=True, timeout=TIMEOUT)
    assert running.status == CANCELLED and queued.status == CANCELLED
    assert not runner.worker.is_alive()


def test_job_parameters_are_bounded():
    job = Job(lambda progress, cancel: None)
    with pytest.raises(ValueError, match="progress"):
        job.progress = -0.1
    with pytest.raises(ValueError, match="status"):
        job.status = "exploded"
    with pytest.raises(InputError, match="max_pending"):
        JobRunner(max_pending=0)


def test_default_runner_is_one_per_process():
    assert default_runner() is default_runner()


def test_owners_are_served_in_turn_not_first_come_first_served(runner):
    gate, started = threading.Event(), threading.Event()
    order = []
    blocker = runner.submit(blocked_until(gate, started), owner="x")
    assert started.wait(TIMEOUT)  # the worker is busy: the rest waits in line

    def record(name, progress, cancel):
        order.append(name)

    jobs = [runner.submit(record, name, owner=name[0]) for name in ("a1", "a2", "a3", "b1")]
    jobs.append(runner.submit(record, "c1", owner="c"))
    gate.set()
    assert [j.wait(TIMEOUT) for j in (blocker, *jobs)] == [DONE] * 6
    assert order == ["a1", "b1", "c1", "a2", "a3"]


def test_round_robin_skips_jobs_cancelled_while_waiting():
    from explorer.jobs import RoundRobin

    line = RoundRobin()
    jobs = {name: Job(lambda progress, cancel: None, owner=name[0], label=name)
            for name in ("a1", "a2", "b1", "b2", "c1")}
    for name in ("a1", "a2", "b1", "b2", "c1"):
        line.put(jobs[name])
    jobs["b1"].cancel()
    assert len(line) == 4
    assert [line.pop().label for _ in range(4)] == ["a1", "b2", "c1", "a2"]
    assert line.pop() is None and len(line) == 0


def test_turn_violations_reads_a_job_log_by_turns_not_by_jobs():
    from explorer.jobs import turn_violations

    # b's second job waits across a's two turns, but b was served in between: fair
    fair = [("queued", "a"), ("queued", "a"), ("queued", "b"), ("queued", "b"),
            ("started", "a"), ("started", "b"), ("started", "a"), ("started", "b")]
    assert turn_violations(fair) == []
    # first come, first served: a twice while b, queued before, waited unserved
    unfair = [("queued", "a"), ("queued", "a"), ("queued", "b"),
              ("started", "a"), ("started", "a"), ("started", "b")]
    assert turn_violations(unfair) == ["a served twice while b waited"]
    # an owner that queued only after a's first start may see a served again first
    late = [("queued", "a"), ("queued", "a"), ("started", "a"), ("queued", "b"),
            ("started", "a"), ("started", "b")]
    assert turn_violations(late) == []


def classroom_order(greedy: int, others: int) -> tuple[list[str], list[tuple[str, str]]]:
    """The classroom bench's pattern on a RoundRobin with one worker: ``greedy`` owners
    queue three jobs each, the first job starts, then ``others`` owners queue one each;
    returns the start order and the job log."""
    from explorer.jobs import RoundRobin

    line, log, order = RoundRobin(), [], []

    def put(owner: str) -> None:
        line.put(Job(lambda progress, cancel: None, owner=owner))
        log.append(("queued", owner))

    def start() -> None:
        job = line.pop()
        log.append(("started", job.owner))
        order.append(job.owner)

    for g in range(greedy):
        for _ in range(3):
            put(f"g{g}")
    start()  # the worker takes the first job while the others are still arriving
    for n in range(others):
        put(f"n{n}")
    while len(line):
        start()
    return order, log


def test_thirty_owners_are_served_in_turns():
    from explorer.jobs import turn_violations

    order, log = classroom_order(greedy=5, others=25)
    greedy = [f"g{g}" for g in range(5)]
    others = [f"n{n}" for n in range(25)]
    # g0 was served before the others arrived, so its second turn comes before theirs
    assert order == ["g0", *greedy[1:], "g0", *others, *greedy[1:], "g0", *greedy[1:]]
    assert turn_violations(log) == []


def test_many_owners_take_turns_on_the_job_thread():
    from explorer.jobs import turn_violations

    runner = JobRunner(max_pending=64)
    gate, started = threading.Event(), threading.Event()
    log: list[tuple[str, str]] = []
    blocker = runner.submit(blocked_until(gate, started), owner="blocker")
    assert started.wait(TIMEOUT)  # the worker is busy: everything below waits in line

    def record(owner, progress, cancel):
        log.append(("started", owner))

    owners = [f"g{g}" for g in range(5)] * 3 + [f"n{n}" for n in range(25)]
    jobs = []
    for owner in owners:
        jobs.append(runner.submit(record, owner, owner=owner))
        log.append(("queued", owner))
    gate.set()
    assert [j.wait(TIMEOUT) for j in (blocker, *jobs)] == [DONE] * (len(owners) + 1)
    starts = [owner for kind, owner in log if kind == "started"]
    greedy = [f"g{g}" for g in range(5)]
    assert starts == [*greedy, *(f"n{n}" for n in range(25)), *greedy, *greedy]
    assert turn_violations(log) == []
    runner.shutdown(timeout=TIMEOUT)
