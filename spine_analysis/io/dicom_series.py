"""Reading a CT volume from a folder of DICOM slices, choosing the series and checking its geometry.

A PACS export is a tree of files that may hold several series (scouts, reformats, other phases),
files that are not DICOM, and a DICOMDIR. Headers are read first (no pixels) to group the image
files by SeriesInstanceUID; several volumetric series are never picked between silently: the user
names one (``series_uid``, ``--series`` on the command line).

Slices are ordered by their position along the slice normal (row x column of
ImageOrientationPatient, dotted with ImagePositionPatient), never by file name or InstanceNumber.
The stack is refused when it cannot be one volume (orientations or sizes differ, two slices at one
position, slices missing); it is resampled, and the user told so in one logged line, when it is
one volume on a non-orthogonal or uneven grid:

- gantry tilt (the stack is sheared): each slice is moved in-plane by its offset orthogonal to the
  normal (linear interpolation, air at -1024 HU where nothing was scanned), giving an orthogonal grid;
- uneven spacing (steps differ by more than 1 % but none is a gap): the slices are interpolated
  linearly along the normal onto a uniform grid of about the typical step.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import ImageReadError
from .dicom import stored_pixels

log = logging.getLogger(__name__)

AIR_HU = -1024.0
GAP_FACTOR = 1.5            # a step this many times the typical one means slices are missing
UNEVEN_TOLERANCE = 0.01     # relative step variation above which slices are resampled
TILT_TOLERANCE_PX = 0.05    # in-plane offsets below this fraction of a pixel are left alone
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class SeriesInfo:
    """One image series of a folder, as a user would pick it."""

    uid: str
    modality: str
    description: str
    slices: int           # image files (a multi-frame file counts once)
    frames: int           # frames over all its files
    volumetric: bool      # several slices or frames, and not a localizer (scout)

    def to_dict(self) -> dict:
        return {"uid": self.uid, "modality": self.modality, "description": self.description,
                "slices": self.slices, "frames": self.frames, "volumetric": self.volumetric}

    def line(self) -> str:
        return (f"{self.uid or '(no series UID)'} ({self.modality or '?'}, "
                f"'{self.description}', {self.slices} slice{'s' if self.slices != 1 else ''})")


def _frames(ds) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def _image_headers(folder: Path) -> dict[str, list[tuple[Path, object]]]:
    """Headers of every DICOM image file under ``folder`` (recursively), grouped by series UID."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    series: dict[str, list] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            continue                                   # a README, a thumbnail, a checksum file...
        except (EOFError, ValueError) as exc:
            raise ImageReadError(f"{path}: a DICOM file whose header cannot be read ({exc})") from None
        media_class = ds.file_meta.get("MediaStorageSOPClassUID") if hasattr(ds, "file_meta") else None
        if str(media_class) == DICOMDIR_SOP_CLASS or "Rows" not in ds or "Columns" not in ds:
            continue                                   # a DICOMDIR by another name, a report, a structure set
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    return series


def _info(uid: str, files: list) -> SeriesInfo:
    first = files[0][1]
    frames = sum(_frames(ds) for _, ds in files)
    localizer = "LOCALIZER" in [str(v).upper() for v in (first.get("ImageType") or [])]
    return SeriesInfo(uid, str(first.get("Modality", "")), str(first.get("SeriesDescription", "")),
                      len(files), frames, frames > 1 and not localizer and first.get("Modality") != "SEG")


def _largest_first(series: dict) -> list[SeriesInfo]:
    return sorted((_info(uid, files) for uid, files in series.items()), key=lambda s: (-s.frames, s.uid))


def list_series(folder) -> list[SeriesInfo]:
    """The image series of a DICOM folder (searched recursively), largest first."""
    return _largest_first(_image_headers(Path(folder)))


def _choose(folder: Path, series_uid: str | None) -> list[tuple[Path, object]]:
    """The files of the series the user named, else of the only volumetric series, else of the
    only volumetric CT series."""
    series = _image_headers(folder)
    if not series:
        raise ImageReadError(f"{folder} holds no DICOM series")
    infos = _largest_first(series)
    if series_uid is not None:
        if series_uid not in series:
            raise ImageReadError(f"{folder} has no series {series_uid}; its series: "
                                 + "; ".join(info.line() for info in infos))
        return series[series_uid]
    candidates = [info for info in infos if info.volumetric] or infos
    only_ct = [info for info in candidates if info.modality == "CT"]
    if len(candidates) > 1 and len(only_ct) == 1:   # e.g. a CT beside a PET or MR series of the same study
        return series[only_ct[0].uid]
    if len(candidates) > 1:
        raise ImageReadError(f"{folder} holds {len(candidates)} series: "
                             + "; ".join(info.line() for info in candidates) + "; choose one with --series UID")
    return series[candidates[0].uid]


@dataclass
class _Stack:
    """A series' slices sorted along their normal, with what reading them as one volume needs."""

    files: list                # (path, header), in volume z order
    row: np.ndarray            # LPS unit vectors of the column index, the row index, the slice order
    col: np.ndarray
    normal: np.ndarray
    spacing_xy: tuple          # mm between columns, between rows
    positions: np.ndarray      # mm along the normal, ascending
    offsets: np.ndarray        # (n, 3) in-plane LPS offsets of each slice from the first: the tilt
    tilted: bool
    uneven: bool


def _vector(ds, keyword: str, path: Path, size: int) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != size:
        raise ImageReadError(f"{path} has no valid {keyword}: its slice cannot be placed in a volume")
    return np.array([float(v) for v in value])


def _stack(folder: Path, files: list) -> _Stack:
    """Sort ``files`` along the slice normal and check that they form one volume."""
    path0, first = files[0]
    if _frames(first) > 1:
        raise ImageReadError(f"{path0} is a multi-frame (enhanced) image of {_frames(first)} frames; this reader "
                             "takes classic one-slice-per-file series: convert it to NIfTI (e.g. dcm2niix) first")
    if len(files) < 2:
        raise ImageReadError(f"{folder} is a 2D image; a CT volume with several slices is expected")
    iop = _vector(first, "ImageOrientationPatient", path0, 6)
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    shape, spacing = (first.Rows, first.Columns), _vector(first, "PixelSpacing", path0, 2)
    for path, ds in files:
        if _frames(ds) > 1:
            raise ImageReadError(f"{path} is a multi-frame (enhanced) image inside a series of slices")
        if not np.allclose(_vector(ds, "ImageOrientationPatient", path, 6), iop, atol=1e-4):
            raise ImageReadError(f"{folder}: the slices are not all oriented alike ({path0.name} and {path.name} "
                                 "differ), so they do not form one volume")
        if (ds.Rows, ds.Columns) != shape or not np.allclose(_vector(ds, "PixelSpacing", path, 2), spacing, rtol=1e-4):
            raise ImageReadError(f"{folder}: the slices differ in size or pixel spacing ({path0.name}: "
                                 f"{shape[0]}x{shape[1]}, {path.name}: {ds.Rows}x{ds.Columns}), so they do not "
                                 "form one volume")
    ipp = np.array([_vector(ds, "ImagePositionPatient", path, 3) for path, ds in files])
    along = ipp @ normal
    order = np.argsort(along, kind="stable")
    files, ipp, along = [files[k] for k in order], ipp[order], along[order]
    steps = np.diff(along)
    if steps.min() < 0.01:
        k = int(np.argmin(steps))
        raise ImageReadError(f"{folder}: {files[k][0].name} and {files[k + 1][0].name} lie at the same position "
                             f"({along[k]:.2f} mm along the slice normal), so they do not form one volume")
    typical = float(np.median(steps))
    gaps = np.flatnonzero(steps > GAP_FACTOR * typical)
    if gaps.size:
        k = int(gaps[0])
        missing = int(round(steps[k] / typical)) - 1
        more = f" ({gaps.size} gaps in all)" if gaps.size > 1 else ""
        raise ImageReadError(f"{folder}: slices are missing between {along[k]:.2f} and {along[k + 1]:.2f} mm along "
                             f"the slice normal (about {missing} slice{'s' if missing != 1 else ''} of "
                             f"{typical:.2f} mm){more}; export the complete series")
    offsets = (ipp - ipp[0]) - np.outer(along - along[0], normal)
    tilted = bool(np.linalg.norm(offsets, axis=1).max() > TILT_TOLERANCE_PX * spacing.min())
    uneven = bool(np.abs(steps - typical).max() > UNEVEN_TOLERANCE * typical)
    return _Stack(files, row, col, normal, (float(spacing[1]), float(spacing[0])), along, offsets, tilted, uneven)


def _pixel_type(headers) -> type:
    """int16 when every slice's rescaled values are whole numbers within int16, else float32."""
    low, high = [], []
    for ds in headers:
        bits, signed = int(ds.get("BitsStored", ds.BitsAllocated)), int(ds.get("PixelRepresentation", 0)) == 1
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        if slope != round(slope) or intercept != round(intercept):
            return np.float32
        low.append(min(lo * slope, hi * slope) + intercept)
        high.append(max(lo * slope, hi * slope) + intercept)
    return np.int16 if min(low) >= -32768 and max(high) <= 32767 else np.float32


def _hu_slices(stack: _Stack, dtype) -> np.ndarray:
    """The slices' values after each one's own RescaleSlope and RescaleIntercept, as (z, y, x)."""
    from pydicom import dcmread

    rows, cols = stack.files[0][1].Rows, stack.files[0][1].Columns
    volume = np.empty((len(stack.files), rows, cols), dtype=dtype)
    for k, (path, _) in enumerate(stack.files):
        with warnings.catch_warnings():   # a truncated file is refused below in one line, not warned about
            warnings.simplefilter("ignore")
            ds = dcmread(path)
        if "PixelData" not in ds:
            raise ImageReadError(f"{path} has no pixel data: the file is truncated (a copy or download that did "
                                 "not finish?)")
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            raise ImageReadError(f"{path} is a colour image; a CT in Hounsfield units is expected")
        pixels = stored_pixels(ds, path)
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        volume[k] = pixels.astype(np.float64) * slope + intercept
    return volume


def _untilt(volume: np.ndarray, stack: _Stack) -> None:
    """Move each slice in-plane by its offset from the stack axis, in place, onto the first slice's grid.
    Beyond the scanned field is air; a pixel straddling its edge is interpolated with air, so a
    rounding-sized shift does not blank a border row."""
    from scipy import ndimage as ndi

    dx, dy = stack.spacing_xy
    for k, offset in enumerate(stack.offsets):
        shift = (offset @ stack.col / dy, offset @ stack.row / dx)     # (rows, columns), in pixels
        if np.hypot(*shift) > TILT_TOLERANCE_PX:
            volume[k] = ndi.shift(volume[k], shift, order=1, mode="grid-constant", cval=AIR_HU)


def _even(volume: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, float]:
    """Linear interpolation along the normal onto a uniform grid from the first to the last slice,
    its step as near the typical one as a whole number of steps allows."""
    extent = positions[-1] - positions[0]
    count = int(round(extent / np.median(np.diff(positions)))) + 1
    grid = positions[0] + np.arange(count) * extent / (count - 1)
    upper = np.clip(np.searchsorted(positions, grid, side="right"), 1, len(positions) - 1)
    weight = ((grid - positions[upper - 1]) / (positions[upper] - positions[upper - 1])).astype(np.float32)
    out = volume[upper - 1] * (1 - weight)[:, None, None] + volume[upper] * weight[:, None, None]
    return out, extent / (count - 1)


def read_dicom_series(folder, series_uid: str | None = None) -> sitk.Image:
    """The CT volume of one series of a DICOM folder, in HU, with its LPS geometry: origin at the
    first slice along the normal, spacing (columns, rows, slices), direction (row, column, normal)."""
    folder = Path(folder)
    return _volume(folder, _stack(folder, _choose(folder, series_uid)))


def read_acquired_series(folder, series_uid: str | None = None) -> tuple[sitk.Image, list]:
    """The volume as ``read_dicom_series`` gives it and its slice headers (no pixel data), one per
    z plane: what a DICOM SEG drawn on the volume lies on. A tilted or unevenly spaced series is
    refused, as its volume's planes would not be the acquired slices."""
    folder = Path(folder)
    stack = _stack(folder, _choose(folder, series_uid))
    if stack.tilted or stack.uneven:
        raise ImageReadError(f"{folder}: this series is {'tilted' if stack.tilted else 'unevenly spaced'} and is "
                             "resampled when read, so a DICOM SEG cannot lie on its acquired slices; "
                             "use the NIfTI output instead")
    return _volume(folder, stack), [ds for _, ds in stack.files]


def _volume(folder: Path, stack: _Stack) -> sitk.Image:
    """The volume of a checked stack, resampled where it is tilted or unevenly spaced."""
    resample = stack.tilted or stack.uneven
    volume = _hu_slices(stack, np.float32 if resample else _pixel_type(ds for _, ds in stack.files))
    positions = stack.positions
    spacing_z = (positions[-1] - positions[0]) / (len(positions) - 1)
    done = []
    if stack.tilted:
        _untilt(volume, stack)
        axis = (stack.offsets[-1] + (positions[-1] - positions[0]) * stack.normal)
        angle = np.degrees(np.arccos(abs(axis @ stack.normal) / np.linalg.norm(axis)))
        done.append(f"gantry tilt of {angle:.1f} degrees corrected (slices shifted in-plane onto an orthogonal grid)")
    if stack.uneven:
        steps = np.diff(positions)
        volume, spacing_z = _even(volume, positions)
        done.append(f"uneven slice spacing ({steps.min():.2f} to {steps.max():.2f} mm) resampled to "
                    f"{len(volume)} slices every {spacing_z:.2f} mm")
    if done:
        log.warning("%s: %s", folder, "; ".join(done))
    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(tuple(float(v) for v in _vector(stack.files[0][1], "ImagePositionPatient", stack.files[0][0], 3)))
    image.SetSpacing((*stack.spacing_xy, float(spacing_z)))
    image.SetDirection(tuple(np.column_stack([stack.row, stack.col, stack.normal]).ravel().tolist()))
    return image
