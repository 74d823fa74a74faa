"""Click-to-segment on the Slicer side: the engine jobs it sends, and the one segmentation that collects the
centra (one segment per vertebra) with its metrics table.

Each segment keeps its own metrics (JSON in a segment tag) and the seed it came from, so the table is rebuilt from
the segments: a segment renamed or deleted in Segment Editor changes its row, and the data survive saving the scene.
"""
import json

import vtk

import slicer

from SpineCommonLib import tables
from SpineCommonLib.jobs import EngineJob
from SpineAnalysisLib import seeds

METRICS_TAG = "SpineAnalysis.Metrics"
SEED_TAG = "SpineAnalysis.Seed"
TABLE_REFERENCE = "SpineAnalysis.MetricsTable"


def cropImage(image, start, stop):
    """SimpleITK slicing (i, j, k) keeps the physical (LPS) geometry of the kept voxels."""
    return image[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]]


# ---------------------------------------------------------------------- engine jobs

def vertebralBodyJob(ctImage, seedRas, level, method, labelsImage, maskPath, shellMm=None, **jobOptions):
    """The engine's vertebral_body job for one seed. The mask goes to `maskPath`, outside EngineJob's temporary
    folder, which is deleted as soon as the job ends. `labelsImage` (VerSe numbering, on `ctImage`'s grid) names
    the vertebra; a `level` the user typed that disagrees with it is refused by the engine. `shellMm` (None: the
    engine's default) is removed from the body to leave the centrum."""
    images = {"ct": ctImage}
    if labelsImage is not None:
        images["labels"] = labelsImage
    return EngineJob({"job": "vertebral_body", "seeds": [[float(v) for v in seedRas]], "coordinate_system": "ras",
                      "method": method, "levels": [level], "labels": None, "weights": None, "out": maskPath,
                      "shell_mm": shellMm},
                     images=images, **jobOptions)


def measureCentraJob(ctImage, labelImage, levels, **jobOptions):
    """The engine's measure_centra job: metrics of every label of `labelImage`; `levels` = {label: level}."""
    return EngineJob({"job": "measure_centra", "names": {str(label): level for label, level in levels.items()}},
                     images={"ct": ctImage, "labels": labelImage}, **jobOptions)


# ---------------------------------------------------------------------- segments

def segmentTag(segment, key):
    value = vtk.reference("")
    return value.get() if segment.GetTag(key, value) else ""


def segmentIds(segmentationNode):
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]


def segmentNames(segmentationNode):
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetSegment(segmentId).GetName() for segmentId in segmentIds(segmentationNode)]


def placeBeside(node, other):
    """Put `node` in the subject hierarchy folder (e.g. the DICOM study) that holds `other`."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    otherItem = shNode.GetItemByDataNode(other)
    parent = shNode.GetItemParent(otherItem) if otherItem else shNode.GetSceneItemID()
    item = shNode.GetItemByDataNode(node)
    if item:
        shNode.SetItemParent(item, parent)
    else:
        shNode.CreateItem(parent, node)


def newSegmentationNode(ctVolume):
    """A segmentation on the CT's geometry (which also references the CT), in the CT's study."""
    node = slicer.mrmlScene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", slicer.mrmlScene.GenerateUniqueName(f"{ctVolume.GetName()} centra"))
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(ctVolume)
    placeBeside(node, ctVolume)
    return node


def segmentsToReplace(segmentationNode, name, seedKey):
    """(IDs of segments made from the seed `seedKey`, IDs of the other segments named `name`)."""
    fromSeed, sameName = [], []
    segmentation = segmentationNode.GetSegmentation()
    for segmentId in segmentIds(segmentationNode):
        segment = segmentation.GetSegment(segmentId)
        if seedKey and segmentTag(segment, SEED_TAG) == seedKey:
            fromSeed.append(segmentId)
        elif segment.GetName() == name:
            sameName.append(segmentId)
    return fromSeed, sameName


def segmentsFromSeeds(segmentationNode, seedKeys):
    """Names of the segments made from any of the seeds `seedKeys`."""
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetSegment(segmentId).GetName() for segmentId in segmentIds(segmentationNode)
            if segmentTag(segmentation.GetSegment(segmentId), SEED_TAG) in seedKeys]


def loadMask(maskPath):
    """The engine's mask file (label 1 on the grid of the CT crop) as a hidden temporary label map node;
    remove it with `removeNode` when done."""
    return slicer.util.loadLabelVolume(
        maskPath, {"name": slicer.mrmlScene.GenerateUniqueName("SpineAnalysis temporary mask"), "show": False})


def removeNode(node):
    for each in (node.GetDisplayNode(), node.GetStorageNode(), node):
        if each:
            slicer.mrmlScene.RemoveNode(each)


def segmentsCovering(segmentationNode, maskNode, excluding=()):
    """IDs of the segments (other than `excluding`) holding more than half of the voxels of `maskNode`: the same
    vertebra, segmented before. The engine refuses two seeds of one request in one vertebra by the same rule."""
    import numpy as np

    mask = slicer.util.arrayFromVolume(maskNode) > 0
    total = int(np.count_nonzero(mask))
    covering = []
    for segmentId in segmentIds(segmentationNode):
        if not total or segmentId in excluding:
            continue
        try:
            segment = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, maskNode)
        except RuntimeError:  # an empty segment cannot be exported
            continue
        if np.count_nonzero(segment[mask]) * 2 > total:
            covering.append(segmentId)
    return covering


def importMask(segmentationNode, maskNode, name, seedKey, metrics, replaceIds=()):
    """Put the mask (label map node from `loadMask`) into the segment `name`: the first of `replaceIds` (whose
    other segments are removed) or a new segment. Returns the segment ID."""
    segmentation = segmentationNode.GetSegmentation()
    segmentId = replaceIds[0] if replaceIds else segmentation.AddEmptySegment("", name)
    try:
        updatedIds = vtk.vtkStringArray()
        updatedIds.InsertNextValue(segmentId)
        if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(
                maskNode, segmentationNode, updatedIds):
            raise RuntimeError(f"The mask of {name} could not be imported into '{segmentationNode.GetName()}'.")
    except Exception:
        if not replaceIds:
            segmentation.RemoveSegment(segmentId)
        raise
    for other in replaceIds[1:]:
        segmentation.RemoveSegment(other)
    segmentationNode.CreateClosedSurfaceRepresentation()  # shown in 3D; only new or changed segments are converted
    segment = segmentation.GetSegment(segmentId)
    segment.SetName(name)
    segment.SetTag(SEED_TAG, seedKey or "")
    segment.SetTag(METRICS_TAG, json.dumps(metrics))
    return segmentId


def storeRemeasured(segmentationNode, labelSegmentIds, vertebrae):
    """Keep the metrics of a measure_centra answer in the segments (label i = `labelSegmentIds[i - 1]`); a segment
    that had no voxel on the CT loses its metrics. The method that made a segment stays, marked re-measured."""
    byLabel = {int(metrics["index"]): metrics for metrics in vertebrae}
    segmentation = segmentationNode.GetSegmentation()
    for label, segmentId in enumerate(labelSegmentIds, start=1):
        segment = segmentation.GetSegment(segmentId)
        if segment is None:
            continue  # deleted while the job ran
        metrics = byLabel.get(label)
        if metrics is None:
            segment.RemoveTag(METRICS_TAG)
            continue
        previous = json.loads(segmentTag(segment, METRICS_TAG) or "{}")
        metrics["method"] = metrics.get("method") or previous.get("method", "")
        metrics["remeasured"] = True
        segment.SetTag(METRICS_TAG, json.dumps(metrics))


# ---------------------------------------------------------------------- table

def metricsTable(segmentationNode, create=False):
    """The metrics table of the segmentation (created when `create` and missing)."""
    tableNode = segmentationNode.GetNodeReference(TABLE_REFERENCE)
    if tableNode is None and create:
        tableNode = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(f"{segmentationNode.GetName()} metrics"))
        tableNode.SetLocked(True)  # rebuilt from the segments: edits in the table would be lost
        segmentationNode.SetNodeReferenceID(TABLE_REFERENCE, tableNode.GetID())
        placeBeside(tableNode, segmentationNode)
    return tableNode


def writeMetricsTable(tableNode, rows):
    """Centrum metrics rows (`seeds.metricsRow`) into `tableNode`: the one table kind of the module, for the
    seeded centra and for a user's vertebra labels. Returns the table node."""
    return tables.updateTableFromRows(tableNode, rows, columns=seeds.COLUMNS, titles=seeds.TITLES, units=seeds.UNITS)


def updateMetricsTable(segmentationNode):
    """One row per segment that has metrics, in segment order. Returns the table node."""
    segmentation = segmentationNode.GetSegmentation()
    rows = []
    for segmentId in segmentIds(segmentationNode):
        segment = segmentation.GetSegment(segmentId)
        text = segmentTag(segment, METRICS_TAG)
        if text:
            rows.append(seeds.metricsRow(segment.GetName(), json.loads(text)))
    return writeMetricsTable(metricsTable(segmentationNode, create=True), rows)
