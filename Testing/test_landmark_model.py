"""The landmark model's building blocks, its training loop (on synthetic radiographs, tiny
networks) and the shipped weights."""
import numpy as np
import pytest
import torch
from PIL import Image

from spine_analysis.errors import ModelError
from spine_analysis.xray.landmark_model.config import LandmarkConfig
from spine_analysis.xray.landmark_model.heatmaps import decode_heatmaps, gaussian_heatmaps
from spine_analysis.xray.landmark_model.model import LandmarkModel, from_local, local_frames, to_local
from spine_analysis.xray.landmark_model.shape_model import ShapeModel
from spine_analysis.xray.landmark_model.patches import mirror_points, sample_patches
from spine_analysis.xray.landmark_model.train import TrainSettings, case_group, split_indices, train_landmarks
from spine_analysis.xray.landmark_model.weights_io import SHIPPED_DIR, load_model, save_model
from spine_analysis.xray.synthetic import build_spine, render_radiograph, scoliotic_tilts

TINY = dict(centre_features=(4, 4, 8, 8, 16, 4), corner_features=(4, 4, 8, 8, 16, 4), roi_size=32)


def test_heatmap_peaks_decode_to_subpixel_positions():
    points = torch.tensor([[[10.3, 20.7], [40.0, 5.5]]])
    heat = gaussian_heatmaps(points, (48, 64), sigma=2.0)
    decoded, peak = decode_heatmaps(heat)
    torch.testing.assert_close(decoded, points, atol=0.05, rtol=0)
    assert peak.min() > 0.8


def test_local_frames_of_a_vertical_spine_and_round_trip():
    centres = torch.tensor([[[100.0, 50.0 + 40 * k] for k in range(5)]])
    right, down, spacing = local_frames(centres)
    torch.testing.assert_close(right[0], torch.tensor([[1.0, 0.0]] * 5))
    torch.testing.assert_close(down[0], torch.tensor([[0.0, 1.0]] * 5))
    torch.testing.assert_close(spacing[0], torch.full((5,), 40.0))
    rotated = centres @ torch.tensor([[0.8, 0.6], [-0.6, 0.8]])
    frames = (rotated, *local_frames(rotated))
    points = torch.randn(1, 5, 4, 2) * 20 + rotated[:, :, None]
    torch.testing.assert_close(from_local(to_local(points, *frames), *frames), points)


def test_flipped_patch_equals_patch_of_mirrored_image():
    image = torch.rand(1, 1, 40, 30)
    mirrored = image.flip(-1)
    centre = torch.tensor([[[8.0, 12.0]]])
    step_r, step_d = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    direct = sample_patches(mirrored, centre, step_r, step_d, (9, 9))
    via_flip = sample_patches(image, mirror_points(centre, torch.tensor([30.0])),
                              -step_r, step_d, (9, 9))
    torch.testing.assert_close(direct, via_flip)


def test_shape_model_fills_in_a_missing_point():
    rng = np.random.default_rng(0)
    base = rng.normal(size=10)
    direction = rng.normal(size=10)
    shapes = torch.tensor(np.array([base + a * direction for a in rng.normal(size=50)]), dtype=torch.float32)
    model = ShapeModel(10, 1)
    model.fit(shapes)
    target = torch.tensor(base + 0.7 * direction, dtype=torch.float32)[None]
    weights = torch.ones(1, 10)
    weights[0, 3] = 0
    corrupted = target.clone()
    corrupted[0, 3] += 100
    torch.testing.assert_close(model.reconstruct(corrupted, weights), target, atol=1e-3, rtol=0)


def test_reframed_training_images_keep_their_targets_on_the_vertebrae():
    """The reframing augmentation moves each image and its centre targets together, and leaves
    the images it does not pick untouched."""
    from spine_analysis.xray.landmark_model.train import Trainer, TrainingImages

    data = TrainingImages(torch.zeros(4, 1, 64, 32, dtype=torch.uint8), torch.full((4,), 32.0),
                          torch.zeros(4, 2, 17, 4, 2))
    points = torch.tensor([[[30.3, 20.7], [60.2, 200.1]]]).repeat(4, 1, 1)
    small = gaussian_heatmaps(points, (256, 112), 2.0).amax(dim=1, keepdim=True)
    always = Trainer(data, LandmarkConfig(), TrainSettings(reframe_chance=1.0), None)
    framed, moved = always._reframe(small, points, 256.0)
    assert not torch.allclose(moved, points)
    found = 0
    for b in range(4):
        for x, y in moved[b].tolist():
            if 2 <= y <= 253:
                window = framed[b, 0, round(y) - 2:round(y) + 3, round(x) - 2:round(x) + 3]
                row, col = np.unravel_index(int(window.argmax()), window.shape)
                assert window.max() > 0.8 and abs(row - 2) <= 1 and abs(col - 2) <= 1
                found += 1
    assert found >= 6
    never = Trainer(data, LandmarkConfig(), TrainSettings(reframe_chance=0.0), None)
    same, unmoved = never._reframe(small, points, 256.0)
    torch.testing.assert_close(unmoved, points)
    torch.testing.assert_close(same, small, atol=1e-5, rtol=0)


def test_case_groups_keep_a_patients_views_together():
    names = ["x-01-Jan-2017-162 A AP.jpg", "x-01-Jan-2017-162 B AP.jpg", "x-2017-163 A AP.jpg",
             "x-coronal1.jpg", "x-2017-170 AP.jpg"]
    assert case_group(names[0]) == case_group(names[1]) == "162"
    train, held = split_indices(names * 1, 0.5, seed=1)
    assert sorted(train + held) == list(range(len(names)))
    assert ({0, 1} <= set(train)) or ({0, 1} <= set(held))


def _synthetic_aasce(folder, n=6):
    """An AASCE-layout folder of synthetic radiographs (names with spaces, like the real one)."""
    (folder / "images").mkdir(parents=True)
    names, rows = [], []
    for k in range(n):
        size = (300, 760)
        tilts = scoliotic_tilts([(3, 10, 10.0 + 5 * k)])
        spine = build_spine(tilts, image_size=size)
        image = render_radiograph(spine, size, seed=k)
        name = f"case-{k} A AP.png"
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / "images" / name)
        names.append(name)
        rows.append(spine.to_aasce_row(*size))
    (folder / "filenames.csv").write_text("".join(f"{n}\n" for n in names))
    np.savetxt(folder / "landmarks.csv", np.array(rows), delimiter=",")
    return folder


def test_training_saves_a_loadable_model_and_resumes(tmp_path):
    data = _synthetic_aasce(tmp_path / "data")
    config = LandmarkConfig(working_height=256, **TINY)
    settings = TrainSettings(centre_epochs=2, corner_epochs=1, centre_batch=3, corner_batch_images=2)
    logs = []
    meta = train_landmarks(data, tmp_path / "model", settings, config, command="test", log=logs.append)
    assert meta["training_images"] == 6 and [h["step"] for h in meta["history"]] == ["centre"] * 2 + ["corner"]
    model, bundle = load_model(tmp_path / "model")
    assert bundle.metadata["command"] == "test"
    assert model.config == config
    # Rerunning the same command finds the finished checkpoint and does not train again.
    train_landmarks(data, tmp_path / "model", settings, config, command="test", log=logs.append)
    assert any("resuming" in line for line in logs)


def test_loading_refuses_mismatched_or_missing_models(tmp_path):
    with pytest.raises(ModelError, match="no landmark model"):
        load_model(tmp_path)
    save_model(LandmarkModel(LandmarkConfig(**TINY)), tmp_path, {})
    with pytest.raises(ModelError, match="no fitted shape models"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(
        (tmp_path / "config.json").read_text().replace('"roi_size": 32', '"roi_size": 48'))
    with pytest.raises(ModelError, match="settings were changed"):
        load_model(tmp_path)


@pytest.mark.skipif(not (SHIPPED_DIR / "landmarks.pt").exists(), reason="no shipped weights in this checkout")
def test_a_changed_inference_setting_of_the_shipped_model_is_refused(tmp_path):
    """The digest covers the settings that act only at inference (here the peak threshold),
    so an edited config cannot pass for the shipped model."""
    import shutil

    shutil.copytree(SHIPPED_DIR, tmp_path / "model")
    model, bundle = load_model(tmp_path / "model")
    assert bundle.config["peak_threshold"] == model.config.peak_threshold == 0.2
    config = tmp_path / "model" / "config.json"
    config.write_text(config.read_text().replace('"peak_threshold": 0.2', '"peak_threshold": 0.1'))
    with pytest.raises(ModelError, match="settings were changed"):
        load_model(tmp_path / "model")


@pytest.mark.skipif(not (SHIPPED_DIR / "landmarks.pt").exists(), reason="no shipped weights in this checkout")
def test_shipped_model_finds_the_vertebrae_their_levels_and_the_curves_of_the_synthetic_example():
    """The model finds every drawn vertebra at its own level (T1 is not skipped, the sacrum is
    not taken for L5) and measures the drawn main thoracic curve between its drawn end vertebrae."""
    from spine_analysis.xray.cobb import analyse
    from spine_analysis.xray.landmark_model.detector import LandmarkDetector
    from spine_analysis.xray.synthetic import example_case

    image, truth, _ = example_case()
    detection = LandmarkDetector.load().detect(image)
    spacing = np.median(np.linalg.norm(np.diff(truth.centres, axis=0), axis=1))
    errors = np.linalg.norm(detection.landmarks.centres - truth.centres, axis=1) / spacing
    assert errors.max() < 0.1, f"levels off the drawn vertebrae by up to {errors.max():.2f} spacings"
    main = analyse(detection.landmarks, image.shape[0]).largest
    assert main.angle_deg == pytest.approx(35.0, abs=3.0)
    assert (main.upper_end, main.lower_end, main.convexity) == ("T5", "T12", "right")


@pytest.mark.skipif(not (SHIPPED_DIR / "landmarks.pt").exists(), reason="no shipped weights in this checkout")
def test_a_differently_framed_radiograph_is_flagged_at_the_end_that_moved():
    """Blank rows above or below move T1 or L5 away from where the training radiographs have
    them; the detector says which end to check, and says nothing on the usual framing."""
    from spine_analysis.xray.landmark_model.detector import LandmarkDetector
    from spine_analysis.xray.synthetic import example_case

    image, _, _ = example_case()
    detector = LandmarkDetector.load()
    assert detector.detect(image).flags == ()
    rows = np.full((int(0.3 * image.shape[0]), image.shape[1]), image.min(), image.dtype)
    above = detector.detect(np.concatenate([rows[:image.shape[0] // 10], image])).flags
    assert [(f.code, f.levels) for f in above] == [("framing", ("T1",))]
    below = detector.detect(np.concatenate([image, rows])).flags
    assert [(f.code, f.levels) for f in below] == [("framing", ("L5",))]
    assert "check L5" in below[0].message


def test_bipartite_distance_is_zero_for_the_truth_and_sees_shape_errors():
    from spine_analysis.xray.landmark_model.train import bipartite_distance, soft_argmax

    truth = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 5.0]]])
    assert bipartite_distance(truth, truth).item() == 0.0
    assert bipartite_distance(truth + 3.0, truth).item() == pytest.approx(0.0, abs=1e-6)  # shifts are free
    squeezed = truth.clone()
    squeezed[0, 1, 0] = 6.0                                       # TR moves 4 px left
    # Edges TL-TR and BL-TR shrink: |10-6| = 4 and |sqrt(125)-sqrt(61)| over 4 edges.
    expected = (4 + (125 ** 0.5 - 61 ** 0.5)) / 4
    assert bipartite_distance(squeezed, truth).item() == pytest.approx(expected, rel=1e-5)
    heat = gaussian_heatmaps(torch.tensor([[[12.3, 7.6]]]), (24, 24), 1.5)
    torch.testing.assert_close(soft_argmax(heat), torch.tensor([[[12.3, 7.6]]]), atol=0.05, rtol=0)


def test_ensemble_members_share_a_split_and_are_joined_into_averaged_heatmaps(tmp_path):
    """Members trained with one --split-seed and different seeds hold out the same patients;
    joined, both steps answer with the mean of the members' heatmaps, the config names the
    members' seeds (so the digest differs from each member's), and mismatched members are refused."""
    from spine_analysis.xray.landmark_model.ensemble import join_members

    data = _synthetic_aasce(tmp_path / "data", n=8)
    config = LandmarkConfig(working_height=256, end_levels=(0, 16), **TINY)
    folders = []
    for seed in (0, 1):
        settings = TrainSettings(centre_epochs=1, corner_epochs=1, end_epochs=1, centre_batch=3,
                                 corner_batch_images=2, holdout_fraction=0.25, split_seed=3, seed=seed)
        train_landmarks(data, tmp_path / f"member{seed}", settings, config, log=lambda line: None)
        folders.append(tmp_path / f"member{seed}")
    held = [(f / "heldout.txt").read_text() for f in folders]
    assert held[0] == held[1] and held[0].count("\n") == 2
    meta = join_members(folders, tmp_path / "ensemble", command="test")
    assert [m["seed"] for m in meta["members"]] == [0, 1]
    assert (tmp_path / "ensemble" / "heldout.txt").read_text() == held[0]
    ensemble, bundle = load_model(tmp_path / "ensemble")
    members = [load_model(f) for f in folders]
    assert ensemble.config.member_seeds == (0, 1)
    assert bundle.digest not in {b.digest for _, b in members}
    image = torch.rand(1, 1, 256, 96)
    with torch.no_grad():
        mean = torch.stack([m.centre_heatmap(image) for m, _ in members]).mean(dim=0)
        torch.testing.assert_close(ensemble.centre_heatmap(image), mean, atol=1e-5, rtol=0)
        rois = torch.rand(3, 1, 32, 32)
        for net in ("corner_net", "end_corner_net"):
            mean = torch.stack([getattr(m, net)(rois) for m, _ in members]).mean(dim=0)
            torch.testing.assert_close(getattr(ensemble, net)(rois), mean, atol=1e-5, rtol=0)
    corners, _ = ensemble.predict(image)
    assert corners.shape == (17, 4, 2) and torch.isfinite(corners).all()

    with pytest.raises(ModelError, match="already holds"):
        join_members(folders, tmp_path / "ensemble")
    with pytest.raises(ModelError, match="distinct recorded seeds"):
        join_members([folders[0], folders[0]], tmp_path / "twice")
    other = TrainSettings(centre_epochs=1, corner_epochs=1, centre_batch=3, corner_batch_images=2,
                          holdout_fraction=0.25, split_seed=4, seed=2)
    train_landmarks(data, tmp_path / "other split", other, config, log=lambda line: None)
    with pytest.raises(ModelError, match="other images"):
        join_members([folders[0], tmp_path / "other split"], tmp_path / "mixed")
    with pytest.raises(ValueError, match="not trained at once"):
        train_landmarks(data, tmp_path / "whole", other, ensemble.config, log=lambda line: None)


def test_test_time_gammas_average_the_heatmaps_of_the_image_at_each_gamma():
    torch.manual_seed(0)
    plain = LandmarkModel(LandmarkConfig(working_height=256, **TINY)).eval()
    augmented = LandmarkModel(LandmarkConfig(working_height=256, tta_gammas=(0.7, 1.4), **TINY)).eval()
    augmented.load_state_dict(plain.state_dict())
    image = torch.rand(1, 1, 256, 96)
    with torch.no_grad():
        small = plain.centre_input(image)          # 64 x 24: padded to 64 x 32 for the U-Net
        padded = torch.nn.functional.pad(small, (0, 8))
        expected = torch.stack([plain.centre_net(padded ** g) for g in (1.0, 0.7, 1.4)]).mean(dim=0)
        torch.testing.assert_close(augmented.centre_heatmap(image), expected[:, 0, :, :24], atol=1e-5, rtol=0)
        assert not torch.allclose(augmented.centre_heatmap(image), plain.centre_heatmap(image), atol=1e-4)


def test_end_levels_take_their_corners_from_the_end_network():
    torch.manual_seed(0)
    model = LandmarkModel(LandmarkConfig(working_height=256, end_levels=(0, 16), **TINY)).eval()
    rois = torch.rand(2, 17, 32, 32)
    with torch.no_grad():
        heat = model.corner_heatmaps(rois).reshape(2, 17, 4, 32, 32)
        general = model.corner_net(rois.reshape(-1, 1, 32, 32)).reshape(2, 17, 4, 32, 32)
        ends = model.end_corner_net(rois[:, [0, 16]].reshape(-1, 1, 32, 32)).reshape(2, 2, 4, 32, 32)
    torch.testing.assert_close(heat[:, 1:16], general[:, 1:16])
    torch.testing.assert_close(heat[:, [0, 16]], ends)
    assert not torch.allclose(heat[:, [0, 16]], general[:, [0, 16]], atol=1e-4)
    assert LandmarkModel(LandmarkConfig(**TINY)).end_corner_net is None


def test_an_end_network_is_trained_from_the_corner_network_or_added_to_a_trained_model(tmp_path):
    """Training with ``end_levels`` adds a third phase; ``add_end_network`` fine-tunes one onto a model
    trained without it on the same images, keeping every other weight, and refuses another folder."""
    from spine_analysis.xray.landmark_model.train import add_end_network

    data = _synthetic_aasce(tmp_path / "data")
    settings = TrainSettings(centre_epochs=1, corner_epochs=1, end_epochs=2, centre_batch=3, corner_batch_images=2,
                             end_batch_images=3)
    meta = train_landmarks(data, tmp_path / "with", settings, LandmarkConfig(working_height=256, end_levels=(0, 16),
                                                                            **TINY), log=lambda line: None)
    assert [h["step"] for h in meta["history"]] == ["centre", "corner", "end", "end"]
    assert load_model(tmp_path / "with")[0].end_corner_net is not None

    train_landmarks(data, tmp_path / "plain", settings, LandmarkConfig(working_height=256, **TINY),
                    log=lambda line: None)
    plain, plain_bundle = load_model(tmp_path / "plain")
    meta = add_end_network(tmp_path / "plain", data, tmp_path / "ends", settings, command="test",
                           log=lambda line: None)
    assert [h["step"] for h in meta["end_network"]["history"]] == ["end", "end"]
    ended, bundle = load_model(tmp_path / "ends")
    assert ended.config.end_levels == (0, 16) and bundle.digest != plain_bundle.digest
    kept, tuned = ended.state_dict(), plain.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in tuned.items())
    assert not torch.allclose(kept["end_corner_net.final_conv.weight"],
                              kept["corner_net.final_conv.weight"], atol=1e-4)
    with pytest.raises(ModelError, match="end network already"):
        add_end_network(tmp_path / "ends", data, tmp_path / "twice", settings, log=lambda line: None)
    with pytest.raises(ModelError, match="already holds a landmark model"):
        add_end_network(tmp_path / "plain", data, tmp_path / "plain", settings, log=lambda line: None)
    with pytest.raises(ModelError, match="the folder it was trained on"):
        add_end_network(tmp_path / "plain", _synthetic_aasce(tmp_path / "other", n=4), tmp_path / "other model",
                        settings, log=lambda line: None)
