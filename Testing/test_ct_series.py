"""Reading a CT from a folder of DICOM slices (spine_analysis.io.dicom_series, through read_ct).

Synthetic series are written with pydicom from a smooth field known everywhere in LPS mm, so each
case has a known answer: the stored pixels exactly where no resampling happens, the field itself
(within linear-interpolation error) where the reader had to resample. The real 20-slice series of
the ct-spine data set (JPEG 2000 lossless) is checked against SimpleITK's own DICOM reader when present.
"""
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import (ExplicitVRLittleEndian, HTJ2KLossless, JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless,
                         RLELossless, generate_uid)

from dicom_syntaxes import SYNTAXES, dataset, write
from spine_analysis import cli
from spine_analysis.datasets import ct_dir
from spine_analysis.errors import ImageReadError
from spine_analysis.io.ct import read_ct
from spine_analysis.io.dicom_series import list_series, read_acquired_series
from spine_analysis.jobs import JobRunner

ROWS, COLS, SLICES = 20, 24, 10
PIXEL_SPACING = (1.2, 0.8)     # DICOM order: between rows, between columns
STEP_MM = 2.5
ORIGIN = np.array([-10.0, 20.0, 30.0])


def _rotation(a=0.3, b=0.2) -> np.ndarray:
    """An oblique orientation: columns are the row, column and normal directions (LPS)."""
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    return np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])


AXES = _rotation()
ROW, COL, NORMAL = AXES.T
CENTRE = ORIGIN + AXES @ np.array([COLS * PIXEL_SPACING[1], ROWS * PIXEL_SPACING[0], SLICES * STEP_MM]) / 2


def field_hu(points: np.ndarray) -> np.ndarray:
    """A smooth CT-like field (HU) at LPS points (..., 3): a 400 HU blob on a ramp that changes
    along every axis, so a misplaced or flipped slice shows."""
    d = points - CENTRE
    return 400 * np.exp(-(d ** 2).sum(-1) / (2 * 15.0 ** 2)) + d @ np.array([3.0, -2.0, 4.0]) + 40


def plane_points(ipp) -> np.ndarray:
    """LPS points (rows, cols, 3) of a slice's pixels placed at ``ipp``."""
    j, i = np.mgrid[:ROWS, :COLS]
    return ipp + (i * PIXEL_SPACING[1])[..., None] * ROW + (j * PIXEL_SPACING[0])[..., None] * COL


def grid_points(image: sitk.Image) -> np.ndarray:
    """LPS points (z, y, x, 3) of every voxel of ``image``."""
    k, j, i = np.indices(image.GetSize()[::-1])
    index = np.stack([i, j, k], -1) * np.array(image.GetSpacing())
    return np.array(image.GetOrigin()) + index @ np.array(image.GetDirection()).reshape(3, 3).T


def write_series(folder: Path, positions, *, syntax=ExplicitVRLittleEndian, series_uid=None, offset_hu=0,
                 rescale=None, names=None, description="CT spine", modality="CT") -> tuple[str, np.ndarray]:
    """One CT slice per file at LPS ``positions`` (IPPs), pixels sampled from the field there (plus
    ``offset_hu``); ``rescale`` gives (slope, intercept) per slice. Returns the series UID and the
    stored pixels (z, y, x) in the order written."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    syntax = next(s for s in SYNTAXES if s.uid == syntax)
    stored = []
    for k, ipp in enumerate(positions):
        slope, intercept = rescale[k] if rescale else (1, -1024)
        pixels = np.round((field_hu(plane_points(ipp)) + offset_hu - intercept) / slope).astype(np.uint16)
        ds = dataset(pixels, modality=modality, SeriesInstanceUID=series_uid, StudyInstanceUID="1.2.3.4",
                     SeriesDescription=description, InstanceNumber=k + 1, PixelSpacing=list(PIXEL_SPACING),
                     ImageOrientationPatient=[f"{v:.8f}" for v in (*ROW, *COL)],
                     ImagePositionPatient=[f"{v:.6f}" for v in ipp], RescaleSlope=slope, RescaleIntercept=intercept)
        write(ds, syntax, folder / (names[k] if names else f"{series_uid[-8:]}_{k:03d}.dcm"))
        stored.append(pixels)
    return series_uid, np.array(stored)


def even_positions(count=SLICES, step=STEP_MM) -> list:
    return [ORIGIN + k * step * NORMAL for k in range(count)]


def assert_geometry(image: sitk.Image, origin, spacing_z: float, size_z: int):
    assert image.GetSize() == (COLS, ROWS, size_z)
    np.testing.assert_allclose(image.GetOrigin(), origin, atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), (PIXEL_SPACING[1], PIXEL_SPACING[0], spacing_z), rtol=1e-5)
    np.testing.assert_allclose(np.array(image.GetDirection()).reshape(3, 3), AXES, atol=1e-6)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """An evenly spaced oblique series written in file-name order, and its HU (z, y, x)."""
    folder = tmp_path_factory.mktemp("plain")
    _, stored = write_series(folder, even_positions())
    return folder, stored.astype(np.int16) - 1024


def test_plain_series_keeps_pixels_and_geometry(plain):
    folder, hu = plain
    image = read_ct(folder)
    assert image.GetPixelID() == sitk.sitkInt16
    assert_geometry(image, ORIGIN, STEP_MM, SLICES)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)
    headers = read_acquired_series(folder)[1]
    along = [np.array(ds.ImagePositionPatient, float) @ NORMAL for ds in headers]
    assert along == pytest.approx([p @ NORMAL for p in even_positions()], abs=1e-4)   # the volume's z order
    assert not any("PixelData" in ds for ds in headers)


def test_shuffled_renamed_nested_files_give_the_same_volume(tmp_path, plain):
    """Order comes from positions along the normal, not names or InstanceNumber; junk and DICOMDIR are skipped."""
    folder, hu = plain
    files = sorted(folder.iterdir())
    random.Random(1).shuffle(files)
    for n, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = 100 - n            # numbering that disagrees with the positions
        target = tmp_path / f"sub{n % 3}" / "deeper" / f"IM{n:04d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
    (tmp_path / "README.txt").write_text("exported from PACS")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 200)
    image = read_ct(tmp_path)
    assert_geometry(image, ORIGIN, STEP_MM, SLICES)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)


def test_two_series_are_listed_and_each_can_be_chosen(tmp_path):
    first, stored = write_series(tmp_path, even_positions(), description="CT spine")
    second, stored_b = write_series(tmp_path, even_positions(6), description="CT bone kernel", offset_hu=100)
    scout, _ = write_series(tmp_path, even_positions(1), description="Topogram")
    with pytest.raises(ImageReadError) as raised:
        read_ct(tmp_path)
    message = str(raised.value)
    assert "holds 2 series" in message and "--series UID" in message and "\n" not in message
    assert f"{first} (CT, 'CT spine', 10 slices)" in message and f"{second} (CT, 'CT bone kernel', 6 slices)" in message
    assert "Topogram" not in message                 # a single slice is no choice for a volume
    assert [(s.uid, s.slices, s.volumetric) for s in list_series(tmp_path)] == \
        [(first, 10, True), (second, 6, True), (scout, 1, False)]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(tmp_path, first)), stored.astype(np.int16) - 1024)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(tmp_path, second)), stored_b.astype(np.int16) - 1024)
    assert len(read_acquired_series(tmp_path, second)[1]) == 6
    with pytest.raises(ImageReadError, match=f"has no series 1.2.3.999; its series: {first} .*; {second} .*Topogram"):
        read_ct(tmp_path, "1.2.3.999")


def test_the_only_ct_series_beside_other_modalities_is_taken(tmp_path):
    uid, stored = write_series(tmp_path, even_positions(), description="CT spine")
    write_series(tmp_path / "pet", even_positions(8), description="PET", modality="PT", offset_hu=300)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(tmp_path)), stored.astype(np.int16) - 1024)


def test_a_single_slice_scout_beside_the_volume_is_not_a_choice(tmp_path):
    uid, stored = write_series(tmp_path, even_positions())
    write_series(tmp_path / "scout", even_positions(1), description="Topogram")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(tmp_path)), stored.astype(np.int16) - 1024)
    assert [s.volumetric for s in list_series(tmp_path)] == [True, False]


def test_missing_slice_is_named_with_its_place(tmp_path, plain):
    folder, _ = plain
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(("_004.dcm", "_005.dcm")):
            shutil.copy(path, tmp_path)
    start, end = (float(p @ NORMAL) for p in (even_positions()[3], even_positions()[6]))
    with pytest.raises(ImageReadError, match=rf"slices are missing between {start:.2f} and {end:.2f} mm along the "
                                             r"slice normal \(about 2 slices of 2.50 mm\)"):
        read_ct(tmp_path)


def test_geometry_that_is_not_one_volume_is_refused(tmp_path):
    uid, _ = write_series(tmp_path / "dup", even_positions() + [even_positions()[4]])
    with pytest.raises(ImageReadError, match="lie at the same position"):
        read_ct(tmp_path / "dup")
    write_series(tmp_path / "turned", even_positions())
    ds = pydicom.dcmread(sorted((tmp_path / "turned").iterdir())[3])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.save_as(sorted((tmp_path / "turned").iterdir())[3])
    with pytest.raises(ImageReadError, match="not all oriented alike"):
        read_ct(tmp_path / "turned")
    write_series(tmp_path / "one", even_positions(1))
    with pytest.raises(ImageReadError, match="is a 2D image; a CT volume with several slices is expected"):
        read_ct(tmp_path / "one")


def test_multiframe_ct_is_refused(tmp_path):
    ds = dataset(np.full((ROWS, COLS), 1000, np.uint16), modality="CT", NumberOfFrames=3,
                 ImageOrientationPatient=[1, 0, 0, 0, 1, 0], ImagePositionPatient=[0, 0, 0])
    ds.PixelData = ds.PixelData * 3
    ds.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"enhanced.dcm is a multi-frame \(enhanced\) image of 3 frames"):
        read_ct(tmp_path)


def test_uneven_spacing_is_resampled_onto_the_field(tmp_path, caplog):
    """Steps of 2.0 to 3.0 mm (no gap): linear interpolation along the normal to an even grid."""
    steps = [2.5, 2.0, 3.0, 2.5, 2.2, 2.8, 2.5, 2.4, 2.6]
    positions = [ORIGIN + s * NORMAL for s in np.concatenate([[0], np.cumsum(steps)])]
    write_series(tmp_path, positions)
    with caplog.at_level(logging.WARNING):
        image = read_ct(tmp_path)
    assert "uneven slice spacing (2.00 to 3.00 mm) resampled to 10 slices every 2.50 mm" in caplog.text
    assert_geometry(image, ORIGIN, sum(steps) / 9, 10)
    error = np.abs(sitk.GetArrayFromImage(image) - field_hu(grid_points(image)))
    assert error.max() < 3.0          # rounding to stored integers plus interpolating a 15 mm blob
    assert np.abs(sitk.GetArrayFromImage(image)[1:-1] - field_hu(grid_points(image))[1:-1]).mean() < 1.5


def test_gantry_tilt_is_resampled_onto_an_orthogonal_grid(tmp_path, caplog):
    """Slice k at k*dz along the normal plus k*dz*tan(15 deg) along the column direction (a sheared
    stack, sampled where the scanner sampled): the result is the field on an orthogonal grid."""
    tilt = np.radians(15)
    positions = [ORIGIN + k * STEP_MM * (NORMAL + np.tan(tilt) * COL) for k in range(SLICES)]
    write_series(tmp_path, positions)
    with caplog.at_level(logging.WARNING):
        image = read_ct(tmp_path)
    assert "gantry tilt of 15.0 degrees corrected" in caplog.text
    assert_geometry(image, ORIGIN, STEP_MM, SLICES)
    hu, truth = sitk.GetArrayFromImage(image), field_hu(grid_points(image))
    shift_rows = np.arange(SLICES) * STEP_MM * np.tan(tilt) / PIXEL_SPACING[0]
    scanned = np.arange(ROWS)[None, :] >= np.ceil(shift_rows)[:, None]       # (z, y): inside each slice's field of view
    scanned = np.broadcast_to(scanned[..., None], hu.shape)
    assert np.abs(hu - truth)[scanned].max() < 2.0
    assert np.all(hu[~scanned & (np.arange(ROWS)[None, :, None] < np.floor(shift_rows)[:, None, None])] == -1024)


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, HTJ2KLossless, RLELossless],
                         ids=lambda uid: uid.name)
def test_compressed_slices_decode_to_the_same_volume(tmp_path, plain, syntax):
    uid, _ = write_series(tmp_path, even_positions(), syntax=syntax)
    assert str(pydicom.dcmread(next(tmp_path.iterdir())).file_meta.TransferSyntaxUID) == syntax
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(tmp_path)), plain[1])


def test_rescale_slope_and_intercept_per_slice(tmp_path):
    rescale = [(1, -1024), (2, -2048), (0.5, -1000), (1, -1100)] * 3
    _, stored = write_series(tmp_path / "float", even_positions(), rescale=rescale[:SLICES])
    expected = np.array([s * slope + intercept for s, (slope, intercept) in zip(stored.astype(float), rescale)])
    image = read_ct(tmp_path / "float")
    assert image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected.astype(np.float32))
    whole = [(1, -1024), (2, -2048)] * 5
    _, stored = write_series(tmp_path / "int", even_positions(), rescale=whole)
    image = read_ct(tmp_path / "int")
    assert image.GetPixelID() == sitk.sitkInt16
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image),
                                  [s * slope + intercept for s, (slope, intercept) in zip(stored.astype(int), whole)])


def test_series_flag_and_job_key_reach_the_reader(tmp_path, capsys):
    first, _ = write_series(tmp_path, even_positions(), description="soft")
    second, _ = write_series(tmp_path, even_positions(6), description="bone", offset_hu=-100)
    segment = ["segment", str(tmp_path), "--seed", "0,0,0", "--method", "classical",
               "--out", str(tmp_path / "m.nii.gz")]
    assert cli.main(segment) == 2
    assert "holds 2 series" in capsys.readouterr().err
    assert cli.main(segment + ["--series", "1.2.3.999"]) == 2
    assert "has no series 1.2.3.999" in capsys.readouterr().err
    assert cli.main(["fracture", str(tmp_path), str(tmp_path), "--series", first,
                     "--out-dir", str(tmp_path / "f")]) == 2
    assert "--series belong to one CT" in capsys.readouterr().err
    assert cli.build_parser().parse_args(
        ["fracture", str(tmp_path), "--series", first, "--out-dir", "o"]).series == first

    for uid in (first, second):
        ct = read_ct(tmp_path, uid)
        sitk.WriteImage(sitk.Cast(ct * 0 + 1, sitk.sitkUInt8), str(tmp_path / "labels.nii.gz"))   # all of the grid
        answers = []
        JobRunner().handle({"job": "measure_centra", "ct": str(tmp_path), "series": uid,
                            "labels": str(tmp_path / "labels.nii.gz")}, answers.append)
        assert answers[-1]["status"] == "done", answers[-1]
        assert answers[-1]["vertebrae"][0]["hu_mean"] == pytest.approx(sitk.GetArrayFromImage(ct).mean())


REAL_SERIES = ct_dir() / "totalseg-dicom-series"
needs_real = pytest.mark.skipif(not REAL_SERIES.is_dir(),
                                reason=f"real DICOM series not found at {REAL_SERIES} (set SPINE_CT_DIR)")


@needs_real
def test_real_series_matches_simpleitk_when_shuffled_and_nested(tmp_path):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(REAL_SERIES)))
    reference = reader.Execute()
    files = sorted(REAL_SERIES.iterdir())
    random.Random(2).shuffle(files)
    for n, path in enumerate(files):
        (tmp_path / f"d{n % 4}").mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / f"d{n % 4}" / f"{n:02d}")
    image = read_ct(tmp_path)
    assert image.GetSize() == (512, 512, 20) and image.GetPixelID() == reference.GetPixelID() == sitk.sitkInt16
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), (0.9765625, 0.9765625, 2.0), rtol=1e-6)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference))


@needs_real
def test_real_series_gap_and_second_series(tmp_path):
    files = sorted(REAL_SERIES.iterdir())   # names follow the positions from -766.5 down to -804.5 mm
    for path in files[:9] + files[10:]:
        shutil.copy(path, tmp_path)
    with pytest.raises(ImageReadError, match=r"missing between -786.50 and -782.50 mm .*about 1 slice of 2.00 mm"):
        read_ct(tmp_path)
    (tmp_path / "copy").mkdir()
    uid = generate_uid()
    for path in files[:5]:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SeriesDescription = uid, "recon copy"
        ds.save_as(tmp_path / "copy" / path.name)
    with pytest.raises(ImageReadError, match=rf"holds 2 series: .*{uid} \(CT, 'recon copy', 5 slices\)"):
        read_ct(tmp_path)
    chosen = read_ct(tmp_path, uid)
    assert chosen.GetSize() == (512, 512, 5) and chosen.GetOrigin()[2] == pytest.approx(-774.5)
