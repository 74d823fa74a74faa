"""Writing one image in every transfer syntax a DX, CR or CT file commonly carries, for the
decoding tests and ``benchmarks/dicom_decoding.py``.

The encoders are independent of the decoders under test: imagecodecs (libjpeg-turbo, CharLS,
OpenJPEG, OpenJPH) for the compressed syntaxes, pydicom itself for the native ones.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian, HTJ2K, HTJ2KLossless,
    HTJ2KLosslessRPCL, ImplicitVRLittleEndian, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit,
    JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless, UID, generate_uid,
)

DIGITAL_XRAY_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1.1")
CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")


@dataclass(frozen=True)
class Syntax:
    """A transfer syntax and the largest bit depth it carries."""

    uid: UID
    max_bits: int = 16

    @property
    def lossy(self) -> bool:
        return self.uid in (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000, HTJ2K)


SYNTAXES = (
    Syntax(ImplicitVRLittleEndian), Syntax(ExplicitVRLittleEndian), Syntax(ExplicitVRBigEndian),
    Syntax(DeflatedExplicitVRLittleEndian), Syntax(RLELossless),
    Syntax(JPEGBaseline8Bit, 8), Syntax(JPEGExtended12Bit, 12), Syntax(JPEGLossless), Syntax(JPEGLosslessSV1),
    Syntax(JPEGLSLossless), Syntax(JPEGLSNearLossless), Syntax(JPEG2000Lossless), Syntax(JPEG2000),
    Syntax(HTJ2KLossless), Syntax(HTJ2KLosslessRPCL), Syntax(HTJ2K),
)


def _frame(pixels: np.ndarray, syntax: Syntax) -> bytes:
    """One encoded frame of ``pixels`` (unsigned, at most ``syntax.max_bits`` bits)."""
    import imagecodecs

    bits = max(int(pixels.max()).bit_length(), 8)
    uid = syntax.uid
    if uid == JPEGBaseline8Bit:
        return imagecodecs.jpeg8_encode(pixels.astype(np.uint8), level=90)
    if uid == JPEGExtended12Bit:
        if bits > 8:   # 12-bit precision; 8-bit data stays an 8-bit stream, as process 2 writes it
            return imagecodecs.jpeg8_encode(pixels.astype(np.uint16), level=90, bitspersample=12)
        return imagecodecs.jpeg8_encode(pixels.astype(np.uint8), level=90)
    if uid in (JPEGLossless, JPEGLosslessSV1):
        return imagecodecs.jpeg8_encode(pixels, lossless=True, predictor=6 if uid == JPEGLossless else 1,
                                        bitspersample=bits)
    if uid in (JPEGLSLossless, JPEGLSNearLossless):
        return imagecodecs.jpegls_encode(pixels, level=0 if uid == JPEGLSLossless else 2)
    if uid in (JPEG2000Lossless, JPEG2000):
        return imagecodecs.jpeg2k_encode(pixels, codecformat="J2K", reversible=uid == JPEG2000Lossless,
                                         level=None if uid == JPEG2000Lossless else 60, bitspersample=bits)
    if uid in (HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K):
        return imagecodecs.htj2k_encode(pixels, reversible=uid != HTJ2K)
    raise ValueError(f"no encoder for {uid.name}")


def reference_decode(path: Path) -> np.ndarray:
    """The single frame of a lossy file as imagecodecs decodes it: what a correct decoder must
    give, since a lossy code stream differs from the image it was made from."""
    import imagecodecs
    from pydicom import dcmread
    from pydicom.encaps import generate_frames

    ds = dcmread(path)
    stream = next(generate_frames(ds.PixelData, number_of_frames=1))
    uid = ds.file_meta.TransferSyntaxUID
    decode = {JPEGBaseline8Bit: imagecodecs.jpeg8_decode, JPEGExtended12Bit: imagecodecs.jpeg8_decode,
              JPEGLSNearLossless: imagecodecs.jpegls_decode, JPEG2000: imagecodecs.jpeg2k_decode,
              HTJ2K: imagecodecs.htj2k_decode}[uid]
    return decode(stream)


def dataset(pixels: np.ndarray, *, modality: str = "DX", photometric: str = "MONOCHROME2",
            spacing_mm: float = 0.2, **elements) -> Dataset:
    """An uncompressed single-frame DX or CT dataset of unsigned ``pixels``, with extra ``elements``."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint16 if pixels.max() > 255 else np.uint8)
    bits = max(int(pixels.max()).bit_length(), 8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = DIGITAL_XRAY_STORAGE if modality == "DX" else CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "TEST", "Test^Syntax", modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = pixels.itemsize * 8, bits, bits - 1, 0
    if modality == "DX":
        ds.ImagerPixelSpacing = [spacing_mm, spacing_mm]
    else:
        ds.PixelSpacing = [spacing_mm, spacing_mm]
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    return ds


def write(ds: Dataset, syntax: Syntax, path: Path) -> Path:
    """Save ``ds`` (uncompressed) as ``path`` in ``syntax``; the original stays untouched."""
    pixels = ds.pixel_array
    out = copy.deepcopy(ds)
    if syntax.uid == RLELossless:   # pydicom's own encoder: imagecodecs has none for DICOM RLE
        out.compress(RLELossless, encoding_plugin="pydicom")
    out.file_meta.TransferSyntaxUID = syntax.uid
    if syntax.uid == ExplicitVRBigEndian:   # pydicom writes the bytes as given
        out.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
    elif syntax.uid.is_compressed and syntax.uid != RLELossless:
        if int(pixels.max()) >= 1 << syntax.max_bits:
            raise ValueError(f"{syntax.uid.name} carries at most {syntax.max_bits} bits")
        out.PixelData = encapsulate([_frame(pixels, syntax)])
        out["PixelData"].VR = "OB"
        if syntax.lossy:
            out.LossyImageCompression = "01"
        if syntax.uid == JPEGExtended12Bit and int(pixels.max()) > 255:
            out.BitsStored, out.HighBit = 12, 11
        if syntax.uid == JPEGBaseline8Bit:
            out.BitsAllocated, out.BitsStored, out.HighBit = 8, 8, 7
    out.save_as(path, implicit_vr=syntax.uid == ImplicitVRLittleEndian,
                little_endian=syntax.uid != ExplicitVRBigEndian, enforce_file_format=True)
    return path
