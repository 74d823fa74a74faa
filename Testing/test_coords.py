"""Pixel <-> RAS mapping of spine_analysis.coords, checked against SimpleITK's own geometry."""
import numpy as np
import pytest
import SimpleITK as sitk

from spine_analysis.coords import (
    LPS_TO_RAS, flip_lps_ras, ijk_to_ras_from_sitk, ijk_to_ras_matrix, pixel_to_ras, ras_to_ijk, ras_to_pixel)

POINTS_XY = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0], [123.4, 567.8]])


def lps_to_ras(points):
    return np.asarray(points) * [-1, -1, 1]


def test_identity_matrix_maps_pixels_to_themselves():
    ras = pixel_to_ras(POINTS_XY, np.eye(4))
    np.testing.assert_allclose(ras, np.column_stack([POINTS_XY, np.zeros(4)]))
    np.testing.assert_allclose(ras_to_pixel(ras, np.eye(4)), POINTS_XY)


def test_spacing_and_origin():
    matrix = ijk_to_ras_matrix((0.2, 0.5), origin_ras=(-10.0, 20.0, 5.0))
    np.testing.assert_allclose(pixel_to_ras([10.0, 4.0], matrix), [-10 + 2.0, 20 + 2.0, 5.0])
    np.testing.assert_allclose(pixel_to_ras([[0, 0]], matrix, k=2.0), [[-10.0, 20.0, 7.0]])  # k spacing 1 mm


def test_flipped_axes():
    matrix = ijk_to_ras_matrix((0.3, 0.3, 1.0), (0, 0, 0), np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(pixel_to_ras([10.0, 20.0], matrix), [-3.0, -6.0, 0.0])
    swapped = ijk_to_ras_matrix((1.0, 2.0, 3.0), (1, 2, 3), [[0, 0, 1], [1, 0, 0], [0, -1, 0]])
    # i runs towards A, j towards I (down), k towards R, as for a coronal image
    np.testing.assert_allclose(pixel_to_ras([5.0, 7.0], swapped, k=1.0), [1 + 3.0, 2 + 5.0, 3 - 14.0])


def test_round_trip_pixel_ras_pixel():
    rotation = sitk.VersorTransform((0.3, -0.5, 0.8), 0.7).GetMatrix()
    matrix = ijk_to_ras_matrix((0.15, 0.25, 2.0), (12.5, -300.0, 42.0), np.reshape(rotation, (3, 3)))
    ras = pixel_to_ras(POINTS_XY, matrix)
    np.testing.assert_allclose(ras_to_pixel(ras, matrix), POINTS_XY, atol=1e-9)
    np.testing.assert_allclose(ras_to_ijk(ras, matrix)[:, 2], 0.0, atol=1e-9)
    assert ras_to_pixel(ras[0], matrix).shape == (2,)


def test_off_plane_points_project_along_k():
    matrix = ijk_to_ras_matrix((0.5, 0.5, 1.0))
    ras = pixel_to_ras(POINTS_XY, matrix, k=0.4)
    np.testing.assert_allclose(ras_to_pixel(ras, matrix), POINTS_XY)
    np.testing.assert_allclose(ras_to_ijk(ras, matrix)[:, 2], 0.4)


def test_agrees_with_sitk_on_rotated_3d_image():
    image = sitk.Image(50, 60, 7, sitk.sitkUInt8)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-100.0, 50.0, 25.0))
    image.SetDirection(sitk.VersorTransform((1.0, 2.0, -0.5), 0.9).GetMatrix())
    matrix = ijk_to_ras_from_sitk(image)
    for k in (0.0, 3.0):
        lps = [image.TransformContinuousIndexToPhysicalPoint((x, y, k)) for x, y in POINTS_XY]
        expected = lps_to_ras(lps)
        np.testing.assert_allclose(pixel_to_ras(POINTS_XY, matrix, k=k), expected, atol=1e-9)


def test_agrees_with_sitk_on_2d_image():
    image = sitk.Image(80, 200, sitk.sitkUInt8)
    image.SetSpacing((0.14, 0.16))
    image.SetOrigin((5.0, -7.0))
    image.SetDirection((0.0, -1.0, 1.0, 0.0))
    matrix = ijk_to_ras_from_sitk(image)
    lps = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(p)) for p in POINTS_XY])
    expected = lps_to_ras(np.column_stack([lps, np.zeros(len(lps))]))
    np.testing.assert_allclose(pixel_to_ras(POINTS_XY, matrix), expected, atol=1e-9)
    np.testing.assert_allclose(ras_to_pixel(expected, matrix), POINTS_XY, atol=1e-9)


def test_plain_2d_file_matches_slicer_convention():
    """Slicer shows a PNG with IJK-to-RAS diag(-1, -1, 1): LPS identity."""
    np.testing.assert_allclose(ijk_to_ras_from_sitk(sitk.Image(70, 90, sitk.sitkUInt8)), LPS_TO_RAS)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="4x4"):
        pixel_to_ras(POINTS_XY, np.eye(3))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        pixel_to_ras(np.zeros((4, 3)), np.eye(4))
    with pytest.raises(ValueError, match="positive"):
        ijk_to_ras_matrix((0.0, 1.0))


def test_a_point_flips_between_lps_and_ras_and_back():
    np.testing.assert_array_equal(flip_lps_ras((10.0, -20.0, 30.0)), [-10.0, 20.0, 30.0])
    np.testing.assert_array_equal(flip_lps_ras(flip_lps_ras([1.5, 2.5, -3.5])), [1.5, 2.5, -3.5])
    with pytest.raises(ValueError):
        flip_lps_ras([1.0, 2.0])
