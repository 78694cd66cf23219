"""The grid runner on a real Dask cluster started by the test (no mocks): smoke runs are
dispatched and written, a run whose worker is killed mid-way is retried and resumes from its
checkpoint, and an unreachable scheduler is a clear error."""

import os
import signal
import threading
import time

import pytest

from kaflib.thesis import grid
from kaflib.thesis.experiment import read_metrics, run_dir

# A Dask cluster of worker processes per test: the slow tier.
pytestmark = pytest.mark.slow

distributed = pytest.importorskip("dask.distributed")

SMOKE = {"preset": "smoke", "train_size": 400, "test_size": 40}


def test_smoke_runs_are_dispatched_to_local_worker_processes(tmp_path):
    status = grid.run_grid("thesis-light", tmp_path, jobs=2, parameters=SMOKE, acts=["relu", "kaf"], progress=False)
    assert status == {("light", "relu", 0): "finished", ("light", "kaf", 0): "finished"}
    for act in ("relu", "kaf"):
        folder = run_dir(tmp_path, "thesis-light", "light", act)
        metrics = read_metrics(folder)
        assert metrics["parameters"]["preset"] == "smoke" and metrics["parameters"]["train_size"] == 400
        assert (folder / "model.keras").is_file() and (folder / "train.ipynb").is_file()
        assert len((folder / "attempts.log").read_text().splitlines()) == 1
    # a second call finds them finished and starts no cluster
    assert set(grid.run_grid("thesis-light", tmp_path, parameters=SMOKE, acts=["relu", "kaf"]).values()) == {"skipped"}


def _kill_worker():
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_run_whose_worker_dies_is_retried_and_resumes(tmp_path):
    parameters = dict(SMOKE, epochs=12)
    history = run_dir(tmp_path, "thesis-light", "light", "relu") / "checkpoint" / "history.csv"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = {}
        runner = threading.Thread(target=lambda: result.update(grid.run_grid(
            "thesis-light", tmp_path, parameters=parameters, acts=["relu"], client=client, progress=False)))
        runner.start()
        deadline = time.monotonic() + 600
        while not (history.is_file() and len(history.read_text().splitlines()) >= 3):  # two epochs done
            assert time.monotonic() < deadline and runner.is_alive(), "the run never checkpointed an epoch"
            time.sleep(0.2)
        with pytest.raises(Exception):  # the worker dies before it can answer
            client.run(_kill_worker)
        runner.join(timeout=900)
    status = result[("light", "relu", 0)]
    assert status.startswith("finished after 2 attempts"), status
    folder = history.parent.parent
    metrics = read_metrics(folder)
    # the second attempt started from the checkpoint, not from scratch (it may still stop
    # early: on 400 images the guard accuracy can trip the collapse check)
    assert metrics["resumed_from_epoch"] >= 2 and metrics["epochs_run"] >= metrics["resumed_from_epoch"]
    epochs = [int(line.split(",")[0]) for line in (folder / "history.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(1, metrics["epochs_run"] + 1))


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ConnectionError, match="Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        grid.run_grid("thesis-light", tmp_path, parameters=SMOKE, acts=["relu"], scheduler="tcp://127.0.0.1:9")
    assert grid.main(["thesis-light", "--out-dir", str(tmp_path), "--preset", "smoke", "--act", "relu",
                      "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "Cannot reach the Dask scheduler" in capsys.readouterr().err
    with pytest.raises(ValueError, match="jobqueue='kubernetes' is invalid"):
        grid.dask_client(jobqueue="kubernetes")
