"""Readers and writers of spine_analysis.io on files written here, plus the real AASCE folder when present."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from spine_analysis.errors import ImageReadError, LandmarkError
from spine_analysis.io.aasce import read_aasce_folder, write_aasce_angles_csv, write_aasce_landmarks_csv
from spine_analysis.io.atomic import atomic_output, write_csv_rows, write_json
from spine_analysis.io.ct import read_ct
from spine_analysis.io.dicom_series import list_series
from spine_analysis.io.landmark_files import read_landmarks, write_landmarks_csv, write_landmarks_json
from spine_analysis.io.xray import MIN_SIDE_PX, read_xray
from spine_analysis.datasets import aasce_dir, ct_dir
from spine_analysis.xray.landmarks import SpineLandmarks

DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
AASCE_DIR = aasce_dir()


def radiograph(rows=96, cols=80, high=255, dtype=np.uint8) -> np.ndarray:
    """A non-constant test image spanning 0..high, with distinct rows and columns."""
    ramp = np.add.outer(np.arange(rows) * 3, np.arange(cols) * 7).astype(float)
    return np.round(ramp / ramp.max() * high).astype(dtype)


def write_dicom(path, stored, photometric="MONOCHROME2", spacing=(0.2, 0.15), spacing_tag="PixelSpacing",
                rescale=None, modality="DX"):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = DX_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    setattr(ds, spacing_tag, [str(s) for s in spacing])
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = (str(v) for v in rescale)
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


# --------------------------------------------------------------------------- read_xray: raster formats

@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_8bit_round_trip(tmp_path, suffix):
    stored = radiograph()
    Image.fromarray(stored).save(tmp_path / f"a{suffix}")
    xray = read_xray(tmp_path / f"a{suffix}")
    assert xray.pixels.dtype == np.float32 and xray.pixels.shape == (96, 80)
    np.testing.assert_array_equal(xray.pixels, stored)
    assert xray.spacing_mm is None and xray.photometric == "MONOCHROME2"
    assert xray.source == str(tmp_path / f"a{suffix}")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_values_above_255_kept_exactly(tmp_path, suffix):
    stored = radiograph(high=4095, dtype=np.uint16)
    Image.fromarray(stored).save(tmp_path / f"a{suffix}")
    pixels = read_xray(tmp_path / f"a{suffix}").pixels
    assert pixels.max() == 4095
    np.testing.assert_array_equal(pixels, stored)


def test_jpeg_is_read_approximately(tmp_path):
    stored = radiograph()
    Image.fromarray(stored).save(tmp_path / "a.jpg", quality=95)
    pixels = read_xray(tmp_path / "a.jpg").pixels
    assert np.abs(pixels - stored).mean() < 2


@pytest.mark.parametrize("name, mode", [("grey.png", "RGB"), ("alpha.png", "RGBA"), ("grey.jpg", "RGB")])
def test_grey_saved_as_colour_is_accepted(tmp_path, name, mode):
    stored = radiograph()
    Image.fromarray(stored).convert(mode).save(tmp_path / name)
    xray = read_xray(tmp_path / name)
    assert xray.pixels.ndim == 2 and xray.photometric == "RGB"
    assert np.abs(xray.pixels - stored).mean() < (2 if name.endswith(".jpg") else 1e-3)


def test_colour_image_is_refused(tmp_path):
    grey = radiograph()
    Image.fromarray(np.stack([grey, grey[::-1], grey[:, ::-1]], axis=-1)).save(tmp_path / "photo.png")
    with pytest.raises(ImageReadError, match="photo.png is a colour image; a grayscale radiograph"):
        read_xray(tmp_path / "photo.png")


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="nothing.png: file not found"):
        read_xray(tmp_path / "nothing.png")


@pytest.mark.parametrize("name", ["notes.png", "notes.txt", "notes.dcm", "notes.nrrd"])
def test_text_file_is_not_an_image(tmp_path, name):
    (tmp_path / name).write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageReadError, match=name):
        read_xray(tmp_path / name)


def test_constant_image_is_empty(tmp_path):
    Image.fromarray(np.full((100, 100), 17, np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(ImageReadError, match="flat.png is empty"):
        read_xray(tmp_path / "flat.png")


def test_tiny_image_is_refused(tmp_path):
    Image.fromarray(radiograph(rows=MIN_SIDE_PX - 1, cols=300)).save(tmp_path / "thumb.png")
    with pytest.raises(ImageReadError, match="thumb.png is too small"):
        read_xray(tmp_path / "thumb.png")


# --------------------------------------------------------------------------- read_xray: SimpleITK formats

@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_2d_and_single_slice_volumes_keep_spacing(tmp_path, suffix):
    stored = radiograph(high=3000, dtype=np.int16)
    flat = sitk.GetImageFromArray(stored)
    flat.SetSpacing((0.3, 0.2))  # SimpleITK order: x (column), y (row)
    slab = sitk.GetImageFromArray(stored[None])
    slab.SetSpacing((0.3, 0.2, 2.5))
    for name, image in (("flat", flat), ("slab", slab)):
        sitk.WriteImage(image, str(tmp_path / f"{name}{suffix}"))
        xray = read_xray(tmp_path / f"{name}{suffix}")
        np.testing.assert_array_equal(xray.pixels, stored)
        np.testing.assert_allclose(xray.spacing_mm, (0.2, 0.3), rtol=1e-6)


def test_multi_slice_volume_is_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([radiograph()] * 5)), str(tmp_path / "ct.nrrd"))
    with pytest.raises(ImageReadError, match="ct.nrrd looks like a CT/3D volume"):
        read_xray(tmp_path / "ct.nrrd")


# --------------------------------------------------------------------------- read_xray: DICOM

def test_dicom_monochrome1_is_inverted_and_keeps_spacing(tmp_path):
    stored = radiograph(high=4000, dtype=np.uint16)
    write_dicom(tmp_path / "cr.dcm", stored, "MONOCHROME1", spacing=(0.14, 0.16), modality="CR")
    xray = read_xray(tmp_path / "cr.dcm")
    assert xray.photometric == "MONOCHROME1"
    assert xray.spacing_mm == pytest.approx((0.14, 0.16))
    darkest_stored = np.unravel_index(stored.argmin(), stored.shape)
    assert xray.pixels[darkest_stored] == xray.pixels.max() == 4000
    np.testing.assert_array_equal(xray.pixels, 4000 - stored.astype(np.float32))


def test_dicom_monochrome2_rescaled_not_inverted(tmp_path):
    stored = radiograph(high=4000, dtype=np.uint16)
    write_dicom(tmp_path / "dx.dcm", stored, "MONOCHROME2", rescale=(2, -100))
    xray = read_xray(tmp_path / "dx.dcm")
    assert xray.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(xray.pixels, stored * 2.0 - 100)


def test_dicom_without_suffix_uses_imager_spacing(tmp_path):
    stored = radiograph(high=4000, dtype=np.uint16)
    write_dicom(tmp_path / "IM0001", stored, spacing=(0.1, 0.125), spacing_tag="ImagerPixelSpacing")
    xray = read_xray(tmp_path / "IM0001")
    assert xray.spacing_mm == pytest.approx((0.1, 0.125))
    np.testing.assert_array_equal(xray.pixels, stored)


# --------------------------------------------------------------------------- read_ct

def rotated_volume() -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8) - 100)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-120.5, 33.25, 410.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    return image


def assert_same_geometry(a: sitk.Image, b: sitk.Image):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-5)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha"])
def test_read_ct_keeps_geometry(tmp_path, name):
    image = rotated_volume()
    sitk.WriteImage(image, str(tmp_path / name))
    assert_same_geometry(read_ct(tmp_path / name), image)


def write_dicom_series(image: sitk.Image, folder: Path):
    """One CT slice per file with the position and orientation tags GDCM sorts by."""
    series_uid, study_uid = generate_uid(), generate_uid()
    d = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_k = sitk.Cast(image[:, :, k], sitk.sitkInt16)
        for tag, value in (
                ("0008|0060", "CT"), ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),
                ("0020|000d", study_uid), ("0020|000e", series_uid), ("0008|0018", generate_uid()),
                ("0020|0013", str(k + 1)),
                ("0020|0037", "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))),
                ("0020|0032", "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k)))),
                ("0018|0050", str(image.GetSpacing()[2]))):
            slice_k.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-6:]}_{k:03d}.dcm"))
        writer.Execute(slice_k)


def test_read_ct_dicom_series_names_the_series_to_choose_from(tmp_path):
    image = rotated_volume()
    write_dicom_series(image, tmp_path)
    write_dicom_series(image[:, :, :2], tmp_path)  # a shorter series in the same folder is not dropped silently
    with pytest.raises(ImageReadError, match="holds 2 series: .*6 slices.*2 slices.*--series UID"):
        read_ct(tmp_path)
    largest = list_series(tmp_path)[0]
    assert largest.slices == 6
    assert_same_geometry(read_ct(tmp_path, largest.uid), image)


def test_read_ct_refusals(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_ct(tmp_path / "missing.nii.gz")
    with pytest.raises(ImageReadError, match="holds no DICOM series"):
        read_ct(tmp_path)
    Image.fromarray(radiograph()).save(tmp_path / "xray.png")
    with pytest.raises(ImageReadError, match="xray.png is a 2D image"):
        read_ct(tmp_path / "xray.png")
    sitk.WriteImage(sitk.GetImageFromArray(radiograph()[None]), str(tmp_path / "slab.nrrd"))
    with pytest.raises(ImageReadError, match="slab.nrrd is a 2D image"):
        read_ct(tmp_path / "slab.nrrd")


# --------------------------------------------------------------------------- atomic writes

def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as tmp:
        tmp.write_text("first")
    assert target.read_text() == "first"

    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(target) as tmp:
            tmp.write_text("half of the second")
            raise RuntimeError("disk full")
    assert target.read_text() == "first"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_json_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        write_json({"angle": 12.5, "bad": object()}, tmp_path / "result.json")
    assert os.listdir(tmp_path) == []


def test_atomic_output_keeps_suffix_for_format_writers(tmp_path):
    with atomic_output(tmp_path / "vol.nii.gz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".nii.gz")
        sitk.WriteImage(rotated_volume(), str(tmp))
    assert os.listdir(tmp_path) == ["vol.nii.gz"]
    assert read_ct(tmp_path / "vol.nii.gz").GetSize() == (8, 7, 6)


def test_json_and_csv_writers(tmp_path):
    write_json({"angle": np.float32(12.5), "points": np.arange(3)}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"angle": 12.5, "points": [0, 1, 2]}
    assert (tmp_path / "r.json").read_text().startswith('{\n  "angle"')
    write_csv_rows(["case", "angle"], [["a b.jpg", 1.5], ["c", 2]], tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines() == ["case,angle", "a b.jpg,1.5", "c,2"]


# --------------------------------------------------------------------------- landmarks

def spine(n=5, first_level="T3", x0=100.0) -> SpineLandmarks:
    """``n`` tilted boxes stacked downwards, the corners in AASCE order."""
    quads = []
    for i in range(n):
        top, shift = 50.0 + 40 * i, 3.0 * i
        quads.append([[x0 + shift, top], [x0 + 60.123 + shift, top + 4],
                      [x0 + shift, top + 30], [x0 + 60 + shift, top + 33.456]])
    return SpineLandmarks(np.array(quads), first_level)


def test_landmarks_csv_round_trip(tmp_path):
    landmarks = spine()
    write_landmarks_csv(landmarks, tmp_path / "lm.csv")
    lines = (tmp_path / "lm.csv").read_text().splitlines()
    assert lines[0] == "level,corner,x_px,y_px"
    assert lines[1] == "T3,superior-left,100.000,50.000" and len(lines) == 1 + 5 * 4
    back = read_landmarks(tmp_path / "lm.csv")
    assert back.first_level == "T3" and back.levels == landmarks.levels
    np.testing.assert_allclose(back.points, landmarks.points, atol=1e-3)


def test_landmarks_csv_rows_in_any_order_but_complete(tmp_path):
    write_landmarks_csv(spine(), tmp_path / "lm.csv")
    header, *rows = (tmp_path / "lm.csv").read_text().splitlines()
    (tmp_path / "shuffled.csv").write_text("\n".join([header] + rows[::-1]))
    np.testing.assert_allclose(read_landmarks(tmp_path / "shuffled.csv").points, spine().points, atol=1e-3)
    (tmp_path / "gap.csv").write_text("\n".join([header] + rows[:5] + rows[6:]))
    with pytest.raises(LandmarkError, match="misses corners: T4 superior-right"):
        read_landmarks(tmp_path / "gap.csv")


def _lm_lines(tmp_path) -> list[str]:
    """Our landmark CSV of ``spine()`` (T3-T7) as lines: line 1 the header, line k + 2 the k-th corner."""
    write_landmarks_csv(spine(), tmp_path / "lm.csv")
    return (tmp_path / "lm.csv").read_text().splitlines()


def _read(tmp_path, lines, name="edited.csv"):
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return read_landmarks(tmp_path / name)


def test_landmarks_csv_row_with_an_extra_or_missing_column_names_its_line(tmp_path):
    lines = _lm_lines(tmp_path)
    extra = lines[:6] + [lines[6] + ",1"] + lines[7:]                 # the 6th corner, on line 7
    with pytest.raises(LandmarkError, match=r"line 7 has 5 columns, expected 4 \(level,corner,x_px,y_px\)$"):
        _read(tmp_path, extra)
    with pytest.raises(LandmarkError, match="line 2 has 5 columns, expected 4"):
        _read(tmp_path, [lines[0]] + [f"{i},{line}" for i, line in enumerate(lines[1:])])  # an unnamed index
    short = lines[:3] + [lines[3].rsplit(",", 1)[0]] + lines[4:]
    with pytest.raises(LandmarkError, match="line 4 has 3 columns, expected 4"):
        _read(tmp_path, short)
    # Blank lines are skipped but counted: the message names the line a text editor shows.
    with pytest.raises(LandmarkError, match="line 9 has 5 columns"):
        _read(tmp_path, lines[:2] + ["", " "] + lines[2:6] + [lines[6] + ",1"] + lines[7:])


def test_landmarks_csv_extra_named_columns_are_ignored(tmp_path):
    lines = _lm_lines(tmp_path)
    back = _read(tmp_path, ["note," + lines[0]] + [f"row {i}," + line for i, line in enumerate(lines[1:])])
    np.testing.assert_allclose(back.points, spine().points, atol=1e-3)
    assert back.first_level == "T3"


def test_landmarks_csv_corner_given_twice_names_both_lines(tmp_path):
    lines = _lm_lines(tmp_path)
    # Line 12 is the 11th corner: T5 (the third level) inferior-left. Repeated as line 22.
    assert lines[11].startswith("T5,inferior-left,")
    with pytest.raises(LandmarkError, match=r"T5 inferior-left is given twice \(lines 12 and 22\)$"):
        _read(tmp_path, lines + [lines[11]])
    # A duplicate in place of another row (T7 inferior-right, line 21) is the duplicate, not a missing corner.
    with pytest.raises(LandmarkError, match=r"T5 inferior-left is given twice \(lines 12 and 21\)$"):
        _read(tmp_path, lines[:20] + [lines[11]])
    # The same corner under its image name counts too.
    x, y = lines[1].split(",")[2:]
    with pytest.raises(LandmarkError, match=r"T3 superior-left is given twice \(lines 2 and 22\)$"):
        _read(tmp_path, lines + [f"T3,top-left,{x},{y}"])


def test_landmarks_csv_unknown_level_or_corner(tmp_path):
    lines = _lm_lines(tmp_path)
    with pytest.raises(LandmarkError, match=r"line 3: unknown level 'C7' \(expected one of T1–L5\)$"):
        _read(tmp_path, lines[:2] + ["C7" + lines[2][2:]] + lines[3:])
    with pytest.raises(LandmarkError, match="line 2: unknown corner 'upper-left' .expected one of superior-left, "):
        _read(tmp_path, [lines[0], lines[1].replace("superior-left", "upper-left")] + lines[2:])
    with pytest.raises(LandmarkError, match="line 5: x_px and y_px must be numbers"):
        _read(tmp_path, lines[:4] + [lines[4].rsplit(",", 1)[0] + ",12 px"] + lines[5:])


def test_landmarks_json_round_trip(tmp_path):
    landmarks = spine(first_level="T8")
    write_landmarks_json(landmarks, tmp_path / "lm.json")
    back = read_landmarks(tmp_path / "lm.json")
    assert back.first_level == "T8"
    np.testing.assert_allclose(back.points, landmarks.points, atol=1e-3)


def test_read_landmarks_refusals(tmp_path):
    with pytest.raises(LandmarkError, match="not found"):
        read_landmarks(tmp_path / "none.csv")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LandmarkError, match="not valid JSON"):
        read_landmarks(tmp_path / "bad.json")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LandmarkError, match="lacks the header"):
        read_landmarks(tmp_path / "bad.csv")


# --------------------------------------------------------------------------- AASCE folders

def make_aasce_folder(root: Path, labels=True):
    """Three synthetic radiographs with names containing spaces, CRLF filenames.csv as in AASCE."""
    sizes = [(100, 260), (120, 300), (90, 250)]
    names = [f"case {i} A AP.png" for i in range(3)]
    (root / "images").mkdir(parents=True)
    spines = []
    for name, (w, h) in zip(names, sizes):
        Image.fromarray(radiograph(rows=h, cols=w)).save(root / "images" / name)
        spines.append(SpineLandmarks(spine(17, "T1", x0=10).points * [w / 200, h / 800]))
    (root / "filenames.csv").write_bytes("".join(f"{n}\r\n" for n in names).encode())
    rows = np.array([s.to_aasce_row(w, h) for s, (w, h) in zip(spines, sizes)])
    angles = np.array([[10.5, 3.25, 7.125], [0, 0, 0], [41.139, 14.63, 40.147]])
    if labels:
        write_aasce_landmarks_csv(rows, root / "landmarks.csv")
        write_aasce_angles_csv(angles, root / "angles.csv")
    return names, sizes, spines, rows, angles


def test_aasce_folder_reader(tmp_path):
    names, sizes, spines, rows, angles = make_aasce_folder(tmp_path)
    folder = read_aasce_folder(tmp_path)
    assert folder.filenames == names and len(folder) == 3
    assert folder.image_path(1) == tmp_path / "images" / "case 1 A AP.png"
    assert folder.image_size(1) == sizes[1]
    np.testing.assert_allclose(folder.landmarks, rows, rtol=1e-7)
    np.testing.assert_allclose(folder.angles, angles, rtol=1e-7)
    for i in range(3):
        np.testing.assert_allclose(folder.landmarks_px(i).points, spines[i].points, rtol=1e-6)


def test_aasce_csv_layout(tmp_path):
    _, _, _, rows, _ = make_aasce_folder(tmp_path)
    lines = (tmp_path / "landmarks.csv").read_text().splitlines()
    assert len(lines) == 3 and len(lines[0].split(",")) == 136
    assert (tmp_path / "angles.csv").read_text().splitlines()[2] == "41.139,14.63,40.147"
    with pytest.raises(ValueError, match=r"\(n, 136\)"):
        write_aasce_landmarks_csv(rows[:, :100], tmp_path / "x.csv")


def test_aasce_folder_without_labels(tmp_path):
    make_aasce_folder(tmp_path, labels=False)
    folder = read_aasce_folder(tmp_path)
    assert len(folder) == 3 and folder.landmarks is None and folder.angles is None
    with pytest.raises(LandmarkError, match="has no landmarks.csv"):
        folder.landmarks_px(0)


def test_aasce_folder_refusals(tmp_path):
    with pytest.raises(ImageReadError, match="folder not found"):
        read_aasce_folder(tmp_path / "missing")
    (tmp_path / "images").mkdir()
    with pytest.raises(ImageReadError, match="has no filenames.csv"):
        read_aasce_folder(tmp_path)
    (tmp_path / "filenames.csv").write_text("a.png\nb.png\n")
    write_aasce_angles_csv(np.zeros((3, 3)), tmp_path / "angles.csv")
    with pytest.raises(ImageReadError, match="angles.csv has 3 rows but filenames.csv lists 2 images"):
        read_aasce_folder(tmp_path)


def test_real_aasce_training_folder():
    if not (AASCE_DIR / "filenames.csv").is_file():
        pytest.skip(f"AASCE training data not found: set SPINE_AASCE_DIR (looked in {AASCE_DIR})")
    folder = read_aasce_folder(AASCE_DIR)
    assert len(folder.filenames) == 481
    assert folder.landmarks.shape == (481, 136) and folder.angles.shape == (481, 3)
    assert all(folder.image_path(i).is_file() for i in range(len(folder)))
    width, height = folder.image_size(0)
    assert read_xray(folder.image_path(0)).pixels.shape == (height, width)
    points = folder.landmarks_px(0).flat
    assert points.min() >= 0 and np.all(points.max(axis=0) <= (width, height))


CT_DIR = ct_dir()


@pytest.mark.skipif(not (CT_DIR / "totalseg-dicom-series").is_dir(),
                    reason=f"real CT data not found at {CT_DIR} (set SPINE_CT_DIR)")
def test_real_ct_dicom_series_and_nifti_keep_their_geometry():
    series = read_ct(CT_DIR / "totalseg-dicom-series")
    assert series.GetSize()[2] == 20
    assert series.GetSpacing()[0] == pytest.approx(0.98, abs=0.01)
    assert series.GetSpacing()[2] == pytest.approx(2.0, abs=0.01)
    nifti = read_ct(CT_DIR / "totalseg-abdomen" / "example_ct.nii.gz")
    assert nifti.GetSpacing() == pytest.approx((3.0, 3.0, 3.0), abs=0.01)
