"""SpineFracture run for real: Slicer's MRML (slicer-core), the module panel's own handlers on stand-in widgets,
the warm engine process with the shipped fracture model, and a real lumbar CT (VerSe 2019 sub-verse014, L1-L5, all
five Genant grade 0).

What is asserted is what a user sees: the probability overlay and its colours, the rows of the results table, the
centroid points and where they lie in the CT, the summary and status lines, the message boxes, and that nodes the
user had are left alone. The CT is never copied into the repository: it is found with
`spine_analysis.datasets.ct_dir()` ($SPINE_CT_DIR, else ../shared/datasets/ct-spine) and the tests that need it skip
when it is absent.

One module logic (and so one engine process, its models loaded once) serves every test; the panels get it in place
of their own. On two CPU cores a detection of this CT takes 25-35 s (the classifier 12-18 s, then the vertebrae);
a re-run or a second detection of the same CT reuses the classifier's map and takes about 10 s.
"""
import numpy as np
import pytest

import harness
from verse014 import VERSE_LABELS, Verse014, ijkToRasArray

LEVELS = ("L1", "L2", "L3", "L4", "L5")
JOB_TIMEOUT_S = 240.0
#: The centroid of a vertebra's body found in its label lies this close to the body centroid VerSe gives (mm).
BODY_CENTROID_MM = 8.0
#: How far a test moves a centroid forward (RAS A): still inside a lumbar body, whose depth is about 35 mm.
MOVE_FORWARD_MM = 6.0
#: What a test saw that a later one reads (the detection's rows), in this file's order.
_observed = {}


def needFractureModel():
    from SpineCommonLib import dependencies

    missing = dependencies.missingForTask(dependencies.FRACTURE_DETECTION)
    if missing:
        pytest.skip(f"the fracture model needs {', '.join(missing)}")


def reopen(widget):
    """The user opens the module after loading data (the panel picks the CT); its parameter node."""
    widget.exit()
    widget.enter()
    return widget._parameterNode


def openOnVerse014Labels(widget):
    """verse014 loaded, the module opened on it with its VerSe label map: (Verse014, parameter node)."""
    needFractureModel()
    data = Verse014()
    pn = reopen(widget)
    pn.vertebraLabels = data.labels
    return data, pn


# ----------------------------------------------------------------------------- fixtures

logic = harness.moduleLogicFixture("SpineFracture")


@pytest.fixture
def widget(scene, logic):
    """The module panel (setup, enter, its parameter node and handlers) on stand-in widgets, using the warm logic.

    Its own logic is put back before cleanup(), which shuts a logic down as Slicer does when the module is
    unloaded, so the warm engine outlives the test (cleanup also drops the scene observers, which would shut the
    logic down when the scene is closed)."""
    panel = harness.moduleWidget("SpineFracture")
    ownLogic, panel.logic = panel.logic, logic
    yield panel
    if logic.activeJob is not None:
        logic.cancel(notify=False)
    panel.logic = ownLogic
    panel.cleanup()


# ----------------------------------------------------------------------------- helpers

def points(pointsNode):
    """{label: RAS position} of a point list."""
    return {pointsNode.GetNthControlPointLabel(index): np.array(pointsNode.GetNthControlPointPosition(index))
            for index in range(pointsNode.GetNumberOfControlPoints())}


def waitIdle(app, logic):
    assert app.processEventsUntil(lambda: logic.activeJob is None, JOB_TIMEOUT_S), "the job did not end in time"


def applyAndWait(app, panel):
    """Click Apply and let Slicer's event loop run until the background detection has ended."""
    assert panel.ui.applyButton.enabled, panel.ui.applyButton.toolTip
    panel.onApplyButton()
    waitIdle(app, panel.logic)


def errorTexts(app):
    return [dialog.text for dialog in app.errors()]


def nodeIds(scene, className="vtkMRMLStorableNode"):
    return {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())
            if scene.GetNthNode(index).IsA(className)}


def shParent(node):
    import slicer

    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    return shNode.GetItemParent(shNode.GetItemByDataNode(node))


def userNodesOfAnotherStudy(scene):
    """What a user had loaded before: another volume, a point list, a segmentation and a table."""
    import slicer

    other = slicer.util.addVolumeFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5), name="other CT")
    mine = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "my points")
    mine.AddControlPoint(1.0, 2.0, 3.0, "L3")  # named like a level: must not be taken for the result's points
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(other)
    mask = np.zeros((3, 4, 5), np.uint8)
    mask[1, 1:3, 1:4] = 1
    segmentId = segmentation.GetSegmentation().AddEmptySegment("L1", "L1")
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation, segmentId, other)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "my table")
    table.AddColumn().SetName("notes")
    table.AddEmptyRow()
    table.SetCellText(0, 0, "keep me")
    return other, mine, segmentation, table


# ----------------------------------------------------------------------------- the panel's lifecycle

def test_a_panel_cleaned_up_without_leaving_the_module_lets_the_next_one_open(app, scene):
    """Slicer calls cleanup() at exit and on Reload, without exit(): the parameter node outlives the panel. Its GUI
    connection must go with cleanup(); left to the panel's garbage collection, it could be removed while the
    parameter node was calling it, as the next panel opened (a segmentation fault of the whole process)."""
    import gc

    first = harness.moduleWidget("SpineFracture")
    first.cleanup()
    assert first._parameterNode is None
    del first
    second = harness.moduleWidget("SpineFracture")
    second._parameterNode.overlayOpacity = 0.3
    gc.collect()
    second._parameterNode.overlayOpacity = 0.4
    assert second.logic.getParameterNode().overlayOpacity == pytest.approx(0.4)
    second.cleanup()


# ----------------------------------------------------------------------------- 1. parameter node

@pytest.mark.parametrize("labelsKind", ["labelmap", "segmentation"])
def test_parameter_node_and_a_result_survive_saving_and_reloading_the_scene(app, scene, logic, tmp_path, labelsKind):
    import slicer
    from SpineFractureLib import findings, outputs

    ijkToRas = np.diag([-0.8, -0.8, 2.0, 1.0])
    ct = slicer.util.addVolumeFromArray(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8), ijkToRAS=ijkToRas,
                                        name="Lumbar CT")
    labelArray = np.zeros((6, 7, 8), np.uint8)
    labelArray[1:4, 2:5, 2:6] = 20
    labelMap = slicer.util.addVolumeFromArray(labelArray, ijkToRAS=ijkToRas, name="Vertebra labels",
                                              nodeClassName="vtkMRMLLabelMapVolumeNode")
    labelSegmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Vertebra segments")
    labelSegmentation.CreateDefaultDisplayNodes()
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelMap, labelSegmentation)
    centroids = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "My centroids")
    centroids.AddControlPoint(1.5, -2.0, 4.0, "L1")
    centroids.AddControlPoint(1.0, -2.5, -3.0, "L2")
    # A result as the module leaves it: the results table refers to its CT, points and labels, rows kept as JSON.
    engineRows = [{"level": "L1", "centroid_lps_x": -1.5, "centroid_lps_y": 2.0, "centroid_lps_z": 4.0,
                   "probability": 0.83, "genant_grade": 2, "genant_label": "moderate", "deformity": "wedge",
                   "height_loss_pct": 31.0, "anterior_mm": 17.0, "middle_mm": 22.0, "posterior_mm": 25.0,
                   "reference_mm": 25.0, "call": "fractured", "basis": "both", "opinions_agree": True, "note": ""}]
    patient = {"call": "fractured", "fractured_levels": ["L1"], "vertebrae_assessed": 1}
    results = outputs.newResultsTable(ct)
    labels = labelMap if labelsKind == "labelmap" else labelSegmentation
    outputs.writeResults(results, {"vertebrae": engineRows, "patient": patient, "model": "test model",
                                   "level_source": "points given"}, ct, None, centroids, labels, str(tmp_path))

    pn = logic.getParameterNode()
    defaults = (pn.inputVolume, pn.centroids, pn.vertebraLabels, pn.weightsPath, pn.autoRerun, pn.results,
                pn.overlayOpacity)
    assert defaults == (None, None, None, "", True, None, 0.5)  # each changed below
    pn.inputVolume = ct
    pn.centroids = centroids
    pn.vertebraLabels = labels
    pn.weightsPath = str(tmp_path / "my fracture model")
    pn.autoRerun = False
    pn.results = results
    pn.overlayOpacity = 0.25
    expected = {name: (getattr(pn, name).GetID(), getattr(pn, name).GetName(), getattr(pn, name).GetClassName())
                for name in ("inputVolume", "centroids", "vertebraLabels", "results")}
    shownBefore = harness.tableRows(results)

    harness.saveAndReloadScene(tmp_path / "saved")
    assert scene.GetNodeByID(ct.GetID()) is not ct  # really read back from the files

    pn = logic.getParameterNode()
    for name, identity in expected.items():
        node = getattr(pn, name)
        assert node is not None, name
        assert (node.GetID(), node.GetName(), node.GetClassName()) == identity, name
    assert pn.weightsPath == str(tmp_path / "my fracture model")
    assert pn.autoRerun is False
    assert pn.overlayOpacity == pytest.approx(0.25)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(pn.inputVolume),
                                  np.arange(6 * 7 * 8).reshape(6, 7, 8))
    np.testing.assert_allclose(ijkToRasArray(pn.inputVolume), ijkToRas, atol=1e-6)
    assert {label: list(np.round(ras, 3)) for label, ras in points(pn.centroids).items()} == \
        {"L1": [1.5, -2.0, 4.0], "L2": [1.0, -2.5, -3.0]}
    if labelsKind == "labelmap":
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(pn.vertebraLabels), labelArray)
    else:
        segmentation = pn.vertebraLabels.GetSegmentation()
        assert segmentation.GetNumberOfSegments() == 1
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(pn.vertebraLabels, segmentation.GetNthSegmentID(0),
                                                          pn.inputVolume)
        np.testing.assert_array_equal(mask > 0, labelArray > 0)

    # The result, as the module reads it back (the widget's results selector, re-run, row clicks).
    results = pn.results
    assert outputs.isResultsTable(results)
    assert logic.ctVolume(results) is pn.inputVolume
    assert logic.centroidNode(results) is pn.centroids
    assert logic.vertebraRows(results) == engineRows
    assert logic.patient(results) == patient
    assert harness.tableRows(results) == shownBefore
    assert harness.tableRows(results)[0]["level"] == "L1" and harness.tableRows(results)[0]["call"] == "fractured"
    np.testing.assert_allclose(logic.vertebraPosition(results, "L1"), [1.5, -2.0, 4.0], atol=1e-3)
    assert findings.patientSummary(logic.patient(results), logic.vertebraRows(results))[0].startswith("Fracture: L1")


# ----------------------------------------------------------------------------- 2. detection on a real CT

def checkProbabilityOverlay(logic, results, ct):
    """The probability volume of a result: on the CT's grid, values in [0, 1], coloured as the overlay."""
    import slicer
    from SpineFractureLib import findings, outputs

    probability = logic.probabilityVolume(results)
    assert probability is not None and probability.IsA("vtkMRMLScalarVolumeNode")
    assert not probability.IsA("vtkMRMLLabelMapVolumeNode")
    assert probability.GetImageData().GetDimensions() == ct.GetImageData().GetDimensions()
    np.testing.assert_allclose(ijkToRasArray(probability), ijkToRasArray(ct), atol=1e-5)
    values = slicer.util.arrayFromVolume(probability)
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    assert values.max() > findings.OVERLAY_MIN_PROBABILITY  # not an empty map: something is shown
    displayNode = probability.GetDisplayNode()
    assert displayNode is not None
    colorNode = displayNode.GetColorNode()
    assert colorNode is not None and displayNode.GetColorNodeID() in outputs.COLOR_NODE_IDS
    low, high = [0.0] * 4, [0.0] * 4
    colorNode.GetColor(0, low)
    colorNode.GetColor(colorNode.GetNumberOfColors() - 1, high)
    assert low[2] > low[0] and high[:3] == [1.0, 0.0, 0.0]  # cold at 0, red at 1, as the README says
    assert (displayNode.GetWindowLevelMin(), displayNode.GetWindowLevelMax()) == (0.0, 1.0)
    assert displayNode.GetApplyThreshold() and displayNode.GetLowerThreshold() == pytest.approx(
        findings.OVERLAY_MIN_PROBABILITY)
    assert shParent(probability) == shParent(ct)
    return probability, values


def checkVerse014Result(data, logic, results, levelSource):
    """What the user reads of a detection on sub-verse014: five rows L1-L5, five points in their vertebrae."""
    from SpineFractureLib import findings, outputs

    assert outputs.isResultsTable(results) and results.GetLocked()
    rows = harness.tableRows(results)
    assert [row["level"] for row in rows] == list(LEVELS)
    engineRows = logic.vertebraRows(results)
    assert [row["level"] for row in engineRows] == list(LEVELS)
    assert results.GetAttribute(outputs.LEVEL_SOURCE_ATTRIBUTE) == levelSource
    assert logic.patient(results)["level_source"] == levelSource
    for row in rows:
        assert row["call"] in findings.CALLS, row
        assert 0.0 <= row["probability"] <= 1.0, row
    # Known answer: all five are Genant grade 0 (L1: see test_verse014_l1_is_graded_normal).
    for row in rows[1:]:
        assert (row["genant_grade"], row["call"]) == (0, "normal"), row
        assert 20.0 < row["anterior_mm"] < 35.0 and 20.0 < row["posterior_mm"] < 35.0, row
    # The classifier's opinion: no vertebra reaches its fracture threshold.
    assert max(row["probability"] for row in rows) < 0.5

    bodies = data.centroids
    pointsNode = logic.centroidNode(results)
    assert pointsNode is not None and outputs.isModuleCentroids(pointsNode)
    assert pointsNode.GetNodeReference(outputs.CT_REFERENCE) is data.ct
    assert [pointsNode.GetNthControlPointLabel(i) for i in range(pointsNode.GetNumberOfControlPoints())] == \
        list(LEVELS)
    for row, (level, ras) in zip(rows, points(pointsNode).items()):
        # The table's R, A, S columns are where the point is.
        np.testing.assert_allclose([row["centroid_r"], row["centroid_a"], row["centroid_s"]], ras, atol=0.01)
        # Each point is inside its own vertebra's label, in its body: near the body centroid VerSe gives.
        assert data.labelAt(ras) == VERSE_LABELS[level], f"{level}'s point lies on label {data.labelAt(ras)}"
        distance = float(np.linalg.norm(ras - bodies[level]))
        assert distance <= BODY_CENTROID_MM, f"{level}'s point is {distance:.1f} mm from its body's centroid"
        # Points of vertebrae called fractured are selected (drawn in the fractured colour).
        index = LEVELS.index(level)
        assert pointsNode.GetNthControlPointSelected(index) == (row["call"] == "fractured"), level
        assert pointsNode.GetNthControlPointDescription(index) == row["call"]
    for node in (results, pointsNode):
        assert shParent(node) == shParent(data.ct)
    return rows


def test_detection_on_verse014_with_its_label_map_shows_the_map_the_rows_the_points_and_the_summary(
        app, widget, logic):
    import html

    import slicer
    from SpineFractureLib import outputs

    needFractureModel()
    data = Verse014()
    before = harness.userNodes(slicer.mrmlScene)
    pn = reopen(widget)  # it picks the CT (never a label map)
    assert pn.inputVolume is data.ct
    pn.vertebraLabels = data.labels
    assert widget.ui.applyButton.enabled and not widget.ui.rerunButton.enabled

    applyAndWait(app, widget)
    assert errorTexts(app) == []

    results = pn.results
    assert results is not None and logic.ctVolume(results) is data.ct
    probability, _values = checkProbabilityOverlay(logic, results, data.ct)
    rows = checkVerse014Result(data, logic, results, "label map (VerSe numbering)")
    assert pn.centroids is logic.centroidNode(results)  # Re-run and the next Apply send these points
    assert results.GetNodeReference(outputs.LABELS_REFERENCE) is data.labels

    # What the panel shows: the summary (patient call first), the status line, the buttons.
    patient = logic.patient(results)
    fractured = [row["level"] for row in rows if row["call"] == "fractured"]
    assert patient["fractured_levels"] == fractured
    assert patient["vertebrae_assessed"] == 5
    summary = widget.ui.summaryLabel.text.split("<br>")
    first = f"Fracture: {', '.join(fractured)}" if fractured else "No fracture found"
    assert summary[0] == f"<b>{html.escape(first)} (5 of 5 vertebrae assessed).</b>"
    assert html.escape("Levels: label map (VerSe numbering).") in summary
    assert any(line.startswith("Morphometry (Genant): 5 vertebrae graded") for line in summary)
    assert summary[1] == html.escape(f"Basis: {patient['basis']}.")   # the one call's basis, then each opinion
    assert any(line.startswith("Classifier: fractured ") for line in summary)
    assert [key for key in patient if "call" in key] == ["call"]
    assert widget.ui.statusLabel.text == \
        f"Done: 5 vertebrae; fractured: {', '.join(fractured) if fractured else 'none'}."
    assert widget.ui.applyButton.enabled and widget.ui.rerunButton.enabled and widget.ui.opacitySlider.enabled
    assert not widget.ui.progressBar.visible and not widget.ui.cancelButton.visible

    # A row click centres the views on the vertebra's point.
    for level, ras in points(pn.centroids).items():
        np.testing.assert_allclose(logic.vertebraPosition(results, level), ras, atol=1e-6)

    # The CT and the label map are inputs only.
    after = harness.userNodes(slicer.mrmlScene)
    assert {nodeId: after[nodeId] for nodeId in before} == before
    assert set(after) - set(before) == {results.GetID(), probability.GetID(), pn.centroids.GetID()}
    _observed["verse014 rows"] = rows

    # The same vertebrae as a segmentation (segments named as TotalSegmentator names them, one more without a
    # level), from the console: the same rows, and the segment left out is said.
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "verse014 segments")
    segmentation.CreateDefaultDisplayNodes()
    assert slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(data.labels, segmentation)
    segments = segmentation.GetSegmentation()
    for index in range(segments.GetNumberOfSegments()):
        segment = segments.GetSegment(segments.GetNthSegmentID(index))
        level = {label: level for level, label in VERSE_LABELS.items()}[segment.GetLabelValue()]
        segment.SetName(f"vertebrae_{level}")
    mask = np.zeros_like(data.labelArray)
    mask[:3, :3, :3] = 1  # a corner of the scan, far from the spine
    extraId = segments.AddEmptySegment("spinal_cord", "spinal_cord")
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation, extraId, data.ct)
    segmentationBefore = harness.nodeFingerprint(segmentation)
    firstResult = {nodeId: harness.nodeFingerprint(slicer.mrmlScene.GetNodeByID(nodeId))
                   for nodeId in (results.GetID(), probability.GetID())}

    probability2, results2, patient2 = logic.detectFractures(data.ct, labelNode=segmentation)
    assert results2.GetID() != results.GetID() and probability2.GetID() != probability.GetID()
    rows2 = checkVerse014Result(data, logic, results2, "label map (VerSe numbering)")
    checkProbabilityOverlay(logic, results2, data.ct)
    assert rows2 == rows
    assert patient2["fractured_levels"] == patient["fractured_levels"]
    assert outputs.resultNotes(results2) == ["Left out (no level in the name): spinal_cord."]
    assert harness.nodeFingerprint(segmentation) == segmentationBefore
    assert {nodeId: harness.nodeFingerprint(slicer.mrmlScene.GetNodeByID(nodeId)) for nodeId in firstResult} == \
        firstResult
    assert errorTexts(app) == []


def test_verse014_l1_is_graded_normal():
    """Its VerSe label's rims once made it a moderate wedge (17.6 / 24.4 mm): the label is now reduced to its body as
    the network's is (issue 26)."""
    rows = _observed.get("verse014 rows") or pytest.skip("needs the detection test's result")
    assert (rows[0]["level"], rows[0]["genant_grade"], rows[0]["call"]) == ("L1", 0, "normal")


def test_moving_a_centroid_reassesses_that_vertebra_in_the_same_table(app, widget, logic):
    import slicer

    data, pn = openOnVerse014Labels(widget)
    applyAndWait(app, widget)
    results, pointsNode = pn.results, pn.centroids
    probability = logic.probabilityVolume(results)
    before = harness.tableRows(results)
    shown = harness.nodeFingerprint(results)
    nodesBefore = nodeIds(slicer.mrmlScene)
    # Where a user would move a point: 6 mm forward, still inside the vertebral body.
    start = points(pointsNode)
    moved = {level: start[level] + [0.0, MOVE_FORWARD_MM, 0.0] for level in LEVELS}
    for level, ras in moved.items():
        assert data.labelAt(ras) == VERSE_LABELS[level], f"{level} moved out of its vertebra"

    # Moved from code (the Markups module's coordinates, the Python console): no re-run by itself, but a row
    # click already goes to the point's new place.
    pointsNode.SetNthControlPointPosition(1, *moved["L2"])
    assert logic.activeJob is None
    assert harness.nodeFingerprint(results) == shown
    np.testing.assert_allclose(logic.vertebraPosition(results, "L2"), moved["L2"], atol=1e-6)

    # Dragged in a view: nothing runs while the mouse moves; on release the vertebrae are assessed again.
    harness.drag(pointsNode, 2, moved["L3"], whileDragging=lambda: assertIdle(logic))
    assert logic.activeJob is not None, "releasing the point did not re-run"
    assert widget.ui.cancelButton.visible
    waitIdle(app, logic)
    assert errorTexts(app) == []

    assert pn.results is results and logic.probabilityVolume(results) is probability  # updated, not replaced
    assert nodeIds(slicer.mrmlScene) == nodesBefore
    after = harness.tableRows(results)
    assert [row["level"] for row in after] == list(LEVELS)
    for level in ("L2", "L3"):  # both moved points are assessed where they are now
        row, old = after[LEVELS.index(level)], before[LEVELS.index(level)]
        np.testing.assert_allclose([row["centroid_r"], row["centroid_a"], row["centroid_s"]], moved[level],
                                   atol=0.01)
        assert row["probability"] != old["probability"], f"{level}: the classifier's opinion was not recomputed"
        # Its body is still the one of its label: the same grade, the same heights but for the label map's
        # sampling on a 1 mm grid centred on the new point.
        assert row["genant_grade"] == old["genant_grade"], level
        for column in ("anterior_mm", "middle_mm", "posterior_mm"):
            assert row[column] == pytest.approx(old[column], abs=1.0), (level, column)
    for level in ("L1", "L4", "L5"):  # the others are left as they were
        assert after[LEVELS.index(level)] == before[LEVELS.index(level)], level
    assert widget.ui.statusLabel.text.startswith("Done: 5 vertebrae;")

    # With automatic re-run off, a drag changes nothing until Re-run is clicked.
    pn.autoRerun = False
    shown = harness.nodeFingerprint(results)
    harness.drag(pointsNode, 3, moved["L4"])
    assert logic.activeJob is None and harness.nodeFingerprint(results) == shown
    assert widget.ui.rerunButton.enabled
    widget.onRerunButton()
    waitIdle(app, logic)
    row = harness.tableRows(results)[3]
    np.testing.assert_allclose([row["centroid_r"], row["centroid_a"], row["centroid_s"]], moved["L4"], atol=0.01)
    assert row["probability"] != before[3]["probability"]
    assert errorTexts(app) == []


def assertIdle(logic):
    assert logic.activeJob is None, "a job started while the point was still being dragged"


# ----------------------------------------------------------------------------- 4. the user's nodes

def test_nodes_the_user_had_are_left_alone_and_a_second_detection_makes_new_nodes(app, widget, logic):
    """The user's own point list (L1-L5 at the body centres) says where the vertebrae are: it is used as it is."""
    import slicer
    from SpineFractureLib import outputs

    needFractureModel()
    data = Verse014()
    userNodesOfAnotherStudy(slicer.mrmlScene)
    mine = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "my vertebrae")
    for level, ras in data.centroids.items():
        mine.AddControlPoint(*ras, level.lower())  # typed in lower case: still a level
    before = harness.userNodes(slicer.mrmlScene)
    looks = [(mine.GetNthControlPointSelected(i), mine.GetNthControlPointDescription(i)) for i in range(5)]
    pn = reopen(widget)
    assert pn.inputVolume is data.ct and pn.centroids is None and pn.vertebraLabels is None
    pn.centroids = mine

    applyAndWait(app, widget)
    assert errorTexts(app) == []
    first = pn.results
    assert logic.centroidNode(first) is mine and pn.centroids is mine  # no point list of its own
    assert logic.patient(first)["level_source"] == "points given"
    rows = harness.tableRows(first)
    assert [row["level"] for row in rows] == list(LEVELS)
    for row, ras in zip(rows, data.centroids.values()):
        np.testing.assert_allclose([row["centroid_r"], row["centroid_a"], row["centroid_s"]], ras, atol=0.01)
    assert [(mine.GetNthControlPointSelected(i), mine.GetNthControlPointDescription(i)) for i in range(5)] == looks
    # Known answer: all five are Genant grade 0 (heights by the body network at the points), none fractured
    # (L5: see test_verse014_l5_at_the_body_centroids_is_graded_normal).
    _observed["verse014 rows at the points"] = rows
    assert [(row["genant_grade"], row["call"]) for row in rows[:4]] == [(0, "normal")] * 4
    assert max(row["probability"] for row in rows) < 0.5
    firstNodes = {"table": first, "probability": logic.probabilityVolume(first)}
    firstShown = {name: harness.nodeFingerprint(node) for name, node in firstNodes.items()}

    # Apply again: new nodes, nothing asked, nothing replaced.
    applyAndWait(app, widget)
    second = pn.results
    assert second is not None and second.GetID() != first.GetID() and outputs.isResultsTable(second)
    assert logic.probabilityVolume(second).GetID() != firstNodes["probability"].GetID()
    assert harness.tableRows(second) == rows  # the same CT and points: the same answer
    assert {name: harness.nodeFingerprint(node) for name, node in firstNodes.items()} == firstShown
    assert app.dialogs == []

    after = harness.userNodes(slicer.mrmlScene)
    changed = [slicer.mrmlScene.GetNodeByID(nodeId).GetName() if slicer.mrmlScene.GetNodeByID(nodeId) else nodeId
               for nodeId, fingerprint in before.items() if after.get(nodeId) != fingerprint]
    assert changed == []
    made = sorted(slicer.mrmlScene.GetNodeByID(nodeId).GetClassName() for nodeId in set(after) - set(before))
    assert made == ["vtkMRMLScalarVolumeNode", "vtkMRMLScalarVolumeNode", "vtkMRMLTableNode", "vtkMRMLTableNode"]

    # Another CT picked: the result's CT stays referenced by its table, the user's points stay selected.
    other = slicer.util.getFirstNodeByName("other CT")
    pn.inputVolume = other
    assert pn.centroids is mine and logic.ctVolume(second) is data.ct


# ----------------------------------------------------------------------------- 5. refused input

def flatVolume(name="scout"):
    """A 2D image (one slice), as a localizer or a screenshot loads."""
    import slicer

    return slicer.util.addVolumeFromArray(np.full((1, 64, 64), 100, np.int16), name=name)


def shiftedLabels(data):
    """The VerSe label map moved 400 mm to the patient's left: another grid, none of it in the CT."""
    import slicer

    matrix = data.ijkToRas.copy()
    matrix[0, 3] += 400.0
    return slicer.util.addVolumeFromArray(data.labelArray.copy(), ijkToRAS=matrix, name="labels of another scan",
                                          nodeClassName="vtkMRMLLabelMapVolumeNode")


def segmentsWithoutLevels(data):
    """The label map as a segmentation, as Slicer names imported segments (Label_20 ...): no level named."""
    import slicer

    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "imported labels")
    assert slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(data.labels, segmentation)
    return segmentation


def transformedCt(data):
    """The CT under a registration transform that was not hardened."""
    import slicer

    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    data.ct.SetAndObserveTransformNodeID(transform.GetID())
    return data.ct


BAD_INPUTS = {
    # name: (make (ct, labels, weights) from the loaded data, what the message says, the engine is asked)
    "a 2D image as CT": (lambda data: (flatVolume(), None, None), "'scout' is a 2D image (64 x 64)", False),
    "a CT under a transform": (lambda data: (transformedCt(data), data.labels, None),
                               "'sub-verse014_ct' is under a transform", False),
    "segments named by no level": (lambda data: (data.ct, segmentsWithoutLevels(data), None),
                                   "No segment of 'imported labels' is named by a vertebra level", False),
    "a model folder that is not there": (lambda data: (data.ct, None, "/nonexistent/fracture model"),
                                         "Fracture model folder not found: /nonexistent/fracture model", False),
    "labels on another grid, outside the CT": (lambda data: (data.ct, shiftedLabels(data), None),
                                               "the label map's vertebrae L1, L2, L3, L4, L5 lie outside the CT volume",
                                               True),
}


@pytest.mark.xfail(strict=True, reason="at VerSe's body centroid the body network's L5 (tilted about 40 degrees over "
                   "the sacrum) is measured 18.8 / 29.0 / 25.5 mm (anterior / middle / posterior), a 'moderate "
                   "wedge': its mid-sagittal profile is nearly a diamond, which the midline levelling can take for "
                   "level, and its heights move by up to 10 mm with the seed; from its label 26.2 / 24.5 / 23.2 mm. "
                   "VerSe grades it 0")
def test_verse014_l5_at_the_body_centroids_is_graded_normal():
    rows = _observed.get("verse014 rows at the points") or pytest.skip("needs the detection test's result")
    assert (rows[4]["level"], rows[4]["genant_grade"], rows[4]["call"]) == ("L5", 0, "normal")


# ----------------------------------------------------------------------------- 3. moving a centroid

@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_clear_message_and_no_nodes(app, widget, logic, case):
    import slicer

    make, message, engineAsked = BAD_INPUTS[case]
    if engineAsked:
        needFractureModel()
    data = Verse014()
    ct, labels, weights = make(data)
    pn = reopen(widget)
    pn.inputVolume, pn.vertebraLabels, pn.weightsPath = ct, labels, weights or ""
    before = harness.userNodes(slicer.mrmlScene)
    allBefore = nodeIds(slicer.mrmlScene, "vtkMRMLNode")

    widget.onApplyButton()
    assert (logic.activeJob is not None) == engineAsked
    waitIdle(app, logic)

    errors = app.errors()
    assert len(errors) == 1 and len(app.dialogs) == 1, [dialog.text for dialog in app.dialogs]
    heading, _, detail = errors[0].text.partition("\n\n")
    assert heading == ("Fracture detection failed." if engineAsked else "Cannot start the fracture detection.")
    assert detail.startswith(message), detail
    assert "\n" not in detail and "Traceback" not in errors[0].text + errors[0].detailedText
    assert widget.ui.statusLabel.text == "Failed."
    assert not widget.ui.progressBar.visible and widget.ui.applyButton.enabled
    assert pn.results is None and logic.activeJob is None
    assert nodeIds(slicer.mrmlScene, "vtkMRMLNode") - orphanDisplayNodes(slicer.mrmlScene) == allBefore
    assert harness.userNodes(slicer.mrmlScene) == before

    # From the console the same input raises one line, and adds nothing either.
    app.dialogs.clear()
    with pytest.raises(Exception) as raised:
        logic.detectFractures(ct, labelNode=labels, weightsPath=weights)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert nodeIds(slicer.mrmlScene, "vtkMRMLNode") - orphanDisplayNodes(slicer.mrmlScene) == allBefore
    assert app.dialogs == []


def orphanDisplayNodes(scene):
    """IDs of display nodes no node of the scene refers to (invisible, but saved with the scene)."""
    referenced = set()
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.IsA("vtkMRMLDisplayableNode"):
            referenced.update(node.GetNthDisplayNodeID(i) for i in range(node.GetNumberOfDisplayNodes()))
    return {nodeId for nodeId in nodeIds(scene, "vtkMRMLDisplayNode") if nodeId not in referenced}


def test_a_segmentation_input_leaves_no_orphan_display_nodes(app, scene, logic):
    data = Verse014()
    segmentation = segmentsWithoutLevels(data)
    before = orphanDisplayNodes(scene)
    with pytest.raises(ValueError, match="is named by a vertebra level"):  # refused after its segments were sampled
        logic.detectFractures(data.ct, labelNode=segmentation)
    assert orphanDisplayNodes(scene) == before


def fakeResult():
    """A result as a detection leaves it (CT, label map, points, results table), made from a recorded answer."""
    import slicer
    from SpineFractureLib import outputs

    ijkToRas = np.diag([-1.0, -1.0, 2.0, 1.0])
    ct = slicer.util.addVolumeFromArray(np.full((20, 30, 30), 200, np.int16), ijkToRAS=ijkToRas, name="CT")
    labels = slicer.util.addVolumeFromArray(np.full((20, 30, 30), 20, np.uint8), ijkToRAS=ijkToRas,
                                            name="labels", nodeClassName="vtkMRMLLabelMapVolumeNode")
    row = {"level": "L1", "centroid_lps_x": 15.0, "centroid_lps_y": 15.0, "centroid_lps_z": 20.0,
           "probability": 0.1, "genant_grade": 0, "call": "normal", "basis": "both", "opinions_agree": True}
    answer = {"vertebrae": [row], "patient": {"call": "normal", "fractured_levels": []}}
    points = outputs.newCentroidsNode(ct, [row])
    table = outputs.newResultsTable(ct)
    outputs.writeResults(table, answer, ct, None, points, labels, None)
    return ct, labels, points, table


@pytest.mark.parametrize("removed, message", [
    ("labels", "The vertebra labels 'labels' of this result are no longer in the scene; click Apply"),
    ("ct", "The CT of 'CT fractures' is no longer in the scene; select a CT and click Apply."),
])
def test_rerun_of_a_result_whose_inputs_were_deleted_says_what_is_missing(app, widget, logic, removed, message):
    import slicer

    ct, labels, points, table = fakeResult()
    pn = widget._parameterNode
    pn.results = table
    assert widget.ui.rerunButton.enabled
    slicer.mrmlScene.RemoveNode(labels if removed == "labels" else ct)
    before = harness.userNodes(slicer.mrmlScene)

    widget.onRerunButton()
    assert logic.activeJob is None
    assert len(app.dialogs) == 1 and app.dialogs[0].isError
    heading, _, detail = app.dialogs[0].text.partition("\n\n")
    assert heading == "Cannot assess the vertebrae again."
    assert detail.startswith(message) and "\n" not in detail
    assert widget.ui.statusLabel.text == "Failed."
    assert harness.userNodes(slicer.mrmlScene) == before


# ----------------------------------------------------------------------------- cancelling

def test_cancel_stops_the_detection_and_adds_nothing(app, widget, logic):
    import slicer

    data, pn = openOnVerse014Labels(widget)
    before = nodeIds(slicer.mrmlScene, "vtkMRMLNode")
    widget.onApplyButton()
    assert logic.activeJob is not None and widget.ui.cancelButton.visible and not widget.ui.applyButton.enabled
    widget.onCancelButton()
    waitIdle(app, logic)
    assert widget.ui.statusLabel.text == "Cancelled."
    assert app.dialogs == []
    assert pn.results is None and not widget.ui.cancelButton.visible and widget.ui.applyButton.enabled
    assert nodeIds(slicer.mrmlScene, "vtkMRMLNode") == before
