"""SpineCobb on Slicer's real MRML: what a user sees after detection, while editing, on export and on refusal.

The radiograph is the engine's synthetic one (known landmarks and angles), written as NRRD and read by Slicer's
own volume reader with the orientation Slicer gives a PNG (IJK-to-RAS directions -1, -1, 1)."""
import json

import numpy as np
import pytest

import harness

SPACING_MM = 0.15


logic = harness.moduleLogicFixture("SpineCobb")


def _loadRadiograph(folder, image, name="radiograph"):
    """`image` (rows, columns) as a file Slicer reads like a PNG: row 0 at the top of the view."""
    import SimpleITK as sitk
    import slicer

    sitkImage = sitk.GetImageFromArray(np.asarray(image)[np.newaxis])
    sitkImage.SetSpacing((SPACING_MM, SPACING_MM, 1.0))  # identity LPS directions = RAS directions -1, -1, 1
    path = str(folder / f"{name}.nrrd")
    sitk.WriteImage(sitkImage, path)
    return slicer.util.loadVolume(path)


@pytest.fixture
def radiograph(scene, tmp_path):
    """(volume node, image, known SpineLandmarks) of the synthetic radiograph, loaded from a file."""
    from spine_analysis.xray.synthetic import example_case

    image, landmarks, _ = example_case()
    return _loadRadiograph(tmp_path, image), image, landmarks


def _userNodesOfAnotherStudy(scene):
    """Nodes a user had loaded before: another volume, a point list, a table."""
    import slicer

    other = slicer.util.addVolumeFromArray(np.arange(24, dtype=np.int16).reshape(2, 3, 4), name="other CT")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "my points")
    points.AddControlPoint(1.0, 2.0, 3.0, "mine")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "my table")
    table.AddColumn().SetName("notes")
    table.AddEmptyRow()
    return other, points, table


def _pixels(volumeNode, markupsNode):
    """Control points of `markupsNode` as (x, y) pixels, through Slicer's own RAS-to-IJK matrix of the volume."""
    import slicer
    import vtk

    rasToIjk = vtk.vtkMatrix4x4()
    volumeNode.GetRASToIJKMatrix(rasToIjk)
    ras = slicer.util.arrayFromMarkupsControlPoints(markupsNode)
    ijk = (slicer.util.arrayFromVTKMatrix(rasToIjk) @ np.c_[ras, np.ones(len(ras))].T).T
    np.testing.assert_allclose(ijk[:, 2], 0.0, atol=1e-6)  # on the radiograph's plane
    return ijk[:, :2]


def _tableColumn(tableNode, name):
    column = tableNode.GetTable().GetColumnByName(name)
    return [column.GetValue(row) for row in range(tableNode.GetNumberOfRows())]


def test_parameter_node_survives_saving_and_reloading_the_scene(logic, radiograph, tmp_path):
    import slicer

    volumeNode, _, landmarks = radiograph
    landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
    parameters = logic.getParameterNode()
    parameters.inputVolume = volumeNode
    parameters.weightsPath = "/models/landmarks v2"
    parameters.patientRightOnImageLeft = False
    parameters.forceMeasure = True
    parameters.landmarks = landmarksNode
    names = (volumeNode.GetName(), landmarksNode.GetName())

    harness.saveAndReloadScene(tmp_path / "saved")

    reloaded = logic.getParameterNode()
    assert (reloaded.inputVolume.GetName(), reloaded.landmarks.GetName()) == names
    assert reloaded.weightsPath == "/models/landmarks v2"
    assert reloaded.patientRightOnImageLeft is False and reloaded.forceMeasure is True
    assert slicer.util.arrayFromVolume(reloaded.inputVolume).shape == (1,) + radiograph[1].shape
    np.testing.assert_allclose(_pixels(reloaded.inputVolume, reloaded.landmarks), landmarks.flat, atol=1e-3)
    # The reloaded landmarks are reviewed as before: their lines and table come back with the same angles.
    result = logic.updateResults(reloaded.landmarks)
    assert [round(curve.angle_deg, 3) for curve in result.curves] == \
        [round(value, 3) for value in _tableColumn(logic.tableNode(reloaded.landmarks), "angle")]


def test_detection_puts_68_corners_on_the_drawn_vertebrae_and_keeps_other_nodes(app, logic, radiograph):
    volumeNode, _, landmarks = radiograph
    before = harness.userNodes(app.mrmlScene)
    _userNodesOfAnotherStudy(app.mrmlScene)
    mine = harness.userNodes(app.mrmlScene)

    landmarksNode = logic.detectAndMeasure(volumeNode)

    assert landmarksNode.GetNumberOfControlPoints() == 68
    assert landmarksNode.GetFixedNumberOfControlPoints()  # drags move corners; none can be added or lost
    assert landmarksNode.GetNthControlPointLabel(0) == "T1 superior-left"
    assert landmarksNode.GetNthControlPointLabel(67) == "L5 inferior-right"
    error = np.linalg.norm(_pixels(volumeNode, landmarksNode) - landmarks.flat, axis=1)
    assert np.median(error) < 8.0, f"median corner error {np.median(error):.1f} px"
    assert logic.spineCheckFailure(landmarksNode) is None
    table = logic.tableNode(landmarksNode)
    assert _tableColumn(table, "curve") == [curve.name for curve in logic.cobbResult(landmarksNode).curves]
    after = harness.userNodes(app.mrmlScene)
    assert {key: after.get(key) for key in mine} == mine  # the user's nodes: all there, none changed
    assert set(before) <= set(after)


def test_dragging_a_corner_moves_the_lines_at_once_and_the_table_and_checks_on_release(logic, radiograph):
    import slicer

    from spine_analysis.xray.cobb import analyse
    from spine_analysis.xray.landmarks import SpineLandmarks

    volumeNode, image, landmarks = radiograph
    landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
    shown = []
    logic.resultsUpdatedCallback = lambda node, result, error: shown.append((result, error))
    try:
        main = max(logic.cobbResult(landmarksNode).curves, key=lambda curve: curve.angle_deg)
        level = landmarks.levels.index(main.upper_end)
        moved = landmarks.points.copy()
        moved[level, 0, 1] += 10.0  # superior-left corner of the upper end vertebra, 10 px down
        expected = analyse(SpineLandmarks(moved, landmarks.first_level), image.shape[0])
        expectedMain = next(curve for curve in expected.curves if curve.name == main.name)
        assert abs(expectedMain.angle_deg - main.angle_deg) > 0.5
        target = _rasOfPixel(volumeNode, moved[level, 0])
        tableBefore = _tableColumn(logic.tableNode(landmarksNode), "angle")

        node = landmarksNode
        node.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent)
        node.SetNthControlPointPosition(4 * level, *target)
        lineNames = [line.GetName() for line in logic.endplateLineNodes(node)]
        assert any(name.startswith(f"{main.name} {expectedMain.angle_deg:.1f}°") for name in lineNames), lineNames
        assert _tableColumn(logic.tableNode(node), "angle") == tableBefore  # the table waits for the release
        node.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
        np.testing.assert_allclose(_tableColumn(logic.tableNode(node), "angle"),
                                   [curve.angle_deg for curve in expected.curves], atol=1e-6)
        assert logic.isEdited(node) and node.GetAttribute("SpineCobb.Edited") == "true"
        assert shown and shown[-1][1] is None

        # A corner dragged below the radiograph is named in the Check lines the panel shows.
        assert logic.qualityMessages(node) == []
        harness.drag(node, 67, _rasOfPixel(volumeNode, (landmarks.flat[67][0], image.shape[0] + 40)))
        messages = logic.qualityMessages(node)
        assert any("L5" in message and "outside" in message for message in messages), messages
    finally:
        logic.resultsUpdatedCallback = None


def _rasOfPixel(volumeNode, xy):
    import slicer
    import vtk

    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    return (slicer.util.arrayFromVTKMatrix(ijkToRas) @ np.array([xy[0], xy[1], 0.0, 1.0]))[:3]


def test_a_point_moved_from_the_python_console_updates_everything(logic, radiograph):
    from spine_analysis.xray.cobb import analyse
    from spine_analysis.xray.landmarks import SpineLandmarks

    volumeNode, image, landmarks = radiograph
    landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
    main = max(logic.cobbResult(landmarksNode).curves, key=lambda curve: curve.angle_deg)
    corner = 4 * landmarks.levels.index(main.lower_end) + 2  # inferior-left corner of the lower end vertebra
    moved = landmarks.points.reshape(-1, 2).copy()
    moved[corner] += (0, 12)
    expected = analyse(SpineLandmarks(moved.reshape(-1, 4, 2), landmarks.first_level), image.shape[0])

    landmarksNode.SetNthControlPointPosition(corner, *_rasOfPixel(volumeNode, moved[corner]))  # no drag events

    np.testing.assert_allclose(_tableColumn(logic.tableNode(landmarksNode), "angle"),
                               [curve.angle_deg for curve in expected.curves], atol=1e-6)
    assert [line.GetName() for line in logic.endplateLineNodes(landmarksNode)][:1] == \
        [f"{expected.curves[0].name} {expected.curves[0].angle_deg:.1f}° upper ({expected.curves[0].upper_end})"]
    assert logic.isEdited(landmarksNode)


def test_applying_again_never_discards_hand_edits_unless_asked_to(app, logic, radiograph):
    volumeNode, _, landmarks = radiograph
    landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
    harness.drag(landmarksNode, 5, _rasOfPixel(volumeNode, landmarks.flat[5] + (6, 4)))
    edited = harness.nodeFingerprint(landmarksNode)

    with pytest.raises(ValueError, match="edited by hand") as refused:
        logic.detectAndMeasure(volumeNode)
    assert "\n" not in str(refused.value)
    assert harness.nodeFingerprint(landmarksNode) == edited
    assert logic.activeJob is None  # nothing was started

    replaced = logic.detectAndMeasure(volumeNode, replaceEdited=True)
    assert replaced.GetID() == landmarksNode.GetID() and not logic.isEdited(replaced)


def test_export_writes_the_report_the_readme_promises(logic, radiograph, tmp_path):
    volumeNode, _, landmarks = radiograph
    landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
    harness.drag(landmarksNode, 9, _rasOfPixel(volumeNode, landmarks.flat[9] + (0, 5)))
    folder = tmp_path / "export"
    logic.exportResults(landmarksNode, str(folder))

    assert sorted(path.name for path in folder.iterdir()) == \
        ["landmarks.csv", "landmarks.json", "overlay.png", "report.csv", "report.json"]
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["landmarks_edited"] is True
    table = logic.tableNode(landmarksNode)
    assert [curve["name"] for curve in report["curves"]] == _tableColumn(table, "curve")
    np.testing.assert_allclose([curve["angle_deg"] for curve in report["curves"]], _tableColumn(table, "angle"),
                               atol=0.05)


def test_an_image_that_is_not_a_spine_radiograph_is_refused_and_adds_nothing(app, logic, scene, tmp_path):
    from skimage import data

    from SpineCobbLib import detection
    from SpineCommonLib.jobs import JobFailed

    volumeNode = _loadRadiograph(tmp_path, data.camera(), name="camera")
    _userNodesOfAnotherStudy(scene)
    before = harness.userNodes(scene)

    with pytest.raises(JobFailed) as refused:
        logic.detectAndMeasure(volumeNode)
    assert detection.isRefusal(refused.value)
    assert "\n" not in str(refused.value) and "spine" in str(refused.value)
    assert harness.userNodes(scene) == before  # no landmarks, lines or table were made; nothing changed
    assert logic.findLandmarksNode(volumeNode) is None


@pytest.fixture(scope="module")
def widget(app):
    """The module panel's code on stand-in widgets; its own logic and engine, ended as Slicer ends them."""
    panel = harness.moduleWidget("SpineCobb")
    yield panel
    panel.cleanup()


def _applyAndWait(app, panel):
    """Click Apply and let Slicer's event loop run until the background detection has ended."""
    panel.onApplyButton()
    assert app.processEventsUntil(lambda: panel.logic.activeJob is None, timeout=180)


def test_apply_asks_before_replacing_hand_edits_and_no_keeps_them(app, widget, radiograph):
    import qt

    volumeNode, _, landmarks = radiograph
    landmarksNode = widget.logic.computeFromLandmarks(volumeNode, landmarks)
    widget._parameterNode.inputVolume = volumeNode
    widget._parameterNode.landmarks = landmarksNode
    harness.drag(landmarksNode, 12, _rasOfPixel(volumeNode, landmarks.flat[12] + (5, 5)))
    edited = harness.nodeFingerprint(landmarksNode)
    assert widget.ui.applyButton.enabled

    app.answers.append(qt.QMessageBox.No)
    _applyAndWait(app, widget)
    assert [dialog.title for dialog in app.dialogs] == ["Replace edited landmarks?"]
    assert harness.nodeFingerprint(landmarksNode) == edited  # "No" keeps the corrections, nothing was run

    app.answers.append(qt.QMessageBox.Yes)
    _applyAndWait(app, widget)
    assert [dialog.title for dialog in app.dialogs][-1] == "Replace edited landmarks?"
    assert app.errors() == []
    assert not widget.logic.isEdited(landmarksNode)  # replaced by the new detection, in the same node
    assert widget._parameterNode.landmarks.GetID() == landmarksNode.GetID()
    assert widget.ui.statusLabel.text == "Done."
    curves = widget.logic.cobbResult(landmarksNode).curves
    assert widget.ui.resultsLabel.text.count("°") == len(curves) > 0  # one summary line per curve
    assert all(f"{curve.name}: <b>{curve.angle_deg:.1f}°</b>" in widget.ui.resultsLabel.text for curve in curves), \
        widget.ui.resultsLabel.text


def test_apply_on_a_photograph_shows_the_refusal_and_makes_no_nodes(app, widget, scene, tmp_path):
    from skimage import data

    volumeNode = _loadRadiograph(tmp_path, data.camera(), name="camera")
    widget._parameterNode.inputVolume = volumeNode
    before = harness.userNodes(scene)

    _applyAndWait(app, widget)

    errors = app.errors()
    assert [dialog.title for dialog in errors] == ["Not a spine radiograph?"]
    assert "spine" in errors[0].text and "Traceback" not in errors[0].text + errors[0].detailedText
    assert widget.ui.statusLabel.text.startswith("Not measured")
    assert harness.userNodes(scene) == before
