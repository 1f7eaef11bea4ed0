"""Where a job is, in words: the one wording the sidebar, the status bar, the CLI, `job.progress` and a
server's client all show ("step 3 of 25", "upscaling, tile 7 of 32", "waiting").

A job (local, or a server's as its client sees it) has `state`; while it runs, `stage` says what it does,
and `step`/`steps` count the units of that stage: denoising steps, then upscaler tiles, detail windows or
depth views. An empty stage means the state says it all.
"""

import re
from dataclasses import dataclass

DENOISING = "generating"  # the worker's stage while the model denoises; step counts its steps
_STATE_WORDS = {
    "queued": "waiting",
    "loading": "loading the model",
    "running": "generating",
    "postprocessing": "making HDR and maps",
}
_COUNTED = re.compile(r"^(?P<words>.*?)(?P<done>\d+) of (?P<total>\d+)$")
MAX_LOG = 100_000  # stages a job keeps: far more units (tiles, windows) than any job has


class StageLog:
    """A job's `stage` that also keeps every value it took, in order, as `job.stage_log`: a log that samples
    the job (the CLI, 20 times a second) then prints every stage and every tile, however short."""

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, job, owner=None):
        return self if job is None else job.__dict__.get(self.slot, "")

    def __set__(self, job, value):
        if job.__dict__.get(self.slot) != value:
            log = job.__dict__.setdefault("stage_log", [])
            if len(log) < MAX_LOG:
                log.append(value)  # one append: atomic for a reader in another thread
        job.__dict__[self.slot] = value


@dataclass(frozen=True)
class Progress:
    """A job's progress at one moment: `text` in words, `fraction` in [0, 1] for a progress bar."""

    state: str
    text: str
    fraction: float
    step: int = 0
    steps: int = 0
    denoising: bool = False  # the model's steps, for which a surface may add time taken and left

    def __iter__(self):  # (step, steps), as `job.progress` was before it had words: unpacking still works
        return iter((self.step, self.steps))

    def __getitem__(self, index):
        return (self.step, self.steps)[index]

    def counted(self) -> tuple[str, int, int] | None:
        """("upscaling, tile ", 7, 32) for a text that counts units, so a log can name each unit it missed."""
        match = _COUNTED.match(self.text)
        return (match["words"], int(match["done"]), int(match["total"])) if match else None


def steps_done(steps: int) -> str:
    """The stage a finished denoising leaves in a job's stage log ("step 25 of 25"): a log that sampled
    none of its steps (a fast model between two samples) still names each of them."""
    return f"step {steps} of {steps}"


def of(job) -> Progress:
    """The progress of `job`: anything with `state` and optionally `stage`, `step` and `steps`."""
    state = getattr(job, "state", "") or ""
    stage = getattr(job, "stage", "") or ""
    step, steps = int(getattr(job, "step", 0) or 0), int(getattr(job, "steps", 0) or 0)
    fraction = min(step / steps, 1.0) if steps else 0.0
    if state == "running" and stage in ("", DENOISING) and steps and step:
        return Progress(state, f"step {step} of {steps}", fraction, step, steps, denoising=True)
    if state in ("running", "postprocessing") and stage not in ("", DENOISING):
        return Progress(state, stage, fraction if steps else 1.0, step, steps)
    done = {"postprocessing": 1.0, "done": 1.0}.get(state, 0.0)
    return Progress(state, _STATE_WORDS.get(state, state), done, step, steps)
