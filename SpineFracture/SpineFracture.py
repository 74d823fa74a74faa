import logging
from typing import Union

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
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

from SpineCommonLib import dependencies, tables, volumes
from SpineCommonLib.module import describeModule
from SpineCommonLib.widgets import ParameterNodeWidgetMixin


#
# SpineFracture
#


class SpineFracture(ScriptedLoadableModule):
    """Vertebral fracture grading (Genant semi-quantitative method) on CT."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("Spine Fracture"), _("""
Vertebral compression fractures on CT: for every vertebra of a label map or segmentation, the anterior,
middle and posterior vertebral body heights and the Genant grade (0 normal, 1 mild, 2 moderate,
3 severe) with the deformity type (wedge, biconcave, crush).
"""), _("Grading follows Genant et al., J Bone Miner Res 1993;8:1137-48."))


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


class SpineFractureWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupModule(self.resourcePath("UI/SpineFracture.ui"), SpineFractureLogic())
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.inputVolume and self._parameterNode.vertebraLabels)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Measure vertebral heights and grade fractures") if ready \
            else _("Select a CT volume and the vertebra labels")

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

    def process(self, ctVolume, vertebraLabels, tableNode=None):
        """Grade every labelled vertebra; returns the table node (created if `tableNode` is None).

        :param ctVolume: vtkMRMLScalarVolumeNode (the CT; defines the grid segmentations are sampled on)
        :param vertebraLabels: vtkMRMLLabelMapVolumeNode or vtkMRMLSegmentationNode, one label per vertebra
        :param tableNode: vtkMRMLTableNode to overwrite, or None for a new table
        """
        from spine_analysis.ct.genant import grade_vertebrae

        ctImage = volumes.ctImageFromVolume(ctVolume)
        labelImage, labelNames = volumes.labelImageFromNode(vertebraLabels, ctImage, ctVolume)
        rows = grade_vertebrae(labelImage, labelNames)
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
