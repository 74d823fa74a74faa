"""Hand-built spines and synthetic AP radiographs whose Cobb angles are known exactly.

The AASCE research images cannot be shipped, so tests, the Slicer self-test and the command
line's demo use these instead. All geometry is in image pixels (x = column, y = row, y down).

Tilt convention: a vertebra's tilt is the angle of its mid-line (left-edge mid-point to
right-edge mid-point) in degrees, **positive when its right end is higher in the image**
(counter-clockwise as displayed). The column bends with the tilts as a real spine does: a
positive tilt moves the next vertebra to the image right, so a curve whose tilts fall from
+c/2 to -c/2 is convex to the image right. On a standard AP display the patient's right is on
the image left, so a right thoracic curve has a negative signed angle here.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from skimage.filters import gaussian
from skimage.transform import resize

from .landmarks import LEVELS, SpineLandmarks

#: Size (width, height) in pixels of the example radiograph, like a mid-sized AASCE image.
EXAMPLE_SIZE = (900, 2300)
#: Where the column runs by default: top endplate of T1 to bottom endplate of L5, as image-height fractions.
DEFAULT_SPAN = (0.03, 0.80)
#: The example's span, framed like the AASCE radiographs (T1 centre at 5 % of the height on
#: average, L5 at 90 %, the pelvis cut off below): the landmark model reads the levels from
#: that framing, and with T1 at the very top and the whole pelvis in view it took the sacrum
#: for L5 and named every vertebra one level too high.
EXAMPLE_SPAN = (0.05, 0.95)


def _proportions(level_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative (width, height, disc below) per level: vertebrae grow and discs thicken caudally."""
    t = level_indices / (len(LEVELS) - 1)
    return 1.1 + 0.65 * t, 0.62 + 0.38 * t, 0.14 + 0.2 * t


def scoliotic_tilts(curves: Sequence[tuple[int, int, float]], n: int = len(LEVELS)) -> np.ndarray:
    """Per-vertebra tilts (degrees) with a Cobb angle of exactly ``|cobb_deg|`` for each curve.

    ``curves`` holds ``(upper_index, lower_index, cobb_deg)`` with 0-based vertebra indices,
    top to bottom; consecutive curves may share an end vertebra (an S curve). A positive
    ``cobb_deg`` is convex to the image right: tilts fall by ``cobb_deg`` from the upper to the
    lower end vertebra along a half cosine, so the end vertebrae are the most tilted and the
    apex bends most. Vertebrae outside the curves keep the tilt of the nearest end vertebra,
    and the whole profile is shifted to mean zero so the column ends above where it started.
    """
    tilts = np.zeros(n)
    current, done = 0.0, 0
    for upper, lower, cobb in sorted(curves):
        if not 0 <= upper < lower < n:
            raise ValueError(f"curve end vertebrae {upper}, {lower} must satisfy 0 <= upper < lower < {n}")
        if upper < done:
            raise ValueError(f"curve {upper}-{lower} overlaps the curve above it (which ends at {done})")
        tilts[done:upper] = current
        s = np.arange(lower - upper + 1) / (lower - upper)
        tilts[upper:lower + 1] = current - cobb * (1 - np.cos(np.pi * s)) / 2
        current, done = current - cobb, lower
    tilts[done:] = current
    return tilts - tilts.mean()


def build_spine(tilts_deg: Sequence[float] | None = None, *, n_vertebrae: int | None = None,
                first_level: str = "T1", image_size: tuple[int, int] = EXAMPLE_SIZE,
                span: tuple[float, float] = DEFAULT_SPAN, centre_x: float | None = None) -> SpineLandmarks:
    """A spine of rectangular vertebrae whose mid-lines have exactly the given tilts.

    ``tilts_deg`` holds one tilt per vertebra (see the module docstring for the sign); None
    gives a straight spine of ``n_vertebrae`` (default: from ``first_level`` down to L5).
    Vertebra sizes follow anatomical proportions (wider and taller towards L5, thicker lumbar
    discs), scaled so the straight column would run from ``span[0]`` to ``span[1]`` of the
    image height. The first vertebra is centred on ``centre_x`` (default: the image centre);
    each next one sits along the column axis, which is perpendicular to the mid-lines.
    """
    width, height = image_size
    start = LEVELS.index(first_level) if first_level in LEVELS else 0
    if tilts_deg is None:
        tilts = np.zeros(n_vertebrae if n_vertebrae is not None else len(LEVELS) - start)
    else:
        tilts = np.asarray(tilts_deg, dtype=float)
        if n_vertebrae is not None and n_vertebrae != len(tilts):
            raise ValueError(f"{len(tilts)} tilts given for {n_vertebrae} vertebrae")
    rel_w, rel_h, rel_disc = _proportions(np.arange(start, start + len(tilts)))
    scale = (span[1] - span[0]) * height / (rel_h.sum() + rel_disc[:-1].sum())
    widths, heights, discs = rel_w * scale, rel_h * scale, rel_disc * scale
    angles = np.radians(tilts)
    across = np.stack([np.cos(angles), -np.sin(angles)], axis=1)   # mid-line, left to right
    down = np.stack([np.sin(angles), np.cos(angles)], axis=1)      # column axis, top to bottom
    centres = np.empty((len(tilts), 2))
    centres[0] = (width / 2 if centre_x is None else centre_x, span[0] * height + heights[0] / 2)
    for i in range(1, len(tilts)):
        disc_axis = (down[i - 1] + down[i]) / np.linalg.norm(down[i - 1] + down[i])
        centres[i] = (centres[i - 1] + heights[i - 1] / 2 * down[i - 1] + discs[i - 1] * disc_axis
                      + heights[i] / 2 * down[i])
    half_w = (widths / 2)[:, None] * across
    half_h = (heights / 2)[:, None] * down
    points = np.stack([centres - half_w - half_h, centres + half_w - half_h,
                       centres - half_w + half_h, centres + half_w + half_h], axis=1)
    if points[..., 0].min() < 0 or points[..., 0].max() > width - 1 or points[..., 1].max() > height - 1:
        raise ValueError(f"the spine leaves the {width} x {height} image; use smaller curves or a larger image")
    return SpineLandmarks(points, first_level)


def mirror(landmarks: SpineLandmarks, image_width: float) -> SpineLandmarks:
    """The same spine flipped left-right in an image ``image_width`` pixels wide (angles unchanged)."""
    points = landmarks.points[:, [1, 0, 3, 2]].copy()
    points[..., 0] = image_width - 1 - points[..., 0]
    return SpineLandmarks(points, landmarks.first_level)


# ---------------------------------------------------------------------------------------------
# Radiograph rendering. Densities add up along the beam as in a real projection, then one
# exponential turns the sum into a MONOCHROME2 image (bright = bone).

#: Smooth parts (body, lungs, gas) are computed on a grid this many times coarser, for speed.
_COARSE = 4


def _sizes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean endplate width and mean side height of each vertebra, (n, 4, 2) corners -> two (n,)."""
    def length(a, b):
        return np.linalg.norm(points[:, b] - points[:, a], axis=1)

    return (length(0, 1) + length(2, 3)) / 2, (length(0, 2) + length(1, 3)) / 2


class _Column:
    """Position and size of all 17 levels, extrapolated beyond a cropped spine, so that
    ribs, lungs and pelvis find their level even when it was not annotated."""

    def __init__(self, landmarks: SpineLandmarks):
        pts = landmarks.points
        start = LEVELS.index(landmarks.first_level)
        known = np.arange(start, start + len(pts))
        every = np.arange(len(LEVELS))
        centres = landmarks.centres
        widths, heights = _sizes(pts)
        self.step = (centres[-1, 1] - centres[0, 1]) / (known[-1] - known[0])
        self.y = np.interp(every, known, centres[:, 1])
        self.y[every < known[0]] = centres[0, 1] + (every[every < known[0]] - known[0]) * self.step
        self.y[every > known[-1]] = centres[-1, 1] + (every[every > known[-1]] - known[-1]) * self.step
        self.x = np.interp(every, known, centres[:, 0])
        rel_w, rel_h, _ = _proportions(every.astype(float))
        # A missing level takes the nearest known level's size, scaled by anatomical proportions.
        self.width = rel_w * np.interp(every, known, widths / rel_w[known])
        self.height = rel_h * np.interp(every, known, heights / rel_h[known])

    def at(self, level: float) -> float:
        """Row of a (fractional) level index: 9.5 is the T10/T11 disc."""
        return float(np.interp(level, np.arange(len(LEVELS)), self.y))


def _ramp(distance: np.ndarray, softness: float) -> np.ndarray:
    """0 outside, 1 inside a shape, from its signed distance (positive inside), with a soft edge."""
    return np.clip(distance / softness + 0.5, 0.0, 1.0)


def _soft_tissue(column: _Column, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Body silhouette, paraspinal muscles, lung fields, heart and gas, as density on a coarse grid."""
    shape = (-(-height // _COARSE), -(-width // _COARSE))
    # Full-image coordinates of the coarse pixel centres, as skimage's resize maps them back.
    rows = ((np.arange(shape[0]) + 0.5) * height / shape[0] - 0.5)[:, None]
    cols = ((np.arange(shape[1]) + 0.5) * width / shape[1] - 0.5)[None, :]
    y, step = column.y, column.step
    body_x = width / 2 * (1 + rng.uniform(-0.02, 0.02))
    half = np.interp(rows, [y[0] - 3 * step, y[5], y[11], y[14], y[16] + 2 * step],
                     np.array([0.5, 0.46, 0.42, 0.36, 0.47]) * width * rng.uniform(0.96, 1.04))
    # The abdomen is deeper than the chest, the hips deeper still.
    thickness = np.interp(rows, [y[9], y[13], y[16] + 3 * step], [0.7, 0.85, 1.1])
    density = thickness * np.sqrt(np.clip(1 - ((cols - body_x) / half) ** 2, 0, 1))
    spine_x = np.interp(rows, y, column.x)
    spine_w = np.interp(rows, y, column.width)
    density += 0.3 * np.exp(-(((cols - spine_x) / (1.2 * spine_w)) ** 2))

    lungs = np.zeros(shape)
    for side, dome_level in ((-1, 9.4), (1, 10.0)):   # the patient's right dome (image left) is higher
        medial = spine_x + side * 0.6 * spine_w
        lateral = body_x + side * (half - 0.04 * width)
        inner, outer = (medial, lateral) if side > 0 else (lateral, medial)
        centre, half_span = (inner + outer) / 2, np.maximum((outer - inner) / 2, 1.0)
        across = (cols - centre) / half_span
        apex = y[0] - 0.8 * step + 1.5 * step * across ** 2
        # Highest a third of the way out, falling a little to the heart and far to the flank.
        dome = column.at(dome_level) - 0.6 * step + 1.6 * step * ((across * side + 0.4) / 1.4) ** 2
        inside = np.minimum(np.minimum(cols - inner, outer - cols), np.minimum(rows - apex, dome - rows))
        lungs += _ramp(inside, 0.04 * width) * (0.3 + 0.5 * np.sqrt(np.clip(1 - across ** 2, 0, 1)))
    heart = np.clip(1 - ((cols - column.x[8] - 0.1 * width) / (0.17 * width)) ** 2
                    - ((rows - y[8] - 0.5 * step) / (2.6 * step)) ** 2, 0, 1)
    density -= 0.6 * lungs * (1 - 0.8 * np.sqrt(heart))

    gas = Image.new("F", shape[::-1], 0.0)
    draw = ImageDraw.Draw(gas)

    def blob(cx, cy, rx, ry, value):
        draw.ellipse([(cx - rx) / _COARSE, (cy - ry) / _COARSE, (cx + rx) / _COARSE, (cy + ry) / _COARSE],
                     fill=value)

    blob(column.x[11] + 0.22 * width, y[10] + 0.5 * step, 0.07 * width, 0.035 * width, 0.3)   # stomach
    for _ in range(int(rng.integers(15, 30))):   # bowel gas around the lumbar spine
        blob(column.x[14] + rng.normal(0, 1.3) * column.width[14], rng.uniform(y[12], y[16] + 2 * step),
             rng.uniform(0.01, 0.04) * width, rng.uniform(0.008, 0.025) * width, rng.uniform(0.06, 0.18))
    mottle = rng.standard_normal(shape)
    density += 0.04 * gaussian(mottle, sigma=1.0) - gaussian(np.asarray(gas), sigma=1.0)
    return resize(density, (height, width), order=1, anti_aliasing=False).astype(np.float32)


def _bezier(p0, p1, p2, p3, n: int = 24) -> list[tuple[float, float]]:
    """Points along a cubic Bézier curve, the shape of a rib or clavicle."""
    t = np.linspace(0, 1, n)[:, None]
    pts = ((1 - t) ** 3 * np.asarray(p0) + 3 * (1 - t) ** 2 * t * np.asarray(p1)
           + 3 * (1 - t) * t ** 2 * np.asarray(p2) + t ** 3 * np.asarray(p3))
    return [tuple(p) for p in pts]


def _tube(draw: ImageDraw.ImageDraw, path, width: float, value: float) -> None:
    """A long bone seen side-on: bright cortical edges around a fainter marrow core."""
    draw.line(path, fill=value, width=max(1, round(width)), joint="curve")
    draw.line(path, fill=0.55 * value, width=max(1, round(0.6 * width)), joint="curve")


def _skeleton(column: _Column, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Ribs, clavicles and pelvis as density; each group on its own layer so crossings add up."""
    layers = [Image.new("F", (width, height), 0.0) for _ in range(3)]
    back, front, pelvis = (ImageDraw.Draw(layer) for layer in layers)
    y, step, body_x = column.y, column.step, width / 2
    rib_value = rng.uniform(0.12, 0.16)
    for k in range(12):   # T1..T12 each carry a pair of ribs
        w, h, x0, y0 = column.width[k], column.height[k], column.x[k], y[k] - 0.2 * column.height[k]
        reach = 0.44 * width * min(1.0, 0.68 + 0.08 * k) - 0.015 * width * max(0, k - 8)
        for side in (-1, 1):
            head = (x0 + side * 0.55 * w, y0)
            end_x = body_x + side * reach * rng.uniform(0.97, 1.0)
            span = abs(end_x - head[0])
            drop = (0.3 + 0.03 * k) * span * rng.uniform(0.9, 1.1)
            lateral = (end_x, y0 + drop)
            _tube(back, _bezier(head, (head[0] + side * 0.4 * span, y0 - 0.12 * span),
                                (end_x + side * 0.02 * span, y0 + 0.05 * span), lateral),
                  0.12 * h + 0.006 * width, rib_value)
            if k < 10:   # the anterior ribs run back down and in towards the sternum, fainter
                tip = (head[0] + side * 0.4 * span, lateral[1] + 0.45 * span)
                _tube(front, _bezier(lateral, (end_x, lateral[1] + 0.25 * span),
                                     (tip[0] + side * 0.35 * span, tip[1] - 0.05 * span), tip),
                      0.1 * h + 0.005 * width, 0.45 * rib_value)
    for side in (-1, 1):   # clavicles: from the manubrium up and out to the shoulders
        medial = (column.x[1] + side * 0.8 * column.width[1], y[1] + 0.3 * step)
        outer = (body_x + side * 0.46 * width, y[0] - 0.7 * step)
        _tube(back, _bezier(medial, (medial[0] + side * 0.12 * width, medial[1] - 0.4 * step),
                            (outer[0] - side * 0.15 * width, outer[1] + 0.5 * step), outer),
              0.35 * column.height[0], 0.22)
    l5_w, l5_h, l5_x = column.width[16], column.height[16], column.x[16]
    top = y[16] + l5_h / 2   # the L5 inferior endplate, where the sacrum starts
    rim = max(2, round(0.07 * l5_h))
    # Iliac wings, in L5 widths from the midline and L5 heights below its inferior endplate: a
    # convex crest from the sacro-iliac joint out to the anterior superior spine, down to the
    # acetabular roof, back along the pelvic brim.
    wing = (((0.65, 0.2), (0.9, -1.2), (1.7, -1.4), (2.1, 0.3)),
            ((2.1, 0.3), (2.15, 1.4), (1.95, 2.2), (1.85, 2.8)),
            ((1.85, 2.8), (1.4, 2.5), (0.85, 2.2), (0.7, 1.6)))
    for side in (-1, 1):
        outline = [point for segment in wing
                   for point in _bezier(*[(l5_x + side * x * l5_w, top + y * l5_h) for x, y in segment])]
        pelvis.polygon(outline, fill=0.15, outline=0.3, width=rim)
    sacrum = [(l5_x - 0.62 * l5_w, top + 0.25 * l5_h), (l5_x + 0.62 * l5_w, top + 0.25 * l5_h),
              (l5_x + 0.15 * l5_w, top + 3.0 * l5_h), (l5_x - 0.15 * l5_w, top + 3.0 * l5_h)]
    pelvis.polygon(sacrum, fill=0.18, outline=0.3, width=rim)
    return sum(np.asarray(layer) for layer in layers)


def _inverse_bilinear(quad: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u, v), (0, 0) at the top-left and (1, 1) at the bottom-right corner of
    ``quad`` (TL, TR, BL, BR), so a body drawn in (u, v) meets all four landmarks exactly."""
    a, b, c, d = quad
    e, f, g = b - a, c - a, a - b - c + d
    qx, qy = px - a[0], py - a[1]
    # p = a + u e + v f + u v g  gives  k2 v² + k1 v + k0 = 0; the stable root form copes with k2 = 0.
    k2 = g[0] * f[1] - g[1] * f[0]
    k1 = (e[0] * f[1] - e[1] * f[0]) + (qx * g[1] - qy * g[0])
    k0 = qx * e[1] - qy * e[0]
    root = np.sqrt(np.maximum(k1 ** 2 - 4 * k0 * k2, 0))
    q = -0.5 * (k1 + np.copysign(root, k1))
    q = np.where(q == 0, 1e-12, q)
    v = k0 / q
    if k2 != 0:
        other = q / k2
        v = np.where(np.abs(v - 0.5) <= np.abs(other - 0.5), v, other)
    across_x, across_y = e[0] + g[0] * v, e[1] + g[1] * v
    use_x = np.abs(across_x) >= np.abs(across_y)
    u = np.where(use_x, (qx - f[0] * v) / np.where(use_x, across_x, 1),
                 (qy - f[1] * v) / np.where(use_x, 1, across_y))
    return u, v


def _shell(px, py, centre, radii, fill: float, rim: float) -> np.ndarray:
    """A bone part seen end-on (pedicle, process): a bright cortical ring around a fainter inside."""
    r = np.sqrt(((px - centre[0]) / radii[0]) ** 2 + ((py - centre[1]) / radii[1]) ** 2)
    return fill * _ramp(1 - r, 0.15) + rim * np.clip(1 - ((r - 1) / 0.35) ** 2, 0, None) ** 2


def _vertebra(quad: np.ndarray, lumbar: bool, shape: tuple[int, int], rng: np.random.Generator):
    """Density of one vertebra (body, pedicles, processes) in a patch around it: (rows, cols, patch)."""
    quad = quad.astype(np.float32)   # keeps the patch arithmetic in float32, for speed
    half_w, half_h = (float(size[0]) / 2 for size in _sizes(quad[None]))
    margin = np.array([1.0 * half_w, 0.6 * half_h])
    x0, y0 = np.maximum(np.floor(quad.min(axis=0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(quad.max(axis=0) + margin) + 1, (shape[1], shape[0])).astype(int)
    if x1 <= x0 or y1 <= y0:   # wholly outside the image
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), np.float32)
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = _inverse_bilinear(quad, px, py)
    px, py = (2 * u - 1) * half_w, (2 * v - 1) * half_h   # pixels from the body centre, along its axes

    waist = half_w * (1 - 0.06 * (1 - np.minimum((py / half_h) ** 2, 1)))
    corner = 0.15 * half_h
    qx, qy = np.abs(px) - waist + corner, np.abs(py) - half_h + corner
    edge = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - corner
    rim = max(1.5, 0.06 * half_h)
    texture = gaussian(rng.standard_normal(px.shape, dtype=np.float32), sigma=max(1.0, 0.08 * half_h))
    texture *= 0.5 / max(float(texture.std()), 1e-6)
    body = _ramp(-edge, 1.5) * (0.14 + 0.1 * np.sqrt(np.clip(1 - (px / half_w) ** 2, 0, 1))) * (1 + 0.3 * texture)
    cortex = 0.22 * np.exp(-((edge / rim) ** 2))
    endplates = 0.12 * np.exp(-(((np.abs(py) - half_h + rim) / rim) ** 2)) * (np.abs(px) < waist)
    density = body + cortex + endplates
    for side in (-1, 1):
        density += _shell(px, py, (side * 0.6 * half_w, -0.2 * half_h), (0.13 * half_w, 0.45 * half_h), 0.06, 0.22)
        if lumbar:
            density += _shell(px, py, (side * 1.35 * half_w, -0.1 * half_h), (0.4 * half_w, 0.2 * half_h), 0.1, 0.1)
        else:
            density += _shell(px, py, (side * 1.1 * half_w, -0.4 * half_h), (0.2 * half_w, 0.22 * half_h), 0.12, 0.1)
    density += _shell(px, py, (0, 0.35 * half_h), (0.08 * half_w, 0.5 * half_h), 0.05, 0.12)   # spinous process
    return slice(y0, y1), slice(x0, x1), density


def render_radiograph(landmarks: SpineLandmarks, image_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A synthetic AP spine radiograph around ``landmarks``: float32 (rows, cols) in [0, 1], bright = bone.

    Each vertebral body is drawn through its four corners (a bilinear map of the landmark
    quadrilateral), so the landmarks are the truth for the picture, real or built ones alike.
    ``seed`` fixes the noise and the small anatomical variations.
    """
    width, height = image_size
    rng = np.random.default_rng(seed)
    column = _Column(landmarks)
    density = _soft_tissue(column, width, height, rng) + _skeleton(column, width, height, rng)
    for quad, level in zip(landmarks.points, landmarks.levels):
        rows, cols, patch = _vertebra(quad, level.startswith("L"), (height, width), rng)
        density[rows, cols] += patch
    image = 1 - np.exp(-0.8 * np.maximum(density, 0))
    image = gaussian(image, sigma=max(0.8, 0.0011 * max(width, height)))
    image += 0.02 * rng.standard_normal(image.shape, dtype=np.float32)
    image *= np.linspace(1.04, 0.96, height, dtype=np.float32)[:, None]   # the X-ray tube's heel effect
    image = 0.03 + 0.94 * image   # some scattered light reaches the detector everywhere
    return np.clip(image, 0, 1).astype(np.float32)


#: The example's curves as (upper index, lower index, signed Cobb angle, name); see scoliotic_tilts.
_EXAMPLE_CURVES = ((0, 4, 10.0, "proximal thoracic"), (4, 11, -35.0, "main thoracic"), (11, 15, 25.0, "lumbar"))


def example_case(seed: int = 0) -> tuple[np.ndarray, SpineLandmarks, str]:
    """A ready-made case for demos and self-tests: radiograph, its landmarks and what was built.

    A right main thoracic curve with a compensating left lumbar curve and a small proximal
    thoracic curve, the commonest pattern in adolescent idiopathic scoliosis.
    """
    landmarks = build_spine(scoliotic_tilts([curve[:3] for curve in _EXAMPLE_CURVES]), image_size=EXAMPLE_SIZE,
                            span=EXAMPLE_SPAN)
    image = render_radiograph(landmarks, EXAMPLE_SIZE, seed)
    curves = "; ".join(f"{name} {LEVELS[upper]}-{LEVELS[lower]} {abs(cobb):g}° convex to the patient's "
                       f"{'left' if cobb > 0 else 'right'}" for upper, lower, cobb, name in _EXAMPLE_CURVES)
    description = (f"Synthetic AP radiograph, {EXAMPLE_SIZE[0]} x {EXAMPLE_SIZE[1]} px, T1-L5, patient's right on "
                   f"the image left: {curves}.")
    return image, landmarks, description
