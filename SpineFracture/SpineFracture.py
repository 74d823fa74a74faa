import html
import logging
import os
import shutil
from typing import Annotated, Optional, Union

import qt

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

from SpineCommonLib import dependencies, volumes
from SpineCommonLib.jobs import EngineJob, JobFailed, WarmEngineRunner
from SpineCommonLib.module import describeModule
from SpineCommonLib.widgets import ParameterNodeWidgetMixin
from SpineFractureLib import findings, outputs


#
# SpineFracture
#


class SpineFracture(ScriptedLoadableModule):
    """Vertebral fracture detection on CT: a voxel classifier beside Genant's morphometric grading."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("Spine Fracture"), _("""
Vertebral compression fractures on CT. Select a CT (in Hounsfield units) and press <b>Apply</b>: a voxel classifier
computes a fracture-probability map, shown as a coloured overlay on the CT (opacity slider), and every vertebra gets
two opinions in the table: the classifier's probability around its centroid, and its anterior, middle and posterior
vertebral body heights with the Genant grade (0 normal, 1 mild, 2 moderate, 3 severe). The <b>call</b> column gives
one final call per vertebra and the <b>basis</b> column says which opinion drove it. Click a row to centre the views
on that vertebra.
<br><br>
Where the vertebrae are: a point list with one point per vertebra, each named by its level (e.g. L1); or a vertebra
label map in VerSe numbering (or a segmentation whose segments are named by level, e.g. "L1" or "vertebrae_L1");
otherwise the classifier finds the vertebral bodies itself and numbers them "vertebra 1..N" from the top, without
naming levels. The centroids of a result are shown as a point list: move a point and the vertebra is assessed again
(<b>Re-run</b>; the classifier's map is reused, so this is quick).
<br><br>
<b>Research use only.</b> The classifier was trained on little data, with fractures simulated by compressing normal
vertebrae, and has not been validated on clinical fractures: review every call on the images.
"""), _("The voxel classifier follows Nicolaes et al., Detection of vertebral fractures in CT using 3D convolutional "
        "neural networks, CSI 2019 (LNCS 11963). Grading follows Genant et al., J Bone Miner Res 1993;8:1137-48."))


#
# SpineFractureParameterNode
#


@parameterNodeWrapper
class SpineFractureParameterNode:
    """
    inputVolume - CT volume (Hounsfield units).
    centroids - optional point list, one point per vertebra named by its level; after a run without one, the
        centroids the engine used (editable).
    vertebraLabels - optional vertebra labels: label map (VerSe numbering) or segmentation (segments named by level).
    weightsPath - another fracture model folder; empty: the bundled model.
    autoRerun - assess a vertebra again as soon as its centroid has been moved.
    results - the results table shown (one per run).
    overlayOpacity - opacity of the probability overlay.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    centroids: vtkMRMLMarkupsFiducialNode
    vertebraLabels: Optional[Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode]]
    weightsPath: str = ""
    autoRerun: bool = True
    results: vtkMRMLTableNode
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5


#
# SpineFractureWidget
#


def _nodeId(node):
    return node.GetID() if node else None


class SpineFractureWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        self._shownResultsId = None
        self._observedCentroids = None
        self._lastInputId = None
        self._rerunPending = False
        ParameterNodeWidgetMixin.__init__(self, parent)  # last: it may run setup()

    def setup(self) -> None:
        from spine_analysis.ct.fracture_model import WEIGHTS_ENV

        ScriptedLoadableModuleWidget.setup(self)
        self.setupModule(self.resourcePath("UI/SpineFracture.ui"), SpineFractureLogic())

        # Only results tables of this module can be selected as results.
        self.ui.resultsSelector.addAttribute("vtkMRMLTableNode", outputs.ROLE_ATTRIBUTE, outputs.RESULTS_ROLE)
        self.ui.weightsLineEdit.placeholderText = _("bundled model, or ${variable}").format(variable=WEIGHTS_ENV)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.rerunButton.connect("clicked(bool)", self.onRerunButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.weightsBrowseButton.connect("clicked(bool)", self.onBrowseWeights)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.ui.resultsTableView.connect("clicked(QModelIndex)", self.onTableClicked)

        self.setRunning(False)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._rerunPending = False
        self._observeCentroids(None)
        ParameterNodeWidgetMixin.cleanup(self)

    def onSceneStartClose(self, caller, event) -> None:
        self._rerunPending = False
        self._observeCentroids(None)
        self._shownResultsId = None
        ParameterNodeWidgetMixin.onSceneStartClose(self, caller, event)

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        idle = self.logic.activeJob is None
        inputVolume = pn.inputVolume if pn else None
        if pn and _nodeId(inputVolume) != self._lastInputId:
            self._lastInputId = _nodeId(inputVolume)
            # Centroids this module found on another CT do not belong to this one.
            ctOfCentroids = outputs.centroidsCt(pn.centroids)
            if inputVolume and ctOfCentroids and ctOfCentroids.GetID() != inputVolume.GetID():
                pn.centroids = None
                return  # called again by that change
        self.ui.applyButton.enabled = bool(inputVolume) and idle
        self.ui.applyButton.toolTip = _("Detect fractures in the CT") if inputVolume else _("Select a CT volume")
        results = pn.results if pn else None
        self.ui.rerunButton.enabled = bool(results) and idle
        self.ui.opacitySlider.enabled = bool(results and self.logic.probabilityVolume(results))
        if _nodeId(results) != self._shownResultsId:
            self._showResults(results)

    # ------------------------------------------------------------------ results display

    def _showResults(self, tableNode) -> None:
        """Table, summary and centroid observation of the selected result."""
        self._shownResultsId = _nodeId(tableNode)
        self.ui.resultsTableView.setMRMLTableNode(tableNode)
        self._observeCentroids(self.logic.centroidNode(tableNode) if tableNode else None)
        self._updateSummary(tableNode)

    def _updateSummary(self, tableNode) -> None:
        if not tableNode:
            self.ui.summaryLabel.text = _("No result yet: select a CT and click Apply.")
            return
        lines = findings.patientSummary(self.logic.patient(tableNode), self.logic.vertebraRows(tableNode))
        lines += outputs.resultNotes(tableNode)
        escaped = [html.escape(line) for line in lines]
        self.ui.summaryLabel.text = "<br>".join([f"<b>{escaped[0]}</b>"] + escaped[1:])

    def onTableClicked(self, index) -> None:
        """Centre the slice views on the vertebra of the clicked row (its point's current position)."""
        tableNode = self._parameterNode.results if self._parameterNode else None
        if not tableNode or not index.isValid():
            return
        model = self.ui.resultsTableView.model()
        level = model.data(model.index(index.row(), findings.COLUMNS.index("level")))
        position = self.logic.vertebraPosition(tableNode, str(level or ""))
        if position is None:
            self.ui.statusLabel.text = _("{level} has no centroid.").format(level=level)
            return
        outputs.jumpTo(position)

    def onOpacityChanged(self, value) -> None:
        tableNode = self._parameterNode.results if self._parameterNode else None
        if tableNode:
            self.logic.setOverlayOpacity(tableNode, value)

    # ------------------------------------------------------------------ centroids moved

    def _observeCentroids(self, pointsNode) -> None:
        self._observedCentroids = self.observeNode(self._observedCentroids, pointsNode,
                                                   slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
                                                   self.onCentroidMoved)

    def onCentroidMoved(self, caller, event) -> None:
        """A centroid of the shown result was dragged: assess the vertebrae again (after the running job)."""
        if not (self._parameterNode and self._parameterNode.autoRerun and self._parameterNode.results):
            return
        if self.logic.activeJob is not None:
            self._rerunPending = True
            return
        self.onRerunButton()

    # ------------------------------------------------------------------ running

    def onApplyButton(self) -> None:
        pn = self._parameterNode
        self.startJob(_("Detecting fractures..."), _("Cannot start the fracture detection."),
                      lambda: self.logic.detectFractures(
                          pn.inputVolume, centroidNode=pn.centroids, labelNode=pn.vertebraLabels,
                          weightsPath=pn.weightsPath or None, completedCallback=self.onCompleted,
                          progressCallback=self.onProgress))

    def onRerunButton(self) -> None:
        self._rerunPending = False
        tableNode = self._parameterNode.results if self._parameterNode else None
        if tableNode:
            self.startJob(_("Assessing the vertebrae again..."), _("Cannot assess the vertebrae again."),
                          lambda: self.logic.rerun(tableNode, completedCallback=self.onCompleted,
                                                   progressCallback=self.onProgress))

    def onCancelButton(self) -> None:
        self._rerunPending = False
        ParameterNodeWidgetMixin.onCancelButton(self)

    def onCompleted(self, outcome, error) -> None:
        self.setRunning(False)
        if self.jobFailed(error, _("Fracture detection failed.")):
            self._rerunPending = False
            return
        _probabilityVolume, tableNode, patient = outcome
        pn = self._parameterNode
        if pn:
            pn.inputVolume = self.logic.ctVolume(tableNode)
            centroidNode = self.logic.centroidNode(tableNode)
            if centroidNode:
                pn.centroids = centroidNode  # Apply and Re-run send these (moved) points next time
            pn.results = tableNode
            self._showResults(tableNode)  # also when the same table was updated
            self.logic.showOverlay(tableNode, pn.overlayOpacity)
        fractured = patient.get("fractured_levels") or []
        self.ui.statusLabel.text = _("Done: {count} vertebrae; fractured: {levels}.").format(
            count=tableNode.GetNumberOfRows(), levels=", ".join(fractured) if fractured else _("none"))
        if self._rerunPending:
            self.onRerunButton()

    def onBrowseWeights(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Fracture model folder"), self._parameterNode.weightsPath or "")
        if folder:
            self._parameterNode.weightsPath = folder


#
# SpineFractureLogic
#


class SpineFractureLogic(WarmEngineRunner, ScriptedLoadableModuleLogic):
    """Fracture detection on CT; usable without the GUI:

        logic = slicer.util.getModuleLogic("SpineFracture")
        probabilityVolume, table, patient = logic.detectFractures(ctVolumeNode)  # the engine finds the vertebrae
        probabilityVolume, table, patient = logic.detectFractures(ctVolumeNode, centroidNode=points)  # labels = levels
        probabilityVolume, table, patient = logic.detectFractures(ctVolumeNode, labelNode=labelMapOrSegmentation)
        # move points of logic.centroidNode(table), then:
        probabilityVolume, table, patient = logic.rerun(table)
        logic.vertebraRows(table)       # the engine's rows (level, probability, genant_grade, call, basis, ...)
        logic.showOverlay(table, 0.5)   # probability map over the CT in the slice views

    Each detectFractures() makes new nodes (a probability volume, a results table and, when no point list was given,
    a centroid point list); rerun() updates the results table it is given. The engine runs in a separate process that
    stays alive between jobs (one job at a time) and keeps the classifier's map of the last CT, which is written once
    to a temporary file while the CT is unchanged.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.initJobs("Spine Fracture")
        self._ctFile = None  # (key, folder, path) of the CT written for the engine

    def getParameterNode(self):
        return SpineFractureParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ results

    @staticmethod
    def ctVolume(tableNode):
        return tableNode.GetNodeReference(outputs.CT_REFERENCE) if tableNode else None

    @staticmethod
    def probabilityVolume(tableNode):
        return tableNode.GetNodeReference(outputs.PROBABILITY_REFERENCE) if tableNode else None

    @staticmethod
    def centroidNode(tableNode):
        return tableNode.GetNodeReference(outputs.CENTROIDS_REFERENCE) if tableNode else None

    @staticmethod
    def vertebraRows(tableNode):
        """The engine's rows of a result: level, centroid_lps_x/y/z, probability, genant_grade, ..., call, basis."""
        return outputs.resultRows(tableNode)

    @staticmethod
    def patient(tableNode):
        """The engine's patient summary of a result: its one call, basis, fractured_levels, and the two opinions under
        "opinions" ("classifier", "morphometry")."""
        return outputs.resultPatient(tableNode)

    def vertebraPosition(self, tableNode, level):
        """RAS position of the vertebra `level` of a result: its point's current position in the result's point list
        (it may have been moved since), else the centroid the engine used; None if the result has no such row."""
        rows = self.vertebraRows(tableNode)
        rowIndex = findings.rowIndexForLevel(rows, level)
        if rowIndex is None:
            return None
        pointsNode = self.centroidNode(tableNode)
        if pointsNode:
            for label, position in outputs.definedPoints(pointsNode):
                if findings.rowForPoint(rows, label, position) == rowIndex:
                    return position
        return findings.rowCentroidRas(rows[rowIndex])

    def showOverlay(self, tableNode, opacity=0.5):
        ctVolume, probabilityVolume = self.ctVolume(tableNode), self.probabilityVolume(tableNode)
        if ctVolume and probabilityVolume:
            outputs.showOverlay(ctVolume, probabilityVolume, opacity)

    def setOverlayOpacity(self, tableNode, opacity):
        probabilityVolume = self.probabilityVolume(tableNode)
        if probabilityVolume:
            outputs.setOverlayOpacity(probabilityVolume, opacity)

    # ------------------------------------------------------------------ detection

    def detectFractures(self, ctVolume, centroidNode=None, labelNode=None, weightsPath=None,
                        completedCallback=None, progressCallback=None, logCallback=None):
        """Fracture probability map and per-vertebra findings of `ctVolume`, in new nodes.

        :param ctVolume: vtkMRMLScalarVolumeNode in Hounsfield units
        :param centroidNode: optional vtkMRMLMarkupsFiducialNode, one point per vertebra, labelled by level ("L1");
            without placed points the vertebrae come from `labelNode`, else the engine finds them
        :param labelNode: optional vertebra labels: vtkMRMLLabelMapVolumeNode in VerSe numbering (or with a colour
            table naming levels), or vtkMRMLSegmentationNode with segments named by level ("L1", "vertebrae_L1")
        :param weightsPath: another fracture model folder; default: the engine's bundled model
        :return: blocking (no `completedCallback`): (probability volume, results table, patient dict). Otherwise the
            running EngineJob; `completedCallback((probability volume, results table, patient) or None, error or None)`
            follows on the main thread.
        """
        return self._detect(ctVolume, centroidNode, labelNode, weightsPath, None,
                            completedCallback, progressCallback, logCallback)

    def rerun(self, tableNode, completedCallback=None, progressCallback=None, logCallback=None):
        """Assess the vertebrae of a result again at the current points of its point list (e.g. after moving one),
        with the same CT, labels and model. The results table is updated; the probability map is kept while the CT is
        unchanged (the engine reuses it). Returns as detectFractures()."""
        if not outputs.isResultsTable(tableNode):
            raise ValueError("Select a results table made by Spine Fracture.")
        ctVolume = self.ctVolume(tableNode)
        if not ctVolume:
            raise ValueError(f"The CT of '{tableNode.GetName()}' is no longer in the scene; "
                             "select a CT and click Apply.")
        labelNode = tableNode.GetNodeReference(outputs.LABELS_REFERENCE)
        labelsName = tableNode.GetAttribute(outputs.LABELS_NAME_ATTRIBUTE)
        if labelsName and not labelNode:
            raise ValueError(f"The vertebra labels '{labelsName}' of this result are no longer in the scene; "
                             "click Apply to start a new detection.")
        return self._detect(ctVolume, self.centroidNode(tableNode), labelNode,
                            tableNode.GetAttribute(outputs.WEIGHTS_ATTRIBUTE) or None, tableNode,
                            completedCallback, progressCallback, logCallback)

    def _detect(self, ctVolume, centroidNode, labelNode, weightsPath, tableNode,
                completedCallback, progressCallback, logCallback):
        self._checkIdle()
        if not ctVolume:
            raise ValueError("Select a CT volume.")
        self._checkUntransformed(ctVolume, centroidNode, labelNode)
        ctOfCentroids = outputs.centroidsCt(centroidNode)
        if ctOfCentroids and ctOfCentroids.GetID() != ctVolume.GetID():
            raise ValueError(f"The points of '{centroidNode.GetName()}' were found on '{ctOfCentroids.GetName()}', "
                             f"not on '{ctVolume.GetName()}'. Choose other centroids, or none to find the vertebrae.")
        if weightsPath and not os.path.isdir(weightsPath):
            raise ValueError(f"Fracture model folder not found: {weightsPath}")
        points = outputs.definedPoints(centroidNode) if centroidNode else []
        centroids = findings.centroidsFromPoints(points) if points else None
        dependencies.ensureDependencies(dependencies.FRACTURE_DETECTION, requester=_("Spine Fracture"))
        labelsImage, notes = self._labelsImage(labelNode, ctVolume) if labelNode else (None, [])
        ctPath = self._ctPath(ctVolume)
        outDir = slicer.util.tempDirectory(key="SpineFractureResult")
        try:
            job = EngineJob(findings.fractureRequest(ctPath, outDir, centroids, None, weightsPath),
                            images={"labels": labelsImage} if labelsImage is not None else None,
                            process=self._engineProcess(progressCallback), logCallback=logCallback,
                            progressCallback=progressCallback)
        except Exception:
            shutil.rmtree(outDir, ignore_errors=True)
            raise

        def finish(result):
            return self.importResult(ctVolume, result, centroidNode if centroids else None, labelNode, weightsPath,
                                     tableNode, notes)

        return self._run(job, finish, completedCallback, cleanup=lambda: shutil.rmtree(outDir, ignore_errors=True))

    def importResult(self, ctVolume, result, centroidNode=None, labelNode=None, weightsPath=None, tableNode=None,
                     notes=()):
        """Show the engine's answer to a fracture job on `ctVolume`: returns (probability volume, results table,
        patient dict). Without `tableNode` every node is new; with it (re-run), that table is updated and its
        probability volume kept if the CT has not changed. Without `centroidNode`, a new point list holds the
        centroids the engine used."""
        findings.checkAnswer(result)
        if not ctVolume.GetScene():
            raise ValueError("The CT was removed from the scene while the engine was working.")
        rows = result["vertebrae"]
        reuse = tableNode if tableNode is not None and tableNode.GetScene() else None
        probabilityVolume = None
        if reuse is not None and reuse.GetAttribute(outputs.CT_KEY_ATTRIBUTE) == outputs.ctKey(ctVolume):
            probabilityVolume = self.probabilityVolume(reuse)
        if probabilityVolume is None:
            probabilityVolume = outputs.newProbabilityVolume(ctVolume, result["probability"])
        if centroidNode is None or not centroidNode.GetScene():
            centroidNode = outputs.newCentroidsNode(ctVolume, rows) if findings.centroidPoints(rows) else None
        tableNode = reuse or outputs.newResultsTable(ctVolume)
        outputs.writeResults(tableNode, result, ctVolume, probabilityVolume, centroidNode, labelNode, weightsPath,
                             notes)
        if centroidNode is not None:
            outputs.markCentroids(centroidNode, rows)
        logging.info(f"SpineFracture: {len(rows)} vertebrae of {ctVolume.GetName()}; {result.get('model', '')}; "
                     f"levels: {result.get('level_source', '')}; seconds: {result.get('seconds', {})}")
        return probabilityVolume, tableNode, result["patient"]

    # ------------------------------------------------------------------ inputs for the engine

    def _ctPath(self, ctVolume):
        """The CT as a file for the engine, written again only when its voxels or geometry changed: the engine knows
        its classifier map by the file (path, size, modification time), so a re-run must send the same file."""
        import SimpleITK as sitk

        imageData = ctVolume.GetImageData()
        key = (ctVolume.GetID(), imageData.GetMTime() if imageData else 0,
               tuple(round(float(v), 6) for v in volumes.ijkToRasMatrix(ctVolume).ravel()))
        if self._ctFile and self._ctFile[0] == key and os.path.isfile(self._ctFile[2]):
            return self._ctFile[2]
        self._removeCtFile()
        ctImage = volumes.ctImageFromVolume(ctVolume)
        folder = slicer.util.tempDirectory(key="SpineFractureCT")
        path = os.path.join(folder, "ct.nrrd")
        try:
            sitk.WriteImage(ctImage, path)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._ctFile = (key, folder, path)
        return path

    def _onShutdown(self):
        """Delete the CT file kept for the engine."""
        self._removeCtFile()

    def _removeCtFile(self):
        if self._ctFile:
            shutil.rmtree(self._ctFile[1], ignore_errors=True)
            self._ctFile = None

    @staticmethod
    def _labelsImage(labelNode, ctVolume):
        """Vertebra labels in VerSe numbering as a SimpleITK image, and notes on what was left out.

        A label map is sent on its own grid, renumbered only when its colour table names levels; a segmentation is
        sampled on the CT's grid, each segment numbered by the level its name holds."""
        import SimpleITK as sitk

        isSegmentation = labelNode.IsA("vtkMRMLSegmentationNode")
        ctImage = volumes.ctImageFromVolume(ctVolume) if isSegmentation else None
        image, names = volumes.labelImageFromNode(labelNode, ctImage, ctVolume)
        mapping, unnamed = findings.labelRemap(names)
        if isSegmentation and not mapping:
            raise ValueError(f"No segment of '{labelNode.GetName()}' is named by a vertebra level: rename the segments "
                             "to their levels (e.g. L1, or vertebrae_L1 as TotalSegmentator names them).")
        if not mapping:
            return image, []  # VerSe numbering as it is
        remapped = sitk.GetImageFromArray(findings.remapLabels(sitk.GetArrayViewFromImage(image), mapping))
        remapped.CopyInformation(image)
        notes = [f"Left out (no level in the name): {', '.join(unnamed)}."] if unnamed else []
        return remapped, notes


#
# SpineFractureTest
#


class SpineFractureTest(ScriptedLoadableModuleTest):
    """Results shown from an engine answer (no network needed), then a real run on a synthetic spine when PyTorch and
    MONAI are installed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ImportResult()
        self.setUp()
        self.test_DetectFractures()

    def _syntheticSpine(self):
        """Three elliptic vertebral bodies (cortex 600 HU, marrow 180 HU) in soft tissue, L1-L3 from the top, with a
        label map in VerSe numbering. Returns (CT node, label map node, {level: RAS centre})."""
        import numpy as np

        k, j, i = np.indices((60, 48, 56), dtype=float)  # 1 mm voxels; IJK along L, P, S (LPS-aligned)
        x, y = (i - 27.5), (j - 23.5)
        ct = np.full(k.shape, 40, dtype=np.int16)
        labels = np.zeros(k.shape, dtype=np.uint8)
        centres = {}
        for level, number, kc in (("L1", 20, 48.0), ("L2", 21, 30.0), ("L3", 22, 12.0)):
            inside = ((x / 16.0) ** 2 + (y / 12.0) ** 2 <= 1) & (abs(k - kc) <= 7)
            marrow = ((x / 14.5) ** 2 + (y / 10.5) ** 2 <= 1) & (abs(k - kc) <= 5.5)
            ct[inside] = 600
            ct[marrow] = 180
            labels[inside] = number
            centres[level] = [0.0, 0.0, kc - 30.0]  # RAS of the body's centre
        ijkToRAS = np.array([[-1.0, 0, 0, 27.5], [0, -1.0, 0, 23.5], [0, 0, 1.0, -30.0], [0, 0, 0, 1]])
        ctNode = slicer.util.addVolumeFromArray(ct, ijkToRAS=ijkToRAS, name="SyntheticSpine")
        labelNode = slicer.util.addVolumeFromArray(labels, ijkToRAS=ijkToRAS, name="SyntheticSpine labels",
                                                   nodeClassName="vtkMRMLLabelMapVolumeNode")
        return ctNode, labelNode, centres

    @staticmethod
    def _position(pointsNode, index):
        position = [0.0, 0.0, 0.0]
        pointsNode.GetNthControlPointPosition(index, position)
        return position

    def test_ImportResult(self):
        import numpy as np
        import SimpleITK as sitk
        from spine_analysis.coords import flip_lps_ras

        self.delayDisplay("An engine answer becomes a probability overlay, a results table and a point list")
        ctNode, _labels, centres = self._syntheticSpine()
        ctImage = volumes.ctImageFromVolume(ctNode)
        probability = np.zeros(sitk.GetArrayViewFromImage(ctImage).shape, dtype=np.float32)
        probability[42:54, 14:34, 12:44] = 0.9  # around L1
        probabilityImage = sitk.GetImageFromArray(probability)
        probabilityImage.CopyInformation(ctImage)
        folder = slicer.util.tempDirectory(key="SpineFractureTest")
        path = os.path.join(folder, "fracture_probability.nii.gz")
        sitk.WriteImage(probabilityImage, path)

        def row(level, probabilityValue, grade, call, basis, agree):
            x, y, z = flip_lps_ras(centres[level])
            return {"level": level, "centroid_lps_x": x, "centroid_lps_y": y, "centroid_lps_z": z,
                    "probability": probabilityValue, "genant_grade": grade,
                    "genant_label": "moderate" if grade else "normal",
                    "deformity": "wedge" if grade else None, "height_loss_pct": 30.0 if grade else 2.0,
                    "anterior_mm": 10.0 if grade else 14.0, "middle_mm": 13.0, "posterior_mm": 14.0,
                    "reference_mm": 14.0, "call": call, "basis": basis, "opinions_agree": agree, "note": ""}

        result = {"probability": path, "level_source": "label map (VerSe numbering)", "model": "test", "seconds": {},
                  "vertebrae": [row("L1", 0.91, 2, "fractured", "both", True),
                                row("L2", 0.05, 0, "normal", "both", True),
                                row("L3", None, None, "not assessed", "no body at the centroid", None)],
                  "patient": {"call": "fractured", "basis": "L1: classifier and morphometry agree",
                              "fractured_levels": ["L1"], "vertebrae_assessed": 2,
                              "opinions": {"classifier": {"fractured_levels": ["L1"], "threshold": 0.5,
                                                          "max_vertebra_probability": 0.91,
                                                          "fracture_components": [{"volume_ml": 5.8}]},
                                           "morphometry": {"fractured_levels": ["L1"], "vertebrae_graded": 2,
                                                           "deformed": [{"level": "L1", "grade": 2}], "note": ""}},
                              "level_source": "label map (VerSe numbering)", "note": ""}}
        logic = SpineFractureLogic()
        try:
            probabilityVolume, tableNode, patient = logic.importResult(ctNode, result)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.assertEqual(patient["fractured_levels"], ["L1"])
        self.assertEqual(probabilityVolume.GetImageData().GetDimensions(), ctNode.GetImageData().GetDimensions())
        self.assertAlmostEqual(float(slicer.util.arrayFromVolume(probabilityVolume).max()), 0.9, places=4)
        self.assertEqual(tableNode.GetNumberOfRows(), 3)
        self.assertEqual([tableNode.GetCellText(index, 0) for index in range(3)], ["L1", "L2", "L3"])
        self.assertEqual(tableNode.GetCellText(0, findings.COLUMNS.index("call")), "fractured")

        pointsNode = logic.centroidNode(tableNode)
        self.assertIsNotNone(pointsNode)
        self.assertEqual(pointsNode.GetNumberOfControlPoints(), 3)
        self.assertEqual(pointsNode.GetNthControlPointLabel(0), "L1")
        np.testing.assert_allclose(self._position(pointsNode, 0), centres["L1"], atol=0.01)
        self.assertTrue(pointsNode.GetNthControlPointSelected(0))   # fractured
        self.assertFalse(pointsNode.GetNthControlPointSelected(1))

        self.delayDisplay("A row jumps to its point's current position")
        pointsNode.SetNthControlPointPosition(1, 1.0, 2.0, centres["L2"][2])
        np.testing.assert_allclose(logic.vertebraPosition(tableNode, "L2"), [1.0, 2.0, centres["L2"][2]], atol=1e-6)
        np.testing.assert_allclose(logic.vertebraPosition(tableNode, "l1"), centres["L1"], atol=0.01)
        self.assertIsNone(logic.vertebraPosition(tableNode, "T12"))

        self.delayDisplay("A second answer makes new nodes; nothing is replaced")
        folder = slicer.util.tempDirectory(key="SpineFractureTest")
        path = os.path.join(folder, "fracture_probability.nii.gz")
        sitk.WriteImage(probabilityImage, path)
        try:
            secondVolume, secondTable, _patient = logic.importResult(ctNode, dict(result, probability=path))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.assertNotEqual(secondVolume.GetID(), probabilityVolume.GetID())
        self.assertNotEqual(secondTable.GetID(), tableNode.GetID())
        self.assertEqual(tableNode.GetNumberOfRows(), 3)
        self.delayDisplay("Test passed")

    def test_DetectFractures(self):
        """The engine's fracture job on the synthetic spine (runs the engine process; needs the fracture model)."""
        if dependencies.missingForTask(dependencies.FRACTURE_DETECTION):
            self.delayDisplay("PyTorch or MONAI missing: the engine run is skipped")
            return
        self.delayDisplay("Fracture detection at the vertebrae of a label map")
        ctNode, labelNode, _centres = self._syntheticSpine()
        logic = SpineFractureLogic()
        volumesBefore = len(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"))
        try:
            try:
                probabilityVolume, tableNode, patient = logic.detectFractures(ctNode, labelNode=labelNode)
            except JobFailed as error:
                # A hand-made phantom may not look like a spine to the classifier: the engine must then say so in
                # one line, and nothing is added to the scene.
                self.assertNotIn("\n", str(error))
                self.assertEqual(len(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")), volumesBefore)
                self.delayDisplay(f"The engine refused the phantom: {error}")
                return
            self.assertEqual([row["level"] for row in logic.vertebraRows(tableNode)], ["L1", "L2", "L3"])
            self.assertEqual(probabilityVolume.GetImageData().GetDimensions(), ctNode.GetImageData().GetDimensions())
            self.assertIn(patient["call"], ("fractured", "normal"))
            for row in logic.vertebraRows(tableNode):
                self.assertIn(row["call"], findings.CALLS)

            self.delayDisplay("Moving a centroid and re-running updates the same table")
            pointsNode = logic.centroidNode(tableNode)
            self.assertEqual(pointsNode.GetNumberOfControlPoints(), 3)
            position = self._position(pointsNode, 1)
            pointsNode.SetNthControlPointPosition(1, position[0] + 1.0, position[1], position[2])
            sameVolume, sameTable, _patient = logic.rerun(tableNode)
            self.assertEqual(sameTable.GetID(), tableNode.GetID())
            self.assertEqual(sameVolume.GetID(), probabilityVolume.GetID())
            self.assertAlmostEqual(findings.rowCentroidRas(logic.vertebraRows(tableNode)[1])[0], position[0] + 1.0,
                                   delta=0.05)

            self.delayDisplay("A centroid outside the CT is refused with the engine's message")
            pointsNode.SetNthControlPointPosition(1, 500.0, 0.0, 0.0)
            with self.assertRaises(JobFailed):
                logic.rerun(tableNode)
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")
