"""``segment --dicom-seg`` and ``fracture --dicom-seg``: the results of a CT read from DICOM slices
saved as DICOM SEG on those very slices, equal to the NIfTI outputs voxel for voxel."""
import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ct_phantom import phantom_ct
from dicom_syntaxes import Syntax, dataset, write
from test_cli import assert_ok, assert_one_error_line, run
from test_cli_fracture import _fractured_phantom
from test_dicom_out import DCIODVFY, PATIENT, dciodvfy_errors


def write_ct_series(image: sitk.Image, folder, shear_mm_per_slice: float = 0.0) -> list[str]:
    """``image`` (HU, axial) as one DICOM file per slice, stored + 1024 with a rescale intercept as
    scanners do; ``shear_mm_per_slice`` moves each slice's position sideways (a gantry tilt).
    Returns the SOP Instance UIDs in z order."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    hu = sitk.GetArrayFromImage(image)
    uids = []
    for k in range(hu.shape[0]):
        x, y, z = image.TransformIndexToPhysicalPoint((0, 0, k))
        ds = dataset(np.clip(hu[k].astype(np.int32) + 1024, 0, 4095).astype(np.uint16), modality="CT",
                     spacing_mm=image.GetSpacing()[0], **PATIENT, StudyInstanceUID=study, SeriesInstanceUID=series,
                     FrameOfReferenceUID=frame, ImagePositionPatient=[x, y + k * shear_mm_per_slice, z],
                     ImageOrientationPatient=[1, 0, 0, 0, 1, 0], SliceThickness=image.GetSpacing()[2],
                     RescaleIntercept=-1024, RescaleSlope=1, InstanceNumber=k + 1, SeriesNumber=2)
        write(ds, Syntax(ExplicitVRLittleEndian), folder / f"IM{k:04d}")
        uids.append(ds.SOPInstanceUID)
    return uids


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct") / "series"
    return folder, write_ct_series(phantom_ct(spacing=(0.8, 0.8, 2.0), size=(120, 110, 56)), folder)


def test_segment_writes_the_centra_as_seg_on_the_ct_slices(tmp_path, ct_folder):
    folder, uids = ct_folder
    out, seg_path = tmp_path / "centra.nii.gz", tmp_path / "centra.seg.dcm"
    proc = run(tmp_path, "segment", folder, "--seed", "0,0,0", "--seed=-2,-1,32", "--method", "classical",
               "--level", "L3", "L2", "--out", out, "--dicom-seg", seg_path)
    assert_ok(proc)
    assert "DICOM SEG" in proc.stdout
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    seg = hd.seg.segread(seg_path)
    source = pydicom.dcmread(folder / "IM0000", stop_before_pixels=True)
    assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [source.SeriesInstanceUID]
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["L3 centrum", "L2 centrum"]
    family = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmFamilyCodeSequence[0]
    assert family.CodeMeaning == "Morphological Operations"   # --method classical: no network
    masks = seg.get_pixels_by_source_instance(uids, combine_segments=False, assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(masks[..., 0], labels == 1)
    np.testing.assert_array_equal(masks[..., 1], labels == 2)
    if DCIODVFY:
        assert dciodvfy_errors(seg_path) == []


def test_segment_dicom_seg_needs_dicom_slices_that_can_carry_it(tmp_path, ct_folder):
    nifti = tmp_path / "ct.nii.gz"
    sitk.WriteImage(phantom_ct(size=(60, 60, 20)), str(nifti))
    common = ["--seed", "0,0,0", "--method", "classical", "--out", tmp_path / "m.nii.gz",
              "--dicom-seg", tmp_path / "m.dcm"]
    assert_one_error_line(run(tmp_path, "segment", nifti, *common), "folder of DICOM slices")
    tilted = tmp_path / "tilted"
    write_ct_series(phantom_ct(size=(60, 60, 20)), tilted, shear_mm_per_slice=0.5)
    assert_one_error_line(run(tmp_path, "segment", tilted, *common), "tilted and is resampled when read")
    anonymised = tmp_path / "anonymised"   # UIDs blanked, as some anonymisers leave a series
    anonymised.mkdir()
    for path in sorted(ct_folder[0].iterdir())[:8]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = ""
        ds.save_as(anonymised / path.name)
    assert_one_error_line(run(tmp_path, "segment", anonymised, *common),
                          "has no StudyInstanceUID (the study it belongs to): a DICOM SEG cannot be placed")
    assert not (tmp_path / "m.dcm").exists() and not (tmp_path / "m.nii.gz").exists()


def test_fracture_writes_the_probability_map_as_fractional_seg(tmp_path):
    ct_path, labels_path = _fractured_phantom(tmp_path)
    folder = tmp_path / "series"
    uids = write_ct_series(sitk.ReadImage(str(ct_path)), folder)
    out = tmp_path / "out"
    proc = run(tmp_path, "fracture", folder, "--labels", labels_path, "--out-dir", out, "--dicom-seg", timeout=300)
    assert_ok(proc)
    probability = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "fracture_probability.nii.gz")))
    seg = hd.seg.segread(out / "fracture_probability_seg.dcm")
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    stored = seg.get_pixels_by_source_instance(uids, combine_segments=False, assert_missing_frames_are_empty=True)
    assert np.abs(stored[..., 0] - probability).max() <= 1 / 255 + 1e-6
    if DCIODVFY:
        assert dciodvfy_errors(out / "fracture_probability_seg.dcm") == []
