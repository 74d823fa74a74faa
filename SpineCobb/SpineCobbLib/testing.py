"""SpineCobb's Slicer tests: glue tests on the engine's synthetic radiograph (the geometry is tested in the engine).

SpineCobbTest in SpineCobb.py runs them with `logicClass` set to SpineCobbLogic, so that this file does not
import the module file.
"""
import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from SpineCommonLib import dependencies
from SpineCobbLib import detection, outputs


class SpineCobbTestCase(ScriptedLoadableModuleTest):
    #: The module's logic class (SpineCobbLogic), set by the subclass in SpineCobb.py.
    logicClass = None

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ComputeFromLandmarks()
        self.setUp()
        self.test_DetectionEndToEnd()

    def _syntheticRadiograph(self):
        import numpy as np

        if dependencies.missingPackages(["skimage"]):
            self.skipTest("scikit-image is needed to render the synthetic radiograph")
        from spine_analysis.xray.synthetic import example_case

        image, landmarks, description = example_case()
        # A detector-like geometry: 0.15 mm pixels, rows running inferiorly, an arbitrary origin.
        ijkToRas = np.array([[-0.15, 0.0, 0.0, 35.0],
                             [0.0, 0.0, 1.0, -12.5],
                             [0.0, -0.15, 0.0, 260.0],
                             [0.0, 0.0, 0.0, 1.0]])
        volumeNode = slicer.util.addVolumeFromArray(image[np.newaxis], ijkToRAS=ijkToRas, name="SyntheticRadiograph")
        self.delayDisplay(f"Synthetic radiograph: {description}")
        return volumeNode, image, landmarks

    def _tableColumn(self, tableNode, name):
        column = tableNode.GetTable().GetColumnByName(name)
        self.assertIsNotNone(column, f"table column {name} missing")
        return [column.GetValue(row) for row in range(tableNode.GetNumberOfRows())]

    def _assertShowsResult(self, logic, landmarksNode, expected):
        """Line nodes and table of `landmarksNode` show `expected` (a CobbResult)."""
        import numpy as np

        ijkToRas = outputs.ijkToRasMatrix(logic.inputVolume(landmarksNode))
        lines = logic.endplateLineNodes(landmarksNode)
        self.assertEqual(len(lines), 2 * len(expected.curves))
        for index, curve in enumerate(expected.curves):
            for line, endplate in ((lines[2 * index], curve.upper_endplate),
                                   (lines[2 * index + 1], curve.lower_endplate)):
                self.assertIn(f"{curve.name} {curve.angle_deg:.1f}°", line.GetName())
                self.assertTrue(line.GetLocked())
                self.assertFalse(line.GetMeasurement("length").GetEnabled())
                # Drawn across and beyond the spine: the endplate's own width again past each of its ends.
                drawn = outputs.rasToPixels(slicer.util.arrayFromMarkupsControlPoints(line), ijkToRas)
                left, right = sorted(np.asarray(endplate, dtype=float), key=lambda point: point[0])
                np.testing.assert_allclose(drawn, [2 * left - right, 2 * right - left], atol=1e-4)
        tableNode = logic.tableNode(landmarksNode)
        self.assertEqual(tableNode.GetNumberOfRows(), len(expected.curves))
        self.assertEqual(self._tableColumn(tableNode, "curve"), [curve.name for curve in expected.curves])
        np.testing.assert_allclose(self._tableColumn(tableNode, "angle"),
                                   [curve.angle_deg for curve in expected.curves], atol=1e-6)

    def test_ComputeFromLandmarks(self):
        import json
        import shutil

        import numpy as np
        from spine_analysis.xray.cobb import analyse
        from spine_analysis.xray.landmarks import SpineLandmarks

        volumeNode, image, landmarks = self._syntheticRadiograph()
        logic = self.logicClass()

        self.delayDisplay("Known landmarks to markups, lines and table")
        landmarksNode = logic.computeFromLandmarks(volumeNode, landmarks)
        self.assertEqual(landmarksNode.GetNumberOfControlPoints(), 68)
        self.assertTrue(landmarksNode.GetFixedNumberOfControlPoints())
        self.assertEqual([landmarksNode.GetNthControlPointLabel(i) for i in range(68)], landmarks.labels())
        self.assertEqual(landmarksNode.GetNthControlPointLabel(0), f"{landmarks.levels[0]} superior-left")
        ijkToRas = outputs.ijkToRasMatrix(volumeNode)
        np.testing.assert_allclose(
            outputs.rasToPixels(slicer.util.arrayFromMarkupsControlPoints(landmarksNode), ijkToRas),
            landmarks.flat, atol=1e-6)
        expected = analyse(landmarks, image.shape[0], patient_right_on_image_left=True)
        self.assertTrue(expected.curves, "the synthetic case should have at least one curve")
        self._assertShowsResult(logic, landmarksNode, expected)
        self.assertIsNotNone(logic.outlineModelNode(landmarksNode))
        self.assertFalse(logic.isEdited(landmarksNode))

        self.delayDisplay("Dragging a corner: lines follow during the drag, the table when it ends")
        main = max(expected.curves, key=lambda curve: curve.angle_deg)
        level = landmarks.levels.index(main.upper_end)
        moved = landmarks.points.copy()
        moved[level, 0, 1] += 8.0  # superior-left corner of the upper end vertebra, 8 px down
        expectedMoved = analyse(SpineLandmarks(moved, landmarks.first_level), image.shape[0],
                                patient_right_on_image_left=True)
        self.assertNotEqual([round(c.angle_deg, 3) for c in expectedMoved.curves],
                            [round(c.angle_deg, 3) for c in expected.curves])
        newPosition = outputs.pixelsToRas(moved[level, 0][np.newaxis], ijkToRas)[0]
        landmarksNode.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent)
        landmarksNode.SetNthControlPointPosition(4 * level, newPosition)
        lines = logic.endplateLineNodes(landmarksNode)
        self.assertEqual(len(lines), 2 * len(expectedMoved.curves))
        self.assertIn(f"{expectedMoved.curves[0].name} {expectedMoved.curves[0].angle_deg:.1f}°", lines[0].GetName())
        landmarksNode.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
        self._assertShowsResult(logic, landmarksNode, expectedMoved)
        self.assertTrue(logic.isEdited(landmarksNode))
        self.assertEqual(landmarksNode.GetAttribute(outputs.EDITED_ATTRIBUTE), "true")
        self.assertEqual(landmarksNode.GetNumberOfControlPoints(), 68)

        self.delayDisplay("Edited landmarks are not replaced unless asked")
        with self.assertRaises(ValueError):
            logic.computeFromLandmarks(volumeNode, landmarks)
        self.assertTrue(logic.isEdited(landmarksNode))
        replaced = logic.computeFromLandmarks(volumeNode, landmarks, replaceEdited=True)
        self.assertEqual(replaced.GetID(), landmarksNode.GetID())
        self.assertFalse(logic.isEdited(landmarksNode))
        self._assertShowsResult(logic, landmarksNode, expected)

        self.delayDisplay("Implausible landmarks are named")
        self.assertEqual(logic.qualityMessages(landmarksNode), [])
        below = landmarks.points.copy()
        below[-1, :, 1] += image.shape[0]  # the last vertebra pushed below the radiograph
        logic.computeFromLandmarks(volumeNode, SpineLandmarks(below, landmarks.first_level),
                                   landmarksNode=landmarksNode)
        messages = logic.qualityMessages(landmarksNode)
        self.assertTrue(any(landmarks.levels[-1] in message and "outside" in message for message in messages), messages)
        logic.computeFromLandmarks(volumeNode, landmarks, landmarksNode=landmarksNode)
        self.assertEqual(logic.qualityMessages(landmarksNode), [])

        self.delayDisplay("Export")
        folder = slicer.util.tempDirectory(key="SpineCobbTest")
        try:
            logic.exportResults(landmarksNode, folder)
            for name in ("report.json", "report.csv", "landmarks.csv", "landmarks.json", "overlay.png"):
                self.assertTrue(os.path.isfile(os.path.join(folder, name)), name)
            with open(os.path.join(folder, "report.json"), encoding="utf-8") as file:
                self.assertEqual(json.load(file)["overall_severity"], expected.overall_severity)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

        self.delayDisplay("Measured although the image did not pass the spine check: no severity, also after edits")
        logic.computeFromLandmarks(volumeNode, landmarks, landmarksNode=landmarksNode,
                                   spineCheckFailure="too few vertebra-like structures")
        self.assertEqual(logic.spineCheckFailure(landmarksNode), "too few vertebra-like structures")
        tableNode = logic.tableNode(landmarksNode)
        self.assertEqual(self._tableColumn(tableNode, "severity"),
                         [detection.SEVERITY_NOT_STATED_CELL] * len(expected.curves))
        landmarksNode.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent)
        landmarksNode.SetNthControlPointPosition(4 * level, newPosition)
        landmarksNode.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
        self.assertTrue(logic.isEdited(landmarksNode))
        self.assertEqual(self._tableColumn(tableNode, "severity"),
                         [detection.SEVERITY_NOT_STATED_CELL] * len(expectedMoved.curves))
        folder = slicer.util.tempDirectory(key="SpineCobbTest")
        try:
            logic.exportResults(landmarksNode, folder)
            with open(os.path.join(folder, "report.json"), encoding="utf-8") as file:
                report = json.load(file)
            self.assertEqual(report["overall_severity"], detection.SEVERITY_NOT_STATED)
            self.assertEqual({curve["severity"] for curve in report["curves"]}, {detection.SEVERITY_NOT_STATED})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        logic.computeFromLandmarks(volumeNode, landmarks, landmarksNode=landmarksNode, replaceEdited=True)
        self.assertIsNone(logic.spineCheckFailure(landmarksNode))
        self.assertEqual(self._tableColumn(tableNode, "severity"), [curve.severity for curve in expected.curves])

        logic.removeObservers()
        self.delayDisplay("Test passed")

    def test_DetectionEndToEnd(self):
        from SpineCommonLib.jobs import JobFailed

        if dependencies.missingForTask(dependencies.LANDMARK_DETECTION):
            self.delayDisplay("Landmark model not tested: torch, monai or scikit-image is not installed")
            return
        volumeNode, image, landmarks = self._syntheticRadiograph()
        logic = self.logicClass()
        try:
            self.delayDisplay("Landmark detection by the engine in a separate process (blocking)")
            try:
                landmarksNode = logic.detectAndMeasure(volumeNode, waitForCompletion=True)
            except JobFailed as error:
                # The synthetic radiograph may not pass the engine's spine check: the refusal is one line, and
                # nothing is added to the scene; measured anyway, no severity is stated.
                self.assertTrue(detection.isRefusal(error), str(error))
                self.assertNotIn("\n", str(error))
                self.assertIsNone(logic.findLandmarksNode(volumeNode))
                self.delayDisplay(f"The engine refused the synthetic radiograph: {error}")
                landmarksNode = logic.detectAndMeasure(volumeNode, force=True, waitForCompletion=True)
                self.assertTrue(logic.spineCheckFailure(landmarksNode))
            self.assertEqual(landmarksNode.GetNumberOfControlPoints(), 68)
            self.assertTrue(landmarksNode.GetFixedNumberOfControlPoints())
            self.assertEqual(landmarksNode.GetAttribute(outputs.SOURCE_ATTRIBUTE), "model")
            self.assertIsNotNone(logic.tableNode(landmarksNode))
            self.assertEqual(logic.detectionWarnings, [])  # the synthetic radiograph is framed like the training ones

            self.delayDisplay("A second detection runs on the warm engine")
            engine = logic._engineProcess()
            logic.detectAndMeasure(volumeNode, force=True, waitForCompletion=True)
            self.assertIs(logic._engineProcess(), engine)
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")
