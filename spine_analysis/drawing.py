"""Drawing results on a picture, for the overlays of radiographs (``xray.overlay``) and CTs
(``ct.overview``): labels on dark boxes that stay inside the picture and clear of each other, a
title banner above it, and a PNG written complete or not at all.

Points are picture pixels (x = column, y = row).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .io.atomic import atomic_output


def wrap(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """Break ``text`` into lines no wider than ``width`` pixels (a lone long word keeps its line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def _inside(low: float, high: float, limit: float) -> tuple[float, float]:
    """The span ``low``-``high`` shifted into 0-``limit`` (its start kept visible if it is longer)."""
    shift = max(min(0.0, limit - high), -low)
    return low + shift, high + shift


def _free_spot(box: tuple[float, float, float, float], taken: list,
               size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A text box moved into the picture (``size``: width, height), then down (or up, near the
    bottom) until it overlaps none already placed, so labels stay whole and legible."""
    (left, right), (top, bottom) = _inside(box[0], box[2], size[0]), _inside(box[1], box[3], size[1])

    def clash(upper: float, lower: float) -> bool:
        return any(left < b[2] and b[0] < right and upper < b[3] and b[1] < lower for b in taken)

    for step in (bottom - top, top - bottom):
        upper, lower = top, bottom
        while clash(upper, lower) and 0 <= upper + step and lower + step <= size[1]:
            upper, lower = upper + step, lower + step
        if not clash(upper, lower):
            top, bottom = upper, lower
            break
    taken.append((left, top, right, bottom))
    return left, top, right, bottom


def place_label(draw: ImageDraw.ImageDraw, size: tuple[int, int], xy, text: str, font, colour, anchor: str,
                taken: list, stroke: int) -> tuple[float, float, float, float]:
    """Text on a dark box, placed at ``xy`` by ``anchor`` (Pillow's codes), moved inside the
    picture and lower (or higher) if that spot is taken; returns the box it took."""
    pad = stroke + 1
    left, top, right, bottom = draw.textbbox(xy, text, font=font, anchor=anchor, stroke_width=stroke)
    box = _free_spot((left - pad, top - pad, right + pad, bottom + pad), taken, size)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text((xy[0] + box[0] - (left - pad), xy[1] + box[1] - (top - pad)), text, font=font, fill=colour,
              anchor=anchor, stroke_width=stroke, stroke_fill=(0, 0, 0))
    return box


def with_banner(canvas: Image.Image, title: str, font, gap: int) -> Image.Image:
    """The picture under a black banner holding ``title``, so the text never hides the top vertebrae."""
    measure = ImageDraw.Draw(canvas)
    text = wrap(measure, title, font, canvas.width - 2 * gap)
    left, top, right, bottom = measure.multiline_textbbox((0, 0), text, font=font)
    banner = Image.new("RGB", (canvas.width, bottom + 2 * gap), (0, 0, 0))
    ImageDraw.Draw(banner).multiline_text((gap, gap), text, font=font, fill=(255, 255, 255))
    out = Image.new("RGB", (canvas.width, banner.height + canvas.height))
    out.paste(banner, (0, 0))
    out.paste(canvas, (0, banner.height))
    return out


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``rgb`` as a PNG that appears complete or not at all: a reader never sees half a file.

    zlib level 3: compressing at the default level was most of the time of writing a report."""
    path = Path(path)
    with atomic_output(path) as tmp:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp, format="PNG", compress_level=3)
    return path
