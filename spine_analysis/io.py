"""Reading radiographs, CT volumes, landmark and AASCE files; writing outputs atomically.

Readers turn every format into one shape (a float32 grey radiograph, a SimpleITK CT volume,
``SpineLandmarks``) and refuse unsuitable input with a one-line ``ImageReadError`` that names
the file, so the engine never sees a colour photo, a CT handed in as a radiograph, or a
half-written file.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut

from .errors import ImageReadError, LandmarkError
from .landmarks import CORNER_LABELS, CORNERS, LEVELS, SpineLandmarks

#: A radiograph narrower or shorter than this cannot show a spine (thumbnails, icons, masks).
MIN_SIDE_PX = 64
#: Largest channel difference, as a fraction of the value range, still taken as a grey image
#: saved as RGB (JPEG compression leaves the channels of a grey image a level or two apart).
GREY_RGB_TOLERANCE = 0.02
#: Suffixes read with SimpleITK, which keeps their physical spacing; other files go to Pillow.
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")
#: Numbers in an AASCE landmark row: 17 levels x 4 corners, all x then all y.
AASCE_COLUMNS = 2 * len(CORNERS) * len(LEVELS)
AASCE_ANGLE_COLUMNS = 3
LANDMARK_CSV_HEADER = ("level", "corner", "x_px", "y_px")


# --------------------------------------------------------------------------- radiographs

@dataclass(frozen=True)
class XRay:
    """A grey radiograph, bright = dense (bone), whatever the file's convention.

    ``pixels`` is float32 (rows, cols); ``spacing_mm`` is (row, col) millimetres when the
    file records it (DICOM, NRRD, MHA, NIfTI), else None; ``photometric`` is the file's own
    interpretation ("MONOCHROME1", "MONOCHROME2" or "RGB" for a grey image saved as colour).
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None
    source: str
    photometric: str


def _suffix(path: Path) -> str:
    """Lower-case suffix, keeping the double ``.nii.gz``."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble, whatever their name."""
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _grey_from_channels(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Luminance of a (rows, cols, channels) image whose colour channels agree, else refuse."""
    channels = pixels.shape[2]
    if channels in (1, 2):  # grey, or grey + alpha
        return pixels[..., 0]
    if channels not in (3, 4):
        raise ImageReadError(f"{path} has {channels} channels per pixel; a grayscale radiograph is expected")
    rgb = pixels[..., :3].astype(np.float64)
    value_range = np.iinfo(pixels.dtype).max if pixels.dtype.kind in "ui" else max(float(np.ptp(rgb)), 1e-12)
    spread = max(np.abs(rgb[..., 0] - rgb[..., 1]).max(), np.abs(rgb[..., 1] - rgb[..., 2]).max())
    if spread > GREY_RGB_TOLERANCE * value_range:
        raise ImageReadError(f"{path} is a colour image; a grayscale radiograph is expected")
    return rgb @ np.array([0.299, 0.587, 0.114])


def _read_pillow(path: Path) -> tuple[np.ndarray, None, str]:
    """PNG, JPEG, TIFF, BMP: no spacing, as their DPI describes printing, not the detector."""
    try:
        with Image.open(path) as img:
            if img.mode in ("1", "L", "I", "F") or img.mode.startswith("I;16"):
                return np.asarray(img), None, "MONOCHROME2"
            if img.mode not in ("LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
            pixels = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ImageReadError(f"{path} is not a readable image") from None
    grey = _grey_from_channels(pixels[..., None] if pixels.ndim == 2 else pixels, path)
    return grey, None, "RGB" if pixels.ndim == 3 and pixels.shape[2] >= 3 else "MONOCHROME2"


def _sitk_reason(exc: RuntimeError) -> str:
    """The last line of a SimpleITK error, without its source-file prefix."""
    return str(exc).strip().splitlines()[-1].replace("sitk::ERROR: ", "")


def _read_sitk_2d(path: Path) -> tuple[np.ndarray, tuple[float, float], str]:
    """A 2D image, or a single-slice 3D one as Slicer saves radiographs."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(f"{path} is not a readable image ({_sitk_reason(exc)})") from None
    size = image.GetSize()
    if image.GetDimension() == 3:
        if size[2] > 1:
            raise ImageReadError(
                f"{path} looks like a CT/3D volume ({size[2]} slices); a single radiograph is expected")
        image = image[:, :, 0]
    elif image.GetDimension() != 2:
        raise ImageReadError(f"{path} has {image.GetDimension()} dimensions; a 2D radiograph is expected")
    pixels = sitk.GetArrayFromImage(image)
    photometric = "MONOCHROME2"
    if image.GetNumberOfComponentsPerPixel() > 1:
        pixels = _grey_from_channels(pixels, path)
        photometric = "RGB"
    spacing = image.GetSpacing()
    return pixels, (float(spacing[1]), float(spacing[0])), photometric


def _read_dicom(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    """A single-frame CR/DX file, as modality values with MONOCHROME1 inverted."""
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise ImageReadError(f"{path} is not a readable DICOM file ({exc})") from None
    if "PixelData" not in ds:
        raise ImageReadError(f"{path} is a DICOM file without an image (modality {ds.get('Modality', '?')})")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise ImageReadError(
            f"{path} looks like a CT/3D volume ({ds.NumberOfFrames} frames); a single radiograph is expected")
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:  # e.g. compression
        raise ImageReadError(f"{path}: cannot decode the DICOM pixel data ({exc})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if pixels.ndim == 3:
        pixels = _grey_from_channels(pixels, path)
    else:
        pixels = apply_modality_lut(pixels, ds).astype(np.float64)
        if photometric == "MONOCHROME1":
            pixels = pixels.max() + pixels.min() - pixels
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    spacing_mm = (float(spacing[0]), float(spacing[1])) if spacing else None
    return pixels, spacing_mm, photometric


def read_xray(path) -> XRay:
    """Read a 2D radiograph (PNG, JPEG, TIFF, BMP, DICOM, NRRD, MHA, NIfTI) as bright-bone float32."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder; a radiograph file is expected")
    suffix = _suffix(path)
    if suffix in DICOM_SUFFIXES or _is_dicom(path):
        reader = _read_dicom
    elif suffix in SITK_SUFFIXES:
        reader = _read_sitk_2d
    else:
        reader = _read_pillow
    pixels, spacing_mm, photometric = reader(path)
    if pixels.size == 0:
        raise ImageReadError(f"{path} is empty (0 pixels)")
    if min(pixels.shape) < MIN_SIDE_PX:
        rows, cols = pixels.shape
        raise ImageReadError(f"{path} is too small ({cols} x {rows} px) to hold a spine; "
                             f"at least {MIN_SIDE_PX} px per side is expected")
    pixels = np.asarray(pixels, dtype=np.float32)
    if not np.all(np.isfinite(pixels)):
        raise ImageReadError(f"{path} contains NaN or infinite pixel values")
    if pixels.min() == pixels.max():
        raise ImageReadError(f"{path} is empty (every pixel is {pixels.flat[0]:g})")
    return XRay(pixels, spacing_mm, str(path), photometric)


# --------------------------------------------------------------------------- CT

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
        raise ImageReadError(f"{folder}: cannot read the DICOM series ({_sitk_reason(exc)})") from None


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
            raise ImageReadError(f"{path} is not a readable image ({_sitk_reason(exc)})") from None
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and image.GetSize()[2] < 2):
        raise ImageReadError(f"{path} is a 2D image; a CT volume with several slices is expected")
    if image.GetDimension() != 3:
        raise ImageReadError(f"{path} has {image.GetDimension()} dimensions; a 3D CT volume is expected")
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise ImageReadError(f"{path} is a colour/vector image; a CT volume is expected")
    return image


# --------------------------------------------------------------------------- atomic output

@contextlib.contextmanager
def atomic_output(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    A crash or error mid-write then leaves the old file (or nothing), never a truncated one.
    The temporary keeps the suffix so suffix-driven writers (SimpleITK, Pillow) pick the format.
    """
    path = Path(path)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path, write_fn: Callable[[Path], object]) -> None:
    """``write_fn(tmp_path)`` then move into place; see ``atomic_output``."""
    with atomic_output(path) as tmp:
        write_fn(tmp)


def _json_default(obj):
    """Let results carry numpy numbers and paths without converting them by hand."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(obj: dict, path) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def write_csv_rows(header: Sequence[str], rows: Iterable[Sequence], path) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


# --------------------------------------------------------------------------- landmarks

def write_landmarks_csv(landmarks: SpineLandmarks, path) -> None:
    """One row per corner: level, anatomical corner name, pixel x (column), pixel y (row)."""
    rows = [(level, corner, f"{x:.3f}", f"{y:.3f}")
            for level, quad in zip(landmarks.levels, landmarks.points)
            for corner, (x, y) in zip(CORNER_LABELS, quad)]
    write_csv_rows(LANDMARK_CSV_HEADER, rows, path)


def write_landmarks_json(landmarks: SpineLandmarks, path) -> None:
    write_json(landmarks.to_dict(), path)


def _landmarks_from_csv(path: Path) -> SpineLandmarks:
    """Rows may come in any order; every level from the first to the last needs its 4 corners."""
    corner_index = {name: i for names in (CORNER_LABELS, CORNERS) for i, name in enumerate(names)}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(LANDMARK_CSV_HEADER) <= set(reader.fieldnames):
            raise LandmarkError(f"{path} lacks the header {','.join(LANDMARK_CSV_HEADER)}")
        found = {}
        for line, row in enumerate(reader, start=2):
            level, corner = (row["level"] or "").strip(), (row["corner"] or "").strip()
            if level not in LEVELS or corner not in corner_index:
                raise LandmarkError(f"{path} line {line}: unknown level or corner {level!r} {corner!r}")
            try:
                found[LEVELS.index(level), corner_index[corner]] = (float(row["x_px"]), float(row["y_px"]))
            except (TypeError, ValueError):
                raise LandmarkError(f"{path} line {line}: x_px and y_px must be numbers") from None
    if not found:
        raise LandmarkError(f"{path} holds no landmarks")
    levels = sorted({level for level, _ in found})
    first, last = levels[0], levels[-1]
    missing = [f"{LEVELS[lv]} {CORNER_LABELS[c]}" for lv in range(first, last + 1) for c in range(4)
               if (lv, c) not in found]
    if missing:
        more = " ..." if len(missing) > 4 else ""
        raise LandmarkError(f"{path} misses corners: {', '.join(missing[:4])}{more}")
    points = [[found[lv, c] for c in range(4)] for lv in range(first, last + 1)]
    return SpineLandmarks(np.array(points, dtype=float), LEVELS[first])


def read_landmarks(path) -> SpineLandmarks:
    """Landmarks from our CSV (``write_landmarks_csv``) or JSON (``SpineLandmarks.to_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise LandmarkError(f"{path}: landmark file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _landmarks_from_csv(path)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LandmarkError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise LandmarkError(f"{path} must hold a JSON object with 'points'")
        return SpineLandmarks.from_dict(data)
    raise LandmarkError(f"{path}: landmark files must be .csv or .json")


# --------------------------------------------------------------------------- AASCE folders

def read_numeric_csv(path, columns: int) -> np.ndarray:
    """A headerless comma-separated table of numbers with ``columns`` values per row."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"cannot read {path}: file not found")
    try:
        values = np.loadtxt(path, delimiter=",", ndmin=2, dtype=float)
    except ValueError as exc:
        raise ImageReadError(f"{path} is not a numeric CSV ({exc})") from None
    if values.size == 0:
        values = values.reshape(0, columns)
    if values.shape[1] != columns:
        raise ImageReadError(f"{path} has {values.shape[1]} columns, expected {columns}")
    return values


@dataclass(frozen=True)
class AasceFolder:
    """A folder in the AASCE layout: ``images/``, ``filenames.csv`` and optional labels.

    ``landmarks`` rows hold 68 normalised x then 68 normalised y (fractions of the image
    width and height); ``angles`` rows hold the three AASCE Cobb angles in degrees.
    """

    root: Path
    filenames: list[str]
    landmarks: np.ndarray | None
    angles: np.ndarray | None

    def __len__(self) -> int:
        return len(self.filenames)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / self.filenames[i]

    def image_size(self, i: int) -> tuple[int, int]:
        """(width, height) in pixels from the header: scaling landmarks needs no decoding."""
        path = self.image_path(i)
        try:
            with Image.open(path) as img:
                return img.size
        except FileNotFoundError:
            raise ImageReadError(f"{path}: file not found") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageReadError(f"{path} is not a readable image ({exc})") from None

    def landmarks_px(self, i: int) -> SpineLandmarks:
        """The labelled corners of image ``i`` in pixels."""
        if self.landmarks is None:
            raise LandmarkError(f"{self.root} has no landmarks.csv")
        width, height = self.image_size(i)
        return SpineLandmarks.from_aasce_row(self.landmarks[i], width, height)


def read_aasce_folder(folder) -> AasceFolder:
    """Read ``filenames.csv`` and, when present, ``landmarks.csv`` and ``angles.csv``."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: folder not found")
    names_file = root / "filenames.csv"
    if not names_file.is_file():
        raise ImageReadError(f"{root} has no filenames.csv; an AASCE-layout folder is expected")
    # One name per line, spaces included; the AASCE files end lines with CRLF.
    lines = names_file.read_text(encoding="utf-8-sig").splitlines()
    filenames = [line.strip() for line in lines if line.strip()]
    if not filenames:
        raise ImageReadError(f"{names_file} lists no images")
    labels = {}
    for name, columns in (("landmarks", AASCE_COLUMNS), ("angles", AASCE_ANGLE_COLUMNS)):
        file = root / f"{name}.csv"
        labels[name] = read_numeric_csv(file, columns) if file.is_file() else None
        if labels[name] is not None and len(labels[name]) != len(filenames):
            raise ImageReadError(
                f"{file} has {len(labels[name])} rows but filenames.csv lists {len(filenames)} images")
    return AasceFolder(root, filenames, labels["landmarks"], labels["angles"])


def _write_numeric_csv(values: np.ndarray, columns: int, path, what: str) -> None:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != columns:
        raise ValueError(f"{what} must be shaped (n, {columns}), got {values.shape}")
    with atomic_output(path) as tmp:
        np.savetxt(tmp, values, fmt="%.8g", delimiter=",")


def write_aasce_landmarks_csv(rows, path) -> None:
    """Headerless (n, 136) rows of normalised coordinates, as AASCE ``landmarks.csv``."""
    _write_numeric_csv(rows, AASCE_COLUMNS, path, "AASCE landmark rows")


def write_aasce_angles_csv(angles, path) -> None:
    """Headerless (n, 3) Cobb angles in degrees, as AASCE ``angles.csv``."""
    _write_numeric_csv(angles, AASCE_ANGLE_COLUMNS, path, "AASCE angles")
