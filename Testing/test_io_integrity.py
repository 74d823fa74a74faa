"""Files that are not whole are refused before anything reads them (io.integrity)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spine_analysis.cli import main
from spine_analysis.errors import ImageReadError
from spine_analysis.io.ct import read_ct
from spine_analysis.io.integrity import check_whole
from spine_analysis.io.xray import read_xray

FORMATS = [(".nii.gz", True), (".nii", False), (".nrrd", True), (".nrrd", False), (".mha", True),
           (".mha", False)]


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(-1000, 1500, (30, 40, 50)).astype(np.int16))
    image.SetSpacing((0.8, 0.8, 2.0))
    return image


def _halved(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut-" + path.name)
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.mark.parametrize("suffix,compress", FORMATS)
def test_whole_files_read_and_truncated_ones_are_refused(tmp_path, volume, suffix, compress):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(volume, str(path), compress)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(path)), sitk.GetArrayFromImage(volume))
    with pytest.raises(ImageReadError, match="truncated"):
        read_ct(_halved(path))


def test_a_detached_data_file_cut_short_is_refused(tmp_path, volume):
    header = tmp_path / "ct.mhd"
    sitk.WriteImage(volume, str(header), False)
    raw = tmp_path / "ct.raw"
    raw.write_bytes(raw.read_bytes()[:-1000])
    with pytest.raises(ImageReadError, match=r"holds 119,000 of the 120,000 bytes"):
        check_whole(header)
    raw.unlink()
    with pytest.raises(ImageReadError, match="data file ct.raw is missing"):
        check_whole(header)


def test_a_damaged_gzip_stream_is_called_corrupt(tmp_path, volume):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume, str(path), True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="corrupt|truncated"):
        read_ct(path)


def test_a_nifti_whose_gzip_is_whole_but_short_is_refused(tmp_path, volume):
    """A whole gzip stream of a NIfTI that was already cut before compression."""
    plain = tmp_path / "ct.nii"
    sitk.WriteImage(volume, str(plain), False)
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(plain.read_bytes()[:-4000]))
    with pytest.raises(ImageReadError, match=r"holds \d[\d,]* of the \d[\d,]* bytes"):
        read_ct(short)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_a_truncated_radiograph_is_refused(tmp_path, suffix):
    path = tmp_path / f"xray.{suffix}"
    Image.fromarray((np.random.default_rng(1).random((600, 300)) * 255).astype(np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="truncated"):
        read_xray(_halved(path))


def test_a_truncated_dicom_slice_is_refused(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series = generate_uid()
    for k in range(4):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, series
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2.0 * k], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.0
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.full((64, 64), 40, np.int16).tobytes()
        ds.save_as(tmp_path / f"slice{k}.dcm", enforce_file_format=True)
    assert read_ct(tmp_path).GetSize() == (64, 64, 4)
    cut = tmp_path / "slice2.dcm"
    cut.write_bytes(cut.read_bytes()[:-3000])
    with pytest.raises(ImageReadError, match="slice2.dcm"):
        read_ct(tmp_path)


def test_the_command_line_refuses_a_truncated_ct_in_one_line_and_writes_nothing(tmp_path, volume, capsys):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume, str(path), True)
    cut = _halved(path)
    out = tmp_path / "out"
    assert main(["fracture", str(cut), "--out-dir", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "truncated" in error
    assert not out.exists() or not any(out.iterdir())
    assert main(["segment", str(cut), "--seed=0,0,0", "--out", str(tmp_path / "mask.nii.gz")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "truncated" in error
    assert not (tmp_path / "mask.nii.gz").exists()
