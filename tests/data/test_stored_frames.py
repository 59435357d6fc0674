"""Uniform preprocessings (P0, P2, P3, the default) store exactly `window` frames per sample:
frame floor((i + 0.5) * L / window) of the clip's L valid frames (the training plan's Phase 0:
"T=64 uniform subsample"; the test-time segment centres of the temporal-jitter option), the same
for train and test, and training sees them unchanged.

The expected frames are taken here, with that formula, from the full-length arrays of the same
captures (a cache that keeps every frame: temporal_jitter=true), not from the code that stores
them.
"""

import numpy as np
import pytest

from lastexp.config import DatasetConfig, PreprocessingConfig
from lastexp.data import load_arrays, load_data
from tests.data.test_denoise import person, write

# clip lengths: shorter than 64 (frames repeat), 176 (for 120 frames, centre 82 falls exactly
# on frame 121: (82 + 0.5) * 176 / 120 = 121.0), NTU's 300, and in between
LENGTHS = {"S001C001P001R001A001": 176, "S001C002P001R001A002": 7,
           "S001C001P002R001A003": 300, "S001C003P003R001A004": 64,
           "S001C001P003R001A005": 65, "S001C002P006R001A006": 121}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    d = tmp_path_factory.mktemp("lengths")
    for name, frames in LENGTHS.items():
        # x0 moves each frame: every frame of a clip differs from the others
        write(d / f"{name}.skeleton", [[("1", person(t, x0=0.001 * t, sway=0.2))]
                                       for t in range(frames)])
    return d


def centres(length: int, window: int) -> np.ndarray:
    return np.floor((np.arange(window) + 0.5) * length / window).astype(np.int64)


def dataset(raw) -> DatasetConfig:
    return DatasetConfig(name="ntu60_xsub", benchmark="ntu60", split="xsub", raw_dir=str(raw))


@pytest.mark.parametrize("window,num_person", [(64, 1), (120, 1), (64, 2)])
def test_stored_frames_are_the_segment_centres_of_the_full_clip(raw, tmp_path, window,
                                                                 num_person):
    full_prep = PreprocessingConfig(window=window, num_person=num_person, temporal_jitter=True)
    full_tr, full_te, full_s = load_arrays(dataset(raw), full_prep, tmp_path)
    prep = PreprocessingConfig(window=window, num_person=num_person)
    tr, te, s = load_arrays(dataset(raw), prep, tmp_path)
    assert s["cache"] != full_s["cache"]
    assert full_tr.x.shape[2] == 300  # every frame, padded to the longest clip
    for full, stored in ((full_tr, tr), (full_te, te)):
        assert stored.x.shape == (len(full), 3, window, 25, num_person)
        assert stored.names == full.names and (stored.lengths == window).all()
        for i, name in enumerate(full.names):
            length = int(full.lengths[i])
            assert length == LENGTHS[name]
            np.testing.assert_array_equal(np.asarray(stored.x[i]),
                                          np.asarray(full.x[i])[:, centres(length, window)])
    assert s["frames"] == full_s["frames"]  # the clips' valid frames, not the stored ones
    assert s["stored_frames"].startswith(str(window))


def test_the_boundary_centre_is_the_frame_the_formula_names(raw, tmp_path):
    """(82 + 0.5) * 176 / 120 = 121 exactly: frame 121, where a float linspace of the segment
    edges gives 120.99999999999999 and frame 120."""
    full_prep = PreprocessingConfig(window=120, temporal_jitter=True)
    tr, _, _ = load_arrays(dataset(raw), full_prep, tmp_path)
    stored, _, _ = load_arrays(dataset(raw), PreprocessingConfig(window=120), tmp_path)
    i = tr.names.index("S001C001P001R001A001")
    np.testing.assert_array_equal(np.asarray(stored.x[i, :, 82]), np.asarray(tr.x[i, :, 121]))
    assert not np.array_equal(np.asarray(tr.x[i, :, 120]), np.asarray(tr.x[i, :, 121]))


def test_training_sees_the_stored_frames_unchanged(raw, tmp_path):
    prep = PreprocessingConfig()  # t64_uniform, the default
    bundle = load_data(dataset(raw), prep, str(tmp_path), seed=0)
    for ds in (bundle.train, bundle.test):
        for epoch in range(3):
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                x, _ = ds[i]
                np.testing.assert_array_equal(x.numpy(), np.asarray(ds.arrays.x[i]))


def test_temporal_jitter_draws_other_frames_each_epoch(raw, tmp_path):
    prep = PreprocessingConfig(temporal_jitter=True)
    bundle = load_data(dataset(raw), prep, str(tmp_path), seed=0)
    i = bundle.train.names.index("S001C001P002R001A003")  # 300 frames
    seen = []
    for epoch in range(3):
        bundle.train.set_epoch(epoch)
        seen.append(bundle.train[i][0].numpy())
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])
    # testing takes the segment centres: the frames the default stores
    stored = load_data(dataset(raw), PreprocessingConfig(), str(tmp_path), seed=0)
    for k in range(len(bundle.test)):
        np.testing.assert_array_equal(bundle.test[k][0].numpy(), stored.test[k][0].numpy())
