"""SpineAnalysis run for real: Slicer's MRML (slicer-core), the module's own widget handlers and logic, the warm
engine process, and a real lumbar CT (VerSe 2019 sub-verse014, L1-L5).

What is asserted is what a user sees: the segments and their names, where their voxels lie in the CT, the rows of
the metrics table, the message boxes, and that nodes the user had are left alone.

The module panel's code runs on the harness's stand-in widgets: placing a seed fires the markups event the panel
observes, so a placed point goes through `onSeedPlaced` -> `segmentSeeds` -> `logic.segmentSeed` as in Slicer.
The CT is never copied into the repository: it is found with `spine_analysis.datasets.ct_dir()`
($SPINE_CT_DIR, else ../shared/datasets/ct-spine) and the tests that need it skip when it is absent.
"""
import numpy as np
import pytest

import harness
from verse014 import CENTROIDS_FILE, CT_FILE, VERSE_LABELS, Verse014

JOB_TIMEOUT_S = 180.0


# ----------------------------------------------------------------------------- fixtures

logic = harness.moduleLogicFixture("SpineAnalysis")


@pytest.fixture(scope="module")
def widget(app):
    """The module panel's code on the harness's stand-in widgets, with its own logic and engine (stopped when a
    scene closes and at cleanup, as in Slicer)."""
    panel = harness.moduleWidget("SpineAnalysis")
    yield panel
    # The user leaves the module first: the panel stops following the parameter node. cleanup() alone leaves the
    # parameterNodeWrapper's GUI observer on it, and a later scene Clear then crashes (see SpineCommonLib.widgets).
    panel.exit()
    panel.cleanup()


@pytest.fixture
def data(scene):
    """sub-verse014 loaded into an empty scene."""
    return Verse014()


# ----------------------------------------------------------------------------- helpers

def startModule(widget, data, labels=True):
    """The user picks the CT (and the label map) and creates the seed point list."""
    import slicer

    pn = widget._parameterNode
    pn.inputVolume = data.ct
    pn.vertebraLabels = data.labels if labels else None
    pn.seeds = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seeds")
    return pn


def place(app, widget, ras):
    """A click in place mode: one more control point, which the panel segments; waits until the panel is idle."""
    widget._parameterNode.seeds.AddControlPoint(list(ras))
    assert app.processEventsUntil(lambda: widget.logic.activeJob is None and not widget._queue, JOB_TIMEOUT_S), \
        "the segmentation did not end in time"


def segmentsByName(segmentationNode):
    segmentation = segmentationNode.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]
    return {segmentation.GetSegment(segmentId).GetName(): segmentId for segmentId in ids}


def metricsTableOf(segmentationNode):
    from SpineAnalysisLib import centra

    tableNode = centra.metricsTable(segmentationNode)
    assert tableNode is not None, "no metrics table"
    return tableNode


def shParent(node):
    import slicer

    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    return shNode.GetItemParent(shNode.GetItemByDataNode(node))


# ----------------------------------------------------------------------------- 1. parameter node

@pytest.mark.parametrize("labelsKind", ["labelmap", "segmentation"])
def test_parameter_node_survives_saving_and_reloading_the_scene(app, scene, logic, tmp_path, labelsKind):
    import slicer
    from SpineAnalysis import SegmentationMethod

    ijkToRas = np.diag([-0.8, -0.8, 2.0, 1.0])
    ct = slicer.util.addVolumeFromArray(np.full((6, 7, 8), 200, np.int16), ijkToRAS=ijkToRas, name="Lumbar CT")
    labelArray = np.zeros((6, 7, 8), np.uint8)
    labelArray[1:4, 2:5, 2:6] = 20
    labelMap = slicer.util.addVolumeFromArray(labelArray, ijkToRAS=ijkToRas, name="Vertebra labels",
                                              nodeClassName="vtkMRMLLabelMapVolumeNode")
    labelSegmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Vertebra segments")
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelMap, labelSegmentation)
    seeds = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "My seeds")
    seeds.AddControlPoint([-2.0, -3.0, 4.0], "L1")
    output = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "My centra")
    output.SetReferenceImageGeometryParameterFromVolumeNode(ct)
    output.GetSegmentation().AddEmptySegment("", "L1 centrum")
    table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "My metrics")
    table.AddColumn().SetName("level")

    pn = logic.getParameterNode()
    assert (pn.method, pn.autoSegment) == (SegmentationMethod.UNET, True)  # the defaults, changed below
    pn.inputVolume = ct
    pn.vertebraLabels = labelMap if labelsKind == "labelmap" else labelSegmentation
    pn.seeds = seeds
    pn.method = SegmentationMethod.CLASSICAL
    pn.autoSegment = False
    pn.outputSegmentation = output
    pn.metricsTable = table
    expected = {name: (getattr(pn, name).GetID(), getattr(pn, name).GetName())
                for name in ("inputVolume", "vertebraLabels", "seeds", "outputSegmentation", "metricsTable")}

    harness.saveAndReloadScene(tmp_path / "saved")

    pn = logic.getParameterNode()
    assert pn.method == SegmentationMethod.CLASSICAL
    assert pn.autoSegment is False
    for name, (nodeId, nodeName) in expected.items():
        node = getattr(pn, name)
        assert node is not None, name
        assert (node.GetID(), node.GetName()) == (nodeId, nodeName), name
    assert pn.vertebraLabels.IsA("vtkMRMLLabelMapVolumeNode" if labelsKind == "labelmap" else "vtkMRMLSegmentationNode")
    assert pn.seeds.GetNthControlPointLabel(0) == "L1"
    assert list(slicer.util.arrayFromVolume(pn.inputVolume).shape) == [6, 7, 8]
    assert segmentsByName(pn.outputSegmentation).keys() == {"L1 centrum"}


# ----------------------------------------------------------------------------- 2. seeds in a real CT

def test_seeds_in_verse014_segment_each_vertebra_inside_its_label(app, widget, data):
    import SimpleITK as sitk
    import slicer
    from spine_analysis.coords import flip_lps_ras
    from spine_analysis.ct.levels import read_verse_centroids

    # Slicer's reader and the engine's reader of the centroid file agree on where the centroids are (RAS vs LPS).
    engineLps = read_verse_centroids(CENTROIDS_FILE, sitk.ReadImage(str(CT_FILE)))
    for level, ras in data.centroids.items():
        np.testing.assert_allclose(flip_lps_ras(engineLps[level]), ras, atol=0.05)
        assert data.labelAt(ras) == VERSE_LABELS[level], f"the {level} centroid is not in its label"

    pn = startModule(widget, data)
    levels = ["L1", "L3", "L5"]
    for level in levels:
        place(app, widget, data.centroids[level])
        assert [dialog.text for dialog in app.errors()] == []
        assert widget.ui.statusLabel.text.startswith(f"{level} centrum: "), widget.ui.statusLabel.text

    segmentationNode = pn.outputSegmentation
    assert segmentationNode is not None
    segments = segmentsByName(segmentationNode)
    assert list(segments) == [f"{level} centrum" for level in levels]
    counts = {}
    for level in levels:
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segments[f"{level} centrum"], data.ct) > 0
        counts[level] = int(mask.sum())
        assert counts[level] * data.voxelMl > 3.0, f"{level}: only {counts[level]} voxels"
        inside = np.count_nonzero(data.labelArray[mask] == VERSE_LABELS[level]) / counts[level]
        assert inside >= 0.95, f"{level}: only {inside:.1%} of the segment lies in its VerSe label"

    rows = harness.tableRows(metricsTableOf(segmentationNode))
    assert [row["segment"] for row in rows] == [f"{level} centrum" for level in levels]
    for row, level in zip(rows, levels):
        assert (row["level"], row["level_from"], row["method"]) == (level, "label map", "U-Net")
        assert row["volume_ml"] == pytest.approx(counts[level] * data.voxelMl, rel=0.01)
        assert 100.0 < row["hu_mean"] < 400.0, f"{level}: mean {row['hu_mean']} HU is not trabecular bone"
        assert row["density_hint"]
    # The segmentation goes where the CT is in the subject hierarchy (also in a study: test_results_go_into_...).
    assert shParent(segmentationNode) == shParent(data.ct)


# ----------------------------------------------------------------------------- 3. re-measure after an edit

def test_remeasure_after_erasing_part_of_a_segment_updates_its_row(app, widget, data):
    import slicer

    pn = startModule(widget, data)
    for level in ("L2", "L4"):
        place(app, widget, data.centroids[level])
    segmentationNode = pn.outputSegmentation
    segments = segmentsByName(segmentationNode)
    before = {row["segment"]: row for row in harness.tableRows(metricsTableOf(segmentationNode))}

    # Segment Editor's Erase on one half of L2: its first sagittal slices (k runs along R in this PIR scan, 2 mm).
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segments["L2 centrum"], data.ct)
    slices = np.nonzero(mask.any(axis=(1, 2)))[0]
    mask[: slices[len(slices) // 2]] = 0
    kept = int(np.count_nonzero(mask))
    assert 0 < kept < 0.8 * before["L2 centrum"]["volume_ml"] / data.voxelMl
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentationNode, segments["L2 centrum"], data.ct)

    assert widget.ui.remeasureButton.enabled
    widget.onRemeasureButton()
    assert app.processEventsUntil(lambda: widget.logic.activeJob is None, JOB_TIMEOUT_S)
    assert app.errors() == []
    assert widget.ui.statusLabel.text == "2 segments re-measured."

    after = {row["segment"]: row for row in harness.tableRows(metricsTableOf(segmentationNode))}
    assert list(after) == ["L2 centrum", "L4 centrum"]
    assert after["L2 centrum"]["volume_ml"] == pytest.approx(kept * data.voxelMl, rel=1e-3)
    assert after["L2 centrum"]["hu_mean"] == pytest.approx(float(data.ctArray[mask > 0].mean()), abs=0.5)
    assert after["L4 centrum"]["volume_ml"] == pytest.approx(before["L4 centrum"]["volume_ml"], rel=1e-3)
    assert [after[name]["method"] for name in after] == ["U-Net, re-measured"] * 2
    assert after["L2 centrum"]["level"] == "L2"


# ----------------------------------------------------------------------------- 4. refused seeds

@pytest.mark.parametrize("where, expected", [
    ("disc", "not inside a vertebral body"),
    ("air", "in air"),
    ("outside", "outside the CT volume"),
])
def test_a_seed_outside_every_vertebral_body_is_refused_with_one_message(app, widget, data, where, expected):
    import slicer

    if where == "disc":  # halfway between the L1 and L2 body centroids
        seed = (data.centroids["L1"] + data.centroids["L2"]) / 2
        assert data.labelAt(seed) == 0
    elif where == "air":
        seed = (data.ijkToRas @ [3, 3, 20, 1.0])[:3]
        assert data.huAt(seed) < -900
    else:
        seed = data.centroids["L3"] + [0.0, 0.0, 400.0]
    pn = startModule(widget, data)
    before = harness.userNodes(app.mrmlScene)

    place(app, widget, seed)

    errors = app.errors()
    assert len(errors) == 1, [dialog.text for dialog in app.dialogs]
    title, _, message = errors[0].text.partition("\n\n")
    assert title == "Cannot segment seed Seeds-1."
    assert expected in message and "\n" not in message.strip()
    assert not message.startswith("seed 1"), "the engine's seed number means nothing to the user"
    assert "Traceback" not in errors[0].text + errors[0].detailedText
    assert widget.ui.statusLabel.text == "Failed."
    assert pn.outputSegmentation is None
    assert slicer.util.getNodesByClass("vtkMRMLSegmentationNode") == []
    after = harness.userNodes(app.mrmlScene)
    del before[pn.seeds.GetID()], after[pn.seeds.GetID()]  # the seed the user placed
    assert after == before  # no node made, none changed


# ----------------------------------------------------------------------------- 5. never replaced without asking

@pytest.mark.parametrize("named", [True, False], ids=["label map names it", "unnamed"])
def test_seeding_a_segmented_vertebra_again_asks_before_replacing(app, widget, data, named):
    import json as jsonModule

    import qt
    from SpineAnalysisLib import centra
    from spine_analysis.coords import flip_lps_ras

    pn = startModule(widget, data, labels=named)
    name = "L2 centrum" if named else "vertebra 1 centrum"
    place(app, widget, data.centroids["L2"])
    segmentationNode = pn.outputSegmentation
    assert list(segmentsByName(segmentationNode)) == [name]
    tableNode = metricsTableOf(segmentationNode)
    segmented = harness.nodeFingerprint(segmentationNode), harness.nodeFingerprint(tableNode)

    app.answers.append(qt.QMessageBox.No)
    place(app, widget, data.centroids["L2"] + [0.0, 0.0, 3.0])
    questions = [dialog for dialog in app.dialogs if dialog.icon == qt.QMessageBox.Question]
    assert len(questions) == 1, [dialog.text for dialog in app.dialogs]
    assert questions[0].title == "Replace segment?"
    assert questions[0].buttons == qt.QMessageBox.Yes | qt.QMessageBox.No
    assert f"'{name}'" in questions[0].text
    assert (harness.nodeFingerprint(segmentationNode), harness.nodeFingerprint(tableNode)) == segmented
    assert widget.ui.statusLabel.text == "Kept the existing segment."

    app.answers.append(qt.QMessageBox.Yes)
    thirdSeed = data.centroids["L2"] + [0.0, 0.0, -3.0]
    place(app, widget, thirdSeed)
    assert len([dialog for dialog in app.dialogs if dialog.icon == qt.QMessageBox.Question]) == 2
    assert app.errors() == []
    segments = segmentsByName(segmentationNode)
    assert len(segments) == 1, list(segments)
    segment = segmentationNode.GetSegmentation().GetSegment(next(iter(segments.values())))
    seedsNode = pn.seeds
    thirdSeedKey = widget.logic.seedKey(seedsNode, seedsNode.GetNthControlPointID(2))
    assert centra.segmentTag(segment, centra.SEED_TAG) == thirdSeedKey
    metrics = jsonModule.loads(centra.segmentTag(segment, centra.METRICS_TAG))
    np.testing.assert_allclose(metrics["seed_lps"], flip_lps_ras(thirdSeed), atol=0.01)
    assert len(harness.tableRows(tableNode)) == 1


# ----------------------------------------------------------------------------- 6. the user's nodes

def test_segmenting_and_measuring_leave_the_users_nodes_alone(app, widget, data):
    import slicer

    slicer.util.addVolumeFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5), name="other CT")
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "my points")
    points.AddControlPoint(list(data.centroids["L3"]), "L3 by hand")
    mine = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my vertebrae")
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(data.labels, mine)  # overlaps every seed
    table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "my table")
    table.AddColumn().SetName("notes")
    table.AddEmptyRow()
    before = harness.userNodes(app.mrmlScene)
    assert len(before) == 6  # the CT, its label map and the four above

    pn = startModule(widget, data)
    for level in ("L1", "L3"):
        place(app, widget, data.centroids[level])
    widget.onRemeasureButton()
    assert app.processEventsUntil(lambda: widget.logic.activeJob is None, JOB_TIMEOUT_S)
    widget.onApplyButton()
    assert app.processEventsUntil(lambda: widget.logic.activeJob is None, JOB_TIMEOUT_S)
    assert app.errors() == []
    assert widget.ui.statusLabel.text == "5 vertebrae measured. The last seed lies in L3."
    assert list(segmentsByName(pn.outputSegmentation)) == ["L1 centrum", "L3 centrum"]
    assert pn.metricsTable is not None

    after = harness.userNodes(app.mrmlScene)
    changed = [slicer.mrmlScene.GetNodeByID(nodeId).GetName() if nodeId in after else nodeId
               for nodeId, fingerprint in before.items() if after.get(nodeId) != fingerprint]
    assert changed == []


# ----------------------------------------------------------------------------- 7. metrics of a label map

def test_measure_label_map_measures_every_vertebra_as_the_centra_are(app, logic, data):
    import slicer
    from SpineAnalysisLib import seeds

    seedsNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seed")
    seedsNode.AddControlPoint(list(data.centroids["L3"]))

    tableNode = logic.measureLabelMap(data.ct, data.labels, seedPoint=seedsNode)

    rows = harness.tableRows(tableNode)
    assert [tableNode.GetColumnName(index) for index in range(tableNode.GetNumberOfColumns())] == \
        seeds.COLUMNS + [seeds.AT_SEED_COLUMN]  # the table of the seeded centra, and where the seed is
    assert [row["segment"] for row in rows] == list(VERSE_LABELS)
    assert [(row["level"], row["level_from"], row["method"]) for row in rows] == \
        [(level, "label map", "") for level in VERSE_LABELS]
    import SimpleITK as sitk
    from spine_analysis.ct.lesions import lesion_masks

    image = sitk.GetImageFromArray(data.ctArray)
    image.SetSpacing(data.ct.GetSpacing())
    for row, label in zip(rows, VERSE_LABELS.values()):
        hu = data.ctArray[data.labelArray == label].astype(float)
        lytic, sclerotic = lesion_masks(image, data.labelArray == label, 0.0, 400.0, 0.1)   # the engine's regions
        assert row["volume_ml"] == pytest.approx(hu.size * data.voxelMl, rel=1e-6)
        assert row["hu_mean"] == pytest.approx(hu.mean(), abs=0.01)
        assert row["hu_median"] == pytest.approx(np.median(hu), abs=0.01)
        assert row["hu_std"] == pytest.approx(hu.std(ddof=1), abs=0.01)
        assert row["lytic_percent"] == pytest.approx(100.0 * lytic.sum() / hu.size, abs=0.1)
        assert row["sclerotic_percent"] == pytest.approx(100.0 * sclerotic.sum() / hu.size, abs=0.1)
        assert row["density_hint"].startswith("screening hint, not a diagnosis")
    assert [row["at_seed"] for row in rows] == ["no", "no", "yes", "no", "no"]
    assert tableNode.GetAttribute(logic.SEED_ATTRIBUTE) == "L3"

    # The same vertebrae as segments (named by their segments) into the same table.
    segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "vertebrae")
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(data.labels, segmentationNode)
    assert logic.measureLabelMap(data.ct, segmentationNode, tableNode=tableNode) is tableNode
    segmentRows = harness.tableRows(tableNode)
    assert len(segmentRows) == 5
    assert sorted(row["volume_ml"] for row in segmentRows) == pytest.approx(sorted(row["volume_ml"] for row in rows))
    assert sorted(row["hu_mean"] for row in segmentRows) == pytest.approx(sorted(row["hu_mean"] for row in rows))


def test_measure_label_map_gives_the_engines_centrum_metrics_of_a_hand_built_ct(app, scene, logic):
    """Known values: L1 holds 12 voxels of 100 HU, 6 lytic ones of -20 HU and 6 sclerotic ones of 500 HU (each
    region 0.38 ml, above the 0.1 ml a lesion needs); L2 is 90 HU throughout; label 50 is no VerSe number; a block
    of cortex between them (700 HU, 1.5 ml) makes it a CT with bone. As a segmentation, the segment names give the
    levels."""
    import slicer

    ct = np.full((10, 8, 12), -1000, np.int16)  # (k, j, i)
    labels = np.zeros(ct.shape, np.uint8)
    ct[1:3, 2:5, 2:6] = 100
    ct[1, 2:5, 2:4] = -20
    ct[2, 2:5, 4:6] = 500
    labels[1:3, 2:5, 2:6] = 20   # L1: 2 x 3 x 4 voxels
    ct[5:7, 2:5, 2:6] = 90
    labels[5:7, 2:5, 2:6] = 21   # L2
    ct[8, 2:5, 2:6] = 250
    labels[8, 2:5, 2:6] = 50     # not a VerSe number
    ct[3:5, 2:5, 2:6] = 700      # cortex, between L1 and L2, in no label
    ijkToRas = np.array([[-4.0, 0, 0, 12.0], [0, -4.0, 0, -30.0], [0, 0, 4.0, 100.0], [0, 0, 0, 1]])
    voxelMl = 4.0 * 4.0 * 4.0 / 1000.0
    ctNode = slicer.util.addVolumeFromArray(ct, ijkToRAS=ijkToRas, name="Hand-built CT")
    labelNode = slicer.util.addVolumeFromArray(labels, ijkToRAS=ijkToRas, name="Hand-built labels",
                                               nodeClassName="vtkMRMLLabelMapVolumeNode")
    seedsNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seed")
    seedsNode.AddControlPoint(list((ijkToRas @ [3, 3, 5.5, 1.0])[:3]))  # inside L2

    rows = harness.tableRows(logic.measureLabelMap(ctNode, labelNode, seedPoint=seedsNode))

    l1 = np.array([100.0] * 12 + [-20.0] * 6 + [500.0] * 6)
    assert [row["segment"] for row in rows] == ["L1", "L2", "label 50"]
    assert [(row["level"], row["level_from"]) for row in rows] == \
        [("L1", "label map"), ("L2", "label map"), ("unnamed", "not given")]
    assert [row["volume_ml"] for row in rows] == pytest.approx([24 * voxelMl, 24 * voxelMl, 12 * voxelMl])
    assert [row["hu_mean"] for row in rows] == pytest.approx([170.0, 90.0, 250.0])
    assert [row["hu_median"] for row in rows] == pytest.approx([100.0, 90.0, 250.0])
    assert [row["hu_std"] for row in rows] == pytest.approx([l1.std(ddof=1), 0.0, 0.0])
    assert [row["lytic_percent"] for row in rows] == pytest.approx([25.0, 0.0, 0.0])
    assert [row["sclerotic_percent"] for row in rows] == pytest.approx([25.0, 0.0, 0.0])
    assert [row["density_hint"] for row in rows] == [
        "screening hint, not a diagnosis: above 160 HU: bone density likely normal; confirm with DXA",
        "screening hint, not a diagnosis (thresholds were set on L1): at most 110 HU: osteoporosis likely; "
        "confirm with DXA",
        "screening hint, not a diagnosis (thresholds were set on L1): above 160 HU: bone density likely normal; "
        "confirm with DXA"]
    assert [row["at_seed"] for row in rows] == ["no", "yes", "no"]

    segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Hand-built segments")
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(ctNode)
    for name, value in (("L1 centrum", 20), ("my vertebra", 21)):
        segmentId = segmentationNode.GetSegmentation().AddEmptySegment("", name)
        slicer.util.updateSegmentBinaryLabelmapFromArray((labels == value).astype(np.uint8), segmentationNode,
                                                         segmentId, ctNode)
    rows = harness.tableRows(logic.measureLabelMap(ctNode, segmentationNode))
    assert [(row["segment"], row["level"], row["level_from"]) for row in rows] == \
        [("L1 centrum", "L1", "segment name"), ("my vertebra", "unnamed", "not given")]
    assert [row["hu_mean"] for row in rows] == pytest.approx([170.0, 90.0])
    assert [row["lytic_percent"] for row in rows] == pytest.approx([25.0, 0.0])
    assert app.errors() == []


# ----------------------------------------------------------------------------- where the results go

def test_results_go_into_the_study_of_the_ct(app, widget, logic, data):
    """A CT loaded from DICOM sits in its patient and study; the segmentation and the tables made for it too."""
    import slicer

    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    patient = shNode.CreateSubjectItem(shNode.GetSceneItemID(), "Patient 014")
    study = shNode.CreateStudyItem(patient, "Lumbar CT study")
    shNode.SetItemParent(shNode.GetItemByDataNode(data.ct), study)

    pn = startModule(widget, data)
    place(app, widget, data.centroids["L4"])
    assert app.errors() == []
    assert shParent(pn.outputSegmentation) == study
    assert shParent(metricsTableOf(pn.outputSegmentation)) == study
    assert shParent(logic.measureLabelMap(data.ct, data.labels)) == study


# ----------------------------------------------------------------------------- the console

def test_console_segment_at_seed_as_the_readme_shows(app, logic, data):
    import slicer
    from SpineCommonLib.jobs import JobFailed

    segmentId, metrics = logic.segmentAtSeed(data.ct, list(data.centroids["L4"]))
    segmentationNode = logic.getParameterNode().outputSegmentation
    assert segmentationNode.GetSegmentation().GetSegment(segmentId).GetName() == "vertebra 1 centrum"
    assert (metrics["level"], metrics["level_from"]) == ("unnamed", "not given")
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, data.ct) > 0
    assert np.count_nonzero(data.labelArray[mask] == VERSE_LABELS["L4"]) >= 0.95 * mask.sum()
    assert metrics["volume_ml"] == pytest.approx(mask.sum() * data.voxelMl, rel=0.01)

    segmentId, metrics = logic.segmentAtSeed(data.ct, list(data.centroids["L1"]), level="l1")
    assert segmentationNode.GetSegmentation().GetSegment(segmentId).GetName() == "L1 centrum"
    assert (metrics["level"], metrics["level_from"], metrics["method"]) == ("L1", "entered", "unet")
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, data.ct) > 0
    assert mask.sum() * data.voxelMl > 3.0
    assert np.count_nonzero(data.labelArray[mask] == VERSE_LABELS["L1"]) >= 0.95 * mask.sum()
    assert [row["segment"] for row in harness.tableRows(metricsTableOf(segmentationNode))] == \
        ["vertebra 1 centrum", "L1 centrum"]

    # The shell setting: a 2 mm shell (a finite-element benchmark's convention) leaves a larger centrum.
    segmentId, thin = logic.segmentAtSeed(data.ct, list(data.centroids["L2"]), level="L2", shellMm=2.0)
    _, thick = logic.segmentAtSeed(data.ct, list(data.centroids["L3"]), level="L3", shellMm=3.0)
    assert (thin["shell_mm"], thick["shell_mm"]) == (2.0, 3.0)
    _, thickL2 = logic.segmentAtSeed(data.ct, list(data.centroids["L2"]), level="L2", shellMm=3.0,
                                     segmentationNode=slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode"))
    assert thin["volume_ml"] > 1.1 * thickL2["volume_ml"]

    with pytest.raises(JobFailed, match="^The seed is not inside a vertebral body"):
        logic.segmentAtSeed(data.ct, list((data.centroids["L1"] + data.centroids["L2"]) / 2))
    assert segmentationNode.GetSegmentation().GetNumberOfSegments() == 4
