import logging
from typing import Union

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
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
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

from SpineAnalysisLib import dependencies, tables, volumes


#
# SpineFracture
#


class SpineFracture(ScriptedLoadableModule):
    """Vertebral fracture grading (Genant semi-quantitative method) on CT."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Spine Fracture")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineAnalysis developers"]
        self.parent.helpText = _("""
Vertebral compression fractures on CT: for every vertebra of a label map or segmentation, the anterior,
middle and posterior vertebral body heights and the Genant grade (0 normal, 1 mild, 2 moderate,
3 severe) with the deformity type (wedge, biconcave, crush).
See the <a href="https://github.com/spine-analysis/SlicerSpineAnalysis">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the SpineAnalysis developers. Grading follows Genant et al., J Bone Miner Res 1993;8:1137-48.
Computation is done by the open-source <code>spine_analysis</code> Python package bundled with this extension.
""")


#
# SpineFractureParameterNode
#


@parameterNodeWrapper
class SpineFractureParameterNode:
    """
    inputVolume - CT volume.
    vertebraLabels - one label per vertebra (label map volume or segmentation).
    gradesTable - output table; a new one is created if none is selected.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    vertebraLabels: Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode]
    gradesTable: vtkMRMLTableNode


#
# SpineFractureWidget
#


class SpineFractureWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineFracture.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineFractureLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            for volumeNode in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                    self._parameterNode.inputVolume = volumeNode
                    break

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        if self._parameterNode and self._parameterNode.inputVolume and self._parameterNode.vertebraLabels:
            self.ui.applyButton.toolTip = _("Measure vertebral heights and grade fractures")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.toolTip = _("Select a CT volume and the vertebra labels")
            self.ui.applyButton.enabled = False

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to grade vertebral fractures."), waitCursor=True):
            dependencies.ensureDependencies(dependencies.CT_METRICS, requester=_("Spine Fracture"))
            tableNode = self.logic.process(
                self._parameterNode.inputVolume,
                self._parameterNode.vertebraLabels,
                tableNode=self._parameterNode.gradesTable)
            self._parameterNode.gradesTable = tableNode
            hasGrades = tableNode.GetTable().GetColumnByName("grade") is not None
            fractured = int((slicer.util.arrayFromTableColumn(tableNode, "grade") > 0).sum()) if hasGrades else 0
            self.ui.statusLabel.text = _("{count} vertebrae graded; {fractured} with a deformity (Genant grade 1 or more).").format(
                count=tableNode.GetNumberOfRows(), fractured=fractured)
            tables.showTable(tableNode)


#
# SpineFractureLogic
#


class SpineFractureLogic(ScriptedLoadableModuleLogic):
    """Genant grading of every labelled vertebra; usable without the GUI:

        logic = slicer.util.getModuleLogic("SpineFracture")
        table = logic.process(ctVolumeNode, labelMapOrSegmentationNode, tableNode=None)
    """

    TITLES = {
        "label": "Label", "vertebra": "Vertebra", "grade": "Genant grade", "grade_label": "Grade",
        "height_loss_pct": "Height loss", "deformity": "Deformity", "anterior_mm": "Anterior height",
        "middle_mm": "Middle height", "posterior_mm": "Posterior height", "reference_mm": "Reference height",
        "note": "Note",
    }
    UNITS = {"anterior_mm": "mm", "middle_mm": "mm", "posterior_mm": "mm", "reference_mm": "mm", "height_loss_pct": "%"}

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineFractureParameterNode(super().getParameterNode())

    def gradeVertebrae(self, labelImage, labelNames=None):
        """One row per label value: Genant grade and the heights (mm) it rests on; a vertebra that cannot be
        measured gets a note instead."""
        import numpy as np
        import SimpleITK as sitk
        from spine_analysis.errors import SpineAnalysisError
        from spine_analysis.genant import genant_grade, vertebral_heights

        rows = []
        for value in np.unique(sitk.GetArrayViewFromImage(labelImage)):
            value = int(value)
            if value == 0:
                continue
            row = {"label": value, "vertebra": (labelNames or {}).get(value, f"label {value}")}
            mask = sitk.Cast(labelImage == value, sitk.sitkUInt8)
            try:
                anterior, middle, posterior = vertebral_heights(mask)
                grade = genant_grade(anterior, middle, posterior)
            except SpineAnalysisError as error:
                row["note"] = str(error)
                rows.append(row)
                continue
            for key, item in grade.to_dict().items():  # grade, label, height_loss_pct, deformity, heights (mm)
                row["grade_label" if key == "label" else key] = item
            rows.append(row)
        return rows

    def process(self, ctVolume, vertebraLabels, tableNode=None):
        """Grade every labelled vertebra; returns the table node (created if `tableNode` is None).

        :param ctVolume: vtkMRMLScalarVolumeNode (the CT; defines the grid segmentations are sampled on)
        :param vertebraLabels: vtkMRMLLabelMapVolumeNode or vtkMRMLSegmentationNode, one label per vertebra
        :param tableNode: vtkMRMLTableNode to overwrite, or None for a new table
        """
        ctImage = volumes.ctImageFromVolume(ctVolume)
        labelImage, labelNames = volumes.labelImageFromNode(vertebraLabels, ctImage, ctVolume)
        rows = self.gradeVertebrae(labelImage, labelNames)
        if not rows:
            raise ValueError(f"No vertebra labels found in '{vertebraLabels.GetName()}' inside the CT.")
        if not tableNode:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(f"{ctVolume.GetName()} fracture grades"))
        tables.updateTableFromRows(tableNode, rows, titles=self.TITLES, units=self.UNITS)
        logging.info(f"SpineFracture: graded {len(rows)} vertebrae of {ctVolume.GetName()}")
        return tableNode


#
# SpineFractureTest
#


class SpineFractureTest(ScriptedLoadableModuleTest):
    """Genant grading of a tiny synthetic label map: an intact box and an anterior wedge."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_BoxAndWedge()

    def test_BoxAndWedge(self):
        import numpy as np

        self.delayDisplay("Synthetic vertebrae: a box and an anterior wedge")
        # IJK axes along R, A, S (array order k, j, i): j grows anteriorly, k superiorly.
        shape = (44, 40, 30)
        labels = np.zeros(shape, dtype=np.uint8)
        labels[2:18, 8:32, 5:25] = 1                  # box: 16 slices (16 mm) tall everywhere
        posterior, anterior = 16, 5                    # wedge: about 70 % anterior height loss at the margin
        for j in range(8, 32):
            height = int(round(posterior + (anterior - posterior) * (j - 8) / (31 - 8)))
            labels[24:24 + height, j, 5:25] = 2
        ct = np.where(labels > 0, 250, -1000).astype(np.int16)
        ijkToRAS = np.array([[0.8, 0, 0, -12.0], [0, 0.8, 0, 40.0], [0, 0, 1.0, -200.0], [0, 0, 0, 1]])
        ctNode = slicer.util.addVolumeFromArray(ct, ijkToRAS=ijkToRAS, name="SyntheticCT")
        labelNode = slicer.util.addVolumeFromArray(labels, ijkToRAS=ijkToRAS, name="SyntheticVertebrae",
                                                   nodeClassName="vtkMRMLLabelMapVolumeNode")

        tableNode = SpineFractureLogic().process(ctNode, labelNode)
        self.assertEqual(tableNode.GetNumberOfRows(), 2)
        grades = slicer.util.arrayFromTableColumn(tableNode, "grade")
        anteriorHeights = slicer.util.arrayFromTableColumn(tableNode, "anterior_mm")
        posteriorHeights = slicer.util.arrayFromTableColumn(tableNode, "posterior_mm")

        self.delayDisplay("The box is normal")
        self.assertEqual(int(grades[0]), 0)
        self.assertAlmostEqual(float(anteriorHeights[0]), float(posteriorHeights[0]), delta=1.0)
        self.assertAlmostEqual(float(posteriorHeights[0]), 16.0, delta=1.5)

        self.delayDisplay("The wedge is a moderate or severe deformity")
        self.assertLess(float(anteriorHeights[1]), float(posteriorHeights[1]) - 4.0)
        self.assertGreaterEqual(int(grades[1]), 2)

        self.delayDisplay("Test passed")
