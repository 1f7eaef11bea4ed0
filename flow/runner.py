"""The main-thread half of a generation: watch the worker's jobs and apply finished ones to the scene.

The worker thread never touches bpy. Here `tick()` looks at the jobs in flight and, for each finished
one, runs its apply step on the main thread. In the UI a `bpy.app.timers` timer calls `tick()`; in
background mode (`blender -b`, the bpy module) timers never fire, so `wait()` pumps `tick()` itself.
A tick with nothing finished does almost nothing: it reads a few attributes per job.
"""

import atexit
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import bpy

from ..generation.errors import PromptscapeError

log = logging.getLogger(__name__)
TICK_INTERVAL = 0.1


@dataclass
class Task:
    """One request's way through Promptscape: the worker's job plus what applies its result."""

    job: object  # a generation.engine.worker.Job (or any object with the same state/outputs/error/cancel)
    kind: str  # "world" or "material"
    label: str  # shown in the panel: the prompt, or the image's file name
    apply: Callable[["Task"], object]  # task -> the World or Material; runs on the main thread
    file_key: str = ""  # which .blend the task belongs to; a task from another file is never applied
    metadata: dict = field(default_factory=dict)  # the resolved request, once the job is done
    result: object = None  # the applied World or Material
    error: str = ""
    applied: bool = False
    finished: bool = False
    cancel_requested: bool = False
    apply_seconds: float = 0.0
    on_finish: list[Callable[["Task"], None]] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancel_requested or getattr(self.job, "state", "") == "cancelled"

    def cancel(self):
        """Stop the job; a result that is finished but not yet applied is kept on disk, not applied."""
        self.cancel_requested = True
        self.job.cancel()


@dataclass(frozen=True)
class HistoryEntry:
    """A finished result of this session: its files stay on disk and can be applied again."""

    key: int  # stable while the list grows, so a click never picks a result that arrived since the redraw
    kind: str
    label: str
    metadata: dict
    outputs: object  # generation.imaging.outputs.WorldOutputs or MaterialOutputs


_tasks: list[Task] = []
_history: list[HistoryEntry] = []
_last_error = ""
_files_loaded = 0  # bumped by every file load (new or open); saving keeps it


def file_key() -> str:
    """Identifies the file in memory, to keep results out of other files.

    Not the path: File > New gives another unsaved file with a scene of the same name, and Save As
    gives the same file a new path.
    """
    return f"load-{_files_loaded}"


def tasks() -> list[Task]:
    """Tasks still running or waiting, oldest first."""
    return list(_tasks)


def history() -> list[HistoryEntry]:
    """This session's results, newest first; they survive opening another file."""
    return list(reversed(_history))


def history_entry(key: int) -> HistoryEntry | None:
    return _history[key] if 0 <= key < len(_history) else None


def last_error() -> str:
    return _last_error


def last_memory_plan() -> str:
    """The memory plan the newest result ran with ("" when none ran this session)."""
    return _history[-1].metadata.get("memory_plan", "") if _history else ""


def clear_error():
    global _last_error
    _last_error = ""


def start(task: Task) -> Task:
    """Track a submitted task; in the UI, make sure the timer that applies results is running."""
    task.file_key = task.file_key or file_key()
    clear_error()  # the panel shows the latest failure only until the next attempt
    _tasks.append(task)
    if not bpy.app.background and not bpy.app.timers.is_registered(_timer):
        # Persistent: a File > New or Open while a job runs must not stop its result reaching the history.
        bpy.app.timers.register(_timer, first_interval=TICK_INTERVAL, persistent=True)
    return task


def tick():
    """Apply what the worker has finished, oldest first. Cheap when nothing is ready."""
    for task in [task for task in _tasks if task.job.done]:
        _tasks.remove(task)
        try:
            _finish(task)
        except Exception as error:  # a bug; in the UI timer it would stop every later result from landing
            log.exception("Finishing a Promptscape task failed")
            task.error = task.error or f"Promptscape failed to finish this task ({error}); see the log"
            task.finished = True  # so nothing waiting on it waits forever


def _finish(task: Task):
    global _last_error
    job = task.job
    if job.state == "failed":
        task.error = job.message or str(job.error)
    elif job.state == "done":
        # A world's outputs add the sun found to the request, so the history and the world show it.
        task.metadata = {**job.metadata, **getattr(job.outputs, "light", {})}
        _history.append(HistoryEntry(len(_history), task.kind, task.label, task.metadata, job.outputs))
        if task.cancel_requested:
            pass  # cancelled after the worker finished: the files stay on disk and in the history
        elif task.file_key != file_key():
            task.error = "The file changed while generating; the result is on disk and in the history"
        else:
            _apply(task)
    task.finished = True
    if task.error:
        _last_error = task.error
    for callback in task.on_finish:
        callback(task)
    if task.applied and not bpy.app.background:
        bpy.ops.ed.undo_push(message=f"Promptscape: apply {task.kind}")


def _apply(task: Task):
    started = time.perf_counter()
    try:
        task.result = task.apply(task)
        task.applied = True
        task.apply_seconds = time.perf_counter() - started
    except PromptscapeError as error:
        task.error = str(error)
    except Exception as error:  # a bug: keep Blender running, say where the files are
        log.exception("Applying a Promptscape result failed")
        task.error = f"Applying the result failed ({error}); the files are on disk"


def wait(task: Task, timeout: float | None = None, progress: Callable[[Task], None] | None = None) -> bool:
    """Block until `task` is applied or ended (background mode and scripts); True when it finished.

    `progress` is called with the task about 20 times a second while it runs (the CLI prints steps).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not task.finished:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        task.job.wait(0.05 if remaining is None else min(0.05, remaining))
        tick()
        if progress is not None and not task.finished:
            progress(task)
    return True


def cancel_all():
    for task in _tasks:
        task.cancel()


def _timer():
    tick()
    redraw({"VIEW_3D", "STATUSBAR"})  # the sidebar and the status bar show progress
    return TICK_INTERVAL if _tasks else None


def redraw(area_types: set[str]):
    """Ask Blender to redraw every area of these types (progress changed behind its back)."""
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type in area_types:
                area.tag_redraw()


@bpy.app.handlers.persistent
def _on_load_pre(*_):
    # Results of a file being closed must not land in the next one: finished tasks are applied
    # now, the rest keep their files on disk and come back in the history (tick() checks the key).
    global _files_loaded
    tick()
    _files_loaded += 1


def _stop_worker():
    from ..generation.engine import worker

    worker.shutdown_worker(timeout=2.0)


def register():
    bpy.app.handlers.load_pre.append(_on_load_pre)
    # Quitting Blender does not disable add-ons, but it runs atexit before Python shuts down: cancel the
    # worker there and give it 2 s to finish its step (a GPU step is well within that; a long CPU step
    # or a model load is not, and the daemon thread is then left to the interpreter's shutdown).
    atexit.register(_stop_worker)


def unregister():
    """Cancel everything, stop the worker thread and remove the timer and handlers."""
    cancel_all()
    _stop_worker()
    atexit.unregister(_stop_worker)
    _tasks.clear()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
