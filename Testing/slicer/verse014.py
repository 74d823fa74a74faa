"""The real lumbar CT the module tests run on: VerSe 2019 sub-verse014 (L1-L5, all five Genant grade 0), loaded
with Slicer's own readers. It is never copied into the repository: `spine_analysis.datasets.ct_dir()` finds it
($SPINE_CT_DIR, else ../shared/datasets/ct-spine), and a test that needs it skips when it is absent."""
import json

import numpy as np
import pytest

from spine_analysis.datasets import ct_dir

FOLDER = ct_dir() / "verse014"
CT_FILE = FOLDER / "sub-verse014_ct.nii.gz"
LABELS_FILE = FOLDER / "sub-verse014_seg-vert_msk.nii.gz"
CENTROIDS_FILE = FOLDER / "sub-verse014_seg-vb_ctd.json"
VERSE_LABELS = {"L1": 20, "L2": 21, "L3": 22, "L4": 23, "L5": 24}


def needVerse014():
    if not all(path.is_file() for path in (CT_FILE, LABELS_FILE, CENTROIDS_FILE)):
        pytest.skip(f"the real CT sub-verse014 is not in {FOLDER} (set SPINE_CT_DIR to the ct-spine folder)")


def ijkToRasArray(volumeNode):
    import slicer
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


class Verse014:
    """The CT and its VerSe label map as Slicer loads them, the VerSe body centroids in RAS, and sampling at RAS
    points (nearest voxel)."""

    def __init__(self):
        import slicer

        needVerse014()
        self.ct = slicer.util.loadVolume(str(CT_FILE))
        self.labels = slicer.util.loadLabelVolume(str(LABELS_FILE))
        self.ijkToRas = ijkToRasArray(self.ct)
        assert np.allclose(ijkToRasArray(self.labels), self.ijkToRas, atol=1e-4), "the label map is on the CT's grid"
        # The centroids are voxel coordinates of the PIR-oriented scan; this file is stored PIR, so they are the
        # CT's own (i, j, k) and Slicer's IJK-to-RAS places them.
        entries = json.loads(CENTROIDS_FILE.read_text())
        assert "".join(entries[0]["direction"]) == "PIR"
        names = {label: level for level, label in VERSE_LABELS.items()}
        self.centroids = {names[e["label"]]: (self.ijkToRas @ [e["X"], e["Y"], e["Z"], 1.0])[:3] for e in entries[1:]}
        self.ctArray = slicer.util.arrayFromVolume(self.ct)          # (k, j, i)
        self.labelArray = slicer.util.arrayFromVolume(self.labels)
        spacing = self.ct.GetSpacing()
        self.voxelMl = spacing[0] * spacing[1] * spacing[2] / 1000.0

    def ijk(self, ras):
        return np.round(np.linalg.solve(self.ijkToRas, [*ras, 1.0])[:3]).astype(int)

    def labelAt(self, ras):
        i, j, k = self.ijk(ras)
        return int(self.labelArray[k, j, i])

    def huAt(self, ras):
        i, j, k = self.ijk(ras)
        return int(self.ctArray[k, j, i])
