import logging
from typing import Union

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
from SpineCommonLib.module import describeModule
from SpineCommonLib.widgets import ParameterNodeWidgetMixin


#
# SpineAnalysis
#


class SpineAnalysis(ScriptedLoadableModule):
    """Vertebral body bone metrics on CT."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("Spine Analysis"), _("""
Vertebral body metrics on CT: for every vertebra of a label map or segmentation, its volume and
Hounsfield-unit statistics (mean, standard deviation, median, 5th/95th percentiles, range) in a table.
An optional seed point marks the vertebra of interest.
"""))


#
# SpineAnalysisParameterNode
#


@parameterNodeWrapper
class SpineAnalysisParameterNode:
    """
    inputVolume - CT volume (Hounsfield units).
    vertebraLabels - one label per vertebra (label map volume or segmentation).
    seedPoint - optional point inside the vertebra of interest.
    metricsTable - output table; a new one is created if none is selected.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    vertebraLabels: Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode]
    seedPoint: vtkMRMLMarkupsFiducialNode
    metricsTable: vtkMRMLTableNode


#
# SpineAnalysisWidget
#


class SpineAnalysisWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupModule(self.resourcePath("UI/SpineAnalysis.ui"), SpineAnalysisLogic())

        # One seed point is enough: each click replaces the previous point.
        self.ui.seedPlaceWidget.buttonsVisible = False
        self.ui.seedPlaceWidget.placeButton().show()
        self.ui.seedPlaceWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceSingleMarkup

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)

        self.initializeParameterNode()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.inputVolume and self._parameterNode.vertebraLabels)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Compute vertebral body metrics") if ready \
            else _("Select a CT volume and the vertebra labels")

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute vertebral body metrics."), waitCursor=True):
            dependencies.ensureDependencies(dependencies.CT_METRICS, requester=_("Spine Analysis"))
            tableNode = self.logic.process(
                self._parameterNode.inputVolume,
                self._parameterNode.vertebraLabels,
                seedPoint=self._parameterNode.seedPoint,
                tableNode=self._parameterNode.metricsTable)
            self._parameterNode.metricsTable = tableNode
            rows = tableNode.GetNumberOfRows()
            seedLabel = tableNode.GetAttribute(SpineAnalysisLogic.SEED_ATTRIBUTE)
            message = _("{count} vertebrae measured.").format(count=rows)
            if seedLabel:
                message += " " + _("Seed point lies in {name}.").format(name=seedLabel)
            elif self.logic.seedPositionInVolume(self._parameterNode.seedPoint, self._parameterNode.inputVolume):
                message += " " + _("The seed point lies outside every vertebra.")
            self.ui.statusLabel.text = message
            tables.showTable(tableNode)


#
# SpineAnalysisLogic
#


class SpineAnalysisLogic(ScriptedLoadableModuleLogic):
    """Vertebral body metrics from a CT and vertebra labels; usable without the GUI:

        logic = slicer.util.getModuleLogic("SpineAnalysis")
        table = logic.process(ctVolumeNode, labelMapOrSegmentationNode, seedPoint=None, tableNode=None)
    """

    SEED_ATTRIBUTE = "SpineAnalysis.SeedVertebra"
    SEED_COLUMN = "at_seed"
    TITLES = {
        "label": "Label", "name": "Vertebra", "voxel_count": "Voxels", "volume_ml": "Volume",
        "hu_mean": "Mean", "hu_std": "SD", "hu_median": "Median", "hu_p05": "P5", "hu_p95": "P95",
        "hu_min": "Min", "hu_max": "Max", SEED_COLUMN: "At seed",
    }
    UNITS = {"volume_ml": "mL", "hu_mean": "HU", "hu_std": "HU", "hu_median": "HU", "hu_p05": "HU",
             "hu_p95": "HU", "hu_min": "HU", "hu_max": "HU"}

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineAnalysisParameterNode(super().getParameterNode())

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

        i, j, k = np.round(ras_to_ijk(np.asarray(positionRAS, dtype=float), volumes.ijkToRasMatrix(volumeNode))).astype(int)
        labels = sitk.GetArrayViewFromImage(labelImage)  # indexed (k, j, i)
        if 0 <= k < labels.shape[0] and 0 <= j < labels.shape[1] and 0 <= i < labels.shape[2]:
            return int(labels[k, j, i])
        return 0

    def process(self, ctVolume, vertebraLabels, seedPoint=None, tableNode=None):
        """Measure every labelled vertebra; returns the table node (created if `tableNode` is None).

        :param ctVolume: vtkMRMLScalarVolumeNode in Hounsfield units
        :param vertebraLabels: vtkMRMLLabelMapVolumeNode or vtkMRMLSegmentationNode, one label per vertebra
        :param seedPoint: optional vtkMRMLMarkupsFiducialNode; its last point marks the vertebra of interest
        :param tableNode: vtkMRMLTableNode to overwrite, or None for a new table
        """
        from spine_analysis.ct.bone_metrics import bone_metrics

        ctImage = volumes.ctImageFromVolume(ctVolume)
        labelImage, labelNames = volumes.labelImageFromNode(vertebraLabels, ctImage, ctVolume)
        metrics = bone_metrics(ctImage, labelImage, label_names=labelNames)
        if not metrics:
            raise ValueError(f"No vertebra labels found in '{vertebraLabels.GetName()}' inside the CT.")
        rows = [metric.to_dict() for metric in metrics]

        seedLabel = 0
        seedPosition = self.seedPositionInVolume(seedPoint, ctVolume)
        if seedPosition is not None:
            seedLabel = self.labelAtPosition(labelImage, ctVolume, seedPosition)
            for row in rows:
                row[self.SEED_COLUMN] = row.get("label") == seedLabel

        if not tableNode:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(f"{ctVolume.GetName()} vertebral body metrics"))
        tables.updateTableFromRows(tableNode, rows, titles=self.TITLES, units=self.UNITS)
        seedName = next((str(row.get("name") or row.get("label")) for row in rows if seedLabel and row.get("label") == seedLabel), "")
        tableNode.SetAttribute(self.SEED_ATTRIBUTE, seedName)
        logging.info(f"SpineAnalysis: measured {len(rows)} vertebrae of {ctVolume.GetName()}")
        return tableNode


#
# SpineAnalysisTest
#


class SpineAnalysisTest(ScriptedLoadableModuleTest):
    """Bone metrics of a tiny synthetic CT with two box-shaped "vertebrae" of known intensity."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LabelMapAndSegmentation()

    def _syntheticCase(self):
        import numpy as np

        ct = np.full((24, 30, 32), -1000, dtype=np.int16)  # (k, j, i): air
        labels = np.zeros(ct.shape, dtype=np.uint8)
        ct[4:10, 8:20, 8:24] = 300   # vertebra 1: 6 x 12 x 16 voxels of 300 HU
        labels[4:10, 8:20, 8:24] = 1
        ct[14:20, 8:20, 8:24] = 150  # vertebra 2: 150 HU
        labels[14:20, 8:20, 8:24] = 2
        ijkToRAS = np.array([[-0.8, 0, 0, 12.0], [0, -0.7, 0, -30.0], [0, 0, 1.5, 100.0], [0, 0, 0, 1]])
        ctNode = slicer.util.addVolumeFromArray(ct, ijkToRAS=ijkToRAS, name="SyntheticCT")
        labelNode = slicer.util.addVolumeFromArray(labels, ijkToRAS=ijkToRAS, name="SyntheticVertebrae",
                                                   nodeClassName="vtkMRMLLabelMapVolumeNode")
        voxelVolumeMl = 0.8 * 0.7 * 1.5 / 1000.0
        return ctNode, labelNode, 6 * 12 * 16, voxelVolumeMl, ijkToRAS

    def _column(self, tableNode, name):
        table = tableNode.GetTable()
        column = table.GetColumnByName(name)
        self.assertIsNotNone(column, f"column {name} missing")
        return [column.GetValue(row) for row in range(table.GetNumberOfRows())]

    def test_LabelMapAndSegmentation(self):
        import numpy as np

        self.delayDisplay("Bone metrics from a label map")
        ctNode, labelNode, voxels, voxelVolumeMl, ijkToRAS = self._syntheticCase()
        logic = SpineAnalysisLogic()

        # Seed point in the centre of vertebra 2 (voxel i=16, j=14, k=17).
        seedRAS = (ijkToRAS @ np.array([16, 14, 17, 1.0]))[:3]
        seedNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seed")
        seedNode.AddControlPoint(seedRAS)

        tableNode = logic.process(ctNode, labelNode, seedPoint=seedNode)
        self.assertEqual(tableNode.GetNumberOfRows(), 2)
        self.assertEqual([int(v) for v in self._column(tableNode, "label")], [1, 2])
        self.assertEqual([int(v) for v in self._column(tableNode, "voxel_count")], [voxels, voxels])
        np.testing.assert_allclose(self._column(tableNode, "hu_mean"), [300.0, 150.0], atol=1e-3)
        np.testing.assert_allclose(self._column(tableNode, "hu_std"), [0.0, 0.0], atol=1e-3)
        np.testing.assert_allclose(self._column(tableNode, "volume_ml"), [voxels * voxelVolumeMl] * 2, rtol=1e-3)
        self.assertEqual(self._column(tableNode, SpineAnalysisLogic.SEED_COLUMN), ["no", "yes"])
        self.assertTrue(tableNode.GetAttribute(SpineAnalysisLogic.SEED_ATTRIBUTE))

        self.delayDisplay("Same metrics from a segmentation, written into the same table")
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "SyntheticSegmentation")
        slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelNode, segmentationNode)
        sameTable = logic.process(ctNode, segmentationNode, tableNode=tableNode)
        self.assertIs(sameTable, tableNode)
        self.assertEqual(tableNode.GetNumberOfRows(), 2)
        self.assertEqual([int(v) for v in self._column(tableNode, "voxel_count")], [voxels, voxels])
        np.testing.assert_allclose(sorted(self._column(tableNode, "hu_mean")), [150.0, 300.0], atol=1e-3)

        self.delayDisplay("Test passed")
