"""Radiographs of any size: a stated pixel limit checked before decoding, no Pillow bomb
warnings, a working image whose cost follows the working size, and overlays of a sensible size."""
import struct
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spine_analysis.errors import ImageReadError
from spine_analysis.io import xray as xray_io
from spine_analysis.io.xray import MAX_PIXELS, read_xray
from spine_analysis.xray.landmarks import SpineLandmarks
from spine_analysis.xray.landmark_model.weights_io import SHIPPED_DIR


def header_only_png(path, width: int, height: int) -> None:
    """A 1-bit PNG whose header announces ``width`` x ``height`` but whose data is a few bytes:
    decoding it would fail, so a refusal naming its size shows that nothing was decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))


def radiograph(rows=300, cols=200) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (rows, cols)).astype(np.uint8)


# --------------------------------------------------------------------------- reading: the pixel limit

@pytest.mark.filterwarnings("error")
def test_an_image_over_the_limit_is_refused_from_its_header_in_one_line(tmp_path):
    header_only_png(tmp_path / "huge.png", 20000, 20000)   # 400 MP: Pillow alone would raise its bomb error
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError) as refused:
        read_xray(tmp_path / "huge.png")
    message = str(refused.value)
    assert "\n" not in message
    assert message == (f"{tmp_path / 'huge.png'} is too large (20000 x 20000 px, 400 megapixels); "
                       f"at most {MAX_PIXELS / 1e6:.0f} megapixels can be read: save it at a lower resolution")
    assert Image.MAX_IMAGE_PIXELS == pillow_limit   # lifted only while reading


@pytest.mark.filterwarnings("error")
def test_pillow_bomb_limit_does_not_speak_for_images_within_ours(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # as if the radiograph were over Pillow's 89 MP
    Image.fromarray(radiograph()).save(tmp_path / "a.png")
    assert read_xray(tmp_path / "a.png").pixels.shape == (300, 200)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_every_reader_checks_the_limit_before_decoding(tmp_path, monkeypatch):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    monkeypatch.setattr(xray_io, "MAX_PIXELS", 200 * 300 - 1)
    Image.fromarray(radiograph()).save(tmp_path / "a.tif")
    sitk.WriteImage(sitk.GetImageFromArray(radiograph()), str(tmp_path / "a.nrrd"))
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path / "a.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 300, 200, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = b"\0\0" * 10   # far too short: decoding it would fail with another message
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    for name in ("a.tif", "a.nrrd", "a.dcm"):
        with pytest.raises(ImageReadError, match=rf"{name} is too large \(200 x 300 px, "):
            read_xray(tmp_path / name)


def test_grey_saved_as_16_bit_colour_is_read_in_float32(tmp_path):
    grey = (radiograph().astype(np.uint16) * 200)
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([grey] * 3, axis=-1), isVector=True), str(tmp_path / "rgb.nrrd"))
    xray = read_xray(tmp_path / "rgb.nrrd")
    assert xray.photometric == "RGB" and xray.pixels.dtype == np.float32
    np.testing.assert_allclose(xray.pixels, grey, rtol=1e-6)


# --------------------------------------------------------------------------- preprocessing: block mean first

def working_image_before_block_reduction(pixels, config):
    """``to_working_image`` as it was before large images were reduced by blocks first."""
    from skimage.exposure import equalize_adapthist
    from skimage.transform import resize

    pixels = np.asarray(pixels, dtype=np.float32)
    lo, hi = np.percentile(pixels, config.window_percentiles)
    scaled = np.clip((pixels - lo) / (hi - lo), 0.0, 1.0)
    scale = config.working_height / float(pixels.shape[0])
    width = max(1, int(round(pixels.shape[1] * scale)))
    small = resize(scaled, (config.working_height, width), order=1, anti_aliasing=scale < 1, preserve_range=True)
    return equalize_adapthist(small, clip_limit=config.clahe_clip_limit).astype(np.float32)


@pytest.fixture(scope="module")
def synthetic():
    from spine_analysis.xray.synthetic import example_case

    return example_case()


def test_radiographs_up_to_twice_the_working_height_give_the_same_working_image(synthetic):
    from spine_analysis.xray.landmark_model.config import LandmarkConfig
    from spine_analysis.xray.landmark_model.preprocess import to_working_image, working_scale

    config = LandmarkConfig()
    image = synthetic[0]
    for rows in (image.shape[0], 2 * config.working_height):   # the AASCE range, and its upper end
        pixels = np.resize(image, (rows, image.shape[1]))
        np.testing.assert_array_equal(to_working_image(pixels, config),
                                      working_image_before_block_reduction(pixels, config))
        assert working_scale(pixels.shape, config.working_height) == config.working_height / rows


def test_a_large_radiograph_is_reduced_by_whole_blocks_and_keeps_its_geometry(synthetic):
    """Five-fold pixel repetition (plus rows and columns left over) reduces back to the original:
    same working image, and working pixels map to the same places of the picture."""
    from spine_analysis.xray.landmark_model.config import LandmarkConfig
    from spine_analysis.xray.landmark_model.preprocess import block_factor, to_working_image, working_scale

    config = LandmarkConfig()
    image = synthetic[0]
    big = np.pad(np.repeat(np.repeat(image, 5, axis=0), 5, axis=1), ((0, 3), (0, 4)), mode="edge")
    assert block_factor(big.shape[0], config.working_height) == 5
    difference = np.abs(to_working_image(big, config) - to_working_image(image, config))
    assert difference.mean() < 1e-5 and difference.max() < 0.02   # rounding moves a few pixels one CLAHE bin
    assert working_scale(big.shape, config.working_height) == pytest.approx(
        working_scale(image.shape, config.working_height) / 5, rel=1e-12)


def upscaled(image: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic, so the large image is smoother than a block copy and not exactly reducible."""
    rows, cols = image.shape
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(
        (factor * cols, factor * rows), Image.Resampling.BICUBIC))


@pytest.mark.skipif(not (SHIPPED_DIR / "landmarks.pt").exists(), reason="no shipped weights in this checkout")
def test_a_four_times_upscaled_radiograph_gives_the_same_angles(synthetic):
    from spine_analysis.xray.cobb import aasce_angles
    from spine_analysis.xray.landmark_model.detector import LandmarkDetector

    image = synthetic[0]
    detector = LandmarkDetector.load()
    big = upscaled(image, 4)
    original = detector.detect(image).landmarks
    large = detector.detect(big).landmarks
    np.testing.assert_allclose(aasce_angles(large, big.shape[0]), aasce_angles(original, image.shape[0]), atol=3.0)
    spacing = np.median(np.linalg.norm(np.diff(original.centres, axis=0), axis=1))
    assert np.abs(large.centres / 4 - original.centres).max() < 0.1 * spacing   # same places, not just angles


# --------------------------------------------------------------------------- overlay: a sensible size

def test_a_large_radiograph_is_drawn_shrunk_with_its_landmarks_lines_and_text(synthetic):
    """Twice the synthetic radiograph (pixels doubled, one row left over) is drawn exactly as the
    radiograph itself: shrunk by two, points halved, line widths and fonts sized for the picture."""
    from spine_analysis.xray.cobb import analyse
    from spine_analysis.xray.overlay import MAX_SIDE_PX, draw_overlay
    from spine_analysis.xray.report import endplate_lines

    image, truth, _ = synthetic
    lines = endplate_lines(analyse(truth, image.shape[0]))
    double = np.pad(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1), ((0, 1), (0, 0)), mode="edge")
    assert max(double.shape) > MAX_SIDE_PX >= max(image.shape)
    np.testing.assert_array_equal(
        draw_overlay(double, SpineLandmarks(2 * truth.points), [(2 * np.asarray(a), 2 * np.asarray(b), label)
                                                                for a, b, label in lines], title="x"),
        draw_overlay(image, truth, lines, title="x"))


def test_the_overlay_of_a_huge_radiograph_stays_within_the_side_limit(synthetic):
    from spine_analysis.xray.overlay import MAX_SIDE_PX, draw_overlay

    image, truth, _ = synthetic
    rows, cols = 12001, 1003
    rgb = draw_overlay(np.resize(image, (rows, cols)), SpineLandmarks(truth.points * rows / image.shape[0]), [])
    assert rgb.shape == (rows // 4, cols // 4, 3) and max(rgb.shape) <= MAX_SIDE_PX
