"""Which DICOM decoder plugin handles which transfer syntax, how fast, and how large it is.

    python benchmarks/dicom_decoding.py [--image RADIOGRAPH] [--ct-slice DICOM] [--repeat 5]

Writes a radiograph (12-bit: an 8-bit image x 16; without ``--image`` the project's synthetic
radiograph) and a CT slice (without ``--ct-slice`` a 512 x 512 crop of the same radiograph) in
every syntax of ``Testing/dicom_syntaxes.py`` and decodes each with every installed pydicom
plugin separately. Prints, per syntax and plugin, the median decoding time ("-" where the plugin
cannot decode it; "WRONG" where a lossless decode differs from the original): the figures
behind the choice of dependencies in the README's "DICOM transfer syntaxes" table.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.pixels import pixel_array

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from dicom_syntaxes import SYNTAXES, dataset, write  # noqa: E402

PLUGINS = {"gdcm": "python-gdcm", "pylibjpeg": "pylibjpeg", "pyjpegls": "pyjpegls", "pydicom": "pydicom"}
BACKENDS = ("pylibjpeg-openjpeg", "pylibjpeg-rle", "pylibjpeg-libjpeg")


def _installed_mb(distribution: str) -> str:
    """Installed size of a distribution, from its RECORD."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    return f"{sum(f.size or 0 for f in files) / 1e6:.1f} MB"


def _decode(path: Path, plugin: str, repeat: int) -> tuple[np.ndarray | None, str]:
    """Median decoding time with one plugin, or "-" where it cannot decode this syntax."""
    ds = dcmread(path)
    seconds = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            pixels = pixel_array(ds, decoding_plugin=plugin)
            seconds.append(time.perf_counter() - started)
    except (RuntimeError, ValueError, NotImplementedError):   # the plugin lacks this syntax or bit depth
        return None, "-"
    return pixels, f"{statistics.median(seconds) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="an 8-bit radiograph (PNG/JPEG) to write as 12 bits")
    parser.add_argument("--ct-slice", help="a CT slice (DICOM) to write as stored")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.image:
        radiograph = np.asarray(Image.open(args.image).convert("L"))
    else:
        from spine_analysis.xray.synthetic import example_case

        radiograph = np.round(example_case()[0] * 255).astype(np.uint8)
    images = {"radiograph 12-bit": radiograph.astype(np.uint16) * 16}
    images["CT slice"] = dcmread(args.ct_slice).pixel_array.astype(np.uint16) if args.ct_slice \
        else images["radiograph 12-bit"][:512, :512].copy()
    print("installed: " + ", ".join(f"{name} {_installed_mb(name)}" for name in (*PLUGINS.values(), *BACKENDS)))
    with tempfile.TemporaryDirectory() as tmp:
        for name, original in images.items():
            rows, cols = original.shape
            print(f"\n{name} ({cols} x {rows}), median of {args.repeat} decodes")
            print(f"  {'transfer syntax':<44}" + "".join(f"{plugin:>12}" for plugin in PLUGINS))
            for syntax in SYNTAXES:
                if int(original.max()) >= 1 << syntax.max_bits:
                    continue
                path = write(dataset(original), syntax, Path(tmp) / "image.dcm")
                cells = []
                for plugin in PLUGINS:
                    pixels, cell = _decode(path, plugin, args.repeat)
                    if pixels is not None and not syntax.lossy and not np.array_equal(pixels, original):
                        cell += " WRONG"
                    cells.append(cell)
                print(f"  {syntax.uid.name[:44]:<44}" + "".join(f"{cell:>12}" for cell in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
