"""Folders in the AASCE 2019 challenge layout: ``images/``, ``filenames.csv``, ``landmarks.csv``, ``angles.csv``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageReadError, LandmarkError
from ..xray.landmarks import CORNERS, LEVELS, SpineLandmarks
from .atomic import atomic_output

#: Numbers in an AASCE landmark row: 17 levels x 4 corners, all x then all y.
AASCE_COLUMNS = 2 * len(CORNERS) * len(LEVELS)
AASCE_ANGLE_COLUMNS = 3


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
        """The file of image ``i`` (``filenames.csv`` order)."""
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
