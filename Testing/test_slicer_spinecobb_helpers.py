"""The Slicer-free helpers of the SpineCobb module (SpineCobb/SpineCobbLib/detection.py): the cobb job's request
and answer, and what is said when the image did not pass the engine's spine check."""
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from spine_analysis.xray.landmarks import SpineLandmarks
from spine_analysis.xray.report import SEVERITY_NOT_STATED

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SpineCommon"))
sys.path.insert(0, str(ROOT / "SpineCobb"))
from SpineCobbLib import detection  # noqa: E402
from SpineCommonLib.protocol import JobFailed, failureOf, resultOf  # noqa: E402

FLAGS = [{"code": "spacing", "levels": ["T3", "T4"], "message": "spacing T3-T4 is 2.10 x the median"},
         {"code": "framing", "levels": ["L5"], "message": "L5 found at 75% of the image height"}]
LANDMARKS = SpineLandmarks(np.array([[[10, 10], [30, 11], [10, 20], [30, 21]],
                                     [[11, 25], [31, 26], [11, 35], [31, 36]]], dtype=float), "T7")


def _done(**fields):
    """The result EngineJob returns for a done line of the cobb job."""
    message = {"status": "done", "landmarks": LANDMARKS.to_dict(), "flags": FLAGS,
               "spine_check": {"passed": True, "reason": None, "measures": {"columns": 1.0}},
               "forced": False, "landmarks_from": "landmark model v1",
               "timings_s": {"model_load": 0.0, "detection": 0.1}}
    message.update(fields)
    return resultOf(message)


def test_the_request_asks_for_the_cobb_job():
    assert detection.cobbRequest() == {"job": "cobb", "weights": None, "force": False}
    assert detection.cobbRequest("", force=1) == {"job": "cobb", "weights": None, "force": True}
    assert detection.cobbRequest(Path("/w/model.pt"))["weights"] == "/w/model.pt"


def test_framing_flags_become_warnings():
    assert detection.framingWarnings([]) == []
    assert detection.framingWarnings(None) == []  # an answer without flags
    assert detection.framingWarnings(FLAGS + ["noise"]) == ["L5 found at 75% of the image height"]


def test_a_passed_check_gives_landmarks_and_no_failure():
    answer = detection.cobbAnswer(_done())
    assert answer.landmarks.levels == ("T7", "T8")
    np.testing.assert_allclose(answer.landmarks.points, LANDMARKS.points)
    assert answer.warnings == ["L5 found at 75% of the image height"]
    assert answer.spineCheckFailure is None
    assert answer.model == "landmark model v1"
    assert answer.spineCheck["passed"] is True


def test_a_forced_answer_keeps_the_reason_the_check_failed():
    reason = "this does not look like an AP spine radiograph: no vertebral column found"
    answer = detection.cobbAnswer(_done(forced=True, spine_check={"passed": False, "reason": reason, "measures": {}}))
    assert answer.spineCheckFailure == reason
    # forced without a reason (or without a spine_check) still withholds the severity
    assert detection.cobbAnswer(_done(forced=True, spine_check=None)).spineCheckFailure == detection.UNKNOWN_REASON
    assert detection.cobbAnswer(_done(forced=True, spine_check={"reason": "  "})).spineCheckFailure \
        == detection.UNKNOWN_REASON
    # force asked but the check passed: nothing is withheld
    assert detection.cobbAnswer(_done(spine_check={"passed": True, "reason": None})).spineCheckFailure is None


def test_an_answer_without_landmarks_is_a_failure():
    with pytest.raises(JobFailed, match="without landmarks"):
        detection.cobbAnswer(resultOf({"status": "done", "flags": []}))
    with pytest.raises(JobFailed):
        detection.cobbAnswer(None)


def test_only_the_not_spine_error_is_a_refusal():
    refusal = failureOf({"status": "error", "code": "not_spine",
                         "message": "this does not look like an AP spine radiograph: too few vertebrae"})
    assert detection.isRefusal(refusal)
    assert not detection.isRefusal(failureOf({"status": "error", "message": "cannot read the image"}))
    assert not detection.isRefusal(ValueError("not_spine"))
    assert not detection.isRefusal(None)


def test_the_refusal_dialog_gives_the_reason_and_names_the_checkbox_of_the_ui():
    reason = "this does not look like an AP spine radiograph: too few vertebrae"
    text = detection.refusalText(reason)
    assert text.startswith(reason + "\n\n")
    assert "Advanced" in text and "no severity is stated" in text
    ui = ElementTree.parse(ROOT / "SpineCobb" / "Resources" / "UI" / "SpineCobb.ui")
    checkBox = next(widget for widget in ui.iter("widget") if widget.get("name") == "forceMeasureCheckBox")
    label = next(prop.find("string").text for prop in checkBox.findall("property") if prop.get("name") == "text")
    assert f'"{label}"' in text
    parameter = next(prop.find("string").text for prop in checkBox.findall("property")
                     if prop.get("name") == "SlicerParameterName")
    assert parameter == "forceMeasure"


def test_severity_is_shown_unless_the_spine_check_failed():
    assert detection.shownSeverity("moderate", None) == "moderate"
    assert detection.shownSeverity("moderate", "", cell=True) == "moderate"
    assert detection.shownSeverity("moderate", "odd image") == SEVERITY_NOT_STATED == detection.SEVERITY_NOT_STATED
    assert detection.shownSeverity("moderate", "odd image", cell=True) == "—"


