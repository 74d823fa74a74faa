"""``ct.overview``: the pictures of CT results: views of the right size on square pixels, each vertebra
drawn in its colour where it is, rings where no mask is, and nothing written when drawing fails."""
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import phantom_ct, phantom_labels, reference_centrum
from spine_analysis.ct import overview, study
from spine_analysis.ct.overview import (CALL_COLOURS, NOT_ASSESSED_COLOUR, RING_MM, VERTEBRA_COLOURS, Layer, Mark,
                                        View, bodies_near, draw_views, fracture_marks, fracture_overview,
                                        segment_overview)
from spine_analysis.ct.patches import ct_grid, sample_patch

# The phantom's box: 96 x 88 x 112 mm (x, y, z) centred on the origin, wholly in view (the margin is wider).
PIXEL_MM = max(112 / overview.MAX_SIDE_PX, overview.MIN_PIXEL_MM)
SAGITTAL = (round(112 / PIXEL_MM), round(88 / PIXEL_MM))     # rows (z), columns (y)
AXIAL = (round(88 / PIXEL_MM), round(96 / PIXEL_MM))         # rows (y), columns (x)


@pytest.fixture(scope="module")
def ct():
    return phantom_ct()


@pytest.fixture(scope="module")
def centra(ct):
    """The middle body's centrum as label 1, the top one's (z = 32 mm) as label 2."""
    labels = reference_centrum(ct, z_centre_mm=0.0).astype(np.uint8)
    labels[reference_centrum(ct, z_centre_mm=32.0)] = 2
    return labels


def _sagittal_pixel(y_mm, z_mm):
    """(row, column) of an LPS (y, z) in the sagittal view: anterior (low y) left, head up."""
    return int(round(SAGITTAL[0] - 1 - (z_mm + 56) / PIXEL_MM)), int(round((y_mm + 44) / PIXEL_MM))


def _tint(rgb, colour) -> float:
    """How far a pixel leans to ``colour``: its component along colour minus grey, per channel."""
    direction = np.asarray(colour, float) - np.mean(colour)
    return float((np.asarray(rgb, float) - np.mean(rgb)) @ direction / np.linalg.norm(direction))


def test_a_single_view_has_square_pixels_over_the_ct(ct, centra):
    image = sitk.GetImageFromArray(centra)
    image.CopyInformation(ct)
    rgb = draw_views(ct, [View("sagittal", 0.0)], [Layer(image)],
                     [Mark("L3", VERTEBRA_COLOURS[0], np.zeros(3), 1)])
    caption = rgb.shape[0] - SAGITTAL[0]
    assert rgb.shape[1] == SAGITTAL[1] and 0 < caption < 60 and rgb.dtype == np.uint8
    assert SAGITTAL[0] / SAGITTAL[1] == pytest.approx(112 / 88, rel=0.01)   # mm for mm, whatever the 2 mm slices


def test_segment_overview_draws_each_centrum_in_its_colour_where_it_is(ct, centra):
    rgb = segment_overview(ct, centra, None, ["L3", "L2"])
    gap = max(8, SAGITTAL[0] // 40)
    assert rgb.shape[1] == SAGITTAL[1] + gap + AXIAL[1]                  # sagittal beside the axial, no title
    for label, z in ((1, 0.0), (2, 32.0)):
        row, column = _sagittal_pixel(0.0, z)
        colour = VERTEBRA_COLOURS[label - 1]
        assert _tint(rgb[row, column], colour) > 30                       # filled at its centre
        window = rgb[row - 60:row + 60, column - 90:column + 90]          # its outline around it
        assert (window == colour).all(axis=2).sum() > 100
    far_row, far_column = _sagittal_pixel(0.0, -32.0)                      # the bottom body: not segmented
    bottom = rgb[far_row - 30:far_row + 30, far_column - 60:far_column + 60]
    assert not (bottom == VERTEBRA_COLOURS[0]).all(axis=2).any()
    # the axial view goes through the middle centrum (L3, label 1): at its centre, in its colour
    centre = rgb[int(44 / PIXEL_MM), SAGITTAL[1] + gap + int(48 / PIXEL_MM)]
    assert _tint(centre, VERTEBRA_COLOURS[0]) > 30


def test_a_title_adds_a_banner_above(ct, centra):
    plain, titled = segment_overview(ct, centra, None, ["L3", "L2"]), segment_overview(ct, centra, None, ["L3", "L2"],
                                                                                       "centra of the phantom")
    assert titled.shape[1] == plain.shape[1] and titled.shape[0] > plain.shape[0]
    assert np.array_equal(titled[-plain.shape[0]:], plain)


def test_a_vertebra_without_a_mask_gets_a_ring_around_its_centroid(ct):
    rgb = draw_views(ct, [View("sagittal", 0.0)], [], [Mark("L3", (255, 0, 255), np.zeros(3))])
    row, column = _sagittal_pixel(0.0, 0.0)
    radius = int(round(RING_MM / PIXEL_MM))
    for dr, dc in ((0, radius), (-radius, 0), (radius, 0)):
        assert ((rgb[row + dr - 2:row + dr + 3, column + dc - 2:column + dc + 3] == (255, 0, 255)).all(axis=2)).any()
    assert not (rgb[row - 5:row + 5, column - 5:column + 5] == (255, 0, 255)).all(axis=2).any()


@pytest.fixture(scope="module")
def maps(ct):
    """Stand-in classifier maps on the 1 mm grid: vertebral body where the phantom's top two bodies are."""
    grid = ct_grid(ct, 1.0)
    labels = sample_patch(phantom_labels(ct), grid, labels=True)
    return SimpleNamespace(grid=grid, body=np.where((labels == 21) | (labels == 22), 0.9, 0.0), labels=labels)


def test_bodies_near_gives_each_centroid_its_own_body(maps):
    image = bodies_near(maps.grid, maps.body > 0.5, [np.array([0, 0, z]) for z in (32, 0)])
    assert np.array_equal(np.unique(sitk.GetArrayViewFromImage(image)), [0, 1, 2])
    on_grid, reference = sample_patch(image, maps.grid, labels=True), maps.labels
    for label, verse in ((1, 21), (2, 22)):
        agree = np.logical_and(on_grid == label, reference == verse).sum()
        assert agree / (reference == verse).sum() > 0.98 and agree / (on_grid == label).sum() > 0.98


def _findings():
    genant = SimpleNamespace
    return [SimpleNamespace(level="L2", centroid_lps=np.array([0.0, 0.0, 32.0]), probability=0.91,
                            genant=genant(grade=3), call="fractured"),
            SimpleNamespace(level="L3", centroid_lps=np.array([0.0, 0.0, 0.0]), probability=0.04,
                            genant=genant(grade=0), call="normal"),
            SimpleNamespace(level="vertebra 3", centroid_lps=np.array([0.0, 0.0, -32.0]), probability=None,
                            genant=None, call="not assessed")]


def test_fracture_marks_say_level_grade_and_probability_in_the_call_s_colour():
    marks = fracture_marks(_findings())
    assert [m.text for m in marks] == ["L2 G3 p 0.91", "L3 G0 p 0.04", "#3 G- p -"]
    assert [m.colour for m in marks] == [CALL_COLOURS["fractured"], CALL_COLOURS["normal"], NOT_ASSESSED_COLOUR]
    assert [m.label for m in marks] == [1, 2, 3]


def test_fracture_overview_colours_each_body_by_its_call(ct, maps, monkeypatch):
    titles = []

    def untitled(*args):     # the picture without its banner, so that rows are where the views put them
        titles.append(args[-1])
        return draw_views(*args[:-1])

    monkeypatch.setattr(overview, "draw_views", untitled)
    sagittal = fracture_overview(ct, _findings(), maps, 0.5, {"call": "fractured", "fractured_levels": ["L2"]})
    assert titles[0].startswith("Patient: fractured (L2). Green normal, red fractured, grey not assessed")
    for z, colour in ((32.0, CALL_COLOURS["fractured"]), (0.0, CALL_COLOURS["normal"])):
        row, column = _sagittal_pixel(0.0, z)
        assert _tint(sagittal[row, column], colour) > 25
        assert (sagittal[row - 60:row + 60, column - 80:column + 80] == colour).all(axis=2).sum() > 100
    row, column = _sagittal_pixel(0.0, -32.0)       # no body for the third: a grey ring at its centroid
    radius = int(round(RING_MM / PIXEL_MM))
    ring = sagittal[row - 2:row + 3, column + radius - 2:column + radius + 3]
    assert (ring == NOT_ASSESSED_COLOUR).all(axis=2).any()


def test_an_overview_that_cannot_be_drawn_leaves_no_mask_written(tmp_path, ct, centra, monkeypatch):
    segmentation = study.Segmentation(centra, centra, [SimpleNamespace(level="L3", index=1)], "classical", "classical")

    def broken(*args, **kwargs):
        raise MemoryError("no room to draw")

    monkeypatch.setattr(overview, "segment_overview", broken)
    with pytest.raises(MemoryError):
        study.write_masks(segmentation, ct, tmp_path / "m.nii.gz", tmp_path / "b.nii.gz", None, None,
                          tmp_path / "o.png")
    assert list(tmp_path.iterdir()) == []
