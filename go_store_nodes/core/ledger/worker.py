"""Database work off the subscription callbacks: one ordered, bounded job queue per node.

A subscription callback that waits on the database (a lock held by another process, a
PostgreSQL server restarting) stops the executor, and the middleware's KEEP_LAST queue
then overwrites input without telling anyone. The nodes therefore only enqueue in their
callbacks; ``SerialWorker`` runs the jobs one at a time, in submission order, on its own
thread. A job that fails with a retryable error (``is_retryable``: a lock wait timed out,
the server is unreachable) is run again after a backoff, before any later job, so order
and content are kept; a job failing otherwise is reported and skipped. A full queue
refuses the new job and counts it: nothing is dropped without a count and a log line.

Pure Python (no ROS): the nodes pass callables for logging and counting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import threading
from typing import Callable, Deque, Optional

Job = Callable[[], None]
RetryReport = Callable[[str, BaseException, int, float], None]
"""``on_retry(label, error, attempt, delay_s)``: a job will run again after ``delay_s``."""
ErrorReport = Callable[[str, BaseException], None]
"""``on_error(label, error)``: a job failed for good and was skipped."""


@dataclass(frozen=True)
class WorkerConfig:
    """Size of the queue and backoff of retried jobs."""

    capacity: int = 20_000
    first_backoff_s: float = 0.05
    max_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        """Validate the config."""
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int) \
                or not 1 <= self.capacity <= 10_000_000:
            raise ValueError(f'capacity must be an int in [1, 1e7], got {self.capacity!r}')
        if not 0.0 < self.first_backoff_s <= self.max_backoff_s <= 600.0:
            raise ValueError('backoff must satisfy 0 < first_backoff_s <= max_backoff_s '
                             f'<= 600, got {self.first_backoff_s}, {self.max_backoff_s}')


@dataclass
class WorkerStats:
    """What the worker did so far (read by the node's diagnostics)."""

    submitted: int = 0
    done: int = 0
    retries: int = 0
    failed: int = 0
    overflowed: int = 0
    high_water: int = 0


class SerialWorker:
    """Runs submitted jobs one at a time, in order, on a thread of its own."""

    def __init__(self, name: str, is_retryable: Callable[[BaseException], bool],
                 config: Optional[WorkerConfig] = None,
                 on_retry: Optional[RetryReport] = None,
                 on_error: Optional[ErrorReport] = None) -> None:
        """Start the thread; ``is_retryable(error)`` says whether a failed job runs again."""
        self._config = config or WorkerConfig()
        self._is_retryable = is_retryable
        self._on_retry = on_retry
        self._on_error = on_error
        self._jobs: Deque[tuple[str, Job]] = deque()
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._busy = False
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Return the number of jobs waiting (not counting the one running)."""
        with self._condition:
            return len(self._jobs)

    @property
    def capacity(self) -> int:
        """Return how many jobs may wait at most."""
        return self._config.capacity

    def submit(self, label: str, job: Job) -> bool:
        """Queue ``job``; return False (and count it) when the queue is full or stopped."""
        with self._condition:
            if self._stopping.is_set() or len(self._jobs) >= self._config.capacity:
                self.stats.overflowed += 1
                return False
            self._jobs.append((label, job))
            self.stats.submitted += 1
            self.stats.high_water = max(self.stats.high_water, len(self._jobs))
            self._condition.notify()
        return True

    def idle(self) -> bool:
        """Return True when no job waits or runs."""
        with self._condition:
            return not self._jobs and not self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job waits or runs; return False on time-out."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._jobs and not self._busy, timeout=timeout_s)

    def stop(self, timeout_s: float = 5.0) -> int:
        """Stop after the running job (waiting jobs are abandoned); return how many."""
        self._stopping.set()
        with self._condition:
            abandoned = len(self._jobs)
            self._jobs.clear()
            self._condition.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        return abandoned

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._jobs or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                label, job = self._jobs[0]
                self._busy = True
            try:
                self._run_until_done(label, job)
            finally:
                with self._condition:
                    if self._jobs and self._jobs[0][1] is job:
                        self._jobs.popleft()
                    self._busy = False
                    self._condition.notify_all()

    def _run_until_done(self, label: str, job: Job) -> None:
        """Run one job, again after a backoff while it fails with a retryable error."""
        delay_s = self._config.first_backoff_s
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            try:
                job()
            except Exception as error:  # noqa: BLE001 - reported, the worker runs on
                if not self._is_retryable(error):
                    self.stats.failed += 1
                    if self._on_error is not None:
                        self._on_error(label, error)
                    return
                self.stats.retries += 1
                if self._on_retry is not None:
                    self._on_retry(label, error, attempt, delay_s)
                self._stopping.wait(delay_s)
                delay_s = min(delay_s * 2.0, self._config.max_backoff_s)
                continue
            self.stats.done += 1
            return
