"""Engine jobs in a background process, so that Slicer stays responsive while the engine works.

The engine process `PythonSlicer -m spine_analysis.jobs` reads JSON requests, one per line, on stdin until stdin
closes, then exits 0; its answers are described (and read) in SpineCommonLib.protocol.

An EngineJob writes its input images into a temporary folder, deleted when the job ends, and sends one
request. By default it starts its own EngineProcess and closes its input after the request (one-shot);
an EngineProcess kept warm for several requests can be passed in instead (WarmEngineRunner).
"""
import collections
import json
import logging
import os
import queue
import shutil
import subprocess
import threading

import qt

import slicer
from slicer.i18n import tr as _

from SpineCommonLib.protocol import JobCancelled, JobFailed, failureOf, parseMessage, progressOf, resultOf

ENGINE_MODULE = "spine_analysis.jobs"


def engineParentFolder():
    """The folder that holds the `spine_analysis` package (to put on PYTHONPATH of a subprocess)."""
    import spine_analysis

    return os.path.dirname(os.path.dirname(os.path.abspath(spine_analysis.__file__)))


def killProcessTree(proc):
    """Stop `proc` and its children: PythonSlicer is a launcher whose child runs the Python code."""
    if proc is None or proc.poll() is not None:
        return
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
    elif os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True,
                       creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    else:
        subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], capture_output=True)
    try:
        proc.kill()
    except OSError:
        pass


class EngineProcess:
    """A running engine process. Requests go in on stdin; two reader threads queue its output in `output` as
    ("stdout" or "stderr", line), then (stream, None) once that stream has ended and the process has exited.

    slicer.util.launchConsoleProcess cannot be used: it gives no stdin and mixes stderr into stdout.
    """

    def __init__(self, command=None):
        """:param command: the command line; default `PythonSlicer -m spine_analysis.jobs` (tests pass a stand-in)"""
        if command is None:
            pythonSlicer = shutil.which("PythonSlicer")
            if not pythonSlicer:
                raise RuntimeError("The PythonSlicer executable was not found; it is needed to run the engine.")
            command = [pythonSlicer, "-m", ENGINE_MODULE]
        logging.info("SpineAnalysis: starting " + " ".join(command))
        options = {}
        if os.name == "nt":  # no console window
            options["startupinfo"] = subprocess.STARTUPINFO()
            options["startupinfo"].dwFlags = subprocess.STARTF_USESHOWWINDOW
            options["startupinfo"].wShowWindow = 0  # SW_HIDE
        self.output = queue.Queue()
        self.proc = subprocess.Popen(
            command, env=self._environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, **options)
        for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    @staticmethod
    def _environment():
        environment = slicer.util.startupEnvironment()
        pythonPath = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = os.pathsep.join([engineParentFolder()] + ([pythonPath] if pythonPath else []))
        environment["PYTHONUNBUFFERED"] = "1"    # answers arrive as they are printed
        environment["PYTHONIOENCODING"] = "utf-8"  # the pipes are read as UTF-8 on every platform
        return environment

    def _read(self, name, stream):
        """Reader thread of one output stream."""
        try:
            for line in stream:
                self.output.put((name, line.rstrip("\r\n")))
        except (OSError, ValueError):  # the pipe was closed under the reader
            pass
        self.proc.wait()
        self.output.put((name, None))

    def send(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def closeInput(self):
        """End of requests: the engine exits once it has answered the last one."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def kill(self):
        killProcessTree(self.proc)


class EngineJob:
    """One engine request, with progress and Cancel.

    Blocking:      result = EngineJob(request, images).run()
    Non-blocking:  job.start(completedCallback)  # completedCallback(result or None, error or None), main thread
                   job.cancel()
    `result` is the engine's "done" answer without its "status"; the error is a JobFailed (with the engine's
    `code`) or a JobCancelled.
    """

    POLL_INTERVAL_MS = 200

    def __init__(self, request, images=None, process=None, logCallback=None, progressCallback=None):
        """
        :param request: the request without its input files, e.g. {"job": "cobb", "weights": None, "force": False}
        :param images: {request key: SimpleITK image}; each is written to the temporary folder and its path
            sent under that key
        :param process: an EngineProcess to use and leave running; default: a new one, closed after this request
        :param logCallback: called with each line worth logging (default: logging.info)
        :param progressCallback: called with (fraction 0..1 or None, message) for each progress answer
        """
        self.request = dict(request)
        self.images = images or {}
        self.process = process
        self._ownsProcess = process is None
        self.logCallback = logCallback
        self.progressCallback = progressCallback
        self.cancelled = False
        self.tempDir = None
        self.result = None
        self.error = None
        self._finished = False
        self._endedStreams = set()
        self._recentLines = collections.deque(maxlen=20)
        self._timer = None
        self._completedCallback = None

    # ------------------------------------------------------------------ running

    def run(self):
        """Send the request and wait for the answer; returns the result, raises JobFailed or JobCancelled."""
        self._send()
        while not self._finished:
            try:
                self._handle(self.process.output.get(timeout=self.POLL_INTERVAL_MS / 1000.0))
            except queue.Empty:
                pass
            if slicer.app:
                slicer.app.processEvents()
        if self.error is not None:
            raise self.error
        return self.result

    def start(self, completedCallback):
        """Send the request and return at once; `completedCallback(result, error)` is called on the main thread."""
        self._completedCallback = completedCallback
        self._send()
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self._timer.start()

    def cancel(self, notify=True):
        """Stop the job by killing its process; the completed callback then gets a JobCancelled
        (unless not `notify`)."""
        self.cancelled = True
        if not notify:
            self._completedCallback = None
        if self.process:
            self.process.kill()

    def _send(self):
        import SimpleITK as sitk

        try:
            self.tempDir = slicer.util.tempDirectory(key="SpineAnalysisJob")
            request = dict(self.request)
            for key, image in self.images.items():
                request[key] = os.path.join(self.tempDir, f"{key}.nrrd")
                sitk.WriteImage(image, request[key])
            if self.process is None:
                self.process = EngineProcess()
            self._log(f"Request: {json.dumps(request)}")
            self.process.send(request)
            if self._ownsProcess:
                self.process.closeInput()  # one-shot: the engine exits after answering
        except Exception:
            if self._ownsProcess and self.process:
                self.process.kill()
            self._removeTempDir()
            raise

    def _poll(self):
        """Main thread (QTimer): handle the queued output; call back once the job has ended."""
        while not self._finished:
            try:
                self._handle(self.process.output.get_nowait())
            except queue.Empty:
                return
        self._timer.stop()
        if self._completedCallback:
            self._completedCallback(self.result, self.error)

    # ------------------------------------------------------------------ output

    def _log(self, text):
        if self.logCallback:
            self.logCallback(text)
        else:
            logging.info(text)

    def _handle(self, item):
        stream, line = item
        if line is None:
            self._endedStreams.add(stream)
            if self._endedStreams == {"stdout", "stderr"}:
                self._finish(error=JobFailed(
                    f"The engine process ended (exit code {self.process.proc.returncode}) without an answer. "
                    + next((text for text in reversed(self._recentLines) if text.strip()), "")))
            return
        message = parseMessage(line) if stream == "stdout" else None
        status = message.get("status") if message else None
        if status == "progress":
            fraction, text = progressOf(message)
            self._log(text)
            if self.progressCallback:
                self.progressCallback(fraction, text)
        elif status == "done":
            self._finish(result=resultOf(message))
        elif status == "error":
            self._finish(error=failureOf(message))
        else:
            self._recentLines.append(line)
            self._log(line)

    def _finish(self, result=None, error=None):
        if self.cancelled:
            result, error = None, JobCancelled("The job was cancelled.")
        self.result, self.error = result, error
        self._finished = True
        self._removeTempDir()

    def _removeTempDir(self):
        if self.tempDir:
            shutil.rmtree(self.tempDir, ignore_errors=True)
            self.tempDir = None


class WarmEngineRunner:
    """What a module logic needs to run EngineJobs one at a time on an engine process it keeps warm.

    Mixed into a ScriptedLoadableModuleLogic: call `initJobs(title)` in `__init__`; `activeJob` is the job
    running (None when idle); `_run` runs a job blocking or in the background; `cancel` stops it and
    `shutdown` also ends the engine process (the module's widget calls it when the scene closes and in its
    cleanup(), which Slicer also calls at exit). `_onShutdown()` is the hook for a logic's own clean-up then.
    """

    def initJobs(self, title):
        """`title` (the module's name) goes into the message refusing a second job."""
        self.jobTitle = title
        self.activeJob = None
        self._jobCleanup = None
        self._engine = None

    def _checkIdle(self):
        if self.activeJob is not None:
            raise RuntimeError(f"Another {self.jobTitle} job is running: wait for it to end or cancel it.")

    @staticmethod
    def _checkUntransformed(*nodes):
        """Inputs must share one frame: a transformed node is refused, not resampled."""
        for node in nodes:
            if node is not None and node.GetParentTransformNode():
                raise ValueError(f"'{node.GetName()}' is under a transform. Harden the transform (Data module, "
                                 "right-click the node) or remove it, then try again.")

    def _engineProcess(self, progressCallback=None):
        """The engine process, started on first use and kept for the next job (its models stay loaded).

        Starting one takes seconds before the engine can report progress (imports, then its model), so
        `progressCallback(None, "Loading the model…")` is called when a new process is started."""
        if self._engine is None or self._engine.proc.poll() is not None:
            self._engine = EngineProcess()
            if progressCallback:
                progressCallback(None, _("Loading the model…"))
        return self._engine

    def _run(self, job, finish, completedCallback, cleanup=None):
        """Run `job`: blocking (returns finish(result)) when `completedCallback` is None, else in the background
        (returns the job; `completedCallback(finish(result) or None, error or None)` follows on the main thread).
        `cleanup` runs when the job has ended, whatever the outcome."""
        self.activeJob, self._jobCleanup = job, cleanup
        if completedCallback is None:
            try:
                return finish(job.run())
            finally:
                self._endJob()

        def onJobEnded(result, error):
            value = None
            try:
                if error is None:
                    value = finish(result)
            except Exception as exc:
                error = exc
            finally:
                self._endJob()
            completedCallback(value, error)

        try:
            job.start(onJobEnded)
        except Exception:
            self._endJob()
            raise
        return job

    def _endJob(self):
        cleanup = self._jobCleanup
        self.activeJob = self._jobCleanup = None
        if cleanup:
            cleanup()

    def cancel(self, notify=True):
        """Stop the running job; its completed callback gets a JobCancelled (unless not `notify`)."""
        if self.activeJob is None:
            return
        self.activeJob.cancel(notify=notify)
        self._engine = None  # killed with the job; the next job starts a new one
        if not notify:
            self._endJob()

    def shutdown(self):
        """End the engine process (scene closed, module unloaded, Slicer exiting): a running job is killed
        (its callback is not called); an idle engine has its input closed, so it exits by itself. The next job
        starts a new process."""
        self.cancel(notify=False)
        if self._engine is not None:
            self._engine.closeInput()
            self._engine = None
        self._onShutdown()

    def _onShutdown(self):
        """A logic's own clean-up at shutdown (nothing by default)."""
