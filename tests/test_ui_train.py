"""The Train panel (widgets, no browser): bad input refused on the page with nothing
written, a missing dataset and an offline CIFAR-10 download as clear messages, a trained
checkpoint offered as a workload at once and evaluated, the time estimate, cancel."""

from __future__ import annotations

import math
import socket
import threading

import pytest

from explorer.jobs import CANCELLED, DONE, FAILED, DaskJobRunner, JobRunner
from explorer.settings import Settings
from explorer.ui.train_panel import TrainPanel

TIMEOUT = 300  # seconds; only reached when broken (a loaded 2-core machine)


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown(timeout=TIMEOUT)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    checkpoints, data = tmp_path / "checkpoints", tmp_path / "data"
    monkeypatch.setenv("EXPLORER_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("EXPLORER_DATA", str(data))
    return checkpoints, data


def panel(runner, **params) -> TrainPanel:
    return TrainPanel(Settings().crossbar, runner=runner, **params)


def test_zero_epochs_is_refused_on_the_page_and_nothing_is_queued_or_written(runner, folders):
    train = panel(runner, epochs=0)
    assert train.submit("train") is None
    assert train.error.startswith("Epochs: 0 is not allowed")
    assert "1" in train.error and runner.pending() == []
    assert not folders[0].exists()
    train.epochs = 1
    train.limit = 0
    assert train.submit("estimate") is None and train.error.startswith("Training images")


def test_a_missing_dataset_fails_with_the_data_modules_message(runner, folders):
    train = panel(runner, architecture="resnet20", dataset="cifar10", epochs=1)
    job = train.submit("train")
    assert job.wait(TIMEOUT) == FAILED
    train.show_job(job)  # no server session: the update is ours to apply
    assert "DatasetMissingError: cifar10 (train split) is not in" in train.error
    assert not folders[0].exists()


def test_get_cifar10_offline_gives_the_clear_message(runner, folders):
    train = panel(runner)
    job = train.submit("download")
    assert job.wait(TIMEOUT) == FAILED
    train.show_job(job)
    assert train.error.startswith("Download of CIFAR-10 failed: DatasetMissingError: cifar10")
    assert "could not be downloaded" in train.error


def test_a_trained_checkpoint_is_offered_at_once_and_evaluates(runner, folders):
    from explorer.jobs import Job
    from explorer.ui.app import Explorer

    app = Explorer(runner=runner)
    app.train.param.update(epochs=1, limit=256)
    job = app.train.submit("train")
    assert isinstance(job, Job) and job.wait(TIMEOUT) == DONE, job.error
    app.train.show_job(job)
    saved = list(folders[0].glob("*.pt"))
    assert saved == [app.train.checkpoint] and saved[0].with_suffix(".json").is_file()
    assert not list(folders[0].glob("*.tmp"))
    name = app.accuracy.workload  # selected in the accuracy runner, offered in the sweep
    assert str(saved[0]) == app.accuracy.model and name in app.sweep.param.workload.objects
    app.accuracy.param.update(limit=50, trials=1)
    run = app.accuracy.submit()
    assert run.wait(TIMEOUT) == DONE, run.error
    assert 0.0 <= run.result["accuracy_mean"] <= 1.0
    assert run.result["workload"]["model"] == str(saved[0])
    assert name in Explorer(runner=runner).accuracy.param.workload.objects  # a new session


def test_the_estimate_times_steps_on_the_worker_and_counts_them(runner, folders):
    train = panel(runner, epochs=3, limit=300)
    job = train.submit("estimate")
    assert job.wait(TIMEOUT) == DONE, job.error
    assert job.result["steps"] == math.ceil(300 / 128) * 3
    assert job.result["seconds"] == pytest.approx(job.result["seconds_per_step"] * 9)
    train.show_job(job)
    assert train.status.startswith("Estimated training time on this machine: about")


def test_cancelling_a_training_writes_nothing(runner, folders):
    train = panel(runner, epochs=200, limit=256)
    stepping = threading.Event()
    job = train.submit("train")
    job.param.watch(lambda e: e.new > 0 and stepping.set(), "progress")
    assert stepping.wait(TIMEOUT) or job.progress > 0
    assert job.cancel()
    assert job.wait(TIMEOUT) == CANCELLED
    train.show_job(job)
    assert "nothing was written" in train.status and not folders[0].exists()


def test_a_cluster_that_does_not_answer_is_a_message_on_the_page(folders):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = DaskJobRunner(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1.0)
    try:
        train = panel(runner, epochs=1)
        job = train.submit("train")
        assert job.wait(TIMEOUT) == FAILED
        train.show_job(job)
        assert "EXPLORER_SCHEDULER: cannot reach the Dask scheduler" in train.error
        assert not folders[0].exists()
    finally:
        runner.shutdown(timeout=TIMEOUT)
