"""The validation split carved from training (dataset.val_subjects / dataset.val_fraction):
disjoint from training and test by sample name, and by subject when subjects are held out;
deterministic and independent of the run's seed; recorded in the run's data summary; and part
of the run identity only when set."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest

from lastexp.data import DataError, load_data
from lastexp.data.skeleton import parse_ntu_name
from lastexp.data.validation import RowView, carve
from lastexp.runstore.key import identity, launch_world_size, run_key
from tests.conftest import compose


def subject(name: str) -> int:
    return parse_ntu_name(name).subject


def names_of(subjects: list[int], actions: int = 4) -> list[str]:
    return [f"S001C001P{p:03d}R001A{a:03d}" for p in subjects for a in range(1, actions + 1)]


def test_subjects_listed_are_held_out_whole():
    names = names_of([1, 2, 4, 5, 8])
    labels = np.array([parse_ntu_name(n).label for n in names])
    cut = carve(names, labels, subjects=[8, 2])
    val = {names[i] for i in cut.val_rows}
    train = {names[i] for i in cut.train_rows}
    assert not val & train and len(val) + len(train) == len(names)
    assert {subject(n) for n in val} == {2, 8}
    assert not {subject(n) for n in val} & {subject(n) for n in train}
    assert cut.record["subjects"] == [2, 8] and cut.record["n_val"] == 8
    assert cut.record["names"] == [names[i] for i in cut.val_rows]


def test_a_count_of_subjects_is_the_documented_hash_pick():
    """A count k holds out the k training subjects ranked first by
    sha256("lastexp-validation:subject:<id>"), whatever the sample order."""
    present = [1, 2, 4, 5, 8, 9, 13, 14]
    names = names_of(present)
    labels = np.array([parse_ntu_name(n).label for n in names])
    ranked = sorted(present, key=lambda s: hashlib.sha256(
        f"lastexp-validation:subject:{s}".encode()).hexdigest())
    cut = carve(names, labels, subjects=3)
    assert cut.record["subjects"] == sorted(ranked[:3])
    order = np.random.default_rng(0).permutation(len(names))
    shuffled = carve([names[i] for i in order], labels[order], subjects=3)
    assert shuffled.record["subjects"] == cut.record["subjects"]


def test_a_fraction_is_stratified_per_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    names = [f"sample{i:04d}" for i in range(200)]
    cut = carve(names, labels, fraction=0.2)
    per_class = Counter(labels[cut.val_rows].tolist())
    for c, n in Counter(labels.tolist()).items():
        assert per_class[c] == min(math.floor(0.2 * n + 0.5), n - 1)
    assert not set(cut.val_rows) & set(cut.train_rows)
    assert carve(names, labels, fraction=0.2).val_rows.tolist() == cut.val_rows.tolist()


def test_subjects_need_ntu_names_and_training_subjects():
    labels = np.zeros(8, dtype=int)
    with pytest.raises(DataError, match="dataset.val_fraction"):
        carve([f"x{i}" for i in range(8)], labels, subjects=1)
    names = names_of([1, 2], actions=4)
    with pytest.raises(DataError, match="subject\\(s\\) 3"):
        carve(names, labels, subjects=[3])
    with pytest.raises(DataError, match="every training subject"):
        carve(names, labels, subjects=2)
    assert carve(names, labels) is None


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("valdata")


@pytest.mark.parametrize("key", ["dataset.val_subjects=2", "dataset.val_fraction=0.25"])
def test_the_run_data_is_disjoint_and_recorded(data_root, key):
    cfg = compose(["debug=tiny", "dataset.limit=null", key])
    plain = load_data(compose(["debug=tiny", "dataset.limit=null"]).dataset,
                      cfg.preprocessing, str(data_root), seed=1)
    data = load_data(cfg.dataset, cfg.preprocessing, str(data_root), seed=1)
    train, val, test = set(data.train.names), set(data.val.names), set(data.test.names)
    assert val and not val & train and not val & test and not train & test
    assert train | val == set(plain.train.names) and data.test.names == plain.test.names
    record = data.summary["validation"]
    assert record["names"] == data.val.names and record["n_val"] == len(val)
    assert record["n_train"] == len(train)
    if "subjects" in key:  # whole subjects: none of them trains
        assert {subject(n) for n in val} == set(record["subjects"])
        assert not {subject(n) for n in val} & {subject(n) for n in train}
    assert isinstance(data.train.arrays.x, RowView)  # a view of the cache, not a copy
    x, y = data.val[0]
    assert int(y) == int(data.val.labels[0]) and x.shape == plain.test[0][0].shape
    again = load_data(cfg.dataset, cfg.preprocessing, str(data_root), seed=7)
    assert again.val.names == data.val.names  # the run's seed does not move the split


def test_validation_keys_join_the_identity_only_when_set():
    base = compose(["debug=tiny"])
    # the key of a run without the keys (7bd09d21 and 6868eea5 before preprocessing.temporal_jitter
    # joined the identity: the uniform preprocessings now store their window, another experiment;
    # d5a3c7d7 and d44f4efd before the model node held only its family's flags)
    assert run_key(base) == "88f39604" and run_key(compose([])) == "c695a892"
    assert "val_subjects" not in identity(base)["dataset"]
    with_val = compose(["debug=tiny", "dataset.val_subjects=2"])
    assert identity(with_val)["dataset"]["val_subjects"] == 2
    assert len({run_key(base), run_key(with_val),
                run_key(compose(["debug=tiny", "dataset.val_fraction=0.1"]))}) == 3


def test_world_size_joins_the_identity_only_above_one():
    cfg = compose(["debug=tiny"])
    assert "world_size" not in identity(cfg, world_size=1)
    assert identity(cfg, world_size=2)["world_size"] == 2
    assert run_key(cfg) == "88f39604"
    assert launch_world_size({}) == 1
    assert launch_world_size({"WORLD_SIZE": "2"}) == 2  # torchrun
    assert launch_world_size({"WORLD_SIZE": "1", "SLURM_NTASKS": "4"}) == 4  # submitit tasks
    assert launch_world_size({"SLURM_NTASKS": "1"}) == 1


def test_the_preprocess_summary_shows_the_carve():
    from lastexp.preprocess import format_summary

    summary = {"n_train": 48, "n_test": 28, "num_classes": 14, "skipped": {}}
    assert "validation" not in format_summary(summary)
    names = names_of([1, 2, 4])
    labels = np.array([parse_ntu_name(n).label for n in names])
    record = carve(names, labels, subjects=[4]).record
    line = [ln for ln in format_summary(dict(summary, validation=record)).splitlines()
            if "validation" in ln]
    assert line == ["  validation 4 of the train samples (subjects 4); train 8 left"]
    with pytest.raises(DataError, match="dataset.val_fraction=1.5"):
        carve(names, labels, fraction=1.5)
