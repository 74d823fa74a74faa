"""CT volumes and vertebra labels (label map or segmentation) as SimpleITK images for the engine.

SimpleITK images carry LPS physical geometry, as the engine expects; sitkUtils does the RAS/LPS
conversion of the volume geometry.
"""
import numpy as np

import slicer


def ijkToRasMatrix(volumeNode):
    """The volume's IJK-to-RAS matrix as a 4x4 numpy array (the geometry `spine_analysis.coords` takes)."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def ctImageFromVolume(volumeNode):
    """The CT as a SimpleITK image (Hounsfield units, LPS geometry)."""
    import sitkUtils

    if not volumeNode or not volumeNode.GetImageData():
        raise ValueError("Select a CT volume that holds image data.")
    dimensions = volumeNode.GetImageData().GetDimensions()
    if min(dimensions) < 2:
        raise ValueError(f"'{volumeNode.GetName()}' is a 2D image ({dimensions[0]} x {dimensions[1]}); "
                         "a CT volume is expected.")
    return sitkUtils.PullVolumeFromSlicer(volumeNode)


def _colorTableNames(labelmapNode, values):
    """Label value -> name from the label map's own color table; none from Slicer's built-in generic tables."""
    displayNode = labelmapNode.GetDisplayNode()
    colorNode = displayNode.GetColorNode() if displayNode else None
    if colorNode is None or colorNode.GetSingletonTag():
        # Built-in tables (GenericAnatomyColors...) name label 2 "bone", not a vertebra: leave naming to the engine.
        return None
    names = {}
    for value in values:
        if 0 <= value < colorNode.GetNumberOfColors():
            name = colorNode.GetColorName(int(value))
            if name and name != "(none)":
                names[int(value)] = name
    return names or None


def _segmentsAsLabels(segmentationNode, referenceVolumeNode):
    """Segment i of the segmentation as label i + 1 on the reference volume's grid (a later segment wins where
    two overlap), exported once through a temporary label map that leaves no node behind."""
    import vtk

    segmentation = segmentationNode.GetSegmentation()
    segmentIds = vtk.vtkStringArray()
    for index in range(segmentation.GetNumberOfSegments()):
        segmentIds.InsertNextValue(segmentation.GetNthSegmentID(index))
    labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__temp__")
    try:
        if not slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
                segmentationNode, segmentIds, labelmapNode, referenceVolumeNode):
            raise ValueError(f"The segments of '{segmentationNode.GetName()}' could not be sampled on the CT's grid.")
        return np.array(slicer.util.arrayFromVolume(labelmapNode), dtype=np.uint16)
    finally:
        displayNode = labelmapNode.GetDisplayNode()
        for node in (displayNode.GetColorNode() if displayNode else None, displayNode, labelmapNode):
            if node is not None and not node.GetSingletonTag():
                slicer.mrmlScene.RemoveNode(node)


def labelImageFromNode(labelsNode, referenceImage, referenceVolumeNode):
    """Vertebra labels for the CT `referenceImage` (SimpleITK) of `referenceVolumeNode`, and their names.

    `labelsNode` is a vtkMRMLLabelMapVolumeNode (label values kept, names from its color table; it must
    share the CT's grid) or a vtkMRMLSegmentationNode (sampled on the CT's grid; segment i becomes label
    i + 1, named after the segment).
    Returns (SimpleITK label image, {label value: name} or None).
    """
    import SimpleITK as sitk
    import sitkUtils

    if not labelsNode:
        raise ValueError("Select the vertebra label map or segmentation.")
    if labelsNode.IsA("vtkMRMLSegmentationNode"):
        segmentation = labelsNode.GetSegmentation()
        if segmentation.GetNumberOfSegments() == 0:
            raise ValueError(f"Segmentation '{labelsNode.GetName()}' has no segments.")
        labels = _segmentsAsLabels(labelsNode, referenceVolumeNode)
        names = {index + 1: segmentation.GetNthSegment(index).GetName()
                 for index in range(segmentation.GetNumberOfSegments())}
        image = sitk.GetImageFromArray(labels)
        image.CopyInformation(referenceImage)
        return image, names

    if not labelsNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ValueError(f"'{labelsNode.GetName()}' is neither a label map nor a segmentation.")
    # Kept on its own grid: the engine refuses a label map that does not match the CT rather than resample it.
    image = sitkUtils.PullVolumeFromSlicer(labelsNode)
    values = np.unique(sitk.GetArrayViewFromImage(image))
    return image, _colorTableNames(labelsNode, [int(value) for value in values if value != 0])
