"""Job handles: a training job on the server, with wait / cancel / refresh and progress.

States (job.proto): QUEUED -> RUNNING -> SUCCEEDED | FAILED, and
QUEUED | RUNNING -> CANCELLING -> CANCELLED. SUCCEEDED, FAILED and CANCELLED are final.
"""

import time

from . import _stubs
from .display import ProgressDisplay, format_job_line
from .errors import GradzooError, JobFailedError, make_error
from .types import JobProgress, _time, enum_name

__all__ = ["Job", "FINAL_STATES"]

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class Job:
    """A handle on one server job. Attributes mirror the last snapshot seen: ``name``,
    ``state`` ("QUEUED", "RUNNING", ...), ``progress`` (:class:`JobProgress`), ``error``,
    ``output`` (the resource it produces, e.g. "zoos/lambda"), ``request_id``, ``create_time``,
    ``start_time``, ``end_time`` and ``raw`` (the TrainingJob message). Not thread-safe."""

    def __init__(self, client, message):
        self._client = client
        self._set(message)

    def _set(self, m):
        self.raw = m
        self.name = m.name
        self.state = enum_name(_stubs.module("job_pb2").JobState, m.state, "JOB_STATE_")
        self.progress = JobProgress.from_proto(m.progress)
        self.error = m.error
        self.output = m.output
        self.request_id = m.request_id
        self.create_time = _time(m.create_time)
        self.start_time = _time(m.start_time)
        self.end_time = _time(m.end_time)

    @property
    def target(self):
        """What the job makes: ``output`` once set, else "zoos/{zoo_id}" from its request."""
        if self.output:
            return self.output
        work = self.raw.WhichOneof("work")
        if work == "zoo_training":
            return "zoos/" + self.raw.zoo_training.zoo_id
        if work == "embedder_training":
            return "embedders/" + self.raw.embedder_training.embedder_id
        return ""

    @property
    def done(self):
        """True once the job is SUCCEEDED, FAILED or CANCELLED."""
        return self.state in FINAL_STATES

    @property
    def succeeded(self):
        return self.state == "SUCCEEDED"

    def refresh(self):
        """Fetches the job's current snapshot (GetTrainingJob); returns self."""
        self._set(self._client._unary("GetTrainingJob", name=self.name).job)
        return self

    def cancel(self):
        """Asks the job to stop (CancelTrainingJob; cooperative, it reaches CANCELLED within a
        second or two; an ended job is unchanged); returns self."""
        self._set(self._client._unary("CancelTrainingJob", name=self.name).job)
        return self

    def watch(self, timeout=None):
        """Yields self after each update the server streams (WatchTrainingJob) until the job is
        final. ``timeout`` (seconds) bounds the whole stream (DeadlineExceededError)."""
        for msg in self._client._stream("WatchTrainingJob", timeout=timeout, name=self.name):
            self._set(msg.job)
            yield self

    def wait(self, progress=True, timeout=None, raise_on_failure=True):
        """Blocks until the job is final and returns self.

        ``progress``: True shows a bar (notebook, terminal or plain lines, see
        gradzoo.display), False shows nothing, a string picks the mode, a callable is called
        with the job on each update. ``timeout``: seconds for the whole wait (None = no limit);
        when it passes, DeadlineExceededError (the job keeps running). A watch stream cut by
        the network (UNAVAILABLE) is resumed. A FAILED job raises JobFailedError unless
        ``raise_on_failure`` is False; CANCELLED returns normally (check ``state``).
        """
        if callable(progress):
            show = progress
            display = None
        else:
            mode = progress if isinstance(progress, str) else ("auto" if progress else "none")
            display = ProgressDisplay(mode)
            show = display.update
        deadline = None if timeout is None else time.monotonic() + timeout
        retries = 0
        try:
            show(self)
            while not self.done:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise make_error("DEADLINE_EXCEEDED",
                                     f"job {self.name} still {self.state} after {timeout}s")
                try:
                    for _ in self.watch(timeout=remaining):
                        show(self)
                    retries = 0
                except GradzooError as e:
                    if e.code != "UNAVAILABLE" or retries >= 5:
                        raise
                    retries += 1
                    time.sleep(min(2.0, 0.2 * 2 ** retries))
                if not self.done:  # the stream ended early (server restart): look again
                    time.sleep(0.2)
                    self.refresh()
                    show(self)
        finally:
            if display is not None:
                display.close(self)
        if self.state == "FAILED" and raise_on_failure:
            raise JobFailedError(self)
        return self

    def __repr__(self):
        return f"<Job {format_job_line(self)}>"
