"""Views drawn by Slicer's own displayable managers (slice_views.py), checked pixel by pixel: what a user sees."""
import numpy as np
import pytest

from test_spinecobb import _loadRadiograph

SIZE = (400, 900)


def _near(pixels, column, row, radius=2):
    """The pixels within `radius` of (column, row), as (n, 3) integers."""
    return pixels[max(row - radius, 0):row + radius + 1,
                  max(column - radius, 0):column + radius + 1].reshape(-1, 3).astype(int)


def test_cobb_lines_are_drawn_beyond_the_spine_in_their_curve_colour(app, scene, tmp_path):
    import slicer
    import slice_views

    from SpineCobbLib import outputs
    from spine_analysis.xray.cobb import extended_endplate
    from spine_analysis.xray.synthetic import example_case

    image, landmarks, _ = example_case()
    volumeNode = _loadRadiograph(tmp_path, image)
    logic = slicer.util.getModuleLogic("SpineCobb")
    landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
    lines = logic.endplateLineNodes(landmarksNode)
    ijkToRas = outputs.ijkToRasMatrix(volumeNode)

    def render():
        return slice_views.renderSliceView(scene, app.applicationLogic(), background=volumeNode,
                                           rotateToVolumePlane=True, size=SIZE)

    shown = render()
    for line in lines:
        line.GetDisplayNode().SetVisibility(False)
    hidden = render()
    sliceNode = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")

    result = logic.cobbResult(landmarksNode)
    for index, curve in enumerate(result.curves):
        colour = 255 * np.array(lines[2 * index].GetDisplayNode().GetSelectedColor())
        for endplate in (curve.upper_endplate, curve.lower_endplate):
            left, right = extended_endplate(endplate)
            for point in (left + 0.1 * (right - left), left + 0.9 * (right - left)):  # on the extensions
                ras = outputs.pixelsToRas(point[np.newaxis], ijkToRas)[0]
                column, row = slice_views.rasToViewPixel(sliceNode, ras, SIZE)
                drawn = _near(shown, column, row)
                changed = np.abs(drawn - _near(hidden, column, row)).sum(axis=1) > 60
                assert changed.any(), f"{curve.name} line not drawn at {point}"
                closest = np.abs(drawn[changed] - colour).max(axis=1).min()
                assert closest < 60, f"{curve.name} line at {point}: colour off by {closest}"


def test_a_segment_is_drawn_in_its_colour_over_its_voxels_and_nowhere_else(app, scene):
    import SimpleITK as sitk
    import sitkUtils
    import slicer
    import slice_views

    from ct_phantom import phantom_ct, phantom_labels

    ct = phantom_ct(oblique_deg=12.0)
    ctNode = sitkUtils.PushVolumeToSlicer(ct, name="phantom CT")
    labelNode = sitkUtils.PushVolumeToSlicer(phantom_labels(ct), name="labels",
                                             className="vtkMRMLLabelMapVolumeNode")
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentationNode.CreateDefaultDisplayNodes()
    assert slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelNode, segmentationNode)
    segmentation = segmentationNode.GetSegmentation()
    middle = segmentation.GetNthSegment(1)
    middle.SetColor(0.0, 1.0, 0.0)
    for index in (0, 2):
        segmentationNode.GetDisplayNode().SetSegmentVisibility(segmentation.GetNthSegmentID(index), False)
    ctNode.GetDisplayNode().SetAutoWindowLevel(False)
    ctNode.GetDisplayNode().SetWindowLevel(1500, 300)

    def render():
        return slice_views.renderSliceView(scene, app.applicationLogic(), orientation="Axial", background=ctNode,
                                           size=(400, 400), center=(0.0, 0.0, 0.0))

    shown = render()
    segmentationNode.GetDisplayNode().SetVisibility(False)
    hidden = render()
    sliceNode = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")

    labels = sitk.GetArrayFromImage(phantom_labels(ct))
    greener = (shown[..., 1].astype(int) - hidden[..., 1]) > 40
    assert greener.sum() > 500  # the middle body's cut is filled
    inside = outside = 0
    for row, column in zip(*np.nonzero(greener)):
        ras = _viewPixelToRas(sliceNode, column, row, 400)
        k, j, i = np.round(_rasToIjk(ctNode, ras)[::-1]).astype(int)
        inside += labels[k, j, i] == 22
        outside += labels[k, j, i] == 0
    assert inside / greener.sum() > 0.95 and outside / greener.sum() < 0.03
    np.testing.assert_array_equal(shown[:40, :40], hidden[:40, :40])  # air far from the body: untouched
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(shown, hidden)


def _viewPixelToRas(sliceNode, column, row, height):
    return np.array(sliceNode.GetXYToRAS().MultiplyPoint((column, height - 1 - row, 0.0, 1.0))[:3])


def _rasToIjk(volumeNode, ras):
    import vtk

    rasToIjk = vtk.vtkMatrix4x4()
    volumeNode.GetRASToIJKMatrix(rasToIjk)
    return np.array(rasToIjk.MultiplyPoint((*ras, 1.0))[:3])
