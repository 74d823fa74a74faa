"""The MRML nodes that show a fracture result, all hanging off one results table.

The results table (vtkMRMLTableNode, one row per vertebra, locked: it is rebuilt from the engine's answer) is the
result the user selects. It refers to the CT it was made for, the probability volume (a new node per result, shown
as a coloured foreground over the CT), the centroid point list the vertebrae were assessed at (the user's own list,
or one this module made from the engine's centroids) and the vertebra labels used. The engine's rows and patient
summary are kept as JSON attributes, so the result survives saving the scene.
"""
import json

import numpy as np

import slicer

from SpineCommonLib import tables
from SpineCommonLib.volumes import ijkToRasMatrix
from SpineFractureLib import findings

ROLE_ATTRIBUTE = "SpineFracture.Role"
RESULTS_ROLE = "Results"
CENTROIDS_ROLE = "Centroids"
ROWS_ATTRIBUTE = "SpineFracture.Vertebrae"
PATIENT_ATTRIBUTE = "SpineFracture.Patient"
WEIGHTS_ATTRIBUTE = "SpineFracture.Weights"
MODEL_ATTRIBUTE = "SpineFracture.Model"
LEVEL_SOURCE_ATTRIBUTE = "SpineFracture.LevelSource"
LABELS_NAME_ATTRIBUTE = "SpineFracture.LabelsName"
NOTES_ATTRIBUTE = "SpineFracture.Notes"
CT_KEY_ATTRIBUTE = "SpineFracture.CTKey"

CT_REFERENCE = "SpineFractureCT"
PROBABILITY_REFERENCE = "SpineFractureProbability"
CENTROIDS_REFERENCE = "SpineFractureCentroids"
LABELS_REFERENCE = "SpineFractureLabels"

#: Blue (low) to red (high); if Slicer's colour file is missing, the built-in rainbow that also ends in red
#: (purple to red: the plain "Rainbow" runs red to purple, which would show low probabilities hot).
COLOR_NODE_IDS = ("vtkMRMLColorTableNodeFileColdToHotRainbow.txt", "vtkMRMLColorTableNodeReverseRainbow")
FRACTURED_COLOR = (1.0, 0.25, 0.2)
OTHER_COLOR = (0.35, 0.85, 0.35)


def _putInStudyOf(node, volumeNode):
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    shNode.SetItemParent(shNode.GetItemByDataNode(node), shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode)))


def ctKey(ctVolume):
    """Changes when the CT's voxels change: a result's probability map is kept on re-run only while it is the same."""
    imageData = ctVolume.GetImageData()
    return str(imageData.GetMTime() if imageData else 0)


# ---------------------------------------------------------------------- probability volume

def newProbabilityVolume(ctVolume, path):
    """A new volume with the engine's probability map (on the CT's grid), styled as an overlay."""
    import SimpleITK as sitk

    probability = sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.float32)  # (k, j, i), as the CT sent
    expected = tuple(reversed(ctVolume.GetImageData().GetDimensions()))
    if probability.shape != expected:
        raise ValueError(f"The probability map has {probability.shape[::-1]} voxels; the CT '{ctVolume.GetName()}' "
                         f"has {expected[::-1]}.")
    volumeNode = slicer.util.addVolumeFromArray(
        probability, ijkToRAS=ijkToRasMatrix(ctVolume),
        name=slicer.mrmlScene.GenerateUniqueName(f"{ctVolume.GetName()} fracture probability"))
    styleProbabilityVolume(volumeNode)
    _putInStudyOf(volumeNode, ctVolume)
    return volumeNode


def styleProbabilityVolume(volumeNode):
    """Colours for 0..1; below findings.OVERLAY_MIN_PROBABILITY transparent, so the CT shows through."""
    displayNode = volumeNode.GetDisplayNode()
    if displayNode is None:
        volumeNode.CreateDefaultDisplayNodes()
        displayNode = volumeNode.GetDisplayNode()
    colorNodeId = next((nodeId for nodeId in COLOR_NODE_IDS if slicer.mrmlScene.GetNodeByID(nodeId)), None)
    if colorNodeId:
        displayNode.SetAndObserveColorNodeID(colorNodeId)
    displayNode.SetAutoWindowLevel(False)
    displayNode.SetWindowLevelMinMax(0.0, 1.0)
    displayNode.SetAutoThreshold(False)
    displayNode.SetLowerThreshold(findings.OVERLAY_MIN_PROBABILITY)
    displayNode.SetUpperThreshold(1.0)
    displayNode.SetApplyThreshold(True)
    displayNode.SetInterpolate(False)


def showOverlay(ctVolume, probabilityVolume, opacity):
    """The CT in the background and the probability map in the foreground of every slice view."""
    if slicer.app.layoutManager():
        slicer.util.setSliceViewerLayers(background=ctVolume, foreground=probabilityVolume, foregroundOpacity=opacity)


def setOverlayOpacity(probabilityVolume, opacity):
    """Set the foreground opacity of the slice views that show `probabilityVolume`; where none does, show it.
    Returns the number of views changed."""
    compositeNodes = [node for node in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")
                      if node.GetForegroundVolumeID() == probabilityVolume.GetID()]
    if not compositeNodes:
        if slicer.app.layoutManager():
            slicer.util.setSliceViewerLayers(foreground=probabilityVolume, foregroundOpacity=opacity)
        return 0
    for compositeNode in compositeNodes:
        compositeNode.SetForegroundOpacity(opacity)
    return len(compositeNodes)


# ---------------------------------------------------------------------- centroids

def definedPoints(pointsNode):
    """(label, RAS world position) of every placed control point, in list order."""
    points = []
    for index in range(pointsNode.GetNumberOfControlPoints()):
        if pointsNode.GetNthControlPointPositionStatus(index) != slicer.vtkMRMLMarkupsNode.PositionDefined:
            continue
        position = [0.0, 0.0, 0.0]
        pointsNode.GetNthControlPointPositionWorld(index, position)
        points.append((pointsNode.GetNthControlPointLabel(index), position))
    return points


def isModuleCentroids(pointsNode):
    return bool(pointsNode) and pointsNode.GetAttribute(ROLE_ATTRIBUTE) == CENTROIDS_ROLE


def centroidsCt(pointsNode):
    """The CT a centroid list made by this module belongs to (None for other point lists)."""
    return pointsNode.GetNodeReference(CT_REFERENCE) if isModuleCentroids(pointsNode) else None


def newCentroidsNode(ctVolume, rows):
    """A new point list with the engine's centroids (labels = levels), editable: move a point and re-run."""
    pointsNode = slicer.mrmlScene.AddNewNodeByClass(
        "vtkMRMLMarkupsFiducialNode", slicer.mrmlScene.GenerateUniqueName(f"{ctVolume.GetName()} vertebrae"))
    pointsNode.CreateDefaultDisplayNodes()
    displayNode = pointsNode.GetDisplayNode()
    displayNode.SetSelectedColor(*FRACTURED_COLOR)   # selected = called fractured (see markCentroids)
    displayNode.SetColor(*OTHER_COLOR)
    displayNode.SetTextScale(3.0)
    pointsNode.SetAttribute(ROLE_ATTRIBUTE, CENTROIDS_ROLE)
    pointsNode.SetNodeReferenceID(CT_REFERENCE, ctVolume.GetID())
    points = findings.centroidPoints(rows)
    with slicer.util.NodeModify(pointsNode):
        slicer.util.updateMarkupsControlPointsFromArray(pointsNode, np.array([ras for _, ras in points], dtype=float))
        for index, (level, _) in enumerate(points):
            pointsNode.SetNthControlPointLabel(index, level)
    _putInStudyOf(pointsNode, ctVolume)
    return pointsNode


def markCentroids(pointsNode, rows):
    """Points of vertebrae called fractured are selected (drawn in the fractured colour); each point's description
    is its call. Only for point lists this module made: a user's own list is not changed."""
    if not isModuleCentroids(pointsNode):
        return
    with slicer.util.NodeModify(pointsNode):
        for index in range(pointsNode.GetNumberOfControlPoints()):
            position = [0.0, 0.0, 0.0]
            pointsNode.GetNthControlPointPositionWorld(index, position)
            rowIndex = findings.rowForPoint(rows, pointsNode.GetNthControlPointLabel(index), position)
            row = rows[rowIndex] if rowIndex is not None else {}
            pointsNode.SetNthControlPointSelected(index, row.get("call") == "fractured")
            pointsNode.SetNthControlPointDescription(index, str(row.get("call") or ""))


def jumpTo(rasPosition):
    """Centre the slice views on a RAS position."""
    x, y, z = (float(v) for v in rasPosition)
    slicer.modules.markups.logic().JumpSlicesToLocation(x, y, z, True)


# ---------------------------------------------------------------------- results table

def newResultsTable(ctVolume):
    tableNode = slicer.mrmlScene.AddNewNodeByClass(
        "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(f"{ctVolume.GetName()} fractures"))
    tableNode.SetAttribute(ROLE_ATTRIBUTE, RESULTS_ROLE)
    tableNode.SetLocked(True)  # rebuilt from the engine's answer: edits in the table would be lost
    _putInStudyOf(tableNode, ctVolume)
    return tableNode


def writeResults(tableNode, result, ctVolume, probabilityVolume, centroidsNode, labelsNode, weightsPath, notes=()):
    """Fill the results table from the engine's answer and refer it to the nodes of this result."""
    rows = result["vertebrae"]
    with slicer.util.NodeModify(tableNode):
        tables.updateTableFromRows(tableNode, [findings.tableRow(row) for row in rows], columns=findings.COLUMNS,
                                   titles=findings.TITLES, units=findings.UNITS, descriptions=findings.DESCRIPTIONS)
        tableNode.SetAttribute(ROWS_ATTRIBUTE, json.dumps(rows))
        tableNode.SetAttribute(PATIENT_ATTRIBUTE, json.dumps(result["patient"]))
        tableNode.SetAttribute(MODEL_ATTRIBUTE, str(result.get("model") or ""))
        tableNode.SetAttribute(LEVEL_SOURCE_ATTRIBUTE, str(result.get("level_source") or ""))
        tableNode.SetAttribute(WEIGHTS_ATTRIBUTE, weightsPath or "")
        tableNode.SetAttribute(LABELS_NAME_ATTRIBUTE, labelsNode.GetName() if labelsNode else "")
        tableNode.SetAttribute(NOTES_ATTRIBUTE, json.dumps(list(notes)))
        tableNode.SetAttribute(CT_KEY_ATTRIBUTE, ctKey(ctVolume))
        for role, node in ((CT_REFERENCE, ctVolume), (PROBABILITY_REFERENCE, probabilityVolume),
                           (CENTROIDS_REFERENCE, centroidsNode), (LABELS_REFERENCE, labelsNode)):
            tableNode.SetNodeReferenceID(role, node.GetID() if node else None)
    return tableNode


def _jsonAttribute(tableNode, name, default):
    text = tableNode.GetAttribute(name) if tableNode else None
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def resultRows(tableNode):
    """The engine's rows of a result (one dict per vertebra)."""
    return _jsonAttribute(tableNode, ROWS_ATTRIBUTE, [])


def resultPatient(tableNode):
    return _jsonAttribute(tableNode, PATIENT_ATTRIBUTE, {})


def resultNotes(tableNode):
    return _jsonAttribute(tableNode, NOTES_ATTRIBUTE, [])


def isResultsTable(tableNode):
    return bool(tableNode) and tableNode.GetAttribute(ROLE_ATTRIBUTE) == RESULTS_ROLE
