"""What a command line shows while it runs: a progress line per step, tile or stage on stderr, results as
JSON on stdout (with --json), and Ctrl-C as an interruption. Used by cli.py; no bpy."""

import contextlib
import ctypes
import json
import os
import signal
import sys

from ..generation.engine import progress

NOT_STAGES = ("", progress.DENOISING)  # the stage log's entries that say no more than the state
ENDED = ("done", "failed", "cancelled")


def flush_c_stdout():
    """Flush Python's and the C library's stdout buffers (Blender prints with C's printf)."""
    sys.stdout.flush()
    with contextlib.suppress(OSError, AttributeError, TypeError):  # no C library to ask (Windows)
        ctypes.CDLL(None).fflush(None)


class Results:
    """Where a command's results go. With --json: one JSON object per line on stdout, and everything else
    on stderr, Blender's own lines ("Read blend:", "Info: Saved", written by its C code to descriptor 1)
    included: descriptor 1 points at stderr while the command runs. Without: nothing (stderr says it)."""

    def __init__(self, on: bool):
        self.on, self._stdout, self._python = on, None, contextlib.redirect_stdout(sys.stderr)

    def __enter__(self):
        if self.on:
            flush_c_stdout()
            self._stdout = os.dup(1)
            os.dup2(2, 1)
            self._python.__enter__()  # Blender's reports of operators go through Python's sys.stdout
        return self

    def __exit__(self, *_exc):
        if self._stdout is not None:
            flush_c_stdout()  # what Blender's C code buffered goes to stderr, before stdout is back
            self._python.__exit__(None, None, None)
            os.dup2(self._stdout, 1)
            os.close(self._stdout)
            self._stdout = None

    def emit(self, result: dict):
        if self._stdout is None:
            return
        data = (json.dumps(result, default=str) + "\n").encode()
        while data:
            data = data[os.write(self._stdout, data) :]


class ProgressPrinter:
    """Prints a line on stderr per change of a job's progress, in the words every surface uses: each
    denoising step, upscaler tile, detail step or depth view ("upscaling, tile 3 of 8") and each stage.

    It samples the job; what happened between two samples comes from the job's stage log, and units
    counted between two samples are printed when seen: none is skipped.
    """

    def __init__(self):
        self.last: progress.Progress | None = None
        self.logged = 0  # entries of the job's stage_log already printed

    def __call__(self, task):
        job = task.job
        log = getattr(job, "stage_log", [])
        count = len(log)  # read once: the worker may append meanwhile
        stages, self.logged = log[self.logged : count], count
        now = progress.of(job)
        seen = [progress.Progress("running", stage, 1.0) for stage in stages if stage not in NOT_STAGES]
        for moment in [*seen, now]:
            for line in self.lines(moment):
                print(f"promptscape: {line}", file=sys.stderr, flush=True)

    def lines(self, now: progress.Progress) -> list[str]:
        last, self.last = self.last, now
        if last is not None and now.text == last.text:
            return []
        counted, before = now.counted(), last.counted() if last is not None else None
        finished = []  # a new stage (or the job done) means the one counted before it ran to its end
        stopped = now.state in ENDED and now.state != "done"  # a failed or cancelled one did not
        if before is not None and (counted is None or counted[0] != before[0]) and not stopped:
            finished = [f"{before[0]}{unit} of {before[2]}" for unit in range(before[1] + 1, before[2] + 1)]
        if counted is None:
            return [*finished, now.text]
        words, done, total = counted
        same_stage = before is not None and before[0] == words and before[2] == total
        first = before[1] + 1 if same_stage else 1
        return [*finished, *(f"{words}{unit} of {total}" for unit in range(min(first, done), done + 1))]


@contextlib.contextmanager
def interruptible():
    """Ctrl-C raises KeyboardInterrupt while a command runs: `blender -b` only sets a flag on the first one
    (and kills Blender on the second), which would leave the job running."""
    try:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: nothing to install
        previous = None
    try:
        yield
    finally:
        if previous is not None:  # None: Blender's own C handler, which Python cannot put back
            signal.signal(signal.SIGINT, previous)
