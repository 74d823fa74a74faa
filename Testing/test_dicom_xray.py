"""DICOM radiographs as hospitals send them: every common transfer syntax decodes to the pixels
it was written from, and DX/CR display attributes (MONOCHROME1, rescale, window, VOI LUT,
padding, spacing source, frames) are honoured."""
import importlib.util

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import JPEGExtended12Bit
from skimage import data

from dicom_syntaxes import SYNTAXES, dataset, reference_decode, write
from spine_analysis import cli
from spine_analysis.datasets import aasce_dir, ct_dir
from spine_analysis.errors import ImageReadError
from spine_analysis.io.xray import read_xray


def _real_images() -> dict[str, np.ndarray]:
    """Real images, 8 to 16 bits: scikit-image's camera photograph (shipped with the package),
    and where the research data is present an AASCE radiograph (as 8 and 12 bits) and a CT slice."""
    images = {"camera-8bit": data.camera()}
    aasce = sorted((aasce_dir() / "images").glob("*.jpg"))
    if aasce:
        radiograph = np.asarray(Image.open(aasce[0]).convert("L"))
        images["aasce-8bit"] = radiograph
        images["aasce-12bit"] = radiograph.astype(np.uint16) * 16 + 7
    ct_slices = sorted((ct_dir() / "totalseg-dicom-series").glob("*.dcm"))
    if ct_slices:
        from pydicom import dcmread

        images["ct-slice-12bit"] = dcmread(ct_slices[0]).pixel_array.astype(np.uint16)
    return images


REAL_IMAGES = _real_images()
HAS_JPEG12 = importlib.util.find_spec("libjpeg") is not None


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda s: s.uid.name)
@pytest.mark.parametrize("name", sorted(REAL_IMAGES))
def test_every_common_syntax_decodes_to_the_original(tmp_path, name, syntax):
    original = REAL_IMAGES[name]
    if int(original.max()) >= 1 << syntax.max_bits:
        pytest.skip(f"{syntax.uid.name} carries at most {syntax.max_bits} bits")
    path = write(dataset(original), syntax, tmp_path / "image.dcm")
    if syntax.uid == JPEGExtended12Bit and original.max() > 255 and not HAS_JPEG12:
        with pytest.raises(ImageReadError, match=r"spine-analysis\[jpeg12\]"):
            read_xray(path)
        return
    pixels = read_xray(path).pixels
    assert pixels.shape == original.shape
    if syntax.lossy:   # the code stream as an independent decoder reads it (IDCT rounding aside; the
        # reference's HTJ2K decoder wraps a few overshooting 8-bit values to 0 where ours clips them)
        expected = reference_decode(path).astype(np.float32)
        assert np.mean(np.abs(pixels - expected) <= 1) > 0.999
        assert np.abs(pixels - original).mean() < 0.02 * float(np.ptp(original))   # and it is this image
    else:
        np.testing.assert_array_equal(pixels, original)


def _ramp(high=4000) -> np.ndarray:
    return np.round(np.add.outer(np.arange(96) * 3.0, np.arange(80) * 7.0) / (95 * 3 + 79 * 7) * high).astype(np.uint16)


def test_window_is_applied_as_a_viewer_shows_it(tmp_path):
    stored = _ramp()
    path = write(dataset(stored, WindowCenter=2000, WindowWidth=1001), SYNTAXES[1], tmp_path / "w.dcm")
    pixels = read_xray(path).pixels
    # DICOM's linear window (PS3.3 C.11.2.1.2.1) onto the stored range 0..4095 (12 bits stored)
    expected = np.clip(((stored - 1999.5) / 1000 + 0.5) * 4095, 0, 4095)
    np.testing.assert_allclose(pixels, expected, atol=0.01)


def test_voi_lut_sequence_wins_over_the_window(tmp_path):
    stored = _ramp(high=1023)
    lut = Dataset()
    lut.LUTDescriptor = [1024, 0, 16]
    lut.add_new("LUTData", "US", list(range(4095, -1, -4)))   # an inverting LUT: 1024 entries, 4095 down to 3
    ds = dataset(stored, WindowCenter=512, WindowWidth=10)
    ds.VOILUTSequence = [lut]
    pixels = read_xray(write(ds, SYNTAXES[1], tmp_path / "lut.dcm")).pixels
    np.testing.assert_array_equal(pixels, 4095 - 4 * stored.astype(np.float32))


def test_monochrome1_with_rescale_and_padding(tmp_path):
    stored = _ramp()
    stored[:10] = 4095                        # collimator border stored as padding
    ds = dataset(stored, photometric="MONOCHROME1", modality="DX", RescaleSlope=2, RescaleIntercept=-100,
                 PixelPaddingValue=4095)
    pixels = read_xray(write(ds, SYNTAXES[1], tmp_path / "cr.dcm")).pixels
    real = stored[10:].astype(np.float32) * 2 - 100
    expected_real = real.max() + real.min() - real  # inverted: the lowest stored value is the brightest
    np.testing.assert_array_equal(pixels[10:], expected_real)
    assert (pixels[:10] == expected_real.min()).all()   # padding shows as the darkest real value, not bone


def test_pixel_spacing_is_preferred_and_its_source_reported(tmp_path):
    ds = dataset(_ramp(), spacing_mm=0.15, PixelSpacing=[0.12, 0.12])   # ImagerPixelSpacing 0.15 and PixelSpacing
    xray = read_xray(write(ds, SYNTAXES[1], tmp_path / "both.dcm"))
    assert xray.spacing_mm == pytest.approx((0.12, 0.12)) and xray.spacing_source == "PixelSpacing"
    xray = read_xray(write(dataset(_ramp(), spacing_mm=0.15), SYNTAXES[1], tmp_path / "imager.dcm"))
    assert xray.spacing_mm == pytest.approx((0.15, 0.15)) and xray.spacing_source == "ImagerPixelSpacing"


def _multi_frame(tmp_path) -> tuple:
    frames = np.stack([_ramp(), _ramp()[::-1].copy(), 4000 - _ramp()])
    ds = dataset(frames[0])
    ds.NumberOfFrames, ds.PixelData = 3, frames.tobytes()
    return write(ds, SYNTAXES[1], tmp_path / "multi.dcm"), frames


def test_a_multi_frame_file_needs_a_chosen_frame(tmp_path):
    path, frames = _multi_frame(tmp_path)
    with pytest.raises(ImageReadError, match=r"holds 3 frames; .*--frame N"):
        read_xray(path)
    np.testing.assert_array_equal(read_xray(path, frame=2).pixels, frames[1])
    with pytest.raises(ImageReadError, match="frame 4 does not exist"):
        read_xray(path, frame=4)


def test_cobb_refuses_a_multi_frame_file_before_loading_the_model(tmp_path, capsys):
    path, _ = _multi_frame(tmp_path)
    assert cli.main(["cobb", str(path), "--out-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "holds 3 frames" in error and len(error.splitlines()) == 1
