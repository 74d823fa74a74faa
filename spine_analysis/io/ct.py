"""Reading a CT volume (NIfTI, NRRD, MHA or a DICOM series folder) with its LPS geometry."""
from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..errors import ImageReadError, sitk_reason


def _read_dicom_series(folder: Path) -> sitk.Image:
    """The series with the most files in ``folder``: a folder often also holds scouts or reformats."""
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ImageReadError(f"{folder} holds no DICOM series")
    files = max((reader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series), key=len)
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(f"{folder}: cannot read the DICOM series ({sitk_reason(exc)})") from None


def read_ct(path) -> sitk.Image:
    """Read a CT volume (NIfTI, NRRD, MHA or a DICOM series folder) with its LPS geometry."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file or folder not found")
    if path.is_dir():
        image = _read_dicom_series(path)
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise ImageReadError(f"{path} is not a readable image ({sitk_reason(exc)})") from None
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and image.GetSize()[2] < 2):
        raise ImageReadError(f"{path} is a 2D image; a CT volume with several slices is expected")
    if image.GetDimension() != 3:
        raise ImageReadError(f"{path} has {image.GetDimension()} dimensions; a 3D CT volume is expected")
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise ImageReadError(f"{path} is a colour/vector image; a CT volume is expected")
    return image

