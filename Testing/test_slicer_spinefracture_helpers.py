"""The Slicer-free helpers of the SpineFracture module (SpineFracture/SpineFractureLib/findings.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpineFracture"))
from SpineFractureLib import findings  # noqa: E402


def _row(level, lps, probability=0.1, grade=0, call="normal", **extra):
    row = {"level": level, "centroid_lps_x": lps[0], "centroid_lps_y": lps[1], "centroid_lps_z": lps[2],
           "probability": probability, "genant_grade": grade, "genant_label": "normal" if not grade else "moderate",
           "deformity": None if not grade else "wedge", "height_loss_pct": 3.0, "anterior_mm": 24.1,
           "middle_mm": 22.0, "posterior_mm": 25.0, "reference_mm": 25.0, "call": call,
           "basis": "both opinions", "opinions_agree": True, "note": ""}
    row.update(extra)
    return row


@pytest.mark.parametrize("text, level", [
    ("L1", "L1"), (" t12 ", "T12"), ("T13", "T13"), ("c7", "C7"),
    ("F-1", None), ("vertebra 3", None), ("C8", None), ("L7", None), ("", None), (None, None),
])
def test_a_point_label_is_a_level_only_when_it_names_one(text, level):
    from spine_analysis.ct.levels import level_from_text  # what the module reads a point label with

    assert level_from_text(text) == level


@pytest.mark.parametrize("name, level", [
    ("L1", "L1"), ("vertebrae_L1", "L1"), ("vertebrae T12", "T12"), ("l5 centrum", "L5"), ("T13", "T13"),
    ("Segment_1", None), ("C10", None), ("TL1", None), ("sacrum", None), ("liver", None),
])
def test_levels_inside_segment_and_colour_names(name, level):
    assert findings.levelInName(name) == level


def test_verse_numbers_of_levels():
    assert findings.verseNumber("C1") == 1
    assert findings.verseNumber("T1") == 8
    assert findings.verseNumber("L1") == 20
    assert findings.verseNumber("T13") == 28
    assert findings.verseNumber("vertebra 1") is None


def test_segments_are_renumbered_into_verse_numbering_and_others_left_out():
    mapping, unnamed = findings.labelRemap({1: "vertebrae_L2", 2: "vertebrae_L1", 3: "liver", 4: "T12"})
    assert mapping == {1: 21, 2: 20, 4: 19}
    assert unnamed == ["liver"]
    labels = np.array([[0, 1, 2], [3, 4, 9]])
    assert findings.remapLabels(labels, mapping).tolist() == [[0, 21, 20], [0, 19, 0]]
    assert findings.labelRemap(None) == ({}, [])
    with pytest.raises(ValueError, match="both name L1"):
        findings.labelRemap({1: "L1", 2: "vertebrae_L1"})


def test_the_request_sends_ras_points_named_by_level():
    points = [("l1", (1.0, -2.0, 3.5)), ("vertebra 2", [4, 5, 6]), ("  ", (7, 8, 9))]
    centroids = findings.centroidsFromPoints(points)
    assert centroids == [{"level": "L1", "point": [1.0, -2.0, 3.5]},
                         {"level": "vertebra 2", "point": [4.0, 5.0, 6.0]},
                         {"level": "point 3", "point": [7.0, 8.0, 9.0]}]
    request = findings.fractureRequest("/tmp/ct.nrrd", "/tmp/out", centroids, weightsPath="")
    assert request == {"job": "fracture", "ct": "/tmp/ct.nrrd", "centroids": centroids, "coordinate_system": "ras",
                       "labels": None, "weights": None, "out_dir": "/tmp/out"}
    # no points: the engine uses the label map or finds the vertebrae
    assert findings.fractureRequest("/tmp/ct.nrrd", "/tmp/out", [], "/tmp/labels.nrrd")["centroids"] is None
    withLabels = findings.fractureRequest("/tmp/ct.nrrd", "/tmp/out", None, "/tmp/labels.nrrd")
    assert withLabels["labels"] == "/tmp/labels.nrrd"


def test_two_points_with_one_name_are_refused():
    with pytest.raises(ValueError, match="Points 1 and 3 are both named 'L1'"):
        findings.centroidsFromPoints([("L1", (0, 0, 0)), ("L2", (0, 0, 30)), ("l1", (0, 0, 60))])


def test_the_engines_lps_centroids_are_shown_in_ras():
    rows = [_row("L1", (10.0, -20.0, 30.0)), _row("L2", (None, None, None))]
    assert findings.rowCentroidRas(rows[0]) == [-10.0, 20.0, 30.0]
    assert findings.rowCentroidRas(rows[1]) is None
    assert findings.centroidPoints(rows) == [("L1", [-10.0, 20.0, 30.0])]


def test_table_rows_keep_the_columns_in_order_and_missing_values_missing():
    row = findings.tableRow(_row("L1", (10.0, -20.0, 30.0), probability=0.87, grade=2, call="fractured",
                                 basis="classifier and morphometry", opinions_agree=True))
    assert tuple(row) == findings.COLUMNS
    assert row["level"] == "L1" and row["probability"] == 0.87 and row["genant_grade"] == 2
    assert row["deformity"] == "wedge" and row["call"] == "fractured" and row["opinions_agree"] is True
    assert (row["centroid_r"], row["centroid_a"], row["centroid_s"]) == (-10.0, 20.0, 30.0)
    unassessed = findings.tableRow(_row("T12", (0, 0, 0), probability=None, grade=None, call="not assessed",
                                        opinions_agree=None, anterior_mm=None))
    assert unassessed["probability"] is None and unassessed["genant_grade"] is None
    assert unassessed["anterior_mm"] is None and unassessed["opinions_agree"] is None
    assert set(findings.TITLES) == set(findings.COLUMNS)


def test_a_point_belongs_to_the_row_of_its_name_else_to_the_nearest_centroid():
    rows = [_row("L1", (0.0, 0.0, 100.0)), _row("L2", (0.0, 0.0, 70.0)), _row("vertebra 3", (0.0, 0.0, 40.0))]
    assert findings.rowForPoint(rows, "l2", [50.0, 50.0, 0.0]) == 1           # the name wins, even far away
    assert findings.rowForPoint(rows, "Vertebra 3", [0.0, 0.0, 0.0]) == 2
    assert findings.rowForPoint(rows, "F-1", [2.0, -1.0, 72.0]) == 1          # unnamed: the nearest centroid
    assert findings.rowForPoint(rows, "F-1", [0.0, 0.0, 160.0]) is None       # too far from every centroid
    assert findings.rowIndexForLevel(rows, " L1 ") == 0
    assert findings.rowIndexForLevel(rows, "T12") is None
    assert findings.rowIndexForLevel(rows, "") is None


def _patient(call, levels, assessed, classifier=(), probability=None, components=(), graded=0, deformed=(),
             morphometry=(), basis="", note="", source=""):
    """A patient summary as the engine writes it: one call with its basis, each opinion under its own name."""
    return {"call": call, "basis": basis, "fractured_levels": list(levels), "vertebrae_assessed": assessed,
            "opinions": {"classifier": {"fractured_levels": list(classifier), "threshold": 0.5,
                                        "max_vertebra_probability": probability,
                                        "fracture_components": list(components)},
                         "morphometry": {"fractured_levels": list(morphometry), "vertebrae_graded": graded,
                                         "deformed": list(deformed), "note": ""}},
            "level_source": source, "note": note}


def test_the_patient_summary_says_the_one_call_and_its_basis_first_then_each_opinion():
    rows = [_row("T12", (0, 0, 130), 0.2, 0, "normal", opinions_agree=True),
            _row("L1", (0, 0, 100), 0.91, 2, "fractured", opinions_agree=True),
            _row("L2", (0, 0, 70), 0.64, 0, "fractured", basis="classifier", opinions_agree=False),
            _row("L3", (0, 0, 40), None, None, "not assessed", opinions_agree=None)]
    patient = _patient("fractured", ["L1", "L2"], 3, classifier=["L1", "L2"], probability=0.91,
                       components=[{"volume_ml": 3.44}, {"volume_ml": 2.0}], graded=3, morphometry=["L1"],
                       deformed=[{"level": "L1", "grade": 2, "label": "moderate", "deformity": "wedge"}],
                       basis="L1: classifier and morphometry agree; L2: classifier (morphometry: normal)",
                       source="points given")
    assert not [key for key in patient if "call" in key and key != "call"]   # one call, no second opinion-call
    lines = findings.patientSummary(patient, rows)
    assert lines[0] == "Fracture: L1, L2 (3 of 4 vertebrae assessed)."
    assert lines[1] == "Basis: L1: classifier and morphometry agree; L2: classifier (morphometry: normal)."
    assert lines[2] == ("Classifier: fractured L1, L2 (highest vertebra probability 0.91, threshold 0.5); "
                        "2 fracture regions (3.4 mL, 2.0 mL).")
    assert lines[3] == "Morphometry (Genant): 3 vertebrae graded; L1 grade 2."
    assert lines[4] == "The two opinions disagree at L2: see the basis of each call."
    assert lines[5] == "Levels: points given."
    assert len(lines) == 6


def test_the_patient_summary_of_a_normal_spine_of_thick_slices_and_of_voxels_away_from_the_vertebrae():
    normal = _patient("not assessed", [], 0, basis="no vertebra could be assessed")
    assert findings.patientSummary(normal) == [
        "Call: not assessed (0 vertebrae assessed).", "Basis: no vertebra could be assessed.",
        "Classifier: fractured none (highest vertebra probability n/a, threshold 0.5).",
        "Morphometry (Genant): 0 vertebrae graded; no deformity."]
    thick = _patient("normal", [], 1, probability=0.12, basis="no vertebra called fractured (1 assessed); "
                     "heights not assessed: slices 5.0 mm: the classifier alone decides")
    thick["opinions"]["morphometry"]["note"] = "heights not assessed: slices 5.0 mm"
    lines = findings.patientSummary(thick, [_row("L1", (0, 0, 0), 0.12, None, "normal")])
    assert lines[0] == "No fracture found (1 of 1 vertebrae assessed)."
    assert "heights not assessed: slices 5.0 mm: the classifier alone decides" in lines[1]
    assert lines[3] == "Morphometry (Genant): 0 vertebrae graded; no deformity; heights not assessed: slices 5.0 mm."
    away = _patient("normal", [], 1, probability=0.1, components=[{"volume_ml": 2.5}],
                    note="1 group(s) of fracture voxels lie away from every assessed vertebra: look at the "
                         "probability map")
    lines = findings.patientSummary(away, [_row("L1", (0, 0, 0))])
    assert lines[0].startswith("No fracture found")           # voxels away from the vertebrae are never a call
    assert "1 fracture region (2.5 mL)" in lines[1]
    assert lines[-1] == ("Note: 1 group(s) of fracture voxels lie away from every assessed vertebra: look at the "
                         "probability map.")


def test_an_incomplete_answer_is_refused():
    answer = {"probability": "/tmp/p.nii.gz", "vertebrae": [], "patient": {}}
    assert findings.checkAnswer(answer) is answer
    with pytest.raises(ValueError, match="incomplete"):
        findings.checkAnswer({"probability": "/tmp/p.nii.gz", "vertebrae": []})
    with pytest.raises(ValueError, match="malformed"):
        findings.checkAnswer({"probability": "x", "vertebrae": {}, "patient": {}})
