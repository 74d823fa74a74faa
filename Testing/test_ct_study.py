"""``spine_analysis.ct.study``, the CT entry point the command line and the warm server share."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from ct_phantom import MARROW_HU, phantom_ct
from spine_analysis.ct import study
from spine_analysis.ct.body_model import SHIPPED_DIR as BODY_DIR
from spine_analysis.ct.fracture import OUTPUT_FILES
from spine_analysis.ct.fracture_model import SHIPPED_DIR as FRACTURE_DIR
from spine_analysis.ct.overview import CALL_COLOURS
from spine_analysis.errors import SpineAnalysisError


@pytest.fixture(scope="module")
def ct_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ct") / "spine.nrrd"
    sitk.WriteImage(phantom_ct(oblique_deg=10), str(path))
    return path


def test_seeds_segmented_written_and_measured_again_give_the_same_centra(tmp_path, ct_path):
    inputs = study.read_study(ct_path)
    assert inputs.slices is None and inputs.label_map is None and inputs.centroids is None
    segmentation = study.segment_seeds(inputs.ct, [[0, 0, 0], [2, 1, 32]], "ras", "classical", levels=["L3"])
    result = segmentation.to_dict()
    assert result["model"] == "classical" and [v["level"] for v in result["vertebrae"]] == ["L3", "unnamed"]
    assert abs(result["vertebrae"][0]["hu_mean"] - MARROW_HU) < 15
    json.dumps(result)
    centra, bodies = tmp_path / "centra.nii.gz", tmp_path / "bodies.nrrd"
    study.write_masks(segmentation, inputs.ct, centra, bodies)
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(centra)))
    assert np.array_equal(written, segmentation.centra) and set(np.unique(written)) == {0, 1, 2}
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(bodies))) == 1).sum() > (written == 1).sum()
    again = study.measure_centra(inputs.ct, sitk.ReadImage(str(centra)), {1: "L3"})
    assert [m.level for m in again] == ["L3", "unnamed"] and [m.level_from for m in again] == ["entered", "not given"]
    assert again[0].volume_ml == pytest.approx(segmentation.vertebrae[0].volume_ml)


def test_the_unet_method_is_given_its_model(ct_path):
    with pytest.raises(ValueError, match="body model"):
        study.segment_seeds(study.read_study(ct_path).ct, [[0, 0, 0]], method="unet")


def test_an_empty_label_map_has_nothing_to_measure(ct_path):
    ct = study.read_study(ct_path).ct
    empty = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ct)
    with pytest.raises(SpineAnalysisError, match="empty"):
        study.measure_centra(ct, empty, {})


def test_a_dicom_seg_needs_a_folder_of_slices(ct_path):
    with pytest.raises(SpineAnalysisError, match="folder of DICOM slices"):
        study.read_study(ct_path, for_dicom_seg=True)


def test_centroids_outside_the_ct_are_refused_before_any_network(tmp_path, ct_path):
    (tmp_path / "far.csv").write_text("level,x,y,z\nL1,0,0,900\n")
    with pytest.raises(SpineAnalysisError, match="L1 lies outside the CT volume"):
        study.read_fracture_study(ct_path, centroids=tmp_path / "far.csv")


def test_mask_outputs_are_checked_before_any_work(tmp_path, ct_path):
    with pytest.raises(SpineAnalysisError, match="missing.*does not exist"):
        study.check_mask_outputs([tmp_path / "missing" / "m.nii.gz"])
    with pytest.raises(SpineAnalysisError, match="NIfTI"):
        study.check_mask_outputs([tmp_path / "m.png"])
    with pytest.raises(SpineAnalysisError, match="refusing to overwrite the input"):
        study.check_mask_outputs([tmp_path / "m.nii.gz"], [ct_path], [ct_path])
    study.check_mask_outputs([tmp_path / "m.nii.gz", None], [tmp_path / "m.json"], [ct_path])
    assert list(tmp_path.iterdir()) == []


def test_a_model_is_named_by_its_kind_training_date_and_settings():
    bundle = SimpleNamespace(metadata={"trained": "2026-01-02"}, digest="0123abcd")
    assert study.model_version("fracture", bundle) == "fracture model 2026-01-02 settings 0123abcd"
    with pytest.raises(ValueError):
        study.load_ct_model("landmark")


@pytest.mark.skipif(not (BODY_DIR / "body.pt").exists(), reason="no shipped body model")
def test_the_shipped_body_model_loads_with_its_version():
    from spine_analysis.ct.body_model.weights_io import load_model

    loaded, (_, bundle) = study.load_ct_model("body"), load_model()
    assert loaded.version == study.model_version("body", bundle) and bundle.digest in loaded.version


@pytest.mark.skipif(not (FRACTURE_DIR / "fracture.pt").exists(), reason="no shipped fracture model")
def test_assess_fractures_writes_its_outputs_and_answers_the_server_s_fields(tmp_path):
    from test_cli_fracture import _fractured_phantom

    ct_file, labels_file = _fractured_phantom(tmp_path)
    inputs = study.read_fracture_study(ct_file, labels=labels_file)
    model = study.load_ct_model("fracture")
    out = tmp_path / "out"
    study.fracture_outputs(out, dicom_seg=False, protect=[ct_file, labels_file])
    assessment = study.assess_fractures(inputs.ct, model, out, ct_file, label_map=inputs.label_map,
                                        protect=[ct_file, labels_file])
    answer = assessment.to_dict()
    assert set(answer) == {"probability", "vertebrae", "patient", "level_source", "model", "seconds"}
    assert answer["model"] == model.version and [r["level"] for r in answer["vertebrae"]] == ["L2", "L3", "L4"]
    assert {p.name for p in out.iterdir()} == {*OUTPUT_FILES, study.FRACTURE_OVERVIEW}
    with Image.open(out / study.FRACTURE_OVERVIEW) as picture:    # the squeezed L3, called fractured, in red
        assert (np.asarray(picture) == CALL_COLOURS["fractured"]).all(axis=2).sum() > 100
    assert json.loads((out / "patient.json").read_text())["model"] == model.version
