import os

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from SpineCommonLib.module import describeModule


#
# SpineCommon
#


class SpineCommon(ScriptedLoadableModule):
    """Hidden module that carries SpineCommonLib, the code the extension's modules share."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("Spine Common"), _("""
Shared code of the Spine Analysis, Spine Cobb Angle and Spine Fracture modules (engine jobs in a background
process, tables, volumes, Python dependencies, widget lifecycle). It has no user interface.
"""), hidden=True)


#
# SpineCommonWidget
#


class SpineCommonWidget(ScriptedLoadableModuleWidget):
    """No user interface: the module is hidden."""


#
# SpineCommonLogic
#


class SpineCommonLogic(ScriptedLoadableModuleLogic):
    """Nothing to compute: the shared helpers are the modules of SpineCommonLib."""


#
# SpineCommonTest
#


class SpineCommonTest(ScriptedLoadableModuleTest):
    """The shared helpers: result rows in a table node, and engine jobs answered by a stand-in engine."""

    #: Answers like `spine_analysis.jobs`, with output noise on stdout and stderr.
    STAND_IN_ENGINE = """
import json, os, sys
print("engine starting")
print("a library warning", file=sys.stderr)
for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps({"status": "progress", "fraction": 0.5, "message": "half way"}), flush=True)
    if request["job"] == "echo":
        answer = {"status": "done", "request": request, "imageFound": os.path.isfile(request["image"])}
    else:
        answer = {"status": "error", "message": "unknown job " + request["job"], "code": "unknown_job"}
    print(json.dumps(answer), flush=True)
"""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_TableFromRows()
        self.test_ParseMessage()
        self.test_EngineJob()

    def test_TableFromRows(self):
        import math

        from SpineCommonLib.tables import updateTableFromRows

        self.delayDisplay("Result rows in a table node")
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode")
        rows = [{"label": 1, "name": "L1", "volume_ml": 2.5, "at_seed": True, "levels": ["T1", "T2"]},
                {"label": 2, "name": None, "volume_ml": None, "at_seed": False, "levels": []}]
        updateTableFromRows(tableNode, rows, columns=["curve"], titles={"volume_ml": "Volume"},
                            units={"volume_ml": "mL"})
        table = tableNode.GetTable()

        def values(name):
            return [table.GetColumnByName(name).GetValue(row) for row in range(table.GetNumberOfRows())]

        self.assertEqual([table.GetColumnName(index) for index in range(table.GetNumberOfColumns())],
                         ["curve", "label", "name", "volume_ml", "at_seed", "levels"])
        self.assertTrue(table.GetColumnByName("label").IsA("vtkLongLongArray"))
        self.assertTrue(table.GetColumnByName("volume_ml").IsA("vtkDoubleArray"))
        self.assertEqual(values("volume_ml")[0], 2.5)
        self.assertTrue(math.isnan(values("volume_ml")[1]))  # missing is NaN, never 0
        self.assertEqual(values("name"), ["L1", ""])
        self.assertEqual(values("at_seed"), ["yes", "no"])
        self.assertEqual(values("levels"), ["T1, T2", ""])
        self.assertEqual(values("curve"), ["", ""])
        self.assertEqual(tableNode.GetColumnTitle("volume_ml"), "Volume")
        self.assertEqual(tableNode.GetColumnUnitLabel("volume_ml"), "mL")
        self.delayDisplay("Test passed")

    def test_ParseMessage(self):
        from SpineCommonLib.jobs import parseMessage

        self.assertEqual(parseMessage('{"status": "progress", "fraction": 0.5, "message": "half way"}\n'),
                         {"status": "progress", "fraction": 0.5, "message": "half way"})
        self.assertEqual(parseMessage('{"status": "done", "landmarks": {}}')["status"], "done")
        for noise in ("UserWarning: something", "{not json", '{"fraction": 0.5}', "[1, 2]", ""):
            self.assertIsNone(parseMessage(noise), noise)
        self.delayDisplay("Test passed")

    def test_EngineJob(self):
        import shutil
        import time

        import numpy as np
        import SimpleITK as sitk

        from SpineCommonLib.jobs import EngineJob, EngineProcess, JobCancelled, JobFailed

        pythonSlicer = shutil.which("PythonSlicer")
        if not pythonSlicer:
            self.delayDisplay("Engine jobs not tested: PythonSlicer was not found")
            return

        self.delayDisplay("A request with an image, answered among output noise")
        process = EngineProcess([pythonSlicer, "-c", self.STAND_IN_ENGINE])
        try:
            logged, progress = [], []
            job = EngineJob({"job": "echo"}, images={"image": sitk.GetImageFromArray(np.zeros((4, 5), np.uint8))},
                            process=process, logCallback=logged.append,
                            progressCallback=lambda fraction, message: progress.append((fraction, message)))
            result = job.run()
            self.assertNotIn("status", result)
            self.assertEqual(result["request"]["job"], "echo")
            self.assertTrue(result["imageFound"])
            self.assertFalse(os.path.exists(result["request"]["image"]))  # the temporary folder is gone
            self.assertIn("engine starting", logged)
            self.assertEqual(progress, [(0.5, "half way")])

            self.delayDisplay("The same process answers a second request, with an error")
            with self.assertRaises(JobFailed) as raised:
                EngineJob({"job": "unknown"}, process=process).run()
            self.assertEqual(str(raised.exception), "unknown job unknown")
            self.assertEqual(raised.exception.code, "unknown_job")
        finally:
            process.closeInput()

        self.delayDisplay("A process that ends without answering")
        crashing = EngineProcess([pythonSlicer, "-c",
                                  "import sys; sys.stdin.readline(); print('crashed'); sys.exit(3)"])
        with self.assertRaises(JobFailed) as raised:
            EngineJob({"job": "echo"}, process=crashing).run()
        self.assertIn("exit code 3", str(raised.exception))
        self.assertIn("crashed", str(raised.exception))

        self.delayDisplay("Cancel a job that runs in the background")
        silent = EngineProcess([pythonSlicer, "-c", "import sys, time; sys.stdin.readline(); time.sleep(60)"])
        outcomes = []
        job = EngineJob({"job": "echo"}, process=silent)
        job.start(lambda result, error: outcomes.append((result, error)))
        job.cancel()
        deadline = time.time() + 30
        while not outcomes and time.time() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertEqual(len(outcomes), 1)
        self.assertIsInstance(outcomes[0][1], JobCancelled)
        self.delayDisplay("Test passed")
