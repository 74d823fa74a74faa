"""The spine check: an image the model cannot measure is refused, a radiograph is not."""
import numpy as np
import pytest
import skimage.data

from spine_analysis.errors import NotSpineRadiographError
from spine_analysis.xray.landmark_model import SHIPPED_DIR
from spine_analysis.xray.landmark_model.detector import LandmarkDetector
from spine_analysis.xray.measure import measure_radiograph
from spine_analysis.xray.spine_check import SpineEvidence, assess, decide, might_be_upside_down, check_radiograph
from spine_analysis.xray.synthetic import example_case

needs_model = pytest.mark.skipif(not (SHIPPED_DIR / "landmarks.pt").exists(), reason="no shipped weights")

RADIOGRAPH = SpineEvidence(matched_levels=17, centre_confidence=0.75, corner_confidence=0.64, corner_spread=0.014,
                           extra_peaks=1,
                           mirror_disagreement=0.03, widening=1.5)


def _with(**changes) -> SpineEvidence:
    return SpineEvidence(**{**RADIOGRAPH.to_dict(), **changes})


def test_typical_radiograph_evidence_passes():
    check = assess(RADIOGRAPH)
    assert check.passed and check.code is None and check.reason is None


@pytest.mark.parametrize("changes, words", [
    ({"matched_levels": 6}, "only 6 of 17 vertebrae found in sequence"),
    ({"corner_confidence": 0.36}, "vertebra corners weak (0.36"),
    ({"mirror_disagreement": 0.25}, "mirror image disagree"),
    ({"extra_peaks": 120}, "120 vertebra-like spots off the spine"),
    ({"corner_spread": 0.03}, "corners blurred"),
    ({"centre_confidence": 0.2, "corner_confidence": 0.3}, "centres weak (0.20"),
])
def test_weak_evidence_is_refused_with_its_reasons(changes, words):
    check = assess(_with(**changes))
    assert not check.passed and check.code == "weak"
    assert check.reason.startswith("this does not look like an AP spine radiograph: ") and words in check.reason


def test_a_better_spine_turned_180_degrees_is_upside_down():
    original = _with(widening=0.8, corner_confidence=0.55)
    assert might_be_upside_down(original) and not might_be_upside_down(RADIOGRAPH)
    check = decide(original, _with(widening=1.5, corner_confidence=0.62))
    assert not check.passed and check.code == "upside_down" and "turn it so the head is at the top" in check.reason
    assert decide(RADIOGRAPH, _with(widening=0.7, corner_confidence=0.5)).passed


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector.load()


@pytest.fixture(scope="module")
def radiograph():
    return example_case()[0]


def _check(detector, pixels):
    return check_radiograph(detector, pixels, detector.detect(pixels))


@needs_model
def test_the_synthetic_radiograph_passes(detector, radiograph):
    check = _check(detector, radiograph)
    assert check.passed, check.reason


@needs_model
@pytest.mark.parametrize("name", ["noise", "blank", "camera", "text page", "turned 90°"])
def test_images_without_a_spine_are_refused(detector, radiograph, name):
    rng = np.random.default_rng(1)
    image = {"noise": lambda: rng.random((2300, 900), dtype=np.float32),
             "blank": lambda: np.full((2300, 900), 0.4, np.float32),
             "camera": lambda: skimage.data.camera().astype(np.float32),
             "text page": lambda: skimage.data.page().astype(np.float32),
             "turned 90°": lambda: np.ascontiguousarray(np.rot90(radiograph))}[name]()
    check = _check(detector, image)
    assert not check.passed and check.code == "weak", check


@needs_model
def test_an_upside_down_radiograph_is_refused_as_such(detector, radiograph):
    check = _check(detector, np.ascontiguousarray(radiograph[::-1, ::-1]))
    assert not check.passed and check.code == "upside_down"


@needs_model
def test_measure_refuses_unless_forced(detector):
    noise = np.random.default_rng(2).random((2300, 900), dtype=np.float32)
    with pytest.raises(NotSpineRadiographError, match="does not look like an AP spine radiograph"):
        measure_radiograph(detector, noise, "noise.png")
    report = measure_radiograph(detector, noise, "noise.png", force=True)
    assert report.forced and not report.spine_check.passed
    assert all(c["severity"].startswith("not stated") for c in report.to_dict()["curves"])
    assert "MEASURED ANYWAY" in report.summary()
