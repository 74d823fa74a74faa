"""Reading a 2D radiograph (PNG, JPEG, TIFF, BMP, DICOM, NRRD, MHA, NIfTI) as bright-bone float32."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageReadError, sitk_reason
from .integrity import check_whole

#: A radiograph narrower or shorter than this cannot show a spine (thumbnails, icons, masks).
MIN_SIDE_PX = 64
#: Largest channel difference, as a fraction of the value range, still taken as a grey image
#: saved as RGB (JPEG compression leaves the channels of a grey image a level or two apart).
GREY_RGB_TOLERANCE = 0.02
#: Suffixes read with SimpleITK, which keeps their physical spacing; other files go to Pillow.
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")
#: Largest image read, in pixels, checked from the header before any pixel is decoded. Real
#: radiographs stay far below (AASCE films ~2 MP, long stitched full-spine films ~40 MP); 120 MP
#: leaves room for those while bounding the float32 copy at 480 MB, whereas a 20000 x 20000
#: export would need gigabytes for nothing: the model works at 1024 rows.
MAX_PIXELS = 120_000_000

#: Guards Pillow's module-wide limit while a read lifts it (see ``_pillow_limit_lifted``).
_PILLOW_LIMIT = threading.Lock()


@dataclass(frozen=True)
class XRay:
    """A grey radiograph, bright = dense (bone), whatever the file's convention.

    ``pixels`` is float32 (rows, cols); ``spacing_mm`` is (row, col) millimetres when the
    file records it (DICOM, NRRD, MHA, NIfTI), else None, and ``spacing_source`` says where it
    came from (a DICOM keyword of ``SPACING_SOURCES``, or "image header"); ``photometric`` is the
    file's own interpretation ("MONOCHROME1", "MONOCHROME2" or "RGB" for a grey image saved as colour).
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None
    source: str
    photometric: str
    spacing_source: str | None = None


def _suffix(path: Path) -> str:
    """Lower-case suffix, keeping the double ``.nii.gz``."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble, whatever their name."""
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _check_size(path: Path, cols: int, rows: int) -> None:
    """Refuse an image over ``MAX_PIXELS`` from its header, before its pixels take memory."""
    if cols * rows > MAX_PIXELS:
        raise ImageReadError(f"{path} is too large ({cols} x {rows} px, {cols * rows / 1e6:.0f} megapixels); "
                             f"at most {MAX_PIXELS / 1e6:.0f} megapixels can be read: save it at a lower resolution")


@contextmanager
def _pillow_limit_lifted():
    """Pillow's own decompression-bomb check (a warning from 89 MP, an error from 179 MP) off
    while we open and decode, so that ``MAX_PIXELS`` decides, in words a user can act on."""
    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    """In float32: no wrap-around of unsigned channels, and no float64 copy."""
    difference = np.subtract(a, b, dtype=np.float32)
    return float(np.abs(difference, out=difference).max())


def _grey_from_channels(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Luminance (float32) of a (rows, cols, channels) image whose colour channels agree, else refuse.

    Channel by channel in float32: a float64 copy of every channel took gigabytes on large images."""
    channels = pixels.shape[2]
    if channels in (1, 2):  # grey, or grey + alpha
        return pixels[..., 0]
    if channels not in (3, 4):
        raise ImageReadError(f"{path} has {channels} channels per pixel; a grayscale radiograph is expected")
    rgb = pixels[..., :3]
    value_range = np.iinfo(pixels.dtype).max if pixels.dtype.kind in "ui" else max(float(np.ptp(rgb)), 1e-12)
    spread = max(_largest_difference(rgb[..., 0], rgb[..., 1]), _largest_difference(rgb[..., 1], rgb[..., 2]))
    if spread > GREY_RGB_TOLERANCE * value_range:
        raise ImageReadError(f"{path} is a colour image; a grayscale radiograph is expected")
    grey = np.zeros(rgb.shape[:2], np.float32)
    for channel, weight in enumerate((0.299, 0.587, 0.114)):
        grey += np.multiply(rgb[..., channel], weight, dtype=np.float32)
    return grey


def _read_pillow(path: Path) -> tuple[np.ndarray, None, str, None]:
    """PNG, JPEG, TIFF, BMP: no spacing, as their DPI describes printing, not the detector."""
    try:
        with _pillow_limit_lifted(), Image.open(path) as img:
            _check_size(path, *img.size)
            if img.mode in ("1", "L", "I", "F") or img.mode.startswith("I;16"):
                return np.asarray(img), None, "MONOCHROME2", None
            if img.mode not in ("LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
            pixels = np.asarray(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path} is not a readable image") from None
    except (OSError, SyntaxError) as exc:   # Pillow's words, e.g. "image file is truncated"
        raise ImageReadError(f"{path} is not a readable image ({exc})") from None
    grey = _grey_from_channels(pixels[..., None] if pixels.ndim == 2 else pixels, path)
    return grey, None, "RGB" if pixels.ndim == 3 and pixels.shape[2] >= 3 else "MONOCHROME2", None


def _read_sitk_2d(path: Path) -> tuple[np.ndarray, tuple[float, float], str, str]:
    """A 2D image, or a single-slice 3D one as Slicer saves radiographs: refused from the header
    (a volume, too many pixels) before its voxels are read."""
    import SimpleITK as sitk   # here, not at the top: a PNG or JPEG run starts a second faster

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(f"{path} is not a readable image ({sitk_reason(exc)})") from None
    size, dimension = reader.GetSize(), reader.GetDimension()
    if dimension == 3 and size[2] > 1:
        raise ImageReadError(f"{path} looks like a CT/3D volume ({size[2]} slices); a single radiograph is expected")
    if dimension not in (2, 3):
        raise ImageReadError(f"{path} has {dimension} dimensions; a 2D radiograph is expected")
    _check_size(path, size[0], size[1])
    check_whole(path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(f"{path} is not a readable image ({sitk_reason(exc)})") from None
    if dimension == 3:
        image = image[:, :, 0]
    pixels = sitk.GetArrayFromImage(image)
    photometric = "MONOCHROME2"
    if image.GetNumberOfComponentsPerPixel() > 1:
        pixels = _grey_from_channels(pixels, path)
        photometric = "RGB"
    spacing = image.GetSpacing()
    return pixels, (float(spacing[1]), float(spacing[0])), photometric, "image header"


#: What a radiograph's millimetre figures rest on, by the DICOM attribute they came from.
SPACING_SOURCES = {
    "PixelSpacing": "Pixel Spacing (calibrated to the patient)",
    "ImagerPixelSpacing": "Imager Pixel Spacing (at the detector, not corrected for magnification)",
}


def _dcmread(path: Path, **options):
    """pydicom's reading of ``path``, its failures said in a user's words."""
    import pydicom   # here, not at the top: a PNG or JPEG run starts a second faster
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, **options)
    except InvalidDicomError:
        raise ImageReadError(f"{path} is not a DICOM file: it has no DICOM header") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path} is not a readable DICOM file ({exc})") from None


def _display_values(ds, stored: np.ndarray, path: Path) -> np.ndarray:
    """What a viewer shows, bright = dense: modality LUT (rescale), then the VOI LUT or first
    window where the file has one, then MONOCHROME1 inverted; padding pixels (outside the
    collimated field) become the darkest real value so they neither skew the window nor look
    like bone."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    padding = None
    if "PixelPaddingValue" in ds:
        low = int(ds.PixelPaddingValue)
        high = int(ds.get("PixelPaddingRangeLimit", low))
        padding = (stored >= min(low, high)) & (stored <= max(low, high))
        if padding.all():
            raise ImageReadError(f"{path}: every pixel is padding (Pixel Padding Value {low})")
    pixels = apply_modality_lut(stored, ds)
    if "VOILUTSequence" in ds:   # a LUT is indexed by whole modality values
        pixels = apply_voi_lut(np.rint(pixels).astype(np.int64), ds)
    elif "WindowWidth" in ds:
        pixels = apply_voi_lut(pixels, ds, prefer_lut=False)
    pixels = np.asarray(pixels, dtype=np.float32)
    if padding is not None:
        pixels[padding] = pixels[~padding].min() if ds.PhotometricInterpretation != "MONOCHROME1" \
            else pixels[~padding].max()
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = pixels.max() + pixels.min() - pixels
    return pixels


def _read_dicom(path: Path, frame: int | None = None
                ) -> tuple[np.ndarray, tuple[float, float] | None, str, str | None]:
    """A CR/DX file as a viewer shows it (see ``_display_values``); a multi-frame file only with
    ``frame`` (1-based, as DICOM numbers frames)."""
    from .dicom import stored_pixels

    ds = _dcmread(path, defer_size="1 MB")   # the pixel data is read only once its size is checked
    if "PixelData" not in ds:
        raise ImageReadError(f"{path} is a DICOM file without an image (modality {ds.get('Modality', '?')})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.get("Modality") in ("CT", "MR", "PT", "NM") and frames > 1:
        raise ImageReadError(f"{path} looks like a CT/3D volume ({frames} frames); a single radiograph is expected")
    if frame is not None and not 1 <= frame <= frames:
        raise ImageReadError(f"{path} has {frames} frame{'s' if frames > 1 else ''}; frame {frame} does not exist")
    if frames > 1 and frame is None:
        raise ImageReadError(f"{path} holds {frames} frames; choose the radiograph to measure "
                             f"(cobb --frame N, N from 1 to {frames})")
    _check_size(path, int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0))
    stored = stored_pixels(ds, path, None if frames == 1 else frame - 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if stored.ndim == 3:
        pixels = _grey_from_channels(stored, path)
    else:
        pixels = _display_values(ds, stored, path)
    for keyword in SPACING_SOURCES:
        if spacing := ds.get(keyword):
            return pixels, (float(spacing[0]), float(spacing[1])), photometric, keyword
    return pixels, None, photometric, None


def read_dicom_header(path):
    """The pydicom header of radiograph ``path`` without its pixels, for outputs filed in its
    study; None when the file is not DICOM."""
    path = Path(path)
    if not (_suffix(path) in DICOM_SUFFIXES or _is_dicom(path)):
        return None
    return _dcmread(path, stop_before_pixels=True)


def read_xray(path, frame: int | None = None) -> XRay:
    """Read a 2D radiograph (PNG, JPEG, TIFF, BMP, DICOM, NRRD, MHA, NIfTI) as bright-bone float32;
    ``frame`` (1-based) picks one image of a multi-frame DICOM file."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder; a radiograph file is expected")
    suffix = _suffix(path)
    if suffix in DICOM_SUFFIXES or _is_dicom(path):
        pixels, spacing_mm, photometric, spacing_source = _read_dicom(path, frame)
    elif frame not in (None, 1):
        raise ImageReadError(f"{path} holds one image; a frame can only be chosen in a multi-frame DICOM file")
    else:
        reader = _read_sitk_2d if suffix in SITK_SUFFIXES else _read_pillow
        pixels, spacing_mm, photometric, spacing_source = reader(path)
    if pixels.size == 0:
        raise ImageReadError(f"{path} is empty (0 pixels)")
    if min(pixels.shape) < MIN_SIDE_PX:
        rows, cols = pixels.shape
        raise ImageReadError(f"{path} is too small ({cols} x {rows} px) to hold a spine; "
                             f"at least {MIN_SIDE_PX} px per side is expected")
    pixels = np.asarray(pixels, dtype=np.float32)
    low, high = pixels.min(), pixels.max()   # NaN or infinity in any pixel shows in one of them
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ImageReadError(f"{path} contains NaN or infinite pixel values")
    if low == high:
        raise ImageReadError(f"{path} is empty (every pixel is {pixels.flat[0]:g})")
    return XRay(pixels, spacing_mm, str(path), photometric, spacing_source)

