"""Issue 21: single-modality image folders mixed into training, and the generalisation ship rule."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image, tiny_train_config
from mmcodec.data.crops import PairCrops
from mmcodec.data.pairs import find_pairs
from mmcodec.errors import BadInputError
from mmcodec.train.campaign import ship_decision, ship_modalities
from mmcodec.train.config import load_config


def _single_folder(tmp_path, channels: int, value: int, count: int = 3):
    d = tmp_path / f"single{channels}"
    d.mkdir()
    for i in range(count):
        arr = np.full((90, 110) + ((channels,) if channels > 1 else ()), value, np.uint8)
        Image.fromarray(arr).save(d / f"im{i}.png")
    return d


def test_single_images_replace_a_share_of_one_modality(synthetic_pair_dir, tmp_path):
    """Crops of the mixed modality come from the folder with its weight; the other modality's
    crops, and the pair crops that are kept, are those of a run without the folder."""
    folder = _single_folder(tmp_path, 3, 255)         # all-white images: easy to recognise
    recs = find_pairs(synthetic_pair_dir)
    plain = PairCrops(recs, ("rgb", "ir"), seed=3, progress=False).batch(64, 48)
    mixed_data = PairCrops(recs, ("rgb", "ir"), seed=3, progress=False,
                           single_images={"rgb": {str(folder): 0.5}})
    assert mixed_data.single_sources("rgb") == [(str(folder), 0.5, 3)]
    assert "3 rgb images" in mixed_data.describe()
    mixed = mixed_data.batch(64, 48)
    white = (mixed["rgb"] == 1.0).flatten(1).all(1)
    assert 16 < int(white.sum()) < 48                 # about half, drawn with probability 0.5
    np.testing.assert_array_equal(mixed["ir"].numpy(), plain["ir"].numpy())
    np.testing.assert_array_equal(mixed["rgb"][~white].numpy(), plain["rgb"][~white].numpy())


def test_single_images_need_a_separate_model(synthetic_pair_dir, tmp_path):
    from mmcodec.train.trainer import train
    folder = _single_folder(tmp_path, 1, 128)
    cfg = tiny_train_config(tmp_path / "run", synthetic_pair_dir, arch="lu2022",
                            kwargs={"modalities": ["rgb", "ir"], "N": 8, "M": 12, "num_rates": 2, "sa": "none",
                                    "ca": "none", "align_ch": 4},
                            single_images={"ir": {str(folder): 0.3}})
    with pytest.raises(BadInputError, match="single_images needs a model that codes each modality on its own"):
        train(cfg, progress=False)


def test_separate_model_trains_on_mixed_data(synthetic_pair_dir, tmp_path):
    from mmcodec.train.trainer import train
    folder = _single_folder(tmp_path, 1, 128)
    cfg = tiny_train_config(tmp_path / "run", synthetic_pair_dir, single_images={"ir": {str(folder): 0.3}})
    result = train(cfg, progress=False)
    assert result["budget"]["single_images"] == {"ir": {str(folder): {"weight": 0.3, "images": 3}}}


@pytest.mark.parametrize("value,message", [
    ('{"thermal": {"x": 0.2}}', "unknown modality"),
    ('{"ir": {"x": 0.7, "y": 0.6}}', "summing to at most 1"),
    ('{"ir": {"x": -0.1}}', "weight in 0..1"),
    ('["x"]', "single_images must be"),
])
def test_bad_single_images_config(value, message):
    with pytest.raises(BadInputError, match=message):
        load_config(None, [f"single_images={value}"])


def test_missing_single_image_folder(synthetic_pair_dir, tmp_path):
    with pytest.raises(BadInputError, match="not a directory"):
        PairCrops(find_pairs(synthetic_pair_dir), ("rgb", "ir"), progress=False,
                  single_images={"ir": {str(tmp_path / "nowhere"): 0.2}})


def test_ship_rule():
    # without a validation split: better on every modality of the training subset
    assert ship_decision({"rgb": -1.0, "ir": -0.1}, None, 1.0)
    assert not ship_decision({"rgb": -1.0, "ir": 0.1}, None, 1.0)
    # with one: better on unseen cameras, and within the tolerance on the training subset
    assert ship_decision({"rgb": 0.8, "ir": -3.0}, {"rgb": -5.0, "ir": -2.0}, 1.0)
    assert not ship_decision({"rgb": 6.5, "ir": 0.3}, {"rgb": -11.5, "ir": -21.1}, 1.0)
    assert not ship_decision({"rgb": -2.0, "ir": -2.0}, {"rgb": -5.0, "ir": 0.2}, 1.0)
    assert not ship_decision({"rgb": -2.0, "ir": None}, {"rgb": -5.0, "ir": -1.0}, 1.0)


def test_ship_rule_per_modality():
    # issue 21's seed-1 arm: infrared passes on its own figures, visible fails the tolerance
    assert ship_modalities({"rgb": 6.51, "ir": 0.36}, {"rgb": -10.22, "ir": -23.48}, 1.0) == ["ir"]
    assert ship_modalities({"rgb": -1.0, "ir": 0.1}, None, 1.0) == ["rgb"]
    assert ship_modalities({"rgb": -2.0, "ir": None}, {"rgb": -5.0, "ir": -1.0}, 1.0) == ["rgb"]
    assert ship_modalities({"rgb": -2.0, "ir": -2.0}, {"rgb": None, "ir": 0.2}, 1.0) == []
    assert not ship_decision({}, None, 1.0)


def test_a_folder_of_videos_gives_every_eighth_frame(synthetic_pair_dir, tmp_path):
    """Video clips (the video training split) can feed the image codecs: every
    VIDEO_FRAME_STRIDE-th frame of each video in the folder, exactly as decoded."""
    import subprocess

    import imageio_ffmpeg
    from mmcodec.data.crops import VIDEO_FRAME_STRIDE, load_single_images
    frames_dir, videos = tmp_path / "frames", tmp_path / "videos"
    frames_dir.mkdir(), videos.mkdir()
    levels = [10 * t for t in range(2 * VIDEO_FRAME_STRIDE + 1)]   # frame t is a flat grey of 10 t
    for t, v in enumerate(levels):
        Image.fromarray(np.full((48, 64), v, np.uint8)).save(frames_dir / f"{t:04d}.png")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-framerate", "10", "-i",
                    str(frames_dir / "%04d.png"), "-c:v", "ffv1", "-pix_fmt", "gray", str(videos / "clip.mkv")],
                   check=True)
    loaded = load_single_images("ir", str(videos))
    assert [round(float(f.mean()) * 255) for f in loaded] == levels[::VIDEO_FRAME_STRIDE]
    crops = PairCrops(find_pairs(synthetic_pair_dir), ("rgb", "ir"), seed=0, progress=False,
                      single_images={"ir": {str(videos): 0.5}})
    assert crops.single_sources("ir") == [(str(videos), 0.5, 3)]
    with pytest.raises(BadInputError, match="16-bit"):
        load_single_images("depth", str(videos))


def test_a_training_split_gives_one_modality_of_its_pairs(synthetic_pair_dir, monkeypatch):
    """A named training split as a single-image source: its pairs' images of that modality."""
    import mmcodec.data.crops as crops
    recs = find_pairs(synthetic_pair_dir)
    monkeypatch.setattr(crops, "split_records", lambda name: recs if name == "rgbdd-train" else [])
    ims = crops.load_single_images("rgb", "rgbdd-train")
    assert len(ims) == len(recs) and all(im.shape[0] == 3 for im in ims)
    assert [im.shape[0] for im in crops.load_single_images("ir", "rgbdd-train")] == [1] * len(recs)


@pytest.mark.parametrize("split", ["rgbdd-test", "msrs-subset", "roadscene-test", "tno-test", "rgbd-unseen"])
def test_test_and_validation_splits_never_train(split):
    from mmcodec.data.crops import load_single_images
    with pytest.raises(BadInputError, match="test or validation split"):
        load_single_images("rgb", split)
