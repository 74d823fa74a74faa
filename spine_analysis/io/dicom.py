"""Decoding DICOM pixel data, whatever the transfer syntax, for the radiograph and CT readers.

pydicom picks a decoder plugin by transfer syntax: GDCM (JPEG baseline and lossless, JPEG-LS,
JPEG 2000), pylibjpeg-openjpeg (JPEG 2000, HTJ2K), pylibjpeg-rle (RLE) are dependencies; JPEG
Extended 12-bit needs the opt-in ``jpeg12`` extra (GDCM's Python build cannot decode it, and the
libjpeg that can is GPL-3.0). A file no plugin decodes gets a message that names its syntax and,
where there is one, the package that would decode it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageReadError

#: Transfer syntaxes whose decoder is not installed by default, and how to add it.
OPT_IN_DECODERS = {
    "1.2.840.10008.1.2.4.51": "pip install 'spine-analysis[jpeg12]' (adds the GPL-3.0 libjpeg decoder)",
}


def stored_pixels(ds, path: Path, frame: int | None = None) -> np.ndarray:
    """The stored values of ``ds`` (one ``frame`` of a multi-frame file if given), decoded by
    whichever installed plugin handles its transfer syntax; no rescale or LUT applied."""
    from pydicom.pixels import pixel_array

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        return pixel_array(ds, index=frame)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError, KeyError) as exc:
        name = getattr(syntax, "name", str(syntax))
        hint = OPT_IN_DECODERS.get(str(syntax))
        if hint:
            raise ImageReadError(f"{path}: its pixel data is {name}, which needs an extra decoder: {hint}") from None
        reason = str(exc).strip().splitlines()[-1].strip()
        raise ImageReadError(f"{path}: cannot decode its pixel data ({name}): {reason}") from None
