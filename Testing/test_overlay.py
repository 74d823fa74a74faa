"""The overlay must show the landmarks and each curve's endplate lines in colour on the grey
radiograph, and save_png must never leave a half-written or stray file behind."""

import numpy as np
import pytest
from PIL import Image


from spine_analysis.xray.overlay import CURVE_COLOURS, LANDMARK_COLOUR, draw_overlay, save_png  # noqa: E402
from spine_analysis.xray.synthetic import build_spine, render_radiograph, scoliotic_tilts  # noqa: E402

SIZE = (600, 1500)


@pytest.fixture(scope="module")
def case():
    spine = build_spine(scoliotic_tilts([(4, 11, -30.0), (11, 15, 20.0)]), image_size=SIZE)
    pts = spine.points
    lines = [(pts[4, 0], pts[4, 1], "MT 30.0°"), (pts[11, 2], pts[11, 3], "MT 30.0°"),
             (pts[11, 0], pts[11, 1], "L 20.0°"), (pts[15, 2], pts[15, 3], "L 20.0°")]
    return render_radiograph(spine, SIZE), spine, lines


def pixel(rgb, point):
    x, y = np.round(point).astype(int)
    return tuple(int(v) for v in rgb[y, x])


def test_overlay_is_rgb_of_the_image_size(case):
    image, spine, lines = case
    rgb = draw_overlay(image, spine, lines)
    assert rgb.shape == (SIZE[1], SIZE[0], 3) and rgb.dtype == np.uint8
    far = rgb[SIZE[1] - 5, 5]
    assert far[0] == far[1] == far[2]   # away from the drawing the radiograph stays grey


def test_title_goes_in_a_banner_above_the_picture(case):
    image, spine, lines = case
    bare = draw_overlay(image, spine, lines)
    titled = draw_overlay(image, spine, lines, title="A long title " * 12)
    banner = titled.shape[0] - SIZE[1]
    assert banner > 0 and titled.shape[1:] == (SIZE[0], 3)
    np.testing.assert_array_equal(titled[banner:], bare)   # nothing of the picture is covered


def test_landmarks_are_marked_in_colour(case):
    image, spine, lines = case
    rgb = draw_overlay(image, spine, lines)
    for point in spine.flat:
        assert pixel(rgb, point) == LANDMARK_COLOUR


def test_each_curve_has_its_own_colour_along_and_beyond_its_endplates(case):
    image, spine, lines = case
    rgb = draw_overlay(image, spine, lines)
    expected = {"MT 30.0°": CURVE_COLOURS[0], "L 20.0°": CURVE_COLOURS[1]}
    for start, end, label in lines:
        for t in (0.5, 1.4, -0.4):   # on the endplate, and on its extensions either side
            assert pixel(rgb, start + t * (end - start)) == expected[label], (label, t)
    assert CURVE_COLOURS[0] != CURVE_COLOURS[1]


def test_labels_and_title_are_written(case):
    image, spine, lines = case
    bare = draw_overlay(image, spine, [])
    titled = draw_overlay(image, spine, lines, title="Synthetic case")
    assert not np.array_equal(bare[:60, :200], titled[:60, :200])   # the title, top left
    white = np.all(titled == 255, axis=2)
    assert white[:60].any()


def test_overlay_windows_a_flat_image_and_rejects_colour_input(case):
    _, spine, lines = case
    rgb = draw_overlay(np.zeros((SIZE[1], SIZE[0])), spine, lines)
    assert rgb[SIZE[1] - 5, 5].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="2D"):
        draw_overlay(np.zeros((SIZE[1], SIZE[0], 3)), spine, lines)


def test_save_png_writes_a_readable_png_and_nothing_else(tmp_path, case):
    image, spine, lines = case
    rgb = draw_overlay(image, spine, lines)
    target = tmp_path / "overlay.png"
    assert save_png(rgb, target) == target
    save_png(rgb, str(target))   # overwriting is fine
    with Image.open(target) as png:
        assert png.format == "PNG"
        np.testing.assert_array_equal(np.asarray(png), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.png"]


def test_save_png_leaves_no_partial_file_when_it_fails(tmp_path):
    with pytest.raises(TypeError):
        save_png(np.zeros((4, 4, 7), dtype=np.uint8), tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def drawn_text_boxes(monkeypatch) -> dict:
    """Each text the overlay writes, with its box as Pillow measures it."""
    from PIL import ImageDraw

    boxes, write = {}, ImageDraw.ImageDraw.text

    def recording(self, xy, text, *args, **kwargs):
        boxes[text] = self.textbbox(xy, text, font=kwargs["font"], anchor=kwargs["anchor"],
                                    stroke_width=kwargs["stroke_width"])
        return write(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", recording)
    return boxes


def test_curve_labels_lie_whole_inside_the_picture(case, monkeypatch):
    """A line from the left edge with no room on its right put its label off the left edge (only
    "8.7°" showed); labels by the top and bottom edges were cut too, or pushed below by another."""
    image, spine, _ = case
    width, height = SIZE
    lines = [((0.0, 700.0), ((width - 40) / 2, 720.0), "TL/L (2) 8.7°"),   # no room for it on the right
             ((300.0, 2.0), (400.0, 0.0), "PT 12.0°"),                       # at the top edge
             ((100.0, height - 3.0), (150.0, height - 1.0), "L 20.0°"),      # at the bottom edge, twice
             ((100.0, height - 2.0), (150.0, height - 2.0), "TL/L 9.0°")]
    boxes = drawn_text_boxes(monkeypatch)
    draw_overlay(image, spine, lines)
    labels = [boxes[label] for *_, label in lines]
    for left, top, right, bottom in labels:
        assert 0 <= left and right <= width and 0 <= top and bottom <= height, (left, top, right, bottom)
    (*_, bottom_a), (_, top_b, *_) = sorted(labels[2:], key=lambda box: box[1])
    assert bottom_a <= top_b   # the second bottom label went up, not over the first or off the picture
