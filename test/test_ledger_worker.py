"""The serial database worker: order kept through retries, overflow counted, never silent."""

import threading

import pytest

from go_store_nodes.core.ledger.worker import SerialWorker, WorkerConfig

FAST = WorkerConfig(capacity=5, first_backoff_s=0.001, max_backoff_s=0.002)


class UnavailableError(Exception):
    """Stands for a lock time-out or a lost connection."""


def test_jobs_run_in_order_and_a_retryable_failure_is_retried_before_later_jobs():
    done: list[int] = []
    failures = {2: 3}  # job 2 fails three times
    retries: list[tuple[str, int]] = []

    def job(n):
        def run():
            if failures.get(n):
                failures[n] -= 1
                raise UnavailableError(f'job {n}')
            done.append(n)
        return run

    worker = SerialWorker('test', lambda e: isinstance(e, UnavailableError), FAST,
                          on_retry=lambda label, error, attempt, delay: retries.append(
                              (label, attempt)))
    for n in range(5):
        assert worker.submit(f'job {n}', job(n))
    assert worker.wait_idle(5.0)
    worker.stop()
    assert done == [0, 1, 2, 3, 4]
    assert retries == [('job 2', 1), ('job 2', 2), ('job 2', 3)]
    assert (worker.stats.done, worker.stats.retries, worker.stats.failed) == (5, 3, 0)


def test_a_job_failing_otherwise_is_reported_and_skipped():
    errors = []
    worker = SerialWorker('test', lambda e: False, FAST,
                          on_error=lambda label, error: errors.append((label, str(error))))
    worker.submit('bad', lambda: 1 / 0)
    done = []
    worker.submit('good', lambda: done.append(1))
    assert worker.wait_idle(5.0)
    worker.stop()
    assert errors == [('bad', 'division by zero')] and done == [1]


def test_a_full_queue_refuses_and_counts():
    release = threading.Event()
    worker = SerialWorker('test', lambda e: False, FAST)
    worker.submit('blocker', lambda: release.wait(5.0))
    while worker.depth:  # the blocker is running, the queue empty
        pass
    accepted = [worker.submit(f'job {n}', lambda: None) for n in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert worker.stats.overflowed == 3 and worker.stats.high_water == 5
    release.set()
    assert worker.wait_idle(5.0)
    worker.stop()


@pytest.mark.parametrize('kwargs', [
    {'capacity': 0}, {'capacity': True}, {'first_backoff_s': 0.0},
    {'first_backoff_s': 3.0, 'max_backoff_s': 2.0},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        WorkerConfig(**kwargs)
