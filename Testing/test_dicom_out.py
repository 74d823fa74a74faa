"""DICOM output (``spine_analysis.io.dicom_out``): SEG of CT masks and probability maps, the Cobb
overlay as a Secondary Capture, and ``spine-analysis cobb --dicom-sc``.

Each file is read back and compared with what was written, voxel for voxel; highdicom checks
every object as it builds it, and dciodvfy (dicom3tools), where installed, validates the files.
"""
import copy
import functools
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_syntaxes import Syntax, dataset, write
from spine_analysis import cli
from spine_analysis.cli import xray as cli_xray
from spine_analysis.errors import DicomOutputError, SpineAnalysisError
from spine_analysis.io.dicom_out import (MAX_FRACTIONAL_VALUE, Segment, write_fracture_probability,
                                         write_overlay_capture, write_segmentation)
from spine_analysis.xray.cobb import analyse
from spine_analysis.xray.report import CAPTURE_FILE, OUTPUT_FILES, make_report, write_report_files
from spine_analysis.xray.synthetic import example_case

SLICES, ROWS, COLS = 6, 32, 24
PATIENT = {"PatientID": "SPINE-7", "PatientName": "Doe^Jane", "PatientBirthDate": "19700101", "PatientSex": "F",
           "AccessionNumber": "A1", "StudyID": "1", "StudyDate": "20260101", "StudyTime": "120000",
           "ReferringPhysicianName": ""}
DCIODVFY = shutil.which("dciodvfy")
example_case_once = functools.cache(example_case)   # drawing it takes a second


def ct_series(folder, **changes) -> list:
    """The headers (no pixel data) of a small axial CT series saved in ``folder``, read back
    as a reader would: slice k at z = 2.5 k mm. ``changes`` replace or (None) drop elements."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(exist_ok=True)
    headers = []
    for k in range(SLICES):
        elements = {**PATIENT, "StudyInstanceUID": study, "SeriesInstanceUID": series,
                    "FrameOfReferenceUID": frame, "ImagePositionPatient": [-20.0, -30.0, 2.5 * k],
                    "ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "SliceThickness": 2.5, "InstanceNumber": k + 1,
                    "SeriesNumber": 3, **changes}
        ds = dataset(np.full((ROWS, COLS), 1000 + 10 * k), modality="CT", spacing_mm=0.75,
                     **{key: value for key, value in elements.items() if value is not None})
        path = write(ds, Syntax(ExplicitVRLittleEndian), folder / f"slice{k:02d}.dcm")
        headers.append(pydicom.dcmread(path, stop_before_pixels=True))
    return headers


def two_boxes() -> np.ndarray:
    labels = np.zeros((SLICES, ROWS, COLS), np.uint8)
    labels[1:3, 4:12, 5:15] = 1
    labels[3:5, 15:25, 8:20] = 2
    return labels


def radiograph(tmp_path):
    """A DICOM DX radiograph of the synthetic example spine, and its pixels in [0, 1]."""
    pixels, _, _ = example_case_once()
    ds = dataset(np.round(pixels * 4095).astype(np.uint16), modality="DX", **PATIENT,
                 PatientOrientation=["L", "F"], SeriesNumber=1, InstanceNumber=1)
    return write(ds, Syntax(ExplicitVRLittleEndian), tmp_path / "spine ap.dcm"), pixels


def source_uids_per_frame(seg) -> list[str]:
    return [frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            for frame in seg.PerFrameFunctionalGroupsSequence]


def dciodvfy_errors(path) -> list[str]:
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


# --------------------------------------------------------------------------- BINARY SEG

def test_segmentation_round_trips_voxel_for_voxel_on_its_source_slices(tmp_path):
    headers = ct_series(tmp_path / "ct")
    labels = two_boxes()
    segments = [Segment(1, "L1 centrum", "L1"), Segment(2, "L2 centrum", "L2"), Segment(7, "L3 centrum", "L3")]
    path = write_segmentation(labels, headers, segments, tmp_path / "centra.seg.dcm")

    seg = hd.seg.segread(path)
    first = headers[0]
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.SeriesInstanceUID != first.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert (seg.PatientID, seg.PatientName, seg.PatientBirthDate) == ("SPINE-7", "Doe^Jane", "19700101")
    assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [first.SeriesInstanceUID]
    # L3 has no voxel: left out, the others numbered 1 and 2 in order
    assert [(d.SegmentNumber, d.SegmentLabel) for d in seg.SegmentSequence] == [(1, "L1 centrum"), (2, "L2 centrum")]

    uids = [ds.SOPInstanceUID for ds in headers]
    masks = seg.get_pixels_by_source_instance(uids, combine_segments=False, assert_missing_frames_are_empty=True)
    assert masks.shape == (SLICES, ROWS, COLS, 2)
    np.testing.assert_array_equal(masks[..., 0], labels == 1)
    np.testing.assert_array_equal(masks[..., 1], labels == 2)
    # only slices holding a voxel are stored, each naming its own CT slice
    assert sorted(source_uids_per_frame(seg)) == sorted(uids[1:5])


def test_segments_are_coded_as_bone_of_their_vertebra_by_spineanalysis(tmp_path):
    headers = ct_series(tmp_path / "ct")
    path = write_segmentation(two_boxes(), headers, [Segment(1, "L1 centrum", "L1"), Segment(2, "vertebra 2")],
                              tmp_path / "centra.seg.dcm")
    described = pydicom.dcmread(path).SegmentSequence
    for item in described:
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == codes.SCT.Tissue.value
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == codes.SCT.Bone.value
        assert item.SegmentAlgorithmType == "AUTOMATIC" and item.SegmentAlgorithmName == "SpineAnalysis"
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == codes.DCM.ArtificialIntelligence.value
    regions = [item.AnatomicRegionSequence[0].CodeMeaning for item in described]
    assert regions == ["L1 vertebra", codes.SCT.Spine.meaning]   # no level: the spine as a whole


def test_segmentation_of_an_anonymised_ct_leaves_its_headers_untouched(tmp_path):
    """Anonymisers drop patient and study attributes the standard requires (possibly empty)."""
    headers = ct_series(tmp_path / "ct", PatientBirthDate=None, PatientSex=None, AccessionNumber=None)
    path = write_segmentation(two_boxes(), headers, [Segment(1, "L1 centrum"), Segment(2, "L2 centrum")],
                              tmp_path / "centra.seg.dcm")
    seg = pydicom.dcmread(path)
    assert seg.PatientBirthDate == "" and seg.PatientID == "SPINE-7"
    assert "PatientBirthDate" not in headers[0]


@pytest.mark.parametrize("change, fragments", [
    (lambda labels, headers: (labels[:-1], headers), ["5 slices", "6 CT slices"]),
    (lambda labels, headers: (labels[:, :, :-1], headers), ["24 x 32 pixels", "23 x 32"]),
    (lambda labels, headers: (labels * 3, headers), ["label 3", "no segment name"]),
    (lambda labels, headers: (np.zeros_like(labels), headers), ["empty", "nothing to save"]),
    (lambda labels, headers: (labels.astype(np.float32), headers), ["float32", "whole-number"]),
    (lambda labels, headers: (labels.astype(np.int16) - 1, headers), ["negative label -1"]),
    (lambda labels, headers: (labels, [*headers[:2], _without(headers[2], "ImagePositionPatient"), *headers[3:]]),
     ["CT slice 3 (slice02.dcm) has no ImagePositionPatient"]),
])
def test_segmentation_refuses_what_cannot_be_placed_on_the_ct(tmp_path, change, fragments):
    labels, headers = change(two_boxes(), ct_series(tmp_path / "ct"))
    with pytest.raises(DicomOutputError) as caught:
        write_segmentation(labels, headers, [Segment(1, "L1 centrum"), Segment(2, "L2 centrum")],
                           tmp_path / "out" / "centra.seg.dcm")
    message = str(caught.value)
    assert "\n" not in message and all(fragment in message for fragment in fragments), message
    assert not (tmp_path / "out").exists()


def _without(ds, keyword):
    ds = copy.deepcopy(ds)
    delattr(ds, keyword)
    return ds


def test_segmentation_never_overwrites_a_source_slice(tmp_path):
    headers = ct_series(tmp_path / "ct")
    before = (tmp_path / "ct" / "slice00.dcm").read_bytes()
    with pytest.raises(SpineAnalysisError, match="refusing to overwrite the input"):
        write_segmentation(two_boxes(), headers, [Segment(1, "L1 centrum"), Segment(2, "L2 centrum")],
                           tmp_path / "ct" / "slice00.dcm")
    assert (tmp_path / "ct" / "slice00.dcm").read_bytes() == before


# --------------------------------------------------------------------------- FRACTIONAL SEG

def test_fracture_probability_round_trips_within_one_step(tmp_path):
    headers = ct_series(tmp_path / "ct")
    probability = np.zeros((SLICES, ROWS, COLS), np.float32)
    probability[2:5] = np.random.default_rng(0).random((3, ROWS, COLS), dtype=np.float32)
    probability[3, 0, :3] = (0.0, 1.0, 0.5)
    path = write_fracture_probability(probability, headers, tmp_path / "fracture.seg.dcm")

    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    assert seg.MaximumFractionalValue == MAX_FRACTIONAL_VALUE
    assert seg.StudyInstanceUID == headers[0].StudyInstanceUID
    description = seg.SegmentSequence[0]
    assert description.SegmentLabel == "vertebral fracture probability"
    assert description.SegmentedPropertyCategoryCodeSequence[0].CodeValue == \
        codes.SCT.MorphologicallyAbnormalStructure.value
    uids = [ds.SOPInstanceUID for ds in headers]
    back = seg.get_pixels_by_source_instance(uids, assert_missing_frames_are_empty=True)[..., 0]
    assert np.abs(back - probability).max() <= 1 / MAX_FRACTIONAL_VALUE
    assert sorted(source_uids_per_frame(seg)) == sorted(uids[2:5])


def test_an_all_zero_probability_map_is_saved_on_every_slice(tmp_path):
    headers = ct_series(tmp_path / "ct")
    path = write_fracture_probability(np.zeros((SLICES, ROWS, COLS)), headers, tmp_path / "fracture.seg.dcm")
    seg = hd.seg.segread(path)
    assert seg.NumberOfFrames == SLICES and not seg.pixel_array.any()


@pytest.mark.parametrize("values, fragments", [
    (np.linspace(0, 1.5, SLICES * ROWS * COLS).reshape(SLICES, ROWS, COLS), ["from 0 to 1.5", "0 to 1"]),
    (np.full((SLICES, ROWS, COLS), np.nan), ["nan", "0 to 1"]),
    (np.ones((SLICES, ROWS, COLS), np.uint8), ["uint8", "0 to 1"]),
    (np.ones((SLICES, ROWS, COLS + 1)), ["25 x 32"]),
])
def test_fracture_probability_refuses_what_is_not_a_probability_map_of_the_ct(tmp_path, values, fragments):
    with pytest.raises(DicomOutputError) as caught:
        write_fracture_probability(values, ct_series(tmp_path / "ct"), tmp_path / "fracture.seg.dcm")
    assert all(fragment in str(caught.value) for fragment in fragments), caught.value
    assert not (tmp_path / "fracture.seg.dcm").exists()


# --------------------------------------------------------------------------- Secondary Capture

def test_overlay_capture_is_filed_in_the_radiographs_study(tmp_path):
    path, _ = radiograph(tmp_path)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    rgb = np.random.default_rng(1).integers(0, 256, (120, 80, 3), dtype=np.uint8)
    written = write_overlay_capture(rgb, header, tmp_path / "overlay_sc.dcm", patient_right_on_image_left=False)

    capture = pydicom.dcmread(written)
    assert capture.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"   # Secondary Capture Image Storage
    assert capture.StudyInstanceUID == header.StudyInstanceUID
    assert capture.SeriesInstanceUID != header.SeriesInstanceUID
    assert (capture.PatientID, capture.PatientName, capture.PatientSex) == ("SPINE-7", "Doe^Jane", "F")
    assert "Cobb overlay" in capture.SeriesDescription and "not for primary diagnosis" in capture.SeriesDescription
    assert capture.SourceImageSequence[0].ReferencedSOPInstanceUID == header.SOPInstanceUID
    assert capture.BurnedInAnnotation == "YES" and capture.PatientOrientation == ["R", "F"]
    assert "PixelSpacing" not in capture
    np.testing.assert_array_equal(capture.pixel_array, rgb)


def test_overlay_capture_never_overwrites_its_radiograph(tmp_path):
    path, _ = radiograph(tmp_path)
    before = path.read_bytes()
    with pytest.raises(SpineAnalysisError, match="refusing to overwrite the input"):
        write_overlay_capture(np.zeros((64, 64, 3), np.uint8), pydicom.dcmread(path, stop_before_pixels=True),
                              path)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- validation

@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) is not installed; highdicom's own checks "
                                             "still ran while each object was built")
def test_dciodvfy_finds_no_errors_in_any_output(tmp_path):
    headers = ct_series(tmp_path / "ct")
    probability = np.linspace(0, 1, SLICES * ROWS * COLS).reshape(SLICES, ROWS, COLS)
    path, _ = radiograph(tmp_path)
    outputs = [
        write_segmentation(two_boxes(), headers, [Segment(1, "L1 centrum", "L1"), Segment(2, "L2 centrum", "L2")],
                           tmp_path / "centra.seg.dcm"),
        write_fracture_probability(probability, headers, tmp_path / "fracture.seg.dcm"),
        write_overlay_capture(np.zeros((100, 60, 3), np.uint8), pydicom.dcmread(path, stop_before_pixels=True),
                              tmp_path / "overlay_sc.dcm"),
    ]
    for output in outputs:
        assert dciodvfy_errors(output) == [], output.name


# --------------------------------------------------------------------------- cobb --dicom-sc

def test_cobb_saves_its_overlay_in_the_radiographs_study(tmp_path, capsys):
    image, _ = radiograph(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["cobb", str(image), "--out-dir", str(out), "--dicom-sc"]) == 0
    assert "overlay_sc.dcm" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.json", "report.csv", "landmarks.csv", "landmarks.json", "overlay.png", "overlay_sc.dcm"])
    capture, header = pydicom.dcmread(out / "overlay_sc.dcm"), pydicom.dcmread(image, stop_before_pixels=True)
    assert capture.StudyInstanceUID == header.StudyInstanceUID and capture.PatientID == header.PatientID
    assert capture.PatientOrientation == ["L", "F"]
    with Image.open(out / "overlay.png") as png:
        np.testing.assert_array_equal(capture.pixel_array, np.asarray(png))


def test_report_files_with_a_capture_are_written_all_or_none(tmp_path):
    path, pixels = radiograph(tmp_path)
    _, landmarks, _ = example_case_once()
    report = make_report(analyse(landmarks, pixels.shape[0]), path.name, pixels.shape[::-1])
    header = pydicom.dcmread(path, stop_before_pixels=True)
    written = write_report_files(tmp_path / "out", pixels, report, dicom_radiograph=header)
    assert sorted(written) == sorted([*OUTPUT_FILES, CAPTURE_FILE])
    del header.StudyInstanceUID
    with pytest.raises(DicomOutputError, match="spine ap.dcm has no StudyInstanceUID"):
        write_report_files(tmp_path / "failed", pixels, report, dicom_radiograph=header)
    assert not any((tmp_path / "failed").iterdir())   # not even the files written before the capture


@pytest.mark.parametrize("image", ["scan.png", None])
def test_cobb_refuses_dicom_sc_without_a_dicom_radiograph_before_detecting(tmp_path, monkeypatch, capsys, image):
    def detector(weights):
        raise AssertionError("the model was loaded before --dicom-sc was refused")

    monkeypatch.setattr(cli_xray, "_detector", detector)
    args = ["cobb", "--out-dir", str(tmp_path / "out"), "--dicom-sc"]
    if image:
        _, pixels = radiograph(tmp_path)
        Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(tmp_path / image)
        args.insert(1, str(tmp_path / image))
    assert cli.main(args) == 2
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and "--dicom-sc" in error[0] and "DICOM radiograph" in error[0], error
    assert not (tmp_path / "out").exists()


def test_cobb_refuses_dicom_sc_for_an_anonymised_radiograph_before_detecting(tmp_path, monkeypatch, capsys):
    def detector(weights):
        raise AssertionError("the model was loaded before --dicom-sc was refused")

    monkeypatch.setattr(cli_xray, "_detector", detector)
    path, _ = radiograph(tmp_path)
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = ""                          # blanked, as some anonymisers leave it
    ds.save_as(path)
    assert cli.main(["cobb", str(path), "--out-dir", str(tmp_path / "out"), "--dicom-sc"]) == 2
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and "has no StudyInstanceUID: the overlay cannot be filed in its study" in error[0], error
    assert not (tmp_path / "out").exists()
