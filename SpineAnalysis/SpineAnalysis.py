import enum
import logging
import os
import shutil
from typing import Optional, Union

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

from SpineCommonLib import dependencies, tables, volumes
from SpineCommonLib.jobs import JobFailed, WarmEngineRunner
from SpineCommonLib.module import describeModule
from SpineCommonLib.widgets import ParameterNodeWidgetMixin
from SpineAnalysisLib import centra, seeds


#
# SpineAnalysis
#


class SpineAnalysis(ScriptedLoadableModule):
    """Vertebral body segmentation and bone metrics on CT."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("Spine Analysis"), _("""
Vertebral bodies on CT. <b>Segment at seeds</b>: click inside a vertebral body and its trabecular centrum is
segmented (U-Net or classical method, in a background process that can be cancelled) into one segment of the output
segmentation, with its volume, Hounsfield-unit statistics, lytic and sclerotic shares and a bone-density screening
hint in the table below. A vertebra is named only from what you give: rename its seed to the level (e.g. L1) in the
point list, or select a vertebra label map (VerSe numbering); otherwise it stays unnamed. After correcting segments
with Segment Editor, <b>Re-measure</b> updates the table. <b>Measure existing labels</b> measures every vertebra of a
label map or segmentation the same way, into a table of the same kind.
"""))


#
# SpineAnalysisParameterNode
#


class SegmentationMethod(enum.Enum):
    """The engine's segmentation methods; the combo box shows their labels."""

    UNET = "unet"
    CLASSICAL = "classical"

    def label(self):
        return seeds.METHOD_LABELS[self.value]


@parameterNodeWrapper
class SpineAnalysisParameterNode:
    """
    inputVolume - CT volume (Hounsfield units).
    vertebraLabels - one label per vertebra (label map volume in VerSe numbering, or segmentation); a label map also
        names seeded vertebrae.
    seeds - seed points, one inside each vertebral body to segment.
    method - how seeded vertebrae are segmented.
    shellMm - the shell (cortex, endplates) removed from each body to leave its centrum, in mm.
    autoSegment - segment each seed as soon as it is placed.
    outputSegmentation - collects the seeded centra, one segment each; created on first use.
    metricsTable - table of "Measure existing labels" (the centra's columns); a new one is created if none is selected.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    vertebraLabels: Optional[Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode]]
    seeds: vtkMRMLMarkupsFiducialNode
    method: SegmentationMethod = SegmentationMethod.UNET
    shellMm: float = 3.0
    autoSegment: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    metricsTable: vtkMRMLTableNode


#
# SpineAnalysisWidget
#


class SpineAnalysisWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        self._queue = []            # (seeds node ID, control point ID, replace its own segments) to segment next
        self._progress = (0, 1)     # (jobs done, jobs in this run), for the progress bar
        self._observedSeeds = None
        self._seedLabel = ""        # label of the seed being segmented, for its messages
        ParameterNodeWidgetMixin.__init__(self, parent)  # last: it may run setup()

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupModule(self.resourcePath("UI/SpineAnalysis.ui"), SpineAnalysisLogic())

        # Each click adds a seed; place mode stays on until the user leaves it.
        self.ui.seedsWidget.markupsPlaceWidget().placeMultipleMarkups = \
            slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.segmentAllButton.connect("clicked(bool)", self.onSegmentAllButton)
        self.ui.remeasureButton.connect("clicked(bool)", self.onRemeasureButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)

        self.setRunning(False)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._queue = []
        ParameterNodeWidgetMixin.cleanup(self)

    def onSceneStartClose(self, caller, event) -> None:
        self._queue = []
        self._observeSeeds(None)
        ParameterNodeWidgetMixin.onSceneStartClose(self, caller, event)

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        idle = self.logic.activeJob is None
        ready = bool(pn and pn.inputVolume and pn.vertebraLabels)
        self.ui.applyButton.enabled = ready and idle
        self.ui.applyButton.toolTip = _("Compute vertebral body metrics") if ready \
            else _("Select a CT volume and the vertebra labels")
        self.ui.segmentAllButton.enabled = bool(pn and pn.inputVolume and pn.seeds) and idle
        self.ui.remeasureButton.enabled = bool(pn and pn.inputVolume and pn.outputSegmentation) and idle
        seedsNode = pn.seeds if pn else None
        if seedsNode is not self._observedSeeds:
            self._observeSeeds(seedsNode)
        self._showMetrics()

    def _showMetrics(self) -> None:
        segmentationNode = self._parameterNode.outputSegmentation if self._parameterNode else None
        self.ui.metricsTableView.setMRMLTableNode(centra.metricsTable(segmentationNode) if segmentationNode else None)

    # ------------------------------------------------------------------ running

    def onProgress(self, fraction, message) -> None:
        """Progress of the job running among the jobs of this run (seeds queued one after the other)."""
        done, total = self._progress
        ParameterNodeWidgetMixin.onProgress(self, None if fraction is None else (done + fraction) / total, message)

    def onCancelButton(self) -> None:
        self._queue = []
        ParameterNodeWidgetMixin.onCancelButton(self)

    # ------------------------------------------------------------------ seeds

    def _observeSeeds(self, seedsNode) -> None:
        self._observedSeeds = self.observeNode(self._observedSeeds, seedsNode,
                                               slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onSeedPlaced)

    @vtk.calldata_type(vtk.VTK_INT)
    def onSeedPlaced(self, caller, event, index) -> None:
        if self._parameterNode and self._parameterNode.autoSegment:
            self.segmentSeeds(caller, [caller.GetNthControlPointID(index)])

    def onSegmentAllButton(self) -> None:
        pn = self._parameterNode
        seedsNode = pn.seeds
        pointIds = [seedsNode.GetNthControlPointID(index) for index in range(seedsNode.GetNumberOfControlPoints())
                    if seedsNode.GetNthControlPointPositionStatus(index) == slicer.vtkMRMLMarkupsNode.PositionDefined]
        if not pointIds:
            self.ui.statusLabel.text = _("Place at least one seed inside a vertebral body first.")
            return
        if pn.outputSegmentation:
            keys = {self.logic.seedKey(seedsNode, pointId) for pointId in pointIds}
            replaced = centra.segmentsFromSeeds(pn.outputSegmentation, keys)
            if replaced and not slicer.util.confirmYesNoDisplay(
                    _("These segments were made from the seeds and will be replaced by the new results:\n{names}\n\n"
                      "Continue?").format(names=", ".join(replaced)), windowTitle=_("Replace segments?")):
                return
        self.segmentSeeds(seedsNode, pointIds, replaceSeedSegments=True)

    def segmentSeeds(self, seedsNode, pointIds, replaceSeedSegments=False) -> None:
        """Queue seeds (control point IDs) for segmentation; they run one after the other."""
        done, total = self._progress if self._queue or self.logic.activeJob else (0, 0)
        self._progress = (done, total + len(pointIds))
        self._queue += [(seedsNode.GetID(), pointId, replaceSeedSegments) for pointId in pointIds]
        if self.logic.activeJob is None:
            self._segmentNextSeed()

    def _segmentNextSeed(self) -> None:
        pn = self._parameterNode
        while self._queue and pn:
            nodeId, pointId, replaceSeedSegments = self._queue.pop(0)
            seedsNode = slicer.mrmlScene.GetNodeByID(nodeId)
            index = seedsNode.GetControlPointIndexByID(pointId) if seedsNode else -1
            if index < 0:  # deleted while waiting
                self._progress = (self._progress[0] + 1, self._progress[1])
                continue
            labelMap = (pn.vertebraLabels
                        if pn.vertebraLabels and pn.vertebraLabels.IsA("vtkMRMLLabelMapVolumeNode") else None)
            self._seedLabel = seedsNode.GetNthControlPointLabel(index)
            # Before starting: a new engine process says "Loading the model…" while it starts.
            self.ui.statusLabel.text = _("Segmenting at seed {label}...").format(label=self._seedLabel)
            try:
                if not pn.inputVolume:
                    raise ValueError(_("Select the CT volume first."))
                self.logic.segmentSeed(pn.inputVolume, seedsNode, index, pn.method.value, pn.outputSegmentation,
                                       labelMap, replaceSeedSegments, completedCallback=self.onSeedSegmented,
                                       progressCallback=self.onProgress, shellMm=pn.shellMm)
            except Exception as exc:
                self._queue = []
                self.setRunning(False)
                self.reportError(_("Cannot segment seed {label}.").format(label=self._seedLabel), exc)
                return
            self.setRunning(True)
            return
        self.setRunning(False)

    def onSeedSegmented(self, outcome, error) -> None:
        self._progress = (self._progress[0] + 1, self._progress[1])
        if error is not None:
            self._queue = []
            self.setRunning(False)
            self.jobFailed(error, _("Cannot segment seed {label}.").format(label=self._seedLabel))
            return
        segmentationNode, segmentId, metrics = outcome
        if self._parameterNode:
            self._parameterNode.outputSegmentation = segmentationNode
        if segmentId is None:
            self.ui.statusLabel.text = _("Kept the existing segment.")
        else:
            self.ui.statusLabel.text = _("{name}: {volume:.1f} mL, mean {mean:.0f} HU.").format(
                name=segmentationNode.GetSegmentation().GetSegment(segmentId).GetName(),
                volume=metrics["volume_ml"], mean=metrics["hu_mean"])
            for warning in metrics.get("warnings", []):   # thick slices: said where the user looks
                self.ui.statusLabel.text += " " + _("Warning: {warning}.").format(warning=warning)
        self._showMetrics()
        self._segmentNextSeed()

    # ------------------------------------------------------------------ re-measure and existing labels

    def onRemeasureButton(self) -> None:
        pn = self._parameterNode
        self._progress = (0, 1)
        self.startJob(_("Re-measuring the segments..."), _("Cannot re-measure."), lambda: self.logic.remeasure(
            pn.inputVolume, pn.outputSegmentation, completedCallback=self.onRemeasured,
            progressCallback=self.onProgress))

    def onRemeasured(self, vertebrae, error) -> None:
        self.setRunning(False)
        if not self.jobFailed(error, _("Re-measuring failed.")):
            self.ui.statusLabel.text = _("{count} segments re-measured.").format(count=len(vertebrae))
            self._showMetrics()

    def onApplyButton(self) -> None:
        pn = self._parameterNode
        self._progress = (0, 1)
        self.startJob(_("Measuring the labelled vertebrae..."), _("Failed to compute vertebral body metrics."),
                       lambda: self.logic.measureLabelMap(
                           pn.inputVolume, pn.vertebraLabels, seedPoint=pn.seeds, tableNode=pn.metricsTable,
                           completedCallback=self.onLabelMapMeasured, progressCallback=self.onProgress))

    def onLabelMapMeasured(self, tableNode, error) -> None:
        self.setRunning(False)
        if self.jobFailed(error, _("Failed to compute vertebral body metrics.")):
            return
        pn = self._parameterNode
        if pn:
            pn.metricsTable = tableNode
        message = _("{count} vertebrae measured.").format(count=tableNode.GetNumberOfRows())
        seedLabel = tableNode.GetAttribute(SpineAnalysisLogic.SEED_ATTRIBUTE)
        if seedLabel:
            message += " " + _("The last seed lies in {name}.").format(name=seedLabel)
        elif pn and self.logic.seedPositionInVolume(pn.seeds, pn.inputVolume):
            message += " " + _("The last seed lies outside every vertebra.")
        self.ui.statusLabel.text = message
        tables.showTable(tableNode)


#
# SpineAnalysisLogic
#


class SpineAnalysisLogic(WarmEngineRunner, ScriptedLoadableModuleLogic):
    """Vertebral bodies on CT; usable without the GUI:

        logic = slicer.util.getModuleLogic("SpineAnalysis")
        segmentId, metrics = logic.segmentAtSeed(ctVolumeNode, [x, y, z])   # RAS point inside a vertebral body
        segmentId, metrics = logic.segmentAtSeed(ctVolumeNode, [x, y, z], level="L1", method="classical")
        vertebrae = logic.remeasure(ctVolumeNode, segmentationNode)       # after editing its segments
        table = logic.measureLabelMap(ctVolumeNode, labelMapOrSegmentationNode)   # every labelled vertebra

    Segmentation and measuring run in an engine process that stays alive between jobs, one job at a time.
    """

    SEED_ATTRIBUTE = "SpineAnalysis.SeedVertebra"
    #: Segmentation methods -> the task (SpineCommonLib.dependencies) whose packages they need.
    METHOD_TASKS = {"unet": dependencies.BODY_SEGMENTATION_UNET, "classical": dependencies.BODY_SEGMENTATION_CLASSICAL}

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.initJobs("Spine Analysis")
        self._pulled = {}  # volume node ID -> (modification key, SimpleITK image)

    def getParameterNode(self):
        return SpineAnalysisParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ seeded segmentation

    def segmentAtSeed(self, ctVolume, rasPoint, level=None, method="unet", segmentationNode=None, shellMm=None):
        """Segment the vertebral body at `rasPoint` (RAS world coordinates) of `ctVolume`; blocks until done.

        :param level: the vertebra's level (e.g. "L1"); None leaves it unnamed
        :param method: "unet" or "classical"
        :param segmentationNode: where the segment goes; default: the module's output segmentation if it was made
            on this CT, else a new one
        :param shellMm: the shell removed from the body to leave the centrum (mm); None: the engine's 3 mm
        :return: (segment ID, metrics dict); the segment ID is None when the user chose to keep an existing segment
            of the same name
        """
        from spine_analysis.ct.levels import level_from_text

        typedLevel = level_from_text(level) if level is not None else None
        if level is not None and typedLevel is None:
            raise ValueError(f"'{level}' is not a vertebra level (C1-C7, T1-T13, L1-L6).")
        segmentationNode, segmentId, metrics = self._segment(
            ctVolume, rasPoint, typedLevel, method, segmentationNode,
            labelsNode=None, number=None, seedKey="", replaceSeedSegments=False, shellMm=shellMm)
        return segmentId, metrics

    def segmentSeed(self, ctVolume, seedsNode, index, method, segmentationNode, labelsNode, replaceSeedSegments,
                    completedCallback, progressCallback=None, shellMm=None):
        """Start segmenting at control point `index` of `seedsNode`; returns the running EngineJob.

        Its level is the point's label when that is a level, else what `labelsNode` (label map) says.
        `replaceSeedSegments`: the segments this seed made before are replaced without asking (the user agreed).
        `completedCallback((segmentationNode, segment ID or None, metrics) or None, error or None)` follows.
        """
        from spine_analysis.ct.levels import level_from_text

        position = [0.0, 0.0, 0.0]
        seedsNode.GetNthControlPointPositionWorld(index, position)
        return self._segment(ctVolume, position, level_from_text(seedsNode.GetNthControlPointLabel(index)), method,
                             segmentationNode, labelsNode, index + 1,
                             self.seedKey(seedsNode, seedsNode.GetNthControlPointID(index)), replaceSeedSegments,
                             completedCallback, progressCallback, shellMm)

    @staticmethod
    def seedKey(seedsNode, pointId):
        """Names a seed in the tag of the segment it made."""
        return f"{seedsNode.GetID()}:{pointId}"

    def _segment(self, ctVolume, rasPoint, level, method, segmentationNode, labelsNode, number, seedKey,
                 replaceSeedSegments, completedCallback=None, progressCallback=None, shellMm=None):
        """Crop the CT around the seed, send it to the engine and import the centrum it returns."""
        from spine_analysis.coords import ras_to_ijk

        self._checkIdle()
        if method not in seeds.METHOD_LABELS:
            raise ValueError(f"Unknown method '{method}': use " + " or ".join(seeds.METHOD_LABELS))
        self._checkUntransformed(ctVolume, labelsNode, segmentationNode)
        dependencies.ensureDependencies(self.METHOD_TASKS[method], requester=_("Spine Analysis"))
        ctImage, labelsImage = self._pulledImages(ctVolume, labelsNode)
        ijk = ras_to_ijk([float(v) for v in rasPoint], volumes.ijkToRasMatrix(ctVolume))
        start, stop = seeds.cropBox(ijk, ctImage.GetSpacing(), ctImage.GetSize())
        if labelsImage is not None:
            self._checkOnCtGrid(labelsImage, ctImage, labelsNode, ctVolume)
            labelsImage = centra.cropImage(labelsImage, start, stop)
        process = self._engineProcess(progressCallback)
        maskFolder = slicer.util.tempDirectory(key="SpineAnalysisMask")
        maskPath = os.path.join(maskFolder, "mask.nrrd")
        job = centra.vertebralBodyJob(centra.cropImage(ctImage, start, stop), rasPoint, level, method, labelsImage,
                                      maskPath, shellMm, process=process, progressCallback=progressCallback)

        def finish(result):
            metrics = dict(result["vertebrae"][0], warnings=result.get("warnings") or [])
            for warning in metrics["warnings"]:
                logging.warning("Spine Analysis: %s", warning)
            target = self._segmentationFor(ctVolume, segmentationNode)
            return (target,
                    self._importSeedMask(target, maskPath, metrics, number, seedKey, replaceSeedSegments),
                    metrics)

        def cleanup():
            shutil.rmtree(maskFolder, ignore_errors=True)

        if completedCallback is None:
            try:
                return self._run(job, finish, None, cleanup=cleanup)
            except JobFailed as error:
                raise self._oneSeedFailure(error) from None
        return self._run(job, finish, lambda value, error: completedCallback(value, self._oneSeedFailure(error)),
                         cleanup=cleanup)

    @staticmethod
    def _oneSeedFailure(error):
        """The engine's refusal without its seed number: each request holds one seed, numbered 1 whatever the user's."""
        if isinstance(error, JobFailed):
            return JobFailed(seeds.oneSeedMessage(str(error)), code=error.code)
        return error

    def _segmentationFor(self, ctVolume, segmentationNode):
        """The given segmentation; else the module's output segmentation if made on this CT; else a new one,
        which becomes the module's output."""
        if segmentationNode is not None and segmentationNode.GetScene():
            return segmentationNode
        parameterNode = self.getParameterNode()
        current = parameterNode.outputSegmentation
        if current and current.GetNodeReferenceID(current.GetReferenceImageGeometryReferenceRole()) == ctVolume.GetID():
            return current
        parameterNode.outputSegmentation = centra.newSegmentationNode(ctVolume)
        return parameterNode.outputSegmentation

    @staticmethod
    def _importSeedMask(segmentationNode, maskPath, metrics, number, seedKey, replaceSeedSegments):
        """Import the mask as the segment named after the vertebra. An existing segment of the same name, or one
        holding most of the new centrum (the same vertebra, segmented before), is replaced only if the user agrees;
        the segments of this seed also when the user agreed already (`replaceSeedSegments`).
        Returns the segment ID, or None if kept."""
        name = seeds.segmentName(metrics.get("level"),
                                 number or seeds.freeNumber(centra.segmentNames(segmentationNode)))
        maskNode = centra.loadMask(maskPath)
        try:
            fromSeed, sameName = centra.segmentsToReplace(segmentationNode, name, seedKey)
            sameVertebra = centra.segmentsCovering(segmentationNode, maskNode, excluding=fromSeed + sameName)
            replaced = fromSeed + sameName + sameVertebra
            if sameName or sameVertebra or (fromSeed and not replaceSeedSegments):
                segmentation = segmentationNode.GetSegmentation()
                names = ", ".join(f"'{segmentation.GetSegment(segmentId).GetName()}'" for segmentId in replaced)
                if not slicer.util.confirmYesNoDisplay(
                        _("Replace {names} in '{segmentation}' with the new segmentation of {name}?\n\n"
                          "Choose No to keep the existing segment.").format(
                            names=names, segmentation=segmentationNode.GetName(), name=name),
                        windowTitle=_("Replace segment?")):
                    return None
            segmentId = centra.importMask(segmentationNode, maskNode, name, seedKey, metrics, replaced)
        finally:
            centra.removeNode(maskNode)
        centra.updateMetricsTable(segmentationNode)
        return segmentId

    # ------------------------------------------------------------------ measuring

    def remeasure(self, ctVolume, segmentationNode, completedCallback=None, progressCallback=None):
        """Measure every segment of `segmentationNode` on `ctVolume` again (e.g. after Segment Editor); the metrics
        kept in the segments and the table are replaced. A segment named "<level> centrum" is measured as that level.

        Blocking when `completedCallback` is None: returns the engine's metrics dicts. Otherwise returns the running
        EngineJob and calls `completedCallback(metrics dicts or None, error or None)` when it ends.
        """
        if not segmentationNode:
            raise ValueError("Select the segmentation to re-measure.")
        labelSegmentIds = centra.segmentIds(segmentationNode)
        job, _labelImage, _named = self._measureJob(
            ctVolume, segmentationNode, f"The segments of '{segmentationNode.GetName()}' have no voxel "
                                        f"inside '{ctVolume.GetName()}'.", progressCallback)

        def finish(result):
            vertebrae = result.get("vertebrae", [])
            centra.storeRemeasured(segmentationNode, labelSegmentIds, vertebrae)
            centra.updateMetricsTable(segmentationNode)
            return vertebrae

        return self._run(job, finish, completedCallback)

    def measureLabelMap(self, ctVolume, vertebraLabels, seedPoint=None, tableNode=None, completedCallback=None,
                        progressCallback=None):
        """Measure every labelled vertebra as the seeded centra are measured (the engine's centrum metrics), one row
        per label in a table of the same kind. Levels come from VerSe numbering (a label map without its own colour
        table) or from the names of the segments or colours ("L1", "L1 centrum").

        :param ctVolume: vtkMRMLScalarVolumeNode in Hounsfield units
        :param vertebraLabels: vtkMRMLLabelMapVolumeNode (on the CT's grid) or vtkMRMLSegmentationNode
        :param seedPoint: optional vtkMRMLMarkupsFiducialNode; its last point marks the vertebra of interest (column
            "at_seed"; the table's attribute SEED_ATTRIBUTE names it)
        :param tableNode: vtkMRMLTableNode to overwrite, or None for a new table
        :return: blocking (no `completedCallback`): the table node. Otherwise the running EngineJob;
            `completedCallback(table node or None, error or None)` follows on the main thread.
        """
        if not vertebraLabels:
            raise ValueError("Select the vertebra label map or segmentation.")
        dependencies.ensureDependencies(dependencies.MEASURING, requester=_("Spine Analysis"))
        isLabelMap = vertebraLabels.IsA("vtkMRMLLabelMapVolumeNode")
        job, labelImage, named = self._measureJob(
            ctVolume, vertebraLabels, f"No vertebra labels found in '{vertebraLabels.GetName()}' inside the CT.",
            progressCallback)
        seedLabel = None
        seedPosition = self.seedPositionInVolume(seedPoint, ctVolume)
        if seedPosition is not None:
            seedLabel = self.labelAtPosition(labelImage, ctVolume, seedPosition)

        def finish(result):
            rows = seeds.labelRows(result.get("vertebrae", []), named, "label map" if isLabelMap else "segment name",
                                   seedLabel)
            target = tableNode if tableNode is not None and tableNode.GetScene() else None
            if target is None:
                target = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(
                    f"{ctVolume.GetName()} vertebral body metrics"))
                centra.placeBeside(target, ctVolume)
            centra.writeMetricsTable(target, rows)
            target.SetAttribute(self.SEED_ATTRIBUTE, named[seedLabel][0] if seedLabel in named else "")
            logging.info(f"SpineAnalysis: measured {len(rows)} vertebrae of {ctVolume.GetName()}")
            return target

        return self._run(job, finish, completedCallback)

    def _measureJob(self, ctVolume, labelsNode, emptyMessage, progressCallback):
        """The engine's measure_centra job of every label of `labelsNode` (label map or segmentation) on `ctVolume`,
        both cropped to the labels' box; also the whole label image and its {value: (name, level)}.
        Raises ValueError with `emptyMessage` when no label lies inside the CT."""
        import numpy as np
        import SimpleITK as sitk

        self._checkIdle()
        self._checkUntransformed(ctVolume, labelsNode)
        ctImage = self._pulledImages(ctVolume)[0]
        labelImage, names = volumes.labelImageFromNode(labelsNode, ctImage, ctVolume)
        self._checkOnCtGrid(labelImage, ctImage, labelsNode, ctVolume)
        labels = sitk.GetArrayViewFromImage(labelImage)
        box = seeds.labelBox(labels)
        if box is None:
            raise ValueError(emptyMessage)
        named = seeds.labelNames([int(value) for value in np.unique(labels) if value], names)
        job = centra.measureCentraJob(centra.cropImage(ctImage, *box), centra.cropImage(labelImage, *box),
                                      {value: level for value, (_name, level) in named.items() if level},
                                      process=self._engineProcess(progressCallback), progressCallback=progressCallback)
        return job, labelImage, named

    @staticmethod
    def _checkOnCtGrid(labelsImage, ctImage, labelsNode, ctVolume):
        """A label map is sent on its own grid, which must be the CT's (the engine refuses any other offset)."""
        if labelsImage.GetSize() != ctImage.GetSize():
            raise ValueError(f"The label map '{labelsNode.GetName()}' is not on the grid of "
                             f"'{ctVolume.GetName()}'; resample it onto the CT first.")

    # ------------------------------------------------------------------ jobs

    def _onShutdown(self):
        """Forget the images pulled for the engine (the scene is closing, or the module unloading)."""
        self._pulled = {}

    def _pulledImages(self, ctVolume, labelsNode=None):
        """(CT, label map or None) as SimpleITK images, pulled again only when a volume changed: a CT takes
        seconds to pull and every click needs it. Only the volumes of the last call are kept."""
        import sitkUtils

        pulled = {}
        for node, pull in ((ctVolume, volumes.ctImageFromVolume), (labelsNode, sitkUtils.PullVolumeFromSlicer)):
            if node is None:
                continue
            imageData = node.GetImageData()
            key = (node.GetMTime(), imageData.GetMTime() if imageData else 0)
            cached = self._pulled.get(node.GetID())
            pulled[node.GetID()] = cached if cached and cached[0] == key else (key, pull(node))
        self._pulled = pulled
        return pulled[ctVolume.GetID()][1], (pulled[labelsNode.GetID()][1] if labelsNode else None)

    # ------------------------------------------------------------------ the seed among existing labels

    @staticmethod
    def seedPositionInVolume(seedPoint, volumeNode):
        """RAS position (in the volume's own frame) of the last defined point of `seedPoint`, or None."""
        if not seedPoint:
            return None
        for index in reversed(range(seedPoint.GetNumberOfControlPoints())):
            if seedPoint.GetNthControlPointPositionStatus(index) == slicer.vtkMRMLMarkupsNode.PositionDefined:
                position = [0.0, 0.0, 0.0]
                seedPoint.GetNthControlPointPositionWorld(index, position)
                transformNode = volumeNode.GetParentTransformNode()
                if transformNode:
                    fromWorld = vtk.vtkGeneralTransform()
                    transformNode.GetTransformFromWorld(fromWorld)
                    position = list(fromWorld.TransformPoint(position))
                return position
        return None

    @staticmethod
    def labelAtPosition(labelImage, volumeNode, positionRAS):
        """Label value of the voxel of `labelImage` (on the grid of `volumeNode`) containing a RAS point; 0 outside."""
        import numpy as np
        import SimpleITK as sitk
        from spine_analysis.coords import ras_to_ijk

        i, j, k = np.round(ras_to_ijk(np.asarray(positionRAS, dtype=float),
                                      volumes.ijkToRasMatrix(volumeNode))).astype(int)
        labels = sitk.GetArrayViewFromImage(labelImage)  # indexed (k, j, i)
        if 0 <= k < labels.shape[0] and 0 <= j < labels.shape[1] and 0 <= i < labels.shape[2]:
            return int(labels[k, j, i])
        return 0


#
# SpineAnalysisTest
#


class SpineAnalysisTest(ScriptedLoadableModuleTest):
    """Centrum metrics of tiny synthetic CTs: box-shaped "vertebrae" of known intensity (runs the engine process)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LabelMapAndSegmentation()
        self.setUp()
        self.test_SegmentAtSeed()

    def _syntheticCase(self):
        import numpy as np

        ct = np.full((24, 30, 32), -1000, dtype=np.int16)  # (k, j, i): air
        labels = np.zeros(ct.shape, dtype=np.uint8)
        ct[4:10, 8:20, 8:24] = 300   # L1 (VerSe label 20): 6 x 12 x 16 voxels of 300 HU
        labels[4:10, 8:20, 8:24] = 20
        ct[14:20, 8:20, 8:24] = 150  # L2 (21): 150 HU
        labels[14:20, 8:20, 8:24] = 21
        # 1 x 1.2 x 1.5 mm voxels: L1 holds 2 ml of bone, as a CT of the spine must (less is refused)
        ijkToRAS = np.array([[-1.0, 0, 0, 12.0], [0, -1.2, 0, -30.0], [0, 0, 1.5, 100.0], [0, 0, 0, 1]])
        ctNode = slicer.util.addVolumeFromArray(ct, ijkToRAS=ijkToRAS, name="SyntheticCT")
        labelNode = slicer.util.addVolumeFromArray(labels, ijkToRAS=ijkToRAS, name="SyntheticVertebrae",
                                                   nodeClassName="vtkMRMLLabelMapVolumeNode")
        voxelVolumeMl = 1.0 * 1.2 * 1.5 / 1000.0
        return ctNode, labelNode, 6 * 12 * 16, voxelVolumeMl, ijkToRAS

    def _column(self, tableNode, name):
        table = tableNode.GetTable()
        column = table.GetColumnByName(name)
        self.assertIsNotNone(column, f"column {name} missing")
        return [column.GetValue(row) for row in range(table.GetNumberOfRows())]

    def test_LabelMapAndSegmentation(self):
        """The engine's centrum metrics of every label (runs the engine process)."""
        import numpy as np

        self.delayDisplay("Centrum metrics of every vertebra of a label map")
        ctNode, labelNode, voxels, voxelVolumeMl, ijkToRAS = self._syntheticCase()
        logic = SpineAnalysisLogic()

        # Seed point in the centre of L2 (voxel i=16, j=14, k=17).
        seedRAS = (ijkToRAS @ np.array([16, 14, 17, 1.0]))[:3]
        seedNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seed")
        seedNode.AddControlPoint(seedRAS)

        try:
            tableNode = logic.measureLabelMap(ctNode, labelNode, seedPoint=seedNode)
            self.assertEqual(tableNode.GetNumberOfRows(), 2)
            self.assertEqual(self._column(tableNode, "segment"), ["L1", "L2"])
            self.assertEqual(self._column(tableNode, "level"), ["L1", "L2"])
            self.assertEqual(self._column(tableNode, "level_from"), ["label map", "label map"])
            np.testing.assert_allclose(self._column(tableNode, "hu_mean"), [300.0, 150.0], atol=1e-3)
            np.testing.assert_allclose(self._column(tableNode, "hu_std"), [0.0, 0.0], atol=1e-3)
            np.testing.assert_allclose(self._column(tableNode, "volume_ml"), [voxels * voxelVolumeMl] * 2, rtol=1e-3)
            self.assertEqual(self._column(tableNode, seeds.AT_SEED_COLUMN), ["no", "yes"])
            self.assertEqual(tableNode.GetAttribute(SpineAnalysisLogic.SEED_ATTRIBUTE), "L2")

            self.delayDisplay("Same metrics from a segmentation, written into the same table")
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "SyntheticSegmentation")
            slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelNode, segmentationNode)
            sameTable = logic.measureLabelMap(ctNode, segmentationNode, tableNode=tableNode)
            self.assertIs(sameTable, tableNode)
            self.assertEqual(tableNode.GetNumberOfRows(), 2)
            np.testing.assert_allclose(self._column(tableNode, "volume_ml"), [voxels * voxelVolumeMl] * 2, rtol=1e-3)
            np.testing.assert_allclose(sorted(self._column(tableNode, "hu_mean")), [150.0, 300.0], atol=1e-3)
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")

    def test_SegmentAtSeed(self):
        """Click-to-segment with the classical method (no network), then re-measure; runs the engine process."""
        import numpy as np

        self.delayDisplay("Segment a synthetic vertebral body at a seed")
        ct = np.full((50, 70, 80), -1000, dtype=np.int16)  # (k, j, i), 1 mm voxels: air
        ct[5:45, 10:60, 10:70] = 40     # soft tissue: the classical method tells bone from it
        ct[13:37, 20:50, 20:60] = 600   # cortical shell, 2 mm thick
        ct[15:35, 22:48, 22:58] = 180   # trabecular interior: 20 x 26 x 36 mm = 18.7 mL
        ijkToRAS = np.array([[-1.0, 0, 0, 40.0], [0, -1.0, 0, 35.0], [0, 0, 1.0, -25.0], [0, 0, 0, 1]])
        ctNode = slicer.util.addVolumeFromArray(ct, ijkToRAS=ijkToRAS, name="BoxCT")
        seedRAS = (ijkToRAS @ np.array([40, 35, 25, 1.0]))[:3]

        logic = SpineAnalysisLogic()
        try:
            segmentId, metrics = logic.segmentAtSeed(ctNode, seedRAS, level="L1", method="classical")
            segmentationNode = logic.getParameterNode().outputSegmentation
            self.assertIsNotNone(segmentationNode)
            self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), 1)
            self.assertEqual(segmentationNode.GetSegmentation().GetSegment(segmentId).GetName(), "L1 centrum")
            self.assertEqual(metrics["level"], "L1")
            self.assertEqual(metrics["method"], "classical")
            self.assertGreater(metrics["volume_ml"], 5.0)
            self.assertLess(metrics["volume_ml"], 18.8)  # inside the interior
            self.assertAlmostEqual(metrics["hu_mean"], 180.0, delta=5.0)
            self.assertGreater(slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, ctNode).sum(), 0)
            tableNode = centra.metricsTable(segmentationNode)
            self.assertEqual(tableNode.GetNumberOfRows(), 1)
            self.assertEqual(self._column(tableNode, "level"), ["L1"])

            self.delayDisplay("Re-measure gives the same centrum")
            vertebrae = logic.remeasure(ctNode, segmentationNode)
            self.assertEqual(len(vertebrae), 1)
            self.assertEqual(vertebrae[0]["level"], "L1")
            self.assertAlmostEqual(vertebrae[0]["volume_ml"], metrics["volume_ml"], delta=0.01 * metrics["volume_ml"])
            self.assertEqual(tableNode.GetNumberOfRows(), 1)
            self.assertEqual(self._column(tableNode, "method"), ["Classical, re-measured"])

            self.delayDisplay("A seed in air is refused with the engine's message; nothing is added")
            with self.assertRaises(JobFailed) as raised:
                logic.segmentAtSeed(ctNode, (ijkToRAS @ np.array([3, 3, 3, 1.0]))[:3], method="classical")
            self.assertIn("air", str(raised.exception))
            self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), 1)
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")
