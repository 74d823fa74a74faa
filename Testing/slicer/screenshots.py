"""The extension's screenshots, drawn by Slicer itself: each module's result rendered headless by slicer-core's
displayable managers (slice_views.py) after the module's own logic made it, on the harness's real MRML.

    .venv/bin/python Testing/slicer/screenshots.py [--ct-dir DIR] [--out Resources/Screenshots]

SpineCobb runs on the engine's synthetic radiograph (the AASCE radiographs may not appear in committed images);
SpineAnalysis and SpineFracture on the VerSe CT sub-verse014 of the ct-spine folder (CC BY-SA 4.0, credited in
the picture). Each picture is written completely or not at all.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

VERSE_CREDIT = "CT: VerSe sub-verse014, Sekuboyina et al., CC BY-SA 4.0"
VERSE_LEVELS = {20: "L1", 21: "L2", 22: "L3", 23: "L4", 24: "L5"}


def _caption(pixels, lines):
    """`pixels` with a dark band of text lines below it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=18)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = []
    for text in lines:  # word-wrapped to the picture's width
        words, line = text.split(), ""
        for word in words:
            if line and measure.textlength(f"{line} {word}", font=font) > pixels.shape[1] - 20:
                wrapped.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        wrapped.append(line)
    lines = wrapped
    band = 10 + 26 * len(lines)
    canvas = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + band), (20, 20, 20))
    canvas.paste(Image.fromarray(pixels), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, text in enumerate(lines):
        draw.text((10, pixels.shape[0] + 6 + 26 * index), text, font=font, fill=(235, 235, 235))
    return canvas


def _side_by_side(*pictures):
    height = max(picture.shape[0] for picture in pictures)
    padded = [np.pad(picture, ((0, height - picture.shape[0]), (0, 4), (0, 0))) for picture in pictures]
    return np.concatenate(padded, axis=1)[:, :-4]


def _save(picture, path):
    from spine_analysis.io.atomic import atomic_output

    with atomic_output(path) as temporary:
        picture.save(temporary, format="PNG")
    print(f"wrote {path}")


def spineCobb(app, out):
    """Landmarks, outlines, extended endplate lines and angle labels of a detection on the synthetic radiograph."""
    import SimpleITK as sitk
    import slicer
    import slice_views

    from spine_analysis.xray.synthetic import example_case

    image, _, description = example_case()
    path = Path(app.temporaryPath) / "synthetic-radiograph.nrrd"
    sitkImage = sitk.GetImageFromArray(image[np.newaxis])
    sitkImage.SetSpacing((0.15, 0.15, 1.0))
    sitk.WriteImage(sitkImage, str(path))
    volumeNode = slicer.util.loadVolume(str(path), {"name": "synthetic radiograph"})
    logic = slicer.util.getModuleLogic("SpineCobb")
    try:
        landmarksNode = logic.detectAndMeasure(volumeNode)
        curves = logic.cobbResult(landmarksNode).curves
    finally:
        logic.shutdown()
    pixels = slice_views.renderSliceView(app.mrmlScene, app.applicationLogic(), background=volumeNode,
                                         rotateToVolumePlane=True, size=(520, 1150))
    summary = ", ".join(f"{curve.name} {curve.angle_deg:.1f}° {curve.upper_end}-{curve.lower_end}" for curve in curves)
    _save(_caption(pixels, ["Spine Cobb Angle: landmarks found by the bundled model", summary,
                            "Synthetic radiograph drawn by the project (not a patient)"]), out / "SpineCobb.png")


def _verse014(ctDir):
    import slicer

    folder = Path(ctDir) / "verse014"
    ctNode = slicer.util.loadVolume(str(folder / "sub-verse014_ct.nii.gz"), {"name": "sub-verse014 CT"})
    labelNode = slicer.util.loadLabelVolume(str(folder / "sub-verse014_seg-vert_msk.nii.gz"),
                                            {"name": "sub-verse014 vertebrae"})
    display = ctNode.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(1400, 350)
    return folder, ctNode, labelNode


def _bodyCentroidsRas(folder, ctNode):
    """VerSe body centroids of verse014 as RAS points of the loaded CT, keyed by level."""
    import SimpleITK as sitk

    from spine_analysis.coords import flip_lps_ras
    from spine_analysis.ct.levels import read_verse_centroids

    ct = sitk.ReadImage(str(folder / "sub-verse014_ct.nii.gz"))
    return {level: flip_lps_ras(point)
            for level, point in read_verse_centroids(folder / "sub-verse014_seg-vb_ctd.json", ct).items()}


def spineAnalysis(app, out, ctDir):
    """Centra segmented at clicks on the body centres of L1-L5, on sagittal and axial slices."""
    import slicer
    import slice_views

    folder, ctNode, _ = _verse014(ctDir)
    centres = _bodyCentroidsRas(folder, ctNode)
    logic = slicer.util.getModuleLogic("SpineAnalysis")
    try:
        for level in ("L1", "L2", "L3", "L4", "L5"):
            logic.segmentAtSeed(ctNode, centres[level], level=level)
    finally:
        logic.shutdown()
    middle = np.mean(list(centres.values()), axis=0)
    sagittal = slice_views.renderSliceView(app.mrmlScene, app.applicationLogic(), viewName="Yellow",
                                           orientation="Sagittal", background=ctNode, size=(520, 640),
                                           center=middle, fieldOfView=170)
    axial = slice_views.renderSliceView(app.mrmlScene, app.applicationLogic(), viewName="Red", orientation="Axial",
                                        background=ctNode, size=(520, 640), center=centres["L3"], fieldOfView=150)
    _save(_caption(_side_by_side(sagittal, axial), [
        "Spine Analysis: trabecular centra of L1-L5 from one click each (3D U-Net), sagittal and axial (L3)",
        VERSE_CREDIT]), out / "SpineAnalysis.png")


def spineFracture(app, out, ctDir):
    """The fracture probability overlay with the vertebra centroids on a sagittal slice."""
    import slicer
    import slice_views

    folder, ctNode, labelNode = _verse014(ctDir)
    logic = slicer.util.getModuleLogic("SpineFracture")
    try:
        probability, table, patient = logic.detectFractures(ctNode, labelNode=labelNode)
    finally:
        logic.shutdown()
    labelNode.GetDisplayNode().SetVisibility(False)
    # Every centroid shown on both slices (projected), with the map's colour legend, as a reader would set the views.
    logic.centroidNode(table).GetDisplayNode().SliceProjectionOn()
    slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(probability)
    centres = _bodyCentroidsRas(folder, ctNode)
    middle = np.mean(list(centres.values()), axis=0)
    views = [slice_views.renderSliceView(app.mrmlScene, app.applicationLogic(), viewName=view, orientation=orientation,
                                         background=ctNode, foreground=probability, foregroundOpacity=0.6,
                                         size=(520, 640), center=middle, fieldOfView=170)
             for view, orientation in (("Yellow", "Sagittal"), ("Green", "Coronal"))]
    calls = ", ".join(f"{row['level']} p={row['probability']:.2f} Genant {row['genant_grade']}"
                      for row in logic.vertebraRows(table))
    _save(_caption(_side_by_side(*views), [
        "Spine Fracture: fracture probability over the CT (sagittal, coronal) and the vertebra centroids",
        f"{calls}; patient: {patient.get('call')} (reference: VerSe grades all five vertebrae 0)",
        VERSE_CREDIT]), out / "SpineFracture.png")


def main(argv=None):
    from spine_analysis.datasets import ct_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct-dir", type=Path, default=ct_dir(), help="the ct-spine folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=harness.REPOSITORY / "Resources" / "Screenshots")
    args = parser.parse_args(argv)
    reason = harness.unavailableReason()
    if reason:
        parser.exit(2, f"screenshots: Slicer's MRML is not available: {reason}\n")
    if not (args.ct_dir / "verse014").is_dir():
        parser.exit(2, f"screenshots: the VerSe CT verse014 is not in {args.ct_dir} (give --ct-dir)\n")
    app = harness.start()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        spineCobb(app, args.out)
        for draw in (spineAnalysis, spineFracture):
            app.resetScene()
            draw(app, args.out, args.ct_dir)
    finally:
        harness.stop()


if __name__ == "__main__":
    main()
