"""The MRML nodes that show a Cobb analysis, all hanging off one landmarks node.

The landmarks node (vtkMRMLMarkupsFiducialNode, one control point per vertebral corner) is the
result the user reviews and edits. It refers to the radiograph it was made for and to the nodes
derived from it, which this module rebuilds whenever the landmarks change:
- two locked vtkMRMLMarkupsLineNode per curve (superior endplate of the upper end vertebra,
  inferior endplate of the lower end vertebra), named with the curve and its angle;
- one vtkMRMLModelNode with the outline of every vertebra (not editable, one node for all);
- one locked vtkMRMLMarkupsFiducialNode that names the levels beside the spine;
- one vtkMRMLTableNode with a row per curve.
All points are converted between image pixels and RAS with `spine_analysis.coords` only.
"""
import json

import numpy as np
import vtk

import slicer

from SpineCommonLib import tables
from SpineCommonLib.volumes import ijkToRasMatrix
from SpineCobbLib.detection import SEVERITY_NOT_STATED, shownSeverity

ROLE_ATTRIBUTE = "SpineCobb.Role"
LANDMARKS_ROLE = "Landmarks"
EDITED_ATTRIBUTE = "SpineCobb.Edited"
ORIGINAL_POINTS_ATTRIBUTE = "SpineCobb.OriginalPoints"
FIRST_LEVEL_ATTRIBUTE = "SpineCobb.FirstLevel"
SIDE_ATTRIBUTE = "SpineCobb.PatientRightOnImageLeft"
SOURCE_ATTRIBUTE = "SpineCobb.Source"
#: Set (to the engine's reason) when the image did not pass the spine check and was measured anyway: the
#: severity is then not stated, also after edits.
SPINE_CHECK_FAILURE_ATTRIBUTE = "SpineCobb.SpineCheckFailure"

VOLUME_REFERENCE = "SpineCobbRadiograph"
LINE_REFERENCE = "SpineCobbEndplateLine"
OUTLINE_REFERENCE = "SpineCobbOutlines"
LEVELS_REFERENCE = "SpineCobbLevels"
TABLE_REFERENCE = "SpineCobbTable"

LANDMARK_COLOR = (0.2, 1.0, 0.4)
OUTLINE_COLOR = (0.3, 0.8, 1.0)
LEVEL_COLOR = (1.0, 1.0, 1.0)
#: How a node drawn from the landmarks is set up when it is made: (method, arguments) of the node, then of its
#: display node. The outlines lie in the image plane: projected rather than cut by the slice plane.
OUTLINE_SETUP = ([("SetSelectable", (False,))],
                 [("SetColor", OUTLINE_COLOR), ("SetLineWidth", (2,)), ("SetVisibility2D", (True,)),
                  ("SetSliceDisplayModeToProjection", ())])
LEVELS_SETUP = ([("SetLocked", (True,))],
                [("SetSelectedColor", LEVEL_COLOR), ("SetColor", LEVEL_COLOR), ("SetGlyphScale", (0.5,)),
                 ("SetTextScale", (2.5,)), ("SetPropertiesLabelVisibility", (False,))])
CURVE_COLORS = {"PT": (0.4, 0.7, 1.0), "MT": (1.0, 0.8, 0.1), "TL/L": (1.0, 0.4, 0.3)}
OTHER_CURVE_COLORS = ((0.9, 0.4, 1.0), (0.5, 1.0, 0.9), (1.0, 0.6, 0.8))

TABLE_COLUMNS = ("curve", "region", "angle", "end_vertebrae", "apex", "convexity", "severity")
TABLE_TITLES = {"curve": "Curve", "region": "Region", "angle": "Cobb angle", "end_vertebrae": "End vertebrae",
                "apex": "Apex", "convexity": "Convexity", "severity": "Severity"}
TABLE_UNITS = {"angle": "°"}
TABLE_DESCRIPTIONS = {"convexity": "Side of the convexity in patient terms",
                      "end_vertebrae": "Upper and lower end vertebrae",
                      "severity": f"Severity of the curve; \"—\": {SEVERITY_NOT_STATED}"}


# ----------------------------------------------------------------------------- geometry

def pixelsToRas(pointsXY, ijkToRas):
    """(n, 2) image pixels (x = column = I, y = row = J) to (n, 3) RAS on the image plane (K = 0)."""
    from spine_analysis.coords import pixel_to_ras

    return np.asarray(pixel_to_ras(np.asarray(pointsXY, dtype=float).reshape(-1, 2), ijkToRas, k=0.0), dtype=float)


def rasToPixels(pointsRAS, ijkToRas):
    """(n, 3) RAS to (n, 2) image pixels."""
    from spine_analysis.coords import ras_to_pixel

    return np.asarray(ras_to_pixel(np.asarray(pointsRAS, dtype=float).reshape(-1, 3), ijkToRas), dtype=float)


# ----------------------------------------------------------------------------- references

def referencedNodes(node, role):
    return [node.GetNthNodeReference(role, index) for index in range(node.GetNumberOfNodeReferences(role))
            if node.GetNthNodeReference(role, index)]


def _derivedNode(landmarksNode, role, className, name, setup=((), ())):
    """The node `landmarksNode` refers to under `role`, created (with display nodes, set up by `setup`: see
    OUTLINE_SETUP) if missing."""
    node = landmarksNode.GetNodeReference(role)
    if node:
        return node
    node = slicer.mrmlScene.AddNewNodeByClass(className, slicer.mrmlScene.GenerateUniqueName(name))
    if node.IsA("vtkMRMLDisplayableNode"):
        node.CreateDefaultDisplayNodes()
        node.SetAndObserveTransformNodeID(landmarksNode.GetTransformNodeID())
    nodeSetup, displaySetup = setup
    for method, arguments in nodeSetup:
        getattr(node, method)(*arguments)
    for method, arguments in displaySetup:
        getattr(node.GetDisplayNode(), method)(*arguments)
    landmarksNode.SetNodeReferenceID(role, node.GetID())
    return node


def followVolumeTransform(landmarksNode, volumeNode):
    """Keep the landmarks and the nodes drawn from them under the radiograph's parent transform."""
    transformId = volumeNode.GetTransformNodeID()
    nodes = [landmarksNode] + referencedNodes(landmarksNode, LINE_REFERENCE) + [
        landmarksNode.GetNodeReference(role) for role in (OUTLINE_REFERENCE, LEVELS_REFERENCE)]
    for node in nodes:
        if node and node.GetTransformNodeID() != transformId:
            node.SetAndObserveTransformNodeID(transformId)


def baseName(landmarksNode):
    volumeNode = landmarksNode.GetNodeReference(VOLUME_REFERENCE)
    return volumeNode.GetName() if volumeNode else landmarksNode.GetName()


# ----------------------------------------------------------------------------- landmarks

def newLandmarksNode(volumeNode):
    node = slicer.mrmlScene.AddNewNodeByClass(
        "vtkMRMLMarkupsFiducialNode", slicer.mrmlScene.GenerateUniqueName(f"{volumeNode.GetName()} landmarks"))
    node.CreateDefaultDisplayNodes()
    displayNode = node.GetDisplayNode()
    # 68 labels would hide the image; the level names are shown beside the spine
    displayNode.SetPointLabelsVisibility(False)
    displayNode.SetSelectedColor(*LANDMARK_COLOR)
    displayNode.SetColor(*LANDMARK_COLOR)
    displayNode.SetGlyphScale(1.5)
    return node


def writeLandmarks(landmarksNode, volumeNode, landmarks, patientRightOnImageLeft, source, spineCheckFailure=None):
    """Put `landmarks` (SpineLandmarks, pixels) into `landmarksNode` as the new, unedited result;
    `spineCheckFailure`: why the image did not pass the spine check, when it was measured anyway."""
    ijkToRas = ijkToRasMatrix(volumeNode)
    pointsRAS = pixelsToRas(landmarks.flat, ijkToRas)
    with slicer.util.NodeModify(landmarksNode):
        landmarksNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        landmarksNode.SetFixedNumberOfControlPoints(False)
        slicer.util.updateMarkupsControlPointsFromArray(landmarksNode, pointsRAS)
        for index, label in enumerate(landmarks.labels()):
            landmarksNode.SetNthControlPointLabel(index, label)
            landmarksNode.SetNthControlPointLocked(index, False)
        # Drags move points; nothing can add or delete one.
        landmarksNode.SetFixedNumberOfControlPoints(True)
        landmarksNode.SetLocked(False)
        landmarksNode.SetAttribute(ROLE_ATTRIBUTE, LANDMARKS_ROLE)
        landmarksNode.SetAttribute(FIRST_LEVEL_ATTRIBUTE, landmarks.first_level)
        landmarksNode.SetAttribute(SIDE_ATTRIBUTE, "true" if patientRightOnImageLeft else "false")
        landmarksNode.SetAttribute(SOURCE_ATTRIBUTE, source)
        landmarksNode.SetAttribute(ORIGINAL_POINTS_ATTRIBUTE, json.dumps(np.round(landmarks.flat, 4).tolist()))
        landmarksNode.SetAttribute(EDITED_ATTRIBUTE, "false")
        if spineCheckFailure:
            landmarksNode.SetAttribute(SPINE_CHECK_FAILURE_ATTRIBUTE, spineCheckFailure)
        else:
            landmarksNode.RemoveAttribute(SPINE_CHECK_FAILURE_ATTRIBUTE)
        landmarksNode.SetNodeReferenceID(VOLUME_REFERENCE, volumeNode.GetID())


def currentPixels(landmarksNode, volumeNode):
    """The landmarks node's points now, as (n, 2) pixels of `volumeNode`."""
    return rasToPixels(slicer.util.arrayFromMarkupsControlPoints(landmarksNode), ijkToRasMatrix(volumeNode))


def originalPixels(landmarksNode):
    text = landmarksNode.GetAttribute(ORIGINAL_POINTS_ATTRIBUTE)
    return np.asarray(json.loads(text), dtype=float).reshape(-1, 2) if text else None


def spineCheckFailure(landmarksNode):
    """Why the radiograph of `landmarksNode` did not pass the spine check (it was measured anyway), or None."""
    return landmarksNode.GetAttribute(SPINE_CHECK_FAILURE_ATTRIBUTE) or None


# ----------------------------------------------------------------------------- endplate lines

def _curveColor(name, index):
    return CURVE_COLORS.get(name, OTHER_CURVE_COLORS[index % len(OTHER_CURVE_COLORS)])


def _newLine(landmarksNode):
    line = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "Cobb line")
    line.CreateDefaultDisplayNodes()
    measurement = line.GetMeasurement("length")
    if measurement:
        measurement.SetEnabled(False)
    line.SetLocked(True)
    line.SetAttribute(ROLE_ATTRIBUTE, "EndplateLine")
    line.SetAndObserveTransformNodeID(landmarksNode.GetTransformNodeID())
    displayNode = line.GetDisplayNode()
    displayNode.SetPointLabelsVisibility(False)
    displayNode.SetPropertiesLabelVisibility(True)
    displayNode.SetGlyphScale(1.0)
    displayNode.SetLineThickness(0.6)  # of the glyph size: thick enough to read the angle at a glance
    landmarksNode.AddNodeReferenceID(LINE_REFERENCE, line.GetID())
    return line


def lineName(curve, which):
    vertebra = curve.upper_end if which == "upper" else curve.lower_end
    return f"{curve.name} {curve.angle_deg:.1f}° {which} ({vertebra})"


def updateEndplateLines(landmarksNode, result, ijkToRas):
    """Two lines per curve of `result` (CobbResult), each an endplate extended across and beyond the spine (as the
    report's overlay draws it), so the angle between them shows; lines of curves that no longer exist are removed."""
    from spine_analysis.xray.cobb import extended_endplate

    lines = referencedNodes(landmarksNode, LINE_REFERENCE)
    needed = 2 * len(result.curves)
    while len(lines) < needed:
        lines.append(_newLine(landmarksNode))
    for extra in lines[needed:]:
        slicer.mrmlScene.RemoveNode(extra)  # a derived node of this module: its curve is gone
    for index, curve in enumerate(result.curves):
        color = _curveColor(curve.name, index)
        for which, line, endplate in (("upper", lines[2 * index], curve.upper_endplate),
                                      ("lower", lines[2 * index + 1], curve.lower_endplate)):
            with slicer.util.NodeModify(line):
                line.SetName(lineName(curve, which))
                slicer.util.updateMarkupsControlPointsFromArray(
                    line, pixelsToRas(extended_endplate(endplate), ijkToRas))
                displayNode = line.GetDisplayNode()
                if displayNode:
                    displayNode.SetSelectedColor(*color)
                    displayNode.SetColor(*color)
    return lines[:needed]


# ----------------------------------------------------------------------------- outlines and level names

def _outlinePolyData(quadsRAS):
    """Closed polylines top-left, top-right, bottom-right, bottom-left per vertebra."""
    points = vtk.vtkPoints()
    cells = vtk.vtkCellArray()
    for quad in quadsRAS:
        first = points.GetNumberOfPoints()
        for corner in (0, 1, 3, 2):
            points.InsertNextPoint(*quad[corner])
        cells.InsertNextCell(5)
        for offset in (0, 1, 2, 3, 0):
            cells.InsertCellPoint(first + offset)
    polyData = vtk.vtkPolyData()
    polyData.SetPoints(points)
    polyData.SetLines(cells)
    return polyData


def updateOutlines(landmarksNode, landmarks, ijkToRas):
    modelNode = _derivedNode(landmarksNode, OUTLINE_REFERENCE, "vtkMRMLModelNode",
                             f"{baseName(landmarksNode)} vertebra outlines", OUTLINE_SETUP)
    quadsRAS = pixelsToRas(landmarks.flat, ijkToRas).reshape(-1, 4, 3)
    modelNode.SetAndObserveMesh(_outlinePolyData(quadsRAS))
    return modelNode


def updateLevelNames(landmarksNode, landmarks, ijkToRas):
    """A locked point labelled with the level name on the image-left of each vertebra."""
    levelsNode = _derivedNode(landmarksNode, LEVELS_REFERENCE, "vtkMRMLMarkupsFiducialNode",
                              f"{baseName(landmarksNode)} levels", LEVELS_SETUP)
    quads = landmarks.points
    leftMiddle = (quads[:, 0] + quads[:, 2]) / 2
    width = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    anchors = leftMiddle - np.stack([0.6 * width, np.zeros_like(width)], axis=1)
    with slicer.util.NodeModify(levelsNode):
        levelsNode.SetFixedNumberOfControlPoints(False)
        slicer.util.updateMarkupsControlPointsFromArray(levelsNode, pixelsToRas(anchors, ijkToRas))
        for index, level in enumerate(landmarks.levels):
            levelsNode.SetNthControlPointLabel(index, level)
        levelsNode.SetFixedNumberOfControlPoints(True)
    return levelsNode


# ----------------------------------------------------------------------------- table

def curveRows(result, checkFailure=None):
    """One row per curve; the severity is withheld ("—") when `checkFailure` says why the image did not pass
    the spine check."""
    return [{
        "curve": curve.name,
        "region": curve.region,
        "angle": float(curve.angle_deg),
        "end_vertebrae": f"{curve.upper_end}-{curve.lower_end}",
        "apex": curve.apex,
        "convexity": curve.convexity,
        "severity": shownSeverity(curve.severity, checkFailure, cell=True),
    } for curve in result.curves]


def updateTable(landmarksNode, result, edited):
    tableNode = _derivedNode(landmarksNode, TABLE_REFERENCE, "vtkMRMLTableNode",
                             f"{baseName(landmarksNode)} Cobb angles")
    tables.updateTableFromRows(tableNode, curveRows(result, spineCheckFailure(landmarksNode)), columns=TABLE_COLUMNS,
                               titles=TABLE_TITLES, units=TABLE_UNITS, descriptions=TABLE_DESCRIPTIONS)
    tableNode.SetAttribute(EDITED_ATTRIBUTE, "true" if edited else "false")
    return tableNode
