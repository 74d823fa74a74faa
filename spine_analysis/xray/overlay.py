"""A picture of the measurement a clinician can check: the radiograph with landmarks,
vertebra outlines, level names and the Cobb endplate lines with their angles.

Points are image pixels (x = column, y = row), as everywhere in the engine. A radiograph longer
than ``MAX_SIDE_PX`` is drawn shrunk by a whole factor, points with it.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.transform import downscale_local_mean

from ..drawing import place_label, with_banner
from ..drawing import save_png as save_png   # the report and the command line write the overlay with it
from .cobb import extended_endplate
from .landmarks import SpineLandmarks

OUTLINE_COLOUR = (0, 190, 255)
LANDMARK_COLOUR = (255, 220, 0)
#: One colour per curve, in the order the curves' labels first appear.
CURVE_COLOURS = ((255, 60, 60), (60, 220, 60), (235, 60, 235), (255, 140, 0), (150, 110, 255))
#: Longest side of the drawn picture: above any AASCE film (at most 2800 rows, drawn as they are)
#: and enough to zoom in on a corner; larger radiographs gave 100 MB overlays that showed no more.
MAX_SIDE_PX = 3072


def _to_grey_rgb(image: np.ndarray) -> Image.Image:
    """Window by the 1st-99th percentile, so a few very bright or dark pixels do not wash it out."""
    low, high = np.percentile(image, [1, 99])
    grey = np.clip((image - low) / max(high - low, 1e-12), 0, 1)
    return Image.fromarray((grey * 255).round().astype(np.uint8)).convert("RGB")


def draw_overlay(image: np.ndarray, landmarks: SpineLandmarks,
                 endplate_lines: list[tuple[tuple[float, float], tuple[float, float], str]],
                 title: str | None = None) -> np.ndarray:
    """The radiograph in grey with the measurement drawn on it: uint8 RGB, (rows, cols, 3),
    with ``title`` (if any) in a banner added above the picture. Radiographs longer than
    ``MAX_SIDE_PX`` are drawn shrunk by a whole factor (a block mean), landmarks and lines with them.

    ``endplate_lines`` holds ``((x0, y0), (x1, y1), label)`` endplate segments in pixels. Lines
    sharing a label belong to one curve: they get one colour and the label (say ``"MT 34.8°"``)
    is written once, beside the first of them. Fonts and line widths scale with the image.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D grey image, got shape {image.shape}")
    shrink = -(-max(image.shape) // MAX_SIDE_PX)
    if shrink > 1:   # whole blocks only: the last few rows and columns are left out
        rows, cols = (side // shrink * shrink for side in image.shape)
        image = downscale_local_mean(np.asarray(image[:rows, :cols], dtype=np.float32), (shrink, shrink))
    image = np.asarray(image, dtype=float)
    rows, cols = image.shape
    points = landmarks.points / shrink
    canvas = _to_grey_rgb(image)
    draw = ImageDraw.Draw(canvas)
    scale = np.sqrt(rows * cols) / 1000   # by area, so tall narrow radiographs do not get huge text
    line_width = max(1, round(2 * scale))
    dot = max(2.0, 4 * scale)
    stroke = max(1, round(scale))
    level_font = ImageFont.load_default(size=max(10, round(18 * scale)))
    label_font = ImageFont.load_default(size=max(12, round(28 * scale)))

    for quad in points:
        draw.line([tuple(quad[i]) for i in (0, 1, 3, 2, 0)], fill=OUTLINE_COLOUR, width=line_width, joint="curve")

    colours: dict[str, tuple[int, int, int]] = {}
    label_spots = []   # (label, left end, right end) of each curve's first line
    for start, end, label in endplate_lines:
        ends = extended_endplate(np.array([start, end], dtype=float) / shrink)
        if label not in colours:
            label_spots.append((label, *ends))
        colour = colours.setdefault(label, CURVE_COLOURS[len(colours) % len(CURVE_COLOURS)])
        draw.line([tuple(point) for point in ends], fill=colour, width=2 * line_width)

    for x, y in points.reshape(-1, 2):
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=LANDMARK_COLOUR)

    for quad, level in zip(points, landmarks.levels):   # beside the left edge, or the right if no room
        x, anchor = quad[[0, 2], 0].min() - 3 * dot, "rm"
        if x - draw.textlength(level, font=level_font) < 0:
            x, anchor = quad[[1, 3], 0].max() + 3 * dot, "lm"
        draw.text((x, quad[[0, 2], 1].mean()), level, font=level_font, fill=OUTLINE_COLOUR, anchor=anchor,
                  stroke_width=stroke, stroke_fill=(0, 0, 0))

    taken: list[tuple[float, float, float, float]] = []
    gap = 4 * line_width
    for label, left, right in label_spots:   # after the line's right end, else before its left end
        if right[0] + gap + draw.textlength(label, font=label_font) < cols:
            xy, anchor = (right[0] + gap, right[1]), "lm"
        else:
            xy, anchor = (left[0] - gap, left[1]), "rm"
        place_label(draw, canvas.size, xy, label, label_font, colours[label], anchor, taken, stroke)
    if title:
        canvas = with_banner(canvas, title, label_font, gap)
    return np.asarray(canvas)
