"""SpineCommonLib's engine protocol and job runner without Slicer: the answers are read by
SpineCommonLib/protocol.py; EngineJob and WarmEngineRunner (SpineCommonLib/jobs.py) run here on stand-ins for
`qt`, `slicer` and the engine process."""
import importlib
import queue
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpineCommon"))
from SpineCommonLib import protocol  # noqa: E402

LOADING = "Loading the model…"


# ---------------------------------------------------------------------- protocol

def test_only_engine_messages_are_parsed():
    assert protocol.parseMessage('{"status": "progress", "fraction": 0.5, "message": "half way"}\n') == \
        {"status": "progress", "fraction": 0.5, "message": "half way"}
    assert protocol.parseMessage('{"status": "done", "landmarks": {}}')["status"] == "done"
    for noise in ("UserWarning: something", "{not json", '{"fraction": 0.5}', '{"status": 1}', "[1, 2]", ""):
        assert protocol.parseMessage(noise) is None, noise


def test_the_result_is_the_flat_done_message_without_its_status():
    message = {"status": "done", "vertebrae": [{"level": "L1"}], "model": "m", "seconds": {"total": 1.5}}
    assert protocol.resultOf(message) == {"vertebrae": [{"level": "L1"}], "model": "m", "seconds": {"total": 1.5}}
    assert message["status"] == "done"  # the message is left as it was
    assert protocol.resultOf({"status": "done"}) == {}


def test_an_error_keeps_the_engines_text_and_code():
    failure = protocol.failureOf({"status": "error", "message": "this does not look like an AP spine radiograph",
                                  "code": "not_spine"})
    assert isinstance(failure, protocol.JobFailed)
    assert str(failure) == "this does not look like an AP spine radiograph"
    assert failure.code == "not_spine"
    bare = protocol.failureOf({"status": "error"})
    assert str(bare) == "The engine reported an error." and bare.code is None
    assert protocol.failureOf({"status": "error", "message": "x", "code": 3}).code is None
    assert protocol.failureOf({"status": "error", "message": "x", "code": ""}).code is None
    assert protocol.JobFailed("ended").code is None


@pytest.mark.parametrize("message, expected", [
    ({"fraction": 0.25, "message": "reading"}, (0.25, "reading")),
    ({"fraction": 1, "message": "done"}, (1.0, "done")),
    ({"fraction": None, "message": "working"}, (None, "working")),
    ({"fraction": "half", "message": None}, (None, "")),
    ({"fraction": True}, (None, "")),
])
def test_progress_gives_a_fraction_or_none_and_a_text(message, expected):
    assert protocol.progressOf(dict(message, status="progress")) == expected


# ---------------------------------------------------------------------- EngineJob and WarmEngineRunner

class FakeTimer:
    """qt.QTimer stand-in: the test fires it."""

    made = []

    def __init__(self):
        self.slot, self.running = None, False
        FakeTimer.made.append(self)

    def setInterval(self, milliseconds):
        pass

    def connect(self, signal, slot):
        self.slot = slot

    def start(self):
        self.running = True

    def stop(self):
        self.running = False


@pytest.fixture
def jobs(monkeypatch, tmp_path):
    """SpineCommonLib.jobs imported with stand-ins for qt and slicer (no application: blocking runs do not
    process events; temporary folders are under tmp_path)."""
    qt = types.ModuleType("qt")
    qt.QTimer = FakeTimer
    slicer = types.ModuleType("slicer")
    slicer.app = None

    def tempDirectory(key):
        folder = tmp_path / f"{key}{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        return str(folder)

    slicer.util = types.SimpleNamespace(tempDirectory=tempDirectory)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    slicer.i18n = i18n
    for name, module in (("qt", qt), ("slicer", slicer), ("slicer.i18n", i18n)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "SpineCommonLib.jobs", raising=False)
    FakeTimer.made = []
    yield importlib.import_module("SpineCommonLib.jobs")
    sys.modules.pop("SpineCommonLib.jobs", None)  # it holds the stand-ins


EXIT = None  # in an answer: the process ends there (exit code 1)


class FakeEngine:
    """EngineProcess stand-in: each request is answered with the next list of stdout lines; killing it or
    closing its input ends both streams, as the reader threads of a real process do."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.output = queue.Queue()
        self.sent = []
        self.inputClosed = self.killed = False
        self.proc = types.SimpleNamespace(returncode=None, poll=lambda: self.proc.returncode)

    def send(self, request):
        self.sent.append(request)
        for line in (self.answers.pop(0) if self.answers else []):
            if line is EXIT:
                self._end(1)
            else:
                self.output.put(("stdout", line))

    def _end(self, returncode):
        if self.proc.returncode is None:
            self.proc.returncode = returncode
            self.output.put(("stdout", None))
            self.output.put(("stderr", None))

    def closeInput(self):
        self.inputClosed = True
        self._end(0)

    def kill(self):
        self.killed = True
        self._end(-9)


def test_a_job_returns_the_flat_done_message_among_noise(jobs, tmp_path):
    engine = FakeEngine([['{"status": "progress", "fraction": 0.5, "message": "half way"}', "a library warning",
                          '{"status": "done", "landmarks": {"points": []}, "forced": false}']])
    logged, progress = [], []
    job = jobs.EngineJob({"job": "cobb", "force": False}, images={"image": sitk.GetImageFromArray(np.zeros((4, 5)))},
                         process=engine, logCallback=logged.append,
                         progressCallback=lambda fraction, text: progress.append((fraction, text)))
    assert job.run() == {"landmarks": {"points": []}, "forced": False}
    request = engine.sent[0]
    assert request["job"] == "cobb" and request["image"].endswith("image.nrrd")
    assert not Path(request["image"]).exists()  # the temporary folder is gone
    assert progress == [(0.5, "half way")]
    assert "a library warning" in logged
    assert not engine.inputClosed  # a process passed in is left running


def test_an_engine_error_raises_job_failed_with_its_code(jobs):
    engine = FakeEngine([['{"status": "error", "message": "this does not look like an AP spine radiograph: x", '
                          '"code": "not_spine"}']])
    with pytest.raises(jobs.JobFailed) as raised:
        jobs.EngineJob({"job": "cobb"}, process=engine).run()
    assert raised.value.code == "not_spine"
    assert str(raised.value).startswith("this does not look like")
    assert jobs.JobFailed is protocol.JobFailed  # the modules catch the one class


def test_a_process_that_ends_without_answering_fails_with_its_last_words(jobs):
    engine = FakeEngine([["Traceback (most recent call last):", "ImportError: no torch", EXIT]])
    with pytest.raises(jobs.JobFailed, match=r"exit code 1.*no torch") as raised:
        jobs.EngineJob({"job": "cobb"}, process=engine).run()
    assert raised.value.code is None


class Runner:
    """A logic with WarmEngineRunner mixed in, as the module logics use it."""

    def __init__(self, jobs, monkeypatch, answers):
        self.jobs, self.engines = jobs, []
        self.shutdowns = 0
        self.runner = type("Logic", (jobs.WarmEngineRunner,), {"_onShutdown": lambda logic: self._onShutdown()})()
        self.runner.initJobs("Test")

        def newEngine():
            self.engines.append(FakeEngine(answers.pop(0) if answers else []))
            return self.engines[-1]

        monkeypatch.setattr(jobs, "EngineProcess", newEngine)

    def _onShutdown(self):
        self.shutdowns += 1

    def job(self, progress):
        process = self.runner._engineProcess(lambda fraction, text: progress.append((fraction, text)))
        return self.jobs.EngineJob({"job": "cobb"}, process=process,
                                   progressCallback=lambda fraction, text: progress.append((fraction, text)))


DONE = '{"status": "done", "value": 1}'
PROGRESS = '{"status": "progress", "fraction": 0.1, "message": "reading the radiograph"}'


def test_only_a_new_engine_process_shows_loading_the_model(jobs, monkeypatch):
    test = Runner(jobs, monkeypatch, [[[PROGRESS, DONE], [PROGRESS, DONE]]])
    first, second = [], []
    assert test.runner._run(test.job(first), lambda result: result["value"], None) == 1
    assert first == [(None, LOADING), (0.1, "reading the radiograph")]
    assert test.runner._run(test.job(second), lambda result: result["value"], None) == 1
    assert second == [(0.1, "reading the radiograph")]  # warm: straight to the engine's progress
    assert len(test.engines) == 1 and len(test.engines[0].sent) == 2
    assert test.runner.activeJob is None


def test_cancel_kills_the_engine_and_the_next_job_starts_a_new_one(jobs, monkeypatch):
    test = Runner(jobs, monkeypatch, [[[PROGRESS]], [[DONE]]])
    progress = []

    def cancelOnProgress(fraction, text):
        progress.append((fraction, text))
        if fraction is not None:
            test.runner.cancel()  # the user presses Cancel while the job reports progress

    process = test.runner._engineProcess()
    job = jobs.EngineJob({"job": "cobb"}, process=process, progressCallback=cancelOnProgress)
    with pytest.raises(jobs.JobCancelled):
        test.runner._run(job, lambda result: result, None)
    assert test.engines[0].killed and test.runner.activeJob is None
    again = []
    assert test.runner._run(test.job(again), lambda result: result["value"], None) == 1
    assert len(test.engines) == 2 and again[0] == (None, LOADING)


def test_shutdown_while_idle_closes_the_engines_input(jobs, monkeypatch):
    test = Runner(jobs, monkeypatch, [[[DONE]]])
    test.runner._run(test.job([]), lambda result: result, None)
    test.runner.shutdown()
    engine = test.engines[0]
    assert engine.inputClosed and not engine.killed  # the engine exits by itself
    assert test.shutdowns == 1
    test.runner.shutdown()  # nothing left to end: only the logic's own clean-up again
    assert test.shutdowns == 2 and len(test.engines) == 1


def test_shutdown_during_a_background_job_kills_it_silently(jobs, monkeypatch):
    test = Runner(jobs, monkeypatch, [[[PROGRESS]]])
    outcomes, cleanups = [], []
    job = test.runner._run(test.job([]), lambda result: result, lambda value, error: outcomes.append(error),
                           cleanup=lambda: cleanups.append(True))
    assert test.runner.activeJob is job
    FakeTimer.made[-1].slot()  # the poll timer reads the progress line
    test.runner.shutdown()
    assert test.engines[0].killed
    assert test.runner.activeJob is None and cleanups == [True]
    FakeTimer.made[-1].slot()  # the job sees its process end...
    assert outcomes == []  # ...and nobody is told (the scene is closing or the module unloading)


def test_a_background_job_reports_its_result_and_a_refusal(jobs, monkeypatch):
    refusal = '{"status": "error", "message": "not a spine", "code": "not_spine"}'
    test = Runner(jobs, monkeypatch, [[[PROGRESS, DONE], [refusal]]])
    outcomes = []
    test.runner._run(test.job([]), lambda result: result["value"] + 1,
                     lambda value, error: outcomes.append((value, error)))
    FakeTimer.made[-1].slot()
    assert outcomes == [(2, None)] and test.runner.activeJob is None
    test.runner._run(test.job([]), lambda result: pytest.fail("no result to finish"),
                     lambda value, error: outcomes.append((value, error)))
    FakeTimer.made[-1].slot()
    value, error = outcomes[-1]
    assert value is None and isinstance(error, jobs.JobFailed) and error.code == "not_spine"
    assert len(test.engines) == 1 and not test.engines[0].killed  # an error leaves the engine warm
