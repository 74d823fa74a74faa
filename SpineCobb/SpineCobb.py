import html
import logging
import os

import qt

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode

from SpineCommonLib import dependencies, tables
from SpineCommonLib.jobs import EngineJob, JobCancelled, WarmEngineRunner
from SpineCommonLib.module import describeModule
from SpineCommonLib.widgets import ParameterNodeWidgetMixin
from SpineCobbLib import detection, outputs, testing


#
# SpineCobb
#


class SpineCobb(ScriptedLoadableModule):
    """Vertebral corner landmarks and Cobb angles on AP spine radiographs."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("Spine Cobb Angle"), _("""
Cobb angles on an AP (posteroanterior) spine radiograph. <b>Apply</b> detects the four corners of each vertebra
from T1 to L5 with the bundled landmark model (in a background process; it can be cancelled), then draws the
endplates that define each curve and lists the curves with their angle, end vertebrae, apex, convexity and
severity. Drag any corner to correct it: the lines and the table follow. <b>Export</b> writes a report (JSON, CSV)
and an overlay image that records whether landmarks were edited.
<br><br>
The model stays loaded between runs, so only the first <b>Apply</b> waits for it. An image that does not look like
an AP spine radiograph is refused; with <i>Advanced → Measure even if the image does not look like a spine
radiograph</i> it is measured anyway, and no severity is stated for it.
"""))


#
# SpineCobbParameterNode
#


@parameterNodeWrapper
class SpineCobbParameterNode:
    """
    inputVolume - the radiograph (a single-slice scalar volume).
    weightsPath - landmark model weights; empty: $SPINE_ANALYSIS_LANDMARK_WEIGHTS or the bundled model.
    patientRightOnImageLeft - standard radiograph display; decides whether a convexity is called right or left.
    forceMeasure - measure an image that does not look like an AP spine radiograph (no severity is stated).
    landmarks - the landmarks under review (created by Apply).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    weightsPath: str = ""
    patientRightOnImageLeft: bool = True
    forceMeasure: bool = False
    landmarks: vtkMRMLMarkupsFiducialNode


#
# SpineCobbWidget
#


def _sameNode(a, b):
    return a is not None and b is not None and a.GetID() == b.GetID()


class SpineCobbWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    LOG_MAX_CHARS = 256 * 1024

    def __init__(self, parent=None) -> None:
        self._shownLandmarks = None
        ParameterNodeWidgetMixin.__init__(self, parent)  # last: it may run setup()

    def setup(self) -> None:
        from spine_analysis.xray.landmark_model import WEIGHTS_ENV

        ScriptedLoadableModuleWidget.setup(self)
        self.setupModule(self.resourcePath("UI/SpineCobb.ui"), SpineCobbLogic())

        # Only landmark sets made by this module can be reviewed here.
        self.ui.landmarksSelector.addAttribute("vtkMRMLMarkupsFiducialNode", outputs.ROLE_ATTRIBUTE,
                                               outputs.LANDMARKS_ROLE)
        self.ui.weightsLineEdit.placeholderText = _("bundled model, or ${variable}").format(variable=WEIGHTS_ENV)

        self.logic.resultsUpdatedCallback = self.onResultsUpdated

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.weightsBrowseButton.connect("clicked(bool)", self.onBrowseWeights)
        self.ui.patientRightOnImageLeftCheckBox.connect("toggled(bool)", self.onSideToggled)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowTable)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)

        self.setRunning(False)
        self.initializeParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        # The logic observes the landmarks even when the module is left (lines follow edits made in other modules
        # too): its shutdown (in the mixin's onSceneStartClose and cleanup) stops that, with the engine process.
        self._shownLandmarks = None
        ParameterNodeWidgetMixin.onSceneStartClose(self, caller, event)

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        running = self.logic.activeJob is not None
        self.ui.applyButton.enabled = bool(pn and pn.inputVolume) and not running
        self.ui.applyButton.toolTip = _("Detect the landmarks and measure the Cobb angles") if pn and pn.inputVolume \
            else _("Select a radiograph")
        landmarksNode = pn.landmarks if pn else None
        self.ui.exportButton.enabled = landmarksNode is not None
        self.ui.showTableButton.enabled = landmarksNode is not None
        if not _sameNode(landmarksNode, self._shownLandmarks) and (landmarksNode or self._shownLandmarks):
            self._shownLandmarks = landmarksNode
            if landmarksNode:
                self.logic.observeLandmarks(landmarksNode)
                side = self.logic.patientRightOnImageLeft(landmarksNode)
                if pn.patientRightOnImageLeft != side:
                    pn.patientRightOnImageLeft = side
            self.updateSummary(landmarksNode)

    # ------------------------------------------------------------------ results display

    def updateSummary(self, landmarksNode, result=None, error=None) -> None:
        if not landmarksNode:
            self.ui.resultsLabel.text = _("No landmarks yet: select a radiograph and click Apply.")
            return
        if error is not None:
            self.ui.resultsLabel.text = _("Cannot measure: {error}").format(error=error)
            return
        try:
            if result is None:
                result = self.logic.cobbResult(landmarksNode)
        except Exception as exc:
            self.ui.resultsLabel.text = _("Cannot measure: {error}").format(error=exc)
            return
        failure = self.logic.spineCheckFailure(landmarksNode)
        lines = [_(
            "{name}: <b>{angle:.1f}°</b> {upper}-{lower}, apex {apex}, convex to the patient's {side}, {severity}"
        ).format(
            name=curve.name, angle=curve.angle_deg, upper=curve.upper_end, lower=curve.lower_end, apex=curve.apex,
            side=curve.convexity, severity=detection.shownSeverity(curve.severity, failure)) for curve in result.curves]
        if not lines:
            lines = [_("No curve found.")]
        if failure:
            lines.insert(0, _("<b>Spine check not passed:</b> {reason}; severity not stated.").format(
                reason=html.escape(failure)))
        if self.logic.isEdited(landmarksNode):
            lines.append(_("<i>Landmarks edited by hand.</i>"))
        try:
            lines += [_("<b>Check:</b> {message}").format(message=html.escape(message))
                      for message in self.logic.qualityMessages(landmarksNode, result.landmarks)]
        except ValueError as exc:
            lines.append(_("Cannot check the landmarks: {error}").format(error=exc))
        self.ui.resultsLabel.text = "<br>".join(lines)

    def onResultsUpdated(self, landmarksNode, result, error) -> None:
        if self._parameterNode and _sameNode(landmarksNode, self._parameterNode.landmarks):
            self.updateSummary(landmarksNode, result, error)

    # ------------------------------------------------------------------ running

    def setRunning(self, running) -> None:
        """Cancel takes Apply's place while a detection runs."""
        self.ui.applyButton.visible = not running
        ParameterNodeWidgetMixin.setRunning(self, running)

    def addLog(self, text) -> None:
        logging.info(text)
        log = self.ui.logTextEdit
        if len(log.toPlainText()) > self.LOG_MAX_CHARS:
            log.setPlainText(log.toPlainText()[-self.LOG_MAX_CHARS // 2:])
        log.appendPlainText(text)

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the landmark detection."), waitCursor=True):
            pn = self._parameterNode
            volumeNode = pn.inputVolume
            target = pn.landmarks if _sameNode(self.logic.inputVolume(pn.landmarks), volumeNode) \
                else self.logic.findLandmarksNode(volumeNode)
            replaceEdited = False
            if target and self.logic.isEdited(target):
                if not slicer.util.confirmYesNoDisplay(
                        _("The landmarks in '{name}' were corrected by hand. "
                          "Replace them with a new automatic detection?\n\n"
                          "Choose No to keep your corrections.").format(name=target.GetName()),
                        windowTitle=_("Replace edited landmarks?")):
                    return
                replaceEdited = True
            dependencies.ensureDependencies(dependencies.LANDMARK_DETECTION, requester=_("Spine Cobb Angle"))
            self.ui.logTextEdit.clear()
            self.ui.statusLabel.text = _("Detecting landmarks...")
            self.logic.detectAndMeasure(
                volumeNode,
                weightsPath=pn.weightsPath or None,
                patientRightOnImageLeft=pn.patientRightOnImageLeft,
                landmarksNode=target,
                replaceEdited=replaceEdited,
                force=pn.forceMeasure,
                waitForCompletion=False,
                logCallback=self.addLog,
                progressCallback=self.onProgress,
                completedCallback=self.onDetectionCompleted)
            self.setRunning(True)

    def onDetectionCompleted(self, landmarksNode, error) -> None:
        self.setRunning(False)
        if isinstance(error, JobCancelled):
            self.ui.statusLabel.text = _("Cancelled.")
            return
        if detection.isRefusal(error):
            # Nothing was measured, so no landmarks were made or changed.
            self.ui.statusLabel.text = _("Not measured: the image does not look like an AP spine radiograph.")
            slicer.util.errorDisplay(detection.refusalText(str(error)), windowTitle=_("Not a spine radiograph?"))
            return
        if error is not None:
            self.reportError(_("Landmark detection failed."), error)
            return
        failure = self.logic.spineCheckFailure(landmarksNode)
        status = [_("Measured although the image did not pass the spine check, so no severity is stated. "
                    "Reason: {reason}").format(reason=failure) if failure else _("Done.")]
        if self.logic.detectionWarnings:
            status.append(_("Check the levels: ") + " ".join(self.logic.detectionWarnings))
        self.ui.statusLabel.text = " ".join(status)
        with slicer.util.tryWithErrorDisplay(_("Failed to show the landmarks.")):
            self._parameterNode.landmarks = landmarksNode
            self.logic.showResults(landmarksNode)

    # ------------------------------------------------------------------ other actions

    def onBrowseWeights(self) -> None:
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), _("Landmark model weights"),
            os.path.dirname(self._parameterNode.weightsPath or ""), _("PyTorch weights (*.pt *.pth);;All files (*)"))
        if path:
            self._parameterNode.weightsPath = path

    def onSideToggled(self, checked) -> None:
        landmarksNode = self._parameterNode.landmarks if self._parameterNode else None
        if landmarksNode and self.logic.patientRightOnImageLeft(landmarksNode) != checked:
            with slicer.util.tryWithErrorDisplay(_("Failed to update the Cobb angles.")):
                self.logic.setPatientRightOnImageLeft(landmarksNode, checked)

    def onShowTable(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the results.")):
            self.logic.showResults(self._parameterNode.landmarks)

    def onExportButton(self) -> None:
        landmarksNode = self._parameterNode.landmarks
        settings = qt.QSettings()
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Export the Cobb report into folder"),
            settings.value("SpineCobb/ExportFolder", ""))
        if not folder:
            return
        settings.setValue("SpineCobb/ExportFolder", folder)
        with slicer.util.tryWithErrorDisplay(_("Failed to export the report."), waitCursor=True):
            self.logic.exportResults(landmarksNode, folder)
            self.ui.statusLabel.text = _("Report written to {folder}").format(folder=folder)


#
# SpineCobbLogic
#


class SpineCobbLogic(WarmEngineRunner, ScriptedLoadableModuleLogic, VTKObservationMixin):
    """Landmarks and Cobb angles of a radiograph volume; usable without the GUI:

        logic = slicer.util.getModuleLogic("SpineCobb")
        landmarksNode = logic.detectAndMeasure(volumeNode)              # landmark model, blocking
        landmarksNode = logic.detectAndMeasure(volumeNode, force=True)  # also if it does not look like a spine
        landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)  # known SpineLandmarks (pixels)
        result = logic.cobbResult(landmarksNode)                        # spine_analysis CobbResult
        messages = logic.qualityMessages(landmarksNode)                 # what looks implausible, if anything
        logic.exportResults(landmarksNode, "/path/to/folder")
        logic.shutdown()                                                # end the engine process

    The landmark model runs in an engine process that stays alive between detections (one at a time), so only
    the first waits for the model to load. Edits of the landmarks (dragging a point) are observed: the endplate
    lines follow during the drag, outlines, level names and the table when the drag ends.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        VTKObservationMixin.__init__(self)
        self.initJobs("Spine Cobb Angle")
        self._writing = False        # this logic is writing points: not a user edit
        self._interacting = set()    # IDs of landmark nodes being dragged
        #: Called as f(landmarksNode, CobbResult or None, error or None) after landmarks changed.
        self.resultsUpdatedCallback = None
        #: Framing warnings of the last landmark detection (check T1 or L5 when there are any).
        self.detectionWarnings = []

    def getParameterNode(self):
        return SpineCobbParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ inputs

    @staticmethod
    def radiographArray(volumeNode):
        """The radiograph as a 2D array (rows, columns); pixel (x, y) is IJK (x, y, 0)."""
        if not volumeNode or not volumeNode.GetImageData():
            raise ValueError("Select a radiograph volume that holds image data.")
        array = slicer.util.arrayFromVolume(volumeNode)
        if array.ndim != 3:
            raise ValueError(f"'{volumeNode.GetName()}' is a colour image; "
                             "convert it to a grayscale (scalar) volume first.")
        if array.shape[0] != 1:
            raise ValueError(f"'{volumeNode.GetName()}' has {array.shape[0]} slices; "
                             "a single 2D radiograph is expected.")
        return array[0]

    @staticmethod
    def inputVolume(landmarksNode):
        return landmarksNode.GetNodeReference(outputs.VOLUME_REFERENCE) if landmarksNode else None

    @staticmethod
    def findLandmarksNode(volumeNode):
        """The most recent landmark set this module made for `volumeNode`, or None."""
        found = None
        for node in slicer.util.getNodesByClass("vtkMRMLMarkupsFiducialNode"):
            if (node.GetAttribute(outputs.ROLE_ATTRIBUTE) == outputs.LANDMARKS_ROLE
                    and node.GetNodeReferenceID(outputs.VOLUME_REFERENCE) == volumeNode.GetID()):
                found = node
        return found

    @staticmethod
    def patientRightOnImageLeft(landmarksNode):
        return landmarksNode.GetAttribute(outputs.SIDE_ATTRIBUTE) != "false"

    @staticmethod
    def spineCheckFailure(landmarksNode):
        """Why the radiograph did not pass the engine's spine check, when it was measured anyway (no severity is
        then stated); None otherwise."""
        return outputs.spineCheckFailure(landmarksNode)

    def landmarksFromNode(self, landmarksNode):
        """The node's current points as SpineLandmarks (pixels of its radiograph)."""
        from spine_analysis.xray.landmarks import SpineLandmarks

        volumeNode = self.inputVolume(landmarksNode)
        if not volumeNode:
            raise ValueError(f"The radiograph of '{landmarksNode.GetName()}' is no longer in the scene.")
        firstLevel = landmarksNode.GetAttribute(outputs.FIRST_LEVEL_ATTRIBUTE) or "T1"
        return SpineLandmarks(outputs.currentPixels(landmarksNode, volumeNode).reshape(-1, 4, 2), firstLevel)

    def isEdited(self, landmarksNode):
        """True once any point differs from what detection (or computeFromLandmarks) produced."""
        original = outputs.originalPixels(landmarksNode)
        volumeNode = self.inputVolume(landmarksNode)
        if original is None or not volumeNode:
            return landmarksNode.GetAttribute(outputs.EDITED_ATTRIBUTE) == "true"
        current = outputs.currentPixels(landmarksNode, volumeNode)
        return current.shape != original.shape or bool(abs(current - original).max() > 1e-3)

    def _targetNode(self, volumeNode, landmarksNode, replaceEdited):
        node = landmarksNode or self.findLandmarksNode(volumeNode)
        if node and self.isEdited(node) and not replaceEdited:
            raise ValueError(f"The landmarks in '{node.GetName()}' were edited by hand. "
                             "Pass replaceEdited=True to replace them.")
        return node

    # ------------------------------------------------------------------ processing

    def detectAndMeasure(self, volumeNode, weightsPath=None, patientRightOnImageLeft=True, landmarksNode=None,
                replaceEdited=False, force=False, waitForCompletion=True, logCallback=None, progressCallback=None,
                completedCallback=None):
        """Detect the landmarks with the landmark model (in the engine process) and compute the Cobb angles.

        :param volumeNode: the radiograph (single-slice vtkMRMLScalarVolumeNode)
        :param weightsPath: other model weights; default: the engine uses $SPINE_ANALYSIS_LANDMARK_WEIGHTS, else its
            bundled model
        :param patientRightOnImageLeft: True for the standard display (patient's right on the image's left)
        :param landmarksNode: landmark node to overwrite; default: the one this module made for this volume, or a
            new one
        :param replaceEdited: allow replacing landmarks that were edited by hand (otherwise ValueError)
        :param force: measure the image even if it does not look like an AP spine radiograph (then no severity is
            stated); otherwise the engine refuses it: JobFailed with code "not_spine", and no node is made or changed
        :param waitForCompletion: True: block and return the landmarks node. False: return the running
            EngineJob at once (stop it with logic.cancel()); completedCallback(landmarksNode or None, error or None)
            is called on the main thread when it ends.
        """
        import SimpleITK as sitk

        self._checkIdle()
        image = self.radiographArray(volumeNode)
        target = self._targetNode(volumeNode, landmarksNode, replaceEdited)
        if weightsPath and not os.path.exists(weightsPath):
            raise ValueError(f"Landmark model weights not found: {weightsPath}")
        editedAtStart = bool(target) and self.isEdited(target)
        job = EngineJob(detection.cobbRequest(weightsPath, force), images={"image": sitk.GetImageFromArray(image)},
                        process=self._engineProcess(progressCallback), logCallback=logCallback,
                        progressCallback=progressCallback)
        self.detectionWarnings = []

        def finish(result):
            answer = self._detectionAnswer(result, logCallback)
            if not volumeNode.GetScene():
                raise ValueError("The radiograph was removed from the scene during the detection.")
            reuse = target
            if reuse is not None and (not reuse.GetScene() or (self.isEdited(reuse) and not editedAtStart)):
                reuse = None  # deleted, or edited by hand during the run: keep it and make a new set
            return self.computeFromLandmarks(volumeNode, answer.landmarks, patientRightOnImageLeft,
                                             landmarksNode=reuse, replaceEdited=True, source="model",
                                             createNew=reuse is None, spineCheckFailure=answer.spineCheckFailure)

        if waitForCompletion:
            return self._run(job, finish, None)

        def onEnded(node, error):
            if completedCallback:
                completedCallback(node, error)
            elif error is not None and not isinstance(error, JobCancelled):
                logging.error(f"SpineCobb: landmark detection failed: {error}")

        return self._run(job, finish, onEnded)

    def _detectionAnswer(self, result, logCallback=None):
        """The CobbAnswer of a finished cobb job; its framing warnings are kept in detectionWarnings."""
        answer = detection.cobbAnswer(result)
        self.detectionWarnings = answer.warnings
        log = logCallback or logging.info
        log(f"SpineCobb: {answer.model}; seconds: {answer.seconds}; spine check: {answer.spineCheck}")
        if answer.spineCheckFailure:
            logging.warning("SpineCobb: measured although the image did not pass the spine check: "
                            + answer.spineCheckFailure)
        for message in self.detectionWarnings:
            logging.warning("SpineCobb: " + message)
        return answer

    def computeFromLandmarks(self, volumeNode, landmarks, patientRightOnImageLeft=True, landmarksNode=None,
                             replaceEdited=False, source="provided", createNew=False, spineCheckFailure=None):
        """Show known landmarks (SpineLandmarks, pixels of `volumeNode`) and their Cobb angles; no network needed.

        Returns the landmarks node (vtkMRMLMarkupsFiducialNode): `landmarksNode` if given, else the one this module
        made for this volume (unless `createNew`), else a new node. `spineCheckFailure`: why the radiograph did not
        pass the engine's spine check; when given, no severity is stated for these landmarks (also after edits).
        """
        self.radiographArray(volumeNode)  # checks the volume
        node = None if createNew else self._targetNode(volumeNode, landmarksNode, replaceEdited)
        if node is None:
            node = outputs.newLandmarksNode(volumeNode)
        self._writing = True
        try:
            outputs.writeLandmarks(node, volumeNode, landmarks, patientRightOnImageLeft, source, spineCheckFailure)
        finally:
            self._writing = False
        self.observeLandmarks(node)
        result = self.updateResults(node, full=True)
        if self.resultsUpdatedCallback:  # a panel showing these landmarks summarised the old ones
            self.resultsUpdatedCallback(node, result, None)
        return node

    def cobbResult(self, landmarksNode, landmarks=None):
        """The Cobb analysis (spine_analysis CobbResult) of the node's current points (or of `landmarks`)."""
        from spine_analysis.xray.cobb import analyse

        if landmarks is None:
            landmarks = self.landmarksFromNode(landmarksNode)
        imageHeight = float(self.inputVolume(landmarksNode).GetImageData().GetDimensions()[1])
        return analyse(landmarks, imageHeight, patient_right_on_image_left=self.patientRightOnImageLeft(landmarksNode))

    def qualityMessages(self, landmarksNode, landmarks=None):
        """What looks implausible in the node's current points (vertebrae out of order, odd spacing,
        crossed corners, corners outside the radiograph): one message each, empty when nothing does."""
        from spine_analysis.xray.quality import quality_flags

        if landmarks is None:
            landmarks = self.landmarksFromNode(landmarksNode)
        width, height = self.inputVolume(landmarksNode).GetImageData().GetDimensions()[:2]
        return [flag.message for flag in quality_flags(landmarks, (width, height))]

    def updateResults(self, landmarksNode, full=True):
        """Recompute from the node's current points: lines always; outlines, level names and table if `full`."""
        landmarks = self.landmarksFromNode(landmarksNode)
        result = self.cobbResult(landmarksNode, landmarks)
        volumeNode = self.inputVolume(landmarksNode)
        ijkToRas = outputs.ijkToRasMatrix(volumeNode)
        outputs.updateEndplateLines(landmarksNode, result, ijkToRas)
        if full:
            outputs.followVolumeTransform(landmarksNode, volumeNode)
            outputs.updateOutlines(landmarksNode, landmarks, ijkToRas)
            outputs.updateLevelNames(landmarksNode, landmarks, ijkToRas)
            edited = self.isEdited(landmarksNode)
            landmarksNode.SetAttribute(outputs.EDITED_ATTRIBUTE, "true" if edited else "false")
            outputs.updateTable(landmarksNode, result, edited)
        return result

    def setPatientRightOnImageLeft(self, landmarksNode, patientRightOnImageLeft):
        landmarksNode.SetAttribute(outputs.SIDE_ATTRIBUTE, "true" if patientRightOnImageLeft else "false")
        return self._refresh(landmarksNode, full=True)

    # ------------------------------------------------------------------ derived nodes

    @staticmethod
    def endplateLineNodes(landmarksNode):
        """Line nodes, two per curve in result order: upper end vertebra's superior endplate, then lower's inferior."""
        return outputs.referencedNodes(landmarksNode, outputs.LINE_REFERENCE)

    @staticmethod
    def tableNode(landmarksNode):
        return landmarksNode.GetNodeReference(outputs.TABLE_REFERENCE)

    @staticmethod
    def outlineModelNode(landmarksNode):
        return landmarksNode.GetNodeReference(outputs.OUTLINE_REFERENCE)

    def showResults(self, landmarksNode):
        """Show the radiograph in the slice views (turned to its own plane) and the table."""
        volumeNode = self.inputVolume(landmarksNode)
        if volumeNode and slicer.app.layoutManager():
            slicer.util.setSliceViewerLayers(background=volumeNode, fit=True, rotateToVolumePlane=True)
        tableNode = self.tableNode(landmarksNode)
        if tableNode:
            tables.showTable(tableNode)

    # ------------------------------------------------------------------ editing

    def _onShutdown(self):
        """Stop following landmark edits (scene closed, module unloaded)."""
        self.removeObservers()
        self._interacting.clear()

    def observeLandmarks(self, landmarksNode):
        """Follow edits of `landmarksNode`: cheap update during a drag, full update when it ends."""
        for event, method in ((slicer.vtkMRMLMarkupsNode.PointModifiedEvent, self._onPointModified),
                              (slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent, self._onPointStartInteraction),
                              (slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, self._onPointEndInteraction)):
            if not self.hasObserver(landmarksNode, event, method):
                self.addObserver(landmarksNode, event, method)

    def _onPointModified(self, caller, event):
        if self._writing:
            return
        self._refresh(caller, full=caller.GetID() not in self._interacting)

    def _onPointStartInteraction(self, caller, event):
        self._interacting.add(caller.GetID())

    def _onPointEndInteraction(self, caller, event):
        self._interacting.discard(caller.GetID())
        self._refresh(caller, full=True)

    def _refresh(self, landmarksNode, full):
        result, error = None, None
        try:
            result = self.updateResults(landmarksNode, full=full)
        except ValueError as exc:  # e.g. spine_analysis LandmarkError: a vertebra dragged into a degenerate shape
            error = exc
            logging.warning(f"SpineCobb: cannot measure {landmarksNode.GetName()}: {exc}")
        if self.resultsUpdatedCallback:
            self.resultsUpdatedCallback(landmarksNode, result, error)
        return result

    # ------------------------------------------------------------------ export

    @staticmethod
    def _sourceDescription(volumeNode):
        storageNode = volumeNode.GetStorageNode()
        fileName = storageNode.GetFileName() if storageNode else None
        return fileName or volumeNode.GetName()

    def exportResults(self, landmarksNode, outputFolder):
        """Write report.json, report.csv, landmarks.csv, landmarks.json and overlay.png into `outputFolder`.
        When the radiograph did not pass the spine check, the report's severities say they are not stated."""
        from spine_analysis.xray.report import write_cobb_outputs

        volumeNode = self.inputVolume(landmarksNode)
        if not volumeNode:
            raise ValueError(f"The radiograph of '{landmarksNode.GetName()}' is no longer in the scene.")
        landmarks = self.landmarksFromNode(landmarksNode)
        result = self.cobbResult(landmarksNode, landmarks)
        os.makedirs(outputFolder, exist_ok=True)
        write_cobb_outputs(outputFolder, self.radiographArray(volumeNode), landmarks, result,
                           edited=self.isEdited(landmarksNode), source=self._sourceDescription(volumeNode),
                           spine_check_failure=self.spineCheckFailure(landmarksNode))
        logging.info(f"SpineCobb: report written to {outputFolder}")
        return outputFolder


#
# SpineCobbTest
#


class SpineCobbTest(testing.SpineCobbTestCase):
    """The tests of SpineCobbLib/testing.py on this module's logic. (The test case is reached through its
    module, not imported by name, so that the unittest loader does not find and run it a second time.)"""

    logicClass = SpineCobbLogic
