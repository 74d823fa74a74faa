"""The widget lifecycle every module of the extension shares (parameter node, scene close, enter/exit) and how its
engine jobs show while they run (progress bar, Cancel, status line, errors).

Each module widget keeps only its own parts: which .ui and logic it uses, its buttons, and
`onParameterNodeModified`, which decides what Apply (and the rest of the GUI) shows.
"""
import logging

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin


class ParameterNodeWidgetMixin:
    """Parameter node handling for a `parameterNodeWrapper` parameter node with an `inputVolume` field.

    Use it as the first base, before ScriptedLoadableModuleWidget and VTKObservationMixin: it initializes
    both, and its cleanup() must win over the empty one of ScriptedLoadableModuleWidget.

        class MyWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
            def setup(self):
                ScriptedLoadableModuleWidget.setup(self)
                self.setupModule(self.resourcePath("UI/My.ui"), MyLogic())
                ...  # own widgets and connections
                self.initializeParameterNode()

            def onParameterNodeModified(self, caller=None, event=None):
                ...  # called on every parameter change: enable Apply when it can run
    """

    def __init__(self, parent=None) -> None:
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        # Last: without a parent widget, ScriptedLoadableModuleWidget.__init__ runs setup() at once.
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setupModule(self, uiPath, logic) -> None:
        """Load the module's .ui into `self.ui`, keep `logic`, and follow scene closing."""
        uiWidget = slicer.util.loadUI(uiPath)
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = logic
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

    def cleanup(self) -> None:
        # The module is unloaded (or Slicer exits): its engine process ends. Then the panel is detached from the
        # parameter node: a panel left connected is called back when the scene closes later.
        self.logic.shutdown()
        self.setParameterNode(None)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # The GUI stops following the parameter node while the module is not shown.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        """The scene closes: the running job is dropped and the engine process ends (its next job starts one)."""
        self.logic.shutdown()
        self.setParameterNode(None)
        self.setRunning(False)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def setRunning(self, running) -> None:
        """Show the progress bar (busy until the engine reports progress) and Cancel while a job runs."""
        self.ui.progressBar.visible = running
        self.ui.cancelButton.visible = running
        if running:
            self.ui.progressBar.setRange(0, 0)
        self.onParameterNodeModified()

    def onProgress(self, fraction, message) -> None:
        """A job's progress: `fraction` (0-1) in the progress bar (None: busy), `message` in the status line."""
        if fraction is not None:
            self.ui.progressBar.setRange(0, 100)
            self.ui.progressBar.value = int(round(100 * fraction))
        if message:
            self.showStatus(message)

    def onCancelButton(self) -> None:
        if self.logic.activeJob is not None:
            self.ui.statusLabel.text = _("Cancelling...")
            self.logic.cancel()

    def observeNode(self, observed, node, event, callback):
        """Follow `event` of `node` with `callback` in place of the node `observed` so far (either may be None);
        returns `node`, the one observed now."""
        if observed is not None:
            self.removeObserver(observed, event, callback)
        if node is not None:
            self.addObserver(node, event, callback)
        return node

    def startJob(self, status, failure, start) -> None:
        """`start()` starts a logic job in the background (under the wait cursor: its inputs may be written for the
        engine first). The status line says `status` until the engine reports (a new engine process says it is
        loading); the progress bar and Cancel show while the job runs. A job that cannot start is reported as
        `failure` with the reason."""
        self.ui.statusLabel.text = status
        try:
            with slicer.util.WaitCursor():
                start()
        except Exception as exc:
            self.reportError(failure, exc)
            return
        self.setRunning(True)

    def jobFailed(self, error, failure) -> bool:
        """Whether a job ended without a result; if so it is shown: "Cancelled.", or `failure` and the error."""
        from SpineCommonLib.jobs import JobCancelled

        if isinstance(error, JobCancelled):
            self.ui.statusLabel.text = _("Cancelled.")
        elif error is not None:
            self.reportError(failure, error)
        return error is not None

    def showStatus(self, message) -> None:
        """`message` in the module's status line (`ui.statusLabel`), cut to fit."""
        self.ui.statusLabel.text = message if len(message) <= 120 else message[:117] + "..."

    def reportError(self, message, error) -> None:
        """One line for the user (the engine's message); a traceback only in the log, and only for a bug."""
        from SpineCommonLib.dependencies import DependencyError
        from SpineCommonLib.jobs import JobFailed

        if not isinstance(error, (JobFailed, ValueError, DependencyError)):
            logging.error(f"{self.moduleName}: {message}", exc_info=error)
        self.ui.statusLabel.text = _("Failed.")
        slicer.util.errorDisplay(f"{message}\n\n{error}")

    def initializeParameterNode(self) -> None:
        """Use the module's parameter node; an empty input defaults to the first scalar (non-label) volume."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            for volumeNode in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                    self._parameterNode.inputVolume = volumeNode
                    break

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode and self._parameterNodeGuiTag is not None:  # not already let go by exit()
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()
