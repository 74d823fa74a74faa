"""Pictures of CT results for a reader of files: slices through the spine with each vertebra drawn
and named, as ``xray.overlay`` is for radiographs.

``segment --overview`` draws the centra (filled) and their bodies (outlined) over a sagittal slice
through the centra and an axial slice through the middle one (``segment_overview``); ``fracture``
writes ``overview.png``, sagittal and coronal slices with each vertebral body coloured by its call and
labelled with its level, Genant grade and probability (``fracture_overview``).

Slices are resampled on the patient's axes (LPS) at square pixels whatever the CT's spacing and
direction, and shown as radiologists read them: head up, sagittal with anterior on the left, coronal
and axial with the patient's right on the left, axial with anterior up. Sagittal and coronal slices
bend through the vertebrae's centroids (``spine_curve``), so every body of a lordotic or scoliotic
spine is cut through its middle. Masks are drawn where the slice cuts them; a vertebra it still
misses is outlined by its projection onto it, and a vertebra with no mask is marked by a ring
around its centroid.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from ..drawing import place_label, with_banner, wrap
from .patches import sample_patch, values_at_points

#: Level and width of the grey window (HU): bone detail, soft tissue still grey.
WINDOW_HU = (300.0, 1500.0)
#: The longer side of a view at most (pixels); pixels are never finer than ``MIN_PIXEL_MM``.
MAX_SIDE_PX = 1000
MIN_PIXEL_MM = 0.25
#: Each view shows the vertebrae drawn and this much around them (mm), within the CT.
MARGIN_MM = 60.0
#: One colour per vertebra of a segmentation, in label order.
VERTEBRA_COLOURS = ((255, 210, 0), (0, 200, 255), (255, 90, 210), (120, 240, 70), (255, 140, 30),
                    (160, 130, 255), (0, 230, 170), (255, 90, 90))
#: A fracture call's colour; any other call (not assessed) is grey.
CALL_COLOURS = {"normal": (60, 220, 60), "fractured": (255, 50, 50)}
NOT_ASSESSED_COLOUR = (175, 175, 175)
#: Radius of the ring marking a vertebra with no mask (mm).
RING_MM = 14.0
FILL_ALPHA = 0.25

# Each view's (normal, horizontal, vertical) LPS axes, and the letters at its left, right, top and bottom edges.
_AXES = {"sagittal": (0, 1, 2), "coronal": (1, 0, 2), "axial": (2, 0, 1)}
_EDGES = {"sagittal": "APSI", "coronal": "RLSI", "axial": "RLAP"}


@dataclass(frozen=True)
class View:
    """A slice to draw: ``name`` (sagittal, coronal or axial) at ``at_mm`` along its normal (LPS x, y
    or z), or, for a sagittal or coronal one, bent along ``curve``: (heights, positions), LPS z and where
    the slice is along its normal there (linear between, constant beyond), so that it follows the spine.
    Masks are drawn where the slice cuts them, or, ``projected``, all of them projected onto it; with
    ``beside``, a vertebra that the slice misses is drawn by its projection's outline."""

    name: str
    at_mm: float
    caption: str = ""
    curve: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    projected: bool = False
    beside: bool = False    # a vertebra off the slice: its projection outlined thin, "(beside)" after its text

    def depth(self, heights_mm: np.ndarray) -> np.ndarray:
        """Where the slice is along its normal (LPS mm) at each height (LPS z)."""
        if self.curve is None or self.name == "axial":
            return np.full(len(heights_mm), float(self.at_mm))
        return np.interp(heights_mm, *self.curve)


@dataclass(frozen=True)
class Layer:
    """A label map (any grid) whose labels are the marks' ``label``: filled and outlined, or outlined only."""

    labels: sitk.Image
    fill: bool = True


@dataclass(frozen=True)
class Mark:
    """One vertebra: ``text`` beside it in ``colour``; drawn as label ``label`` of the layers, or as a ring
    around ``centroid_lps`` when no layer holds it (``label`` 0)."""

    text: str
    colour: tuple[int, int, int]
    centroid_lps: np.ndarray
    label: int = 0


def _image_box(image: sitk.Image, index_low, index_high) -> tuple[np.ndarray, np.ndarray]:
    """The LPS bounding box of the voxels from ``index_low`` to ``index_high`` (x, y, z, inclusive)."""
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
                        for corner in np.array(np.meshgrid(*[(lo - 0.5, hi + 0.5) for lo, hi in
                                                             zip(index_low, index_high)])).reshape(3, -1).T])
    return corners.min(axis=0), corners.max(axis=0)


def _masks_box(layers: Sequence[Layer], marks: Sequence[Mark]) -> tuple[np.ndarray, np.ndarray]:
    """The LPS box around every mask voxel and every mark's centroid."""
    points = [np.asarray(m.centroid_lps, float) for m in marks]
    for layer in layers:
        voxels = np.argwhere(sitk.GetArrayViewFromImage(layer.labels))
        if len(voxels):
            points.extend(_image_box(layer.labels, voxels.min(axis=0)[::-1], voxels.max(axis=0)[::-1]))
    points = np.array(points)
    return points.min(axis=0) - RING_MM, points.max(axis=0) + RING_MM


def _plane(low: np.ndarray, counts: Sequence[int], spacing: Sequence[float]) -> sitk.Image:
    """An LPS-aligned grid of ``counts`` (x, y, z) voxels of ``spacing`` from the voxel centre ``low``."""
    grid = sitk.Image([int(c) for c in counts], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetOrigin([float(v) for v in low])
    return grid


def _to_view(mask: np.ndarray, normal: int, vertical: int) -> np.ndarray:
    """A (z, y, x) mask projected along the view's normal to (rows, columns), head or anterior up."""
    return mask.any(axis=2 - normal)[::-1] if vertical == 2 else mask.any(axis=2 - normal)


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    edge = mask & ~ndi.binary_erosion(mask)
    return ndi.binary_dilation(edge, iterations=width - 1) if width > 1 else edge


class _Canvas:
    """One view being drawn: its pixel grid (LPS origin, pixel size), each pixel's LPS point on the
    (maybe bent) slice, and the picture as floats."""

    def __init__(self, ct: sitk.Image, view: View, low: np.ndarray, high: np.ndarray, pixel_mm: float):
        self.view, self.pixel_mm = view, pixel_mm
        self.normal, self.horizontal, self.vertical = n, h, v = _AXES[view.name]
        self.low = low.copy()
        self.low[n] = view.at_mm
        counts = np.maximum(1, np.round((high - low) / pixel_mm).astype(int))
        counts[n] = 1
        self.counts = counts
        rows, columns = counts[v], counts[h]
        heights = low[v] + pixel_mm * (np.arange(rows)[::-1] if v == 2 else np.arange(rows))
        self.points = np.empty((rows, columns, 3))
        self.points[..., h] = low[h] + pixel_mm * np.arange(columns)
        self.points[..., v] = heights[:, None]
        self.points[..., n] = view.depth(heights)[:, None]
        hu = values_at_points(ct, self.points, order=1, outside=-1024.0)
        level, width = WINDOW_HU
        grey = np.clip((hu - level + width / 2) / width, 0, 1)
        self.rgb = np.repeat(grey[..., None] * 255.0, 3, axis=2)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]

    def pixel(self, point_lps) -> tuple[float, float]:
        """(column, row) of an LPS point projected on the view."""
        point = np.asarray(point_lps, float)
        column = (point[self.horizontal] - self.low[self.horizontal]) / self.pixel_mm
        row = (point[self.vertical] - self.low[self.vertical]) / self.pixel_mm
        return column, (self.shape[0] - 1 - row) if self.vertical == 2 else row

    def cut(self, labels: sitk.Image, values: Sequence[int]) -> dict:
        """Each label value's footprint where the slice cuts it ((rows, columns) booleans)."""
        found = values_at_points(labels, self.points, order=0)
        return {v: found == v for v in values}

    def project(self, labels: sitk.Image, values: Sequence[int], box: tuple[np.ndarray, np.ndarray]) -> dict:
        """Each label value's footprint projected onto the view ((rows, columns) booleans), sampled only
        inside ``box`` (the masks' LPS box) at 1 mm across it."""
        rows, columns = self.shape
        footprints = {v: np.zeros((rows, columns), bool) for v in values}
        n = self.normal
        near, far = box[0][n], box[1][n]
        # the box's pixels, on the view's pixel grid
        start = np.floor((box[0] - self.low) / self.pixel_mm).astype(int)
        stop = np.ceil((box[1] - self.low) / self.pixel_mm).astype(int) + 1
        start, stop = np.maximum(start, 0), np.minimum(stop, self.counts)
        start[n], counts = 0, stop - start
        counts[n] = int(np.floor(far - near)) + 1
        if np.any(counts <= 0):
            return footprints
        origin = self.low + start * self.pixel_mm
        origin[n] = near
        spacing = [self.pixel_mm] * 3
        spacing[n] = 1.0
        sampled = sample_patch(labels, _plane(origin, counts, spacing), labels=True)
        h, v = self.horizontal, self.vertical
        first_row = rows - stop[v] if v == 2 else start[v]
        for value in values:
            part = _to_view(sampled == value, n, v)
            footprints[value][first_row:first_row + part.shape[0], start[h]:start[h] + part.shape[1]] = part
        return footprints

    def paint(self, mask: np.ndarray, colour, fill: bool, width: int) -> None:
        if fill:
            self.rgb[mask] = (1 - FILL_ALPHA) * self.rgb[mask] + FILL_ALPHA * np.asarray(colour, float)
        self.rgb[_outline(mask, width)] = colour


def _present(layer: Layer) -> set[int]:
    """The labels a layer holds (0 aside)."""
    counts = np.bincount(sitk.GetArrayViewFromImage(layer.labels).ravel().astype(np.int64, copy=False))
    return {int(v) for v in np.flatnonzero(counts) if v}


def _paint_layers(canvas: _Canvas, layers: Sequence[tuple[Layer, set[int]]], colours: dict, masks_box,
                  projected: bool, width: int, fill: bool = True) -> dict[int, np.ndarray]:
    """Paint the labels ``colours`` names (label -> colour) of every layer (with the labels it holds) where
    the slice cuts them (or ``projected``), filled where the layer is (and ``fill``); each label's footprint."""
    footprint: dict[int, np.ndarray] = {}
    for layer, present in layers:
        present = sorted(present & set(colours))
        found = canvas.project(layer.labels, present, masks_box) if projected else canvas.cut(layer.labels, present)
        for value, mask in found.items():
            footprint[value] = footprint.get(value, mask) | mask
            if mask.any():
                canvas.paint(mask, colours[value], layer.fill and fill, width if layer.fill else max(1, width // 2))
    return footprint


def _draw_view(ct: sitk.Image, view: View, layers: Sequence[tuple[Layer, set[int]]], marks: Sequence[Mark],
               low: np.ndarray, high: np.ndarray, masks_box, pixel_mm: float) -> Image.Image:
    """One view: the slice, every layer's masks (with the labels it holds), the rings of marks without
    one, the marks' texts, the edge letters and the caption below."""
    canvas = _Canvas(ct, view, low, high, pixel_mm)
    scale = max(canvas.shape[0], 400) / 800
    width = max(1, round(2 * scale))
    colours = {m.label: m.colour for m in marks}
    footprint = _paint_layers(canvas, layers, colours, masks_box, view.projected, width)
    missed = {v for v, mask in footprint.items() if not mask.any()} if view.beside else set()
    if missed:
        footprint.update(_paint_layers(canvas, layers, {v: colours[v] for v in missed}, masks_box, True, 1, False))
    picture = Image.fromarray(np.round(canvas.rgb).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(12, round(20 * scale)))
    taken: list = []
    for mark in marks:
        x, y = canvas.pixel(mark.centroid_lps)
        text = f"{mark.text} (beside)" if mark.label in missed else mark.text
        if mark.label in footprint:
            mask = footprint[mark.label]
            if not mask.any():
                continue        # off this slice
            band = mask[max(0, int(y) - 2):int(y) + 3]
            cols = np.flatnonzero((band if band.any() else mask).any(axis=0))
            left, right = cols[0], cols[-1]
        else:
            off = abs(float(mark.centroid_lps[canvas.normal] - view.depth(mark.centroid_lps[2:3])[0]))
            if not view.projected and off > RING_MM:
                continue
            radius = RING_MM / pixel_mm
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=mark.colour, width=width)
            left, right = x - radius, x + radius
        gap = 3 * width
        if left - gap - draw.textlength(text, font=font) >= 0:
            xy, anchor = (left - gap, y), "rm"
        else:
            xy, anchor = (right + gap, y), "lm"
        place_label(draw, picture.size, xy, text, font, mark.colour, anchor, taken, max(1, width // 2))
    _edge_letters(draw, picture.size, _EDGES[view.name], font)
    return picture


def _edge_letters(draw: ImageDraw.ImageDraw, size: tuple[int, int], letters: str, font) -> None:
    """The patient's directions at the middle of the view's left, right, top and bottom edges."""
    columns, rows = size
    spots = (((4, rows / 2), "lm"), ((columns - 4, rows / 2), "rm"), ((columns / 2, 4), "ma"),
             ((columns / 2, rows - 4), "md"))
    for letter, (xy, anchor) in zip(letters, spots):
        draw.text(xy, letter, font=font, fill=(255, 255, 160), anchor=anchor, stroke_width=2, stroke_fill=(0, 0, 0))


def _side_by_side(pictures: Sequence[Image.Image], captions: Sequence[str], font, gap: int) -> Image.Image:
    """The views in a row, top-aligned, each with its caption (wrapped to its width) below the tallest."""
    height = max(p.height for p in pictures)
    measure = ImageDraw.Draw(pictures[0])
    texts = [wrap(measure, c, font, p.width - 2 * gap) for p, c in zip(pictures, captions)]
    strip = max(measure.multiline_textbbox((0, 0), t, font=font)[3] for t in texts) + 2 * gap
    out = Image.new("RGB", (sum(p.width for p in pictures) + gap * (len(pictures) - 1), height + strip))
    draw, left = ImageDraw.Draw(out), 0
    for picture, text in zip(pictures, texts):
        out.paste(picture, (left, 0))
        draw.multiline_text((left + gap, height + gap), text, font=font, fill=(230, 230, 230))
        left += picture.width + gap
    return out


def draw_views(ct: sitk.Image, views: Sequence[View], layers: Sequence[Layer], marks: Sequence[Mark],
               title: str = "") -> np.ndarray:
    """The ``views`` side by side under ``title``: uint8 RGB (rows, columns, 3). Each shows the CT around
    the marks (``MARGIN_MM``, within the CT) at square pixels (``MAX_SIDE_PX``, ``MIN_PIXEL_MM``)."""
    ct_low, ct_high = _image_box(ct, (0, 0, 0), np.array(ct.GetSize()) - 1)
    masks_box = _masks_box(layers, marks)
    low = np.maximum(masks_box[0] - MARGIN_MM, ct_low)
    high = np.minimum(masks_box[1] + MARGIN_MM, ct_high)
    longest = max(max(high[_AXES[v.name][1]] - low[_AXES[v.name][1]], high[_AXES[v.name][2]] - low[_AXES[v.name][2]])
                  for v in views)
    pixel_mm = max(float(longest) / MAX_SIDE_PX, MIN_PIXEL_MM)
    held = [(layer, _present(layer)) for layer in layers]
    pictures = [_draw_view(ct, view, held, marks, low, high, masks_box, pixel_mm) for view in views]
    height = max(p.height for p in pictures)
    gap = max(8, height // 40)
    font = ImageFont.load_default(size=max(12, round(height / 40)))
    out = _side_by_side(pictures, [v.caption for v in views], font, gap)
    return np.asarray(with_banner(out, title, font, gap) if title else out)


#: A centroid farther than this from the others' median (mm, across the view) does not bend the slice.
CURVE_OUTLIER_MM = 40.0


def spine_curve(points_lps: Sequence[np.ndarray], axis: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(heights, positions): the LPS z of the points, bottom to top, and their coordinate along ``axis``
    (0: x, for a sagittal slice; 1: y, for a coronal one), leaving out points more than ``CURVE_OUTLIER_MM``
    from the median along it: a ``View.curve`` that follows the spine through them."""
    points = np.array([np.asarray(p, float) for p in points_lps])
    points = points[np.abs(points[:, axis] - np.median(points[:, axis])) <= CURVE_OUTLIER_MM]
    points = points[np.argsort(points[:, 2])]
    return tuple(points[:, 2].tolist()), tuple(points[:, axis].tolist())


def _spine_views(marks: Sequence[Mark], names: Sequence[str]) -> list[View]:
    """Sagittal or coronal slices bent through the marks' centroids (flat at their median for one mark)."""
    views = []
    for name in names:
        axis = _AXES[name][0]
        curve = spine_curve([m.centroid_lps for m in marks], axis)
        at = float(np.median(curve[1]))
        span = f"{min(curve[1]):.0f} to {max(curve[1]):.0f} mm" if len(curve[1]) > 1 else f"{at:.1f} mm"
        views.append(View(name, at, f"{name} through the centroids ({'xy'[axis]} = {span}, LPS)", curve,
                          beside=True))
    return views


def _label_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(array, dtype=np.uint16))
    image.CopyInformation(reference)
    return image


def segment_overview(ct: sitk.Image, centra: np.ndarray, bodies: np.ndarray | None, levels: Sequence[str],
                     title: str = "") -> np.ndarray:
    """The centra (label k: ``levels[k - 1]``, (z, y, x) on ``ct``'s grid) filled and their bodies outlined,
    over a sagittal slice bent through the centra's centres and an axial slice through the middle centrum
    (by height)."""
    values = [k for k in range(1, len(levels) + 1)]
    centres = ndi.center_of_mass(np.ones(centra.shape), centra, values)
    marks = []
    for k, centre in zip(values, centres):
        if np.isnan(centre[0]):
            continue
        lps = np.array(ct.TransformContinuousIndexToPhysicalPoint([float(c) for c in centre[::-1]]))
        name = levels[k - 1] if levels[k - 1] not in ("", "unnamed") else f"label {k}"
        marks.append(Mark(name, VERTEBRA_COLOURS[(k - 1) % len(VERTEBRA_COLOURS)], lps, k))
    if not marks:
        raise ValueError("no centrum to draw")
    middle = sorted(marks, key=lambda m: -m.centroid_lps[2])[len(marks) // 2]
    layers = ([Layer(_label_image(bodies, ct), fill=False)] if bodies is not None else []) \
        + [Layer(_label_image(centra, ct))]
    views = _spine_views(marks, ["sagittal"]) + [View("axial", float(middle.centroid_lps[2]),
                                                      f"axial through {middle.text}")]
    return draw_views(ct, views, layers, marks, title)


def _short_name(level: str) -> str:
    """A found vertebra's number ("vertebra 3" -> "#3"); a level as it is."""
    return f"#{level.split()[-1]}" if level.startswith("vertebra ") else level


def fracture_marks(findings: Sequence) -> list[Mark]:
    """A mark per finding (``fracture.VertebraFinding``), label k for the k-th: its level (or number),
    Genant grade and probability, coloured by its call."""
    marks = []
    for k, finding in enumerate(findings, start=1):
        genant = getattr(finding, "genant", None)
        probability = getattr(finding, "probability", None)
        grade = "G-" if genant is None else f"G{genant.grade}"
        chance = "p -" if probability is None else f"p {probability:.2f}"
        colour = CALL_COLOURS.get(getattr(finding, "call", ""), NOT_ASSESSED_COLOUR)
        marks.append(Mark(f"{_short_name(str(finding.level))} {grade} {chance}", colour,
                          np.asarray(finding.centroid_lps, float), k))
    return marks


def bodies_near(grid: sitk.Image, body: np.ndarray, centroids: Sequence[np.ndarray],
                half_box_mm: Sequence[float] = (32.0, 30.0, 25.0)) -> sitk.Image:
    """A label map of the vertebral-body voxels ``body`` ((z, y, x) booleans on ``grid``, LPS-aligned)
    around each centroid: label k for the voxels within ``half_box_mm`` (x, y, z) of centroid k nearer
    it than any other, the connected part nearest it. On the box around them all, for drawing only."""
    spacing = np.array(grid.GetSpacing())
    index = np.array([grid.TransformPhysicalPointToContinuousIndex([float(v) for v in c]) for c in centroids])
    half = np.ceil(np.asarray(half_box_mm) / spacing).astype(int)
    low = np.maximum(np.floor(index.min(axis=0)).astype(int) - half, 0)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int) + half + 1, np.array(body.shape[::-1]))
    labels = np.zeros(tuple((high - low)[::-1]), np.uint16)
    for k, centre in enumerate(index, start=1):
        lo, hi = np.maximum(np.round(centre).astype(int) - half, low), np.minimum(np.round(centre).astype(int)
                                                                                     + half + 1, high)
        if np.any(hi <= lo):
            continue
        region = tuple(slice(a, b) for a, b in zip(lo[::-1], hi[::-1]))
        voxels = np.argwhere(body[region])[:, ::-1] + lo                     # (x, y, z) indices
        if not len(voxels):
            continue
        rivals = np.flatnonzero(np.all(np.abs(index - centre) <= 2 * half, axis=1))   # k - 1 among them
        distances = np.linalg.norm((voxels[:, None, :] - index[None, rivals]) * spacing, axis=2)
        own = np.zeros(body[region].shape, bool)
        own[tuple((voxels[rivals[distances.argmin(axis=1)] == k - 1] - lo)[:, ::-1].T)] = True
        parts, count = ndi.label(own)
        if count == 0:
            continue
        seed = tuple(np.clip(np.round(centre).astype(int) - lo, 0, hi - lo - 1)[::-1])
        nearest = ndi.distance_transform_edt(parts == 0, return_indices=True)[1][:, seed[0], seed[1], seed[2]]
        local = tuple(slice(a - b, c - b) for a, b, c in zip(lo[::-1], low[::-1], hi[::-1]))
        labels[local][parts == parts[tuple(nearest)]] = k
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(grid.GetSpacing())
    image.SetDirection(grid.GetDirection())
    image.SetOrigin(grid.TransformIndexToPhysicalPoint([int(v) for v in low]))
    return image


def _fracture_title(patient: dict | None) -> str:
    """The patient's call and how to read the picture, in a line above it."""
    patient = patient or {}
    levels = patient.get("fractured_levels") or []
    call = f"Patient: {patient['call']}" + (f" ({', '.join(map(str, levels))})" if levels else "") + ". " \
        if patient.get("call") else ""
    return (call + "Green normal, red fractured, grey not assessed; G: Genant grade (0 normal to 3 severe), "
            "p: the classifier's fracture probability. Outlines: the classifier's vertebral-body voxels. "
            "Check on the CT.")


def fracture_overview(ct: sitk.Image, findings: Sequence, maps=None, body_probability: float = 0.5,
                      patient: dict | None = None) -> np.ndarray:
    """Sagittal and coronal slices bent through the vertebrae's centroids, each vertebra (``findings``,
    ``fracture.VertebraFinding``) outlined by the classifier's body voxels near it (``maps``, a
    ``ProbabilityMaps``: ``bodies_near`` above ``body_probability``; a ring where it has none),
    coloured by its call and labelled, under the ``patient``'s call."""
    marks = fracture_marks(findings)
    if not marks:
        raise ValueError("no vertebra to draw")
    body, grid = getattr(maps, "body", None), getattr(maps, "grid", None)
    layers = [] if body is None or grid is None else \
        [Layer(bodies_near(grid, body > body_probability, [m.centroid_lps for m in marks]))]
    return draw_views(ct, _spine_views(marks, ["sagittal", "coronal"]), layers, marks, _fracture_title(patient))
