"""Reading a CT volume (NIfTI, NRRD, MHA or a DICOM series folder) with its LPS geometry.

A folder is read slice by slice by ``io.dicom_series``; a file by SimpleITK, once ``io.integrity``
has found it whole."""
from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..errors import ImageReadError, sitk_reason
from .dicom_series import read_dicom_series
from .integrity import check_whole


def read_ct(path, series_uid: str | None = None) -> sitk.Image:
    """Read a CT volume (NIfTI, NRRD, MHA or a DICOM series folder) with its LPS geometry.

    ``series_uid`` picks one series of a DICOM folder holding several (see ``io.dicom_series``)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file or folder not found")
    if path.is_dir():
        image = read_dicom_series(path, series_uid)
    elif series_uid is not None:
        raise ImageReadError(f"{path} is a file: a series UID only chooses among the series of a DICOM folder")
    else:
        check_whole(path)
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

