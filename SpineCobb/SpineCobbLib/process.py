"""Landmark detection in a separate process, so that Slicer stays responsive.

The radiograph is written to a temporary folder, `PythonSlicer -m spine_analysis cobb ...` runs on it,
and its `landmarks.json` is read back. Output lines of the process are forwarded for logging and
progress; the process can be cancelled. The temporary folder is deleted in every case.
"""
import collections
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import threading

import qt

import slicer

WEIGHTS_ENVIRONMENT_VARIABLE = "SPINE_ANALYSIS_LANDMARK_WEIGHTS"
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")
_FRACTION = re.compile(r"\b(\d+)\s*/\s*(\d+)\b")


class DetectionCancelled(RuntimeError):
    """The user cancelled the landmark detection."""


def framingWarnings(reportPath):
    """Messages of the detector's framing flags in a run's report.json: T1 or L5 found where the
    model's training radiographs rarely have them, so the level names may be shifted."""
    try:
        with open(reportPath, encoding="utf-8") as f:
            flags = json.load(f).get("quality_flags", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [flag.get("message", "") for flag in flags if isinstance(flag, dict) and flag.get("code") == "framing"]


def progressFromLine(line):
    """Fraction done (0..1) if an output line reports progress ("40%", "stage 2/3"), else None."""
    match = _PERCENT.search(line)
    if match:
        return min(float(match.group(1)), 100.0) / 100.0
    match = _FRACTION.search(line)
    if match and 0 < int(match.group(2)) <= 1000 and int(match.group(1)) <= int(match.group(2)):
        return int(match.group(1)) / int(match.group(2))
    return None


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


class LandmarkDetection:
    """One run of the landmark model on a 2D image array (rows, columns).

    Blocking:      landmarks = LandmarkDetection(image).run()
    Non-blocking:  detection.start(completedCallback)  # completedCallback(landmarks or None, error or None)
                   detection.cancel()
    """

    POLL_INTERVAL_MS = 200

    def __init__(self, image, weightsPath=None, engineFolder=None, logCallback=None, progressCallback=None):
        """
        :param image: 2D numpy array, pixel (x=column, y=row)
        :param weightsPath: landmark model weights; default: $SPINE_ANALYSIS_LANDMARK_WEIGHTS, else the bundled model
        :param engineFolder: folder holding the `spine_analysis` package, put on the process's PYTHONPATH
        :param logCallback: called with each output line of the process
        :param progressCallback: called with (fraction 0..1 or None if unknown, latest output line)
        """
        self.image = image
        self.weightsPath = str(weightsPath) if weightsPath else os.environ.get(WEIGHTS_ENVIRONMENT_VARIABLE) or None
        self.engineFolder = engineFolder
        self.logCallback = logCallback
        self.progressCallback = progressCallback
        self.cancelled = False
        #: Framing warnings of the finished run (see framingWarnings); empty until it has finished.
        self.warnings = []
        self.proc = None
        self.tempDir = None
        self.outputDir = None
        self.lines = collections.deque(maxlen=200)
        self._queue = None
        self._timer = None
        self._completedCallback = None

    # ------------------------------------------------------------------ launching

    def command(self, inputPath, outputDir):
        pythonSlicer = shutil.which("PythonSlicer")
        if not pythonSlicer:
            raise RuntimeError("The PythonSlicer executable was not found; it is needed to run the landmark model.")
        command = [pythonSlicer, "-m", "spine_analysis", "cobb", inputPath, "--out-dir", outputDir, "--json",
                   "--progress"]
        if self.weightsPath:
            command += ["--weights", self.weightsPath]
        return command

    def _environment(self):
        environment = {"PYTHONUNBUFFERED": "1"}  # progress lines arrive as they are printed
        if self.engineFolder:
            pythonPath = slicer.util.startupEnvironment().get("PYTHONPATH")
            environment["PYTHONPATH"] = os.pathsep.join([self.engineFolder] + ([pythonPath] if pythonPath else []))
        return environment

    def _launch(self):
        import SimpleITK as sitk

        if self.weightsPath and not os.path.exists(self.weightsPath):
            raise ValueError(f"Landmark model weights not found: {self.weightsPath}")
        self.tempDir = slicer.util.tempDirectory(key="SpineCobb")
        inputPath = os.path.join(self.tempDir, "input.nrrd")
        self.outputDir = os.path.join(self.tempDir, "output")
        os.makedirs(self.outputDir, exist_ok=True)
        # Pixel (x, y) of this file is IJK (i, j, k=0) of the volume node.
        sitk.WriteImage(sitk.GetImageFromArray(self.image), inputPath)
        command = self.command(inputPath, self.outputDir)
        logging.info("SpineCobb: running " + " ".join(command))
        self.proc = slicer.util.launchConsoleProcess(command, updateEnvironment=self._environment())

    def _handleLine(self, line):
        self.lines.append(line)
        if self.logCallback:
            self.logCallback(line)
        else:
            logging.info(line)
        if self.progressCallback:
            self.progressCallback(progressFromLine(line), line)

    # ------------------------------------------------------------------ results

    def _lastMessage(self):
        """The last plain output line (the command line reports errors as "spine-analysis: error: ...")."""
        for line in reversed(self.lines):
            text = line.strip()
            if text and not text.startswith(("{", "}", "[", "]", '"')):
                return text.split(": error: ", 1)[-1]
        return ""

    def _result(self, returnCode):
        from spine_analysis.io import read_landmarks

        if self.cancelled:
            raise DetectionCancelled("Landmark detection was cancelled.")
        if returnCode != 0:
            raise RuntimeError(f"Landmark detection failed (exit code {returnCode}): {self._lastMessage()}")
        path = os.path.join(self.outputDir, "landmarks.json")
        if not os.path.isfile(path):
            raise RuntimeError(f"Landmark detection finished without writing landmarks.json. {self._lastMessage()}")
        self.warnings = framingWarnings(os.path.join(self.outputDir, "report.json"))
        for message in self.warnings:
            logging.warning("SpineCobb: " + message)
        return read_landmarks(path)

    def _cleanup(self):
        if self.tempDir:
            shutil.rmtree(self.tempDir, ignore_errors=True)
            self.tempDir = None

    # ------------------------------------------------------------------ blocking

    def run(self):
        """Detect and return SpineLandmarks (pixels); blocks until the process ends."""
        try:
            self._launch()
            while True:
                try:
                    line = self.proc.stdout.readline()
                except UnicodeDecodeError:
                    continue
                if not line:
                    break
                self._handleLine(line.rstrip())
                if slicer.app:
                    slicer.app.processEvents()
            self.proc.wait()
            return self._result(self.proc.returncode)
        finally:
            self._cleanup()

    # ------------------------------------------------------------------ non-blocking

    def start(self, completedCallback):
        """Start the process and return at once; `completedCallback(landmarks, error)` is called on the main thread."""
        self._completedCallback = completedCallback
        try:
            self._launch()
        except Exception:
            self._cleanup()
            raise
        self._queue = queue.Queue()
        threading.Thread(target=self._readOutput, args=(self.proc, self._queue), daemon=True).start()
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self._timer.start()

    @staticmethod
    def _readOutput(proc, lines):
        """Reader thread: queue every output line, then None when the process has ended."""
        while True:
            try:
                line = proc.stdout.readline()
            except UnicodeDecodeError:
                continue
            except ValueError:  # pipe closed
                break
            if not line:
                break
            lines.put(line.rstrip())
        proc.wait()
        lines.put(None)

    def _poll(self):
        """Main thread (QTimer): forward queued lines; finish once the process has ended."""
        finished = False
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                finished = True
                break
            self._handleLine(line)
        if not finished:
            return
        self._timer.stop()
        landmarks, error = None, None
        try:
            landmarks = self._result(self.proc.returncode)
        except Exception as exc:
            error = exc
        finally:
            self._cleanup()
        if self._completedCallback:
            self._completedCallback(landmarks, error)

    def isRunning(self):
        return self.proc is not None and self.proc.poll() is None

    def cancel(self, notify=True):
        """Stop the process; the completed callback then receives a DetectionCancelled error (unless not `notify`)."""
        self.cancelled = True
        if not notify:
            self._completedCallback = None
        killProcessTree(self.proc)
