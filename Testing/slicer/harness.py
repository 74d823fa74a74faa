"""Slicer's real MRML without the Slicer application: what a module needs around `slicer-core`.

`slicer-core` (PyPI) is Slicer's C++ core with its Python wrapping: the MRML scene and nodes, storage nodes, the
module logics and `slicer.util`. It lacks the Qt half of the application. This harness stands in for that half,
set up as qSlicerCoreApplication sets up the real one:
- `slicer.mrmlScene` and `slicer.app`: the scene, Slicer's application logic with the module logics our modules call
  (colours, volumes, markups, segmentations, tables, models, transforms, subject hierarchy, terminologies), an IO
  manager behind `slicer.util.loadVolume`/`loadNodeFromFile`/`saveNode`, a temporary path, `testingEnabled()`,
  `processEvents()` (which also fires due `qt.QTimer`s, so background jobs complete as in Slicer's event loop);
- `slicer.modules.<name>.logic()` for those module logics and for the project's scripted modules, which are loaded
  from their folders like Slicer does (module class, parent with title/help, self-test registered);
- Slicer's own pure-Python files (`ScriptedLoadableModule`, `parameterNodeWrapper`, `i18n`, `sitkUtils`) from
  `../shared/slicer/runtime` or `$SLICER_RUNTIME_DIR`, never copied into the project;
- inert `qt`/`ctk` modules for the names widget code touches, with working QMessageBox constants, QTimer and
  QSettings; message boxes are recorded (`app.dialogs`) and questions answered by the test (`app.answers`);
- `PythonSlicer` on PATH meaning this interpreter, so the warm engine process starts as in Slicer.
Widgets (PythonQt, CTK, qMRML widgets) cannot run here.
"""
import collections
import importlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

RUNTIME_ENV = "SLICER_RUNTIME_DIR"
REPOSITORY = Path(__file__).resolve().parents[2]
PROJECT_MODULES = ("SpineCommon", "SpineCobb", "SpineAnalysis", "SpineFracture")


def runtimeDirectory():
    """Slicer's pure-Python runtime files: $SLICER_RUNTIME_DIR, else ../shared/slicer/runtime beside the clone."""
    return Path(os.environ.get(RUNTIME_ENV) or REPOSITORY.parent / "shared" / "slicer" / "runtime")


def unavailableReason():
    """Why Slicer's MRML cannot run here, or None when it can."""
    if importlib.util.find_spec("slicer_core") is None:
        return "slicer-core is not installed (pip install -e '.[test]' installs it)"
    runtime = runtimeDirectory()
    if not (runtime / "slicer" / "ScriptedLoadableModule.py").is_file():
        return f"Slicer's runtime files are not in {runtime} (set ${RUNTIME_ENV})"
    return None


# ----------------------------------------------------------------------------- qt and ctk stand-ins

class _InertClass(type):
    """Class-level names of a stand-in Qt class: enum values (QSizePolicy.Preferred) are distinct flags, static
    functions (QApplication.setOverrideCursor) do nothing."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name[0].isupper():
            return 1 << (sum(map(ord, name)) % 30)
        return _Inert()


class _Inert(metaclass=_InertClass):
    """Anything widget code builds or calls: accepts every argument, attribute and call."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert()

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __bool__(self):
        return True

    def __len__(self):  # an empty text or list
        return 0

    def __iter__(self):
        return iter(())


class _InertModule(types.ModuleType):
    """A module whose every unknown name is an inert class of that name."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (_Inert,), {})
        setattr(self, name, cls)
        return cls


class QMessageBox(_Inert):
    """The standard buttons and icons with Qt's own values, so answers compare as in Slicer."""
    NoButton, Ok, Yes, No, Cancel, Close, Retry = 0x0, 0x400, 0x4000, 0x10000, 0x400000, 0x200000, 0x80000
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4


class QTimer:
    """A timer fired by `app.processEvents()`, as Qt's event loop fires it in Slicer."""

    def __init__(self, *args):
        self._interval = 0
        self._callbacks = []
        self.singleShot_ = False
        self._due = None

    def setInterval(self, msec):
        self._interval = msec

    def setSingleShot(self, value):
        self.singleShot_ = bool(value)

    def connect(self, signal, callback):
        self._callbacks.append(callback)

    def start(self, msec=None):
        if msec is not None:
            self._interval = msec
        self._due = time.monotonic() + self._interval / 1000.0
        _application.timers.add(self)

    def stop(self):
        self._due = None
        _application.timers.discard(self)

    def isActive(self):
        return self._due is not None

    def _fireIfDue(self, now):
        if self._due is None or now < self._due:
            return
        if self.singleShot_:
            self.stop()
        else:
            self._due = now + self._interval / 1000.0
        for callback in list(self._callbacks):
            callback()

    @staticmethod
    def singleShot(msec, callback):
        timer = QTimer()
        timer.setSingleShot(True)
        timer.connect("timeout()", callback)
        timer.start(msec)


class QSettings:
    """Application settings kept in memory for the session."""
    _values = {}

    def __init__(self, *args):
        pass

    def value(self, key, default=None):
        return self._values.get(key, default)

    def setValue(self, key, value):
        self._values[key] = value

    def contains(self, key):
        return key in self._values

    def remove(self, key):
        self._values.pop(key, None)


class StandInWidget(_Inert):
    """A widget of a module's .ui file: its class and name from the file, the attributes code sets kept (so a test
    reads what a label shows or whether a button is enabled), no Qt behind it. Its parameterNodeWrapper property
    is left unread: a test sets the parameter node's values as the GUI would."""

    def __init__(self, className="QWidget", name="", children=()):
        self.className, self.name, self.objectName = className, name, name
        self.children_ = list(children)
        self.text, self.enabled, self.visible, self.toolTip = "", True, True, ""

    def property(self, name):
        return None


def _loadUI(path):
    """slicer.util.loadUI without Qt: the .ui file is read (it must exist and parse) and its named widgets made."""
    import xml.etree.ElementTree as ElementTree

    if not os.path.isfile(path):
        raise RuntimeError(f"Could not load UI file: file not found {path}")
    root = ElementTree.parse(path).getroot().find("widget")
    children = [StandInWidget(element.get("class"), element.get("name")) for element in root.iter("widget")
                if element is not root and element.get("name")]
    return StandInWidget(root.get("class"), root.get("name"), children)


def _childWidgetVariables(widget):
    """slicer.util.childWidgetVariables on a stand-in .ui widget: each named child as an attribute."""
    ui = type("", (), {})()
    for child in widget.children_:
        setattr(ui, child.name, child)
    return ui


def _installPyTorchExtensionStandIn():
    """The PyTorch extension's PyTorchUtils: here torch is the one installed beside the engine."""
    module = types.ModuleType("PyTorchUtils")

    class PyTorchUtilsLogic:
        def torchInstalled(self):
            return importlib.util.find_spec("torch") is not None

        def installTorch(self, *args, **kwargs):
            return None  # nothing can be installed from a test

    module.PyTorchUtilsLogic = PyTorchUtilsLogic
    sys.modules.setdefault("PyTorchUtils", module)


def _installQtStandIns():
    qt = _InertModule("qt")
    qt.QMessageBox, qt.QTimer, qt.QSettings = QMessageBox, QTimer, QSettings
    sys.modules.setdefault("qt", qt)
    sys.modules.setdefault("ctk", _InertModule("ctk"))


# ----------------------------------------------------------------------------- the application

@dataclass
class Dialog:
    """A message box the user would have seen, and the button that closed it."""
    title: str
    text: str
    detailedText: str
    icon: int
    buttons: int
    answer: int

    @property
    def isError(self):
        return self.icon == QMessageBox.Critical


class _Environment:
    """The startup environment, as QProcessEnvironment offers it to slicer.util.startupEnvironment()."""

    def keys(self):
        return list(os.environ)

    def value(self, key):
        return os.environ.get(key, "")


class StandInModule:
    """A loaded module as `slicer.modules.<name>` shows it: name, path, and its logic."""

    def __init__(self, name, logicFactory, path=""):
        self.name, self.path = name, path
        self._logicFactory, self._logic = logicFactory, None
        self.title, self.categories, self.contributors, self.dependencies = name, [], [], []
        self.helpText = self.acknowledgementText = ""
        self.hidden = False
        self.icon = None

    def logic(self):
        if self._logic is None:
            self._logic = self._logicFactory()
        return self._logic

    def widgetRepresentation(self):
        return None  # widgets cannot be built without Qt


class _ModuleManager:
    def __init__(self, modules):
        self._modules = modules

    def module(self, name):
        return self._modules.get(name)

    def connect(self, *args):
        pass

    def disconnect(self, *args):
        pass


class IOManager:
    """What slicer.util's load and save functions ask of qSlicerCoreIOManager, done with Slicer's storage nodes
    and module logics (the readers and writers Slicer's IO plugins call)."""

    VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm")

    def __init__(self, application):
        self.app = application

    def fileType(self, fileName):
        name = str(fileName).lower()
        if name.endswith(".seg.nrrd") or name.endswith(".seg.nii.gz"):
            return "SegmentationFile"
        if name.endswith(".mrk.json"):
            return "MarkupsFile"
        if name.endswith((".csv", ".tsv")):
            return "TableFile"
        if name.endswith(".mrml"):
            return "SceneFile"
        if name.endswith(self.VOLUME_SUFFIXES):
            return "VolumeFile"
        return "NoFile"

    def loadNodes(self, fileType, properties, loadedNodes, userMessages):
        fileName = str(properties["fileName"])
        name = properties.get("name") or _stem(fileName)
        logic = self.app.moduleLogics
        if fileType == "VolumeFile":
            options = 1 if properties.get("labelmap") else 0
            options |= 2 if properties.get("center") else 0
            options |= 4 if properties.get("singleFile") else 0
            node = logic["Volumes"].AddArchetypeVolume(fileName, name, options)
        elif fileType == "SegmentationFile":
            node = logic["Segmentations"].LoadSegmentationFromFile(fileName, True, name)
        elif fileType == "MarkupsFile":
            nodeId = logic["Markups"].LoadMarkups(fileName, name)
            node = self.app.mrmlScene.GetNodeByID(nodeId) if nodeId else None
        elif fileType == "TableFile":
            node = logic["Tables"].AddTable(fileName, name)
        elif fileType == "SceneFile":
            self.app.mrmlScene.SetURL(fileName)
            return bool(self.app.mrmlScene.Import())
        else:
            userMessages.AddMessage(3, f"No reader for {fileName}")  # vtkCommand::ErrorEvent
            return False
        if node is None:
            userMessages.AddMessage(3, f"Could not read {fileName}")
            return False
        loadedNodes.AddItem(node)
        return True

    def fileWriterFileType(self, node):
        if node.IsA("vtkMRMLSegmentationNode"):
            return "SegmentationFile"
        if node.IsA("vtkMRMLMarkupsNode"):
            return "MarkupsFile"
        if node.IsA("vtkMRMLTableNode"):
            return "TableFile"
        if node.IsA("vtkMRMLVolumeNode"):
            return "VolumeFile"
        return "NoFile"

    def saveNodes(self, fileType, properties, userMessages):
        node = self.app.mrmlScene.GetNodeByID(properties["nodeID"])
        if node is None or not node.IsA("vtkMRMLStorableNode"):
            userMessages.AddMessage(3, f"Cannot save {properties.get('nodeID')}")
            return False
        storageNode = node.GetStorageNode()
        if storageNode is None:
            node.AddDefaultStorageNode()
            storageNode = node.GetStorageNode()
        storageNode.SetFileName(str(properties["fileName"]))
        return bool(storageNode.WriteData(node))


def _stem(fileName):
    name = os.path.basename(fileName)
    for suffix in (".seg.nrrd", ".mrk.json", ".nii.gz") + IOManager.VOLUME_SUFFIXES + (".csv", ".tsv"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def vtkCallData(method):
    """Observer with the event's vtkObject call data, as vtk.calldata_type(vtk.VTK_OBJECT) declares it."""
    import vtk

    return vtk.calldata_type(vtk.VTK_OBJECT)(method)


class Application:
    """`slicer.app`: the scene, application logic and module logics, as qSlicerCoreApplication sets them up."""

    applicationName = "3D Slicer"
    documentationBaseUrl = "https://slicer.readthedocs.io/en/latest/"

    def __init__(self, temporaryPath):
        import slicer
        import vtk

        self.temporaryPath = str(temporaryPath)
        self.testing = False
        self.dialogs = []
        self.answers = collections.deque()
        self.timers = set()

        self.mrmlScene = slicer.vtkMRMLScene()
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        self.mrmlScene.AddNode(crosshair)
        self._applicationLogic = slicer.vtkSlicerApplicationLogic()
        self._applicationLogic.SetMRMLScene(self.mrmlScene)
        self._applicationLogic.GetColorLogic().SetMRMLScene(self.mrmlScene)
        self._applicationLogic.GetColorLogic().AddDefaultColorNodes()
        self._applicationLogic.SetSliceLogics(vtk.vtkCollection())
        self._applicationLogic.SetViewLogics(vtk.vtkCollection())
        slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance().SetMRMLApplicationLogic(self._applicationLogic)
        slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance().SetMRMLApplicationLogic(self._applicationLogic)
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(self.mrmlScene)

        self.moduleLogics = {}
        self._applicationLogic.SetModuleLogic("Colors", self._applicationLogic.GetColorLogic())
        for name, className in (("Volumes", "vtkSlicerVolumesLogic"),
                                ("Markups", "vtkSlicerMarkupsLogic"),
                                ("Segmentations", "vtkSlicerSegmentationsModuleLogic"),
                                ("Tables", "vtkSlicerTablesLogic"), ("Models", "vtkSlicerModelsLogic"),
                                ("Transforms", "vtkSlicerTransformLogic"),
                                ("SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic")):
            logic = getattr(slicer, className)()
            logic.SetMRMLApplicationLogic(self._applicationLogic)
            logic.SetMRMLScene(self.mrmlScene)
            self._applicationLogic.SetModuleLogic(name, logic)
            self.moduleLogics[name] = logic
        self.moduleLogics["Colors"] = self._applicationLogic.GetColorLogic()
        self.modules = {name: StandInModule(name, (lambda logic=logic: logic))
                        for name, logic in self.moduleLogics.items()}
        self.mrmlScene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, self._onNodeAdded)
        self.mrmlScene.AddObserver(slicer.vtkMRMLScene.NodeAboutToBeRemovedEvent, self._onNodeAboutToBeRemoved)
        self._ioManager = IOManager(self)
        self._mainWindow = _InertModule("mainWindow").qSlicerMainWindow()
        self._mainWindow.objectName = "qSlicerMainWindow"

    @vtkCallData
    def _onNodeAdded(self, scene, event, node):
        """Data nodes get a subject hierarchy item, as qSlicerSubjectHierarchyPluginLogic gives them in Slicer."""
        import slicer

        if node.GetHideFromEditors() or not node.IsA("vtkMRMLStorableNode") or scene.IsImporting():
            return
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        if shNode and not shNode.GetItemByDataNode(node):
            shNode.CreateItem(shNode.GetSceneItemID(), node)

    @vtkCallData
    def _onNodeAboutToBeRemoved(self, scene, event, node):
        """A removed data node takes its subject hierarchy item with it, as in Slicer."""
        import slicer

        if scene.IsClosing():
            return
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        item = shNode.GetItemByDataNode(node) if shNode and node.IsA("vtkMRMLStorableNode") else 0
        if item:
            shNode.RemoveItem(item, False, False)

    # -- what slicer.util and module code ask of slicer.app
    def applicationLogic(self):
        return self._applicationLogic

    def coreIOManager(self):
        return self._ioManager

    def moduleManager(self):
        return _ModuleManager(self.modules)

    def testingEnabled(self):
        return self.testing

    def layoutManager(self):
        return None  # no views: code that shows things in the layout must cope, as without a main window

    def topLevelWidgets(self):
        return [self._mainWindow]

    def startupEnvironment(self):
        return _Environment()

    def translate(self, context, text):
        return text

    def moduleDocumentationUrl(self, moduleName):
        return self.documentationBaseUrl

    def userSettings(self):
        return QSettings()

    settings = userSettings

    def connect(self, *args):
        pass

    def setOverrideCursor(self, *args):
        pass

    def restoreOverrideCursor(self):
        pass

    def pauseRender(self):
        pass

    def resumeRender(self):
        pass

    def processEvents(self, *args):
        now = time.monotonic()
        for timer in list(self.timers):
            timer._fireIfDue(now)

    def processEventsUntil(self, condition, timeout=120.0):
        """Run the event loop until `condition()` holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.processEvents()
            time.sleep(0.02)
        return True

    # -- dialogs
    def showMessageBox(self, text, parent=None, windowTitle="", detailedText="", icon=QMessageBox.NoIcon,
                       standardButtons=QMessageBox.Ok, **kwargs):
        """slicer.util.messageBox: recorded; a question takes the test's next answer, else its safe button."""
        if self.answers:
            answer = self.answers.popleft()
        elif standardButtons & QMessageBox.No:
            answer = QMessageBox.No
        elif standardButtons & QMessageBox.Cancel:
            answer = QMessageBox.Cancel
        else:
            answer = QMessageBox.Ok
        self.dialogs.append(Dialog(windowTitle or "", str(text), str(detailedText or ""),
                                   icon, standardButtons, answer))
        return answer

    def errors(self):
        return [dialog for dialog in self.dialogs if dialog.isError]

    def resetScene(self):
        """Close the scene as File > Close Scene does, and forget the dialogs."""
        self.mrmlScene.Clear()
        self.dialogs.clear()
        self.answers.clear()


_application = None


def start():
    """Set up slicer.app, slicer.mrmlScene, slicer.modules and the project's modules; once per process."""
    global _application
    if _application is not None:
        return _application
    reason = unavailableReason()
    if reason:
        raise RuntimeError(reason)
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    _installQtStandIns()
    _installPyTorchExtensionStandIn()
    import slicer

    runtime = runtimeDirectory()
    slicer.__path__.append(str(runtime / "slicer"))
    sys.path.insert(0, str(runtime))
    import slicer.util

    work = Path(tempfile.mkdtemp(prefix="SpineAnalysisSlicerTests-"))
    _application = Application(work / "temp")
    _application.workFolder = work  # the temporary path and the PythonSlicer launcher; stop() removes it
    os.makedirs(_application.temporaryPath)
    slicer.app = _application
    slicer.mrmlScene = _application.mrmlScene
    # No object is a scripted-module wrapper here, so getModuleLogic asks the module for its logic.
    slicer.qSlicerScriptedLoadableModule = type("qSlicerScriptedLoadableModule", (), {})
    slicer.__getattr__ = _qtWidgetClass  # qMRMLNodeComboBox and the other Qt widget classes, inert
    slicer.util.messageBox = _application.showMessageBox
    slicer.util.tempDirectory = _tempDirectory
    slicer.util.loadUI, slicer.util.childWidgetVariables = _loadUI, _childWidgetVariables
    slicer.modules = types.SimpleNamespace()
    for name, module in _application.modules.items():
        setattr(slicer.modules, name.lower(), module)

    _pythonSlicerOnPath(work / "bin")
    for name in PROJECT_MODULES:
        sys.path.insert(0, str(REPOSITORY / name))
    for name in PROJECT_MODULES:
        loadProjectModule(name)
    logging.getLogger().setLevel(logging.INFO)
    return _application


def stop():
    """Undo what start() left outside this process, as quitting Slicer does: the project modules' engine
    processes end and the application's folder (its temporary path, the PythonSlicer launcher) is removed.
    Call it once, when the process is done with the application."""
    if _application is None:
        return
    for name in PROJECT_MODULES:
        module = _application.modules.get(name)
        logic = module._logic if module is not None else None
        if logic is not None and hasattr(logic, "shutdown"):
            logic.shutdown()
    launcherFolder = str(_application.workFolder / "bin")
    os.environ["PATH"] = os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                                         if folder != launcherFolder)
    shutil.rmtree(_application.workFolder, ignore_errors=True)


def _qtWidgetClass(name):
    """An inert class for the Qt widget names of the `slicer` namespace (qMRML..., qSlicer...)."""
    if not name.startswith("q"):
        raise AttributeError(f"module 'slicer' has no attribute '{name}'")
    return getattr(sys.modules["qt"], name)


def _tempDirectory(key="__SlicerTemp__", tempDir=None, includeDateTime=True):
    """slicer.util.tempDirectory without Qt: a new folder under the application's temporary path."""
    parent = tempDir or _application.temporaryPath
    if not includeDateTime:
        path = os.path.join(parent, key)
        os.makedirs(path, exist_ok=True)
        return path
    return tempfile.mkdtemp(prefix=key + time.strftime("%Y-%m-%d_%H+%M+%S"), dir=parent)


def _pythonSlicerOnPath(folder):
    """`PythonSlicer` runs this interpreter, as Slicer's launcher runs Slicer's Python."""
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / "PythonSlicer"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    launcher.chmod(0o755)
    os.environ["PATH"] = str(folder) + os.pathsep + os.environ.get("PATH", "")
    assert shutil.which("PythonSlicer") == str(launcher)


def moduleWidget(name):
    """The module's widget, set up as when its panel is first shown (`setup()`, then `enter()`), on stand-in
    widgets: its handlers (onApplyButton...) run for real against the scene, the logic and the dialogs."""
    pythonModule = sys.modules[name]
    widget = getattr(pythonModule, name + "Widget")(StandInWidget("qMRMLWidget", name))
    widget.setup()
    widget.enter()
    return widget


def moduleLogicFixture(name):
    """A pytest fixture (scope "module") for a test file: the module `name`'s logic, as slicer.util.getModuleLogic
    gives it; its engine stays warm for the whole file and is shut down after it. Use as
    `logic = harness.moduleLogicFixture("SpineAnalysis")`."""
    import pytest

    @pytest.fixture(scope="module")
    def logic(app):
        import slicer

        moduleLogic = slicer.util.getModuleLogic(name)
        yield moduleLogic
        moduleLogic.shutdown()

    return logic


def loadProjectModule(name):
    """Import `name`.py from its folder and register it as Slicer's module factory does."""
    import slicer

    pythonModule = importlib.import_module(name)
    parent = StandInModule(name, getattr(pythonModule, name + "Logic"), str(REPOSITORY / name / f"{name}.py"))
    pythonModule.__dict__[name](parent)  # sets title, categories, help; registers the self-test
    _application.modules[name] = parent
    setattr(slicer.modules, name.lower(), parent)
    return parent


# ----------------------------------------------------------------------------- what tests compare

def nodeFingerprint(node):
    """What a user sees of a data node: class, name, attributes, references, transform, and a digest of its data
    (voxels and geometry, control points, segments, table cells, mesh points).
    Equal before and after means unchanged."""
    import hashlib

    import numpy as np
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    digest = hashlib.sha256()

    def add(value):
        digest.update(repr(value).encode())

    def addArray(vtkArray):
        if vtkArray is not None and vtkArray.GetNumberOfTuples():
            digest.update(np.ascontiguousarray(vtk_to_numpy(vtkArray)).tobytes())

    add((node.GetClassName(), node.GetName(), node.GetHideFromEditors()))
    add(sorted((name, node.GetAttribute(name)) for name in node.GetAttributeNames() or ()))
    references = []
    for index in range(node.GetNumberOfNodeReferenceRoles()):
        role = node.GetNthNodeReferenceRole(index)
        references.append((role, [node.GetNthNodeReferenceID(role, i)
                                  for i in range(node.GetNumberOfNodeReferences(role))]))
    add(sorted(references))
    if node.IsA("vtkMRMLTransformableNode"):
        add(node.GetTransformNodeID())
    if node.IsA("vtkMRMLVolumeNode"):
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        add([matrix.GetElement(row, column) for row in range(4) for column in range(4)])
        if node.GetImageData():
            add(node.GetImageData().GetDimensions())
            addArray(node.GetImageData().GetPointData().GetScalars())
    elif node.IsA("vtkMRMLMarkupsNode"):
        for index in range(node.GetNumberOfControlPoints()):
            add((node.GetNthControlPointLabel(index),
                 tuple(round(v, 6) for v in node.GetNthControlPointPosition(index))))
    elif node.IsA("vtkMRMLSegmentationNode"):
        segmentation = node.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            segment = segmentation.GetSegment(segmentId)
            add((segmentId, segment.GetName(), segment.GetColor()))
            labelmap = segment.GetRepresentation(_binaryLabelmapName())
            if labelmap is not None:
                add(labelmap.GetExtent())
                addArray(labelmap.GetPointData().GetScalars())
    elif node.IsA("vtkMRMLTableNode"):
        table = node.GetTable()
        for column in range(table.GetNumberOfColumns()):
            array = table.GetColumn(column)
            add((array.GetName(), [array.GetVariantValue(row).ToString() for row in range(table.GetNumberOfRows())]))
    elif node.IsA("vtkMRMLModelNode") and node.GetPolyData():
        addArray(node.GetPolyData().GetPoints().GetData() if node.GetPolyData().GetPoints() else None)
    return digest.hexdigest()


def _binaryLabelmapName():
    import slicer

    return slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()


def userNodes(scene):
    """{node ID: fingerprint} of the scene's data nodes (not display, storage, singleton or parameter nodes)."""
    nodes = {}
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.GetSingletonTag() or not node.IsA("vtkMRMLStorableNode"):
            continue
        nodes[node.GetID()] = nodeFingerprint(node)
    return nodes


def tableRows(tableNode):
    """A table node as the user reads it: one dict per row, column name -> value (numbers as floats)."""
    table = tableNode.GetTable()
    rows = []
    for row in range(table.GetNumberOfRows()):
        values = {}
        for column in range(table.GetNumberOfColumns()):
            array = table.GetColumn(column)
            value = array.GetVariantValue(row)
            values[array.GetName()] = value.ToDouble() if array.IsNumeric() else value.ToString()
        rows.append(values)
    return rows


def drag(pointsNode, index, ras, steps=3, whileDragging=None):
    """Move control point `index` to `ras` as a mouse drag in a view does: the interaction widget's start event,
    several moves (`whileDragging()` after each), its end event."""
    import numpy as np
    import slicer

    start = np.array(pointsNode.GetNthControlPointPosition(index))
    pointsNode.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent)
    for fraction in np.linspace(0, 1, steps + 1)[1:]:
        pointsNode.SetNthControlPointPosition(index, *(start + fraction * (np.asarray(ras) - start)))
        if whileDragging:
            whileDragging()
    pointsNode.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)


def saveAndReloadScene(folder):
    """Save the scene as File > Save does (every data node's file, then the .mrml), close it, and load it again."""
    import slicer

    scene = _application.mrmlScene
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.IsA("vtkMRMLStorableNode") and not node.GetHideFromEditors() and node.GetSingletonTag() is None:
            suffix = {"VolumeFile": ".nrrd", "SegmentationFile": ".seg.nrrd", "MarkupsFile": ".mrk.json",
                      "TableFile": ".tsv"}.get(_application.coreIOManager().fileWriterFileType(node))
            if suffix and not node.IsA("vtkMRMLModelNode"):
                assert slicer.util.saveNode(node, str(folder / f"{node.GetID()}{suffix}")), node.GetName()
    sceneFile = folder / "scene.mrml"
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(sceneFile))
    assert scene.Commit(), f"could not write {sceneFile}"
    scene.Clear()
    scene.SetURL(str(sceneFile))
    assert scene.Import(), f"could not read {sceneFile}"
    return sceneFile
