"""The cache key's text is fixed: existing caches are found by it. The expected keys are the
SHA-1 of identity blobs written out here, not values taken from lastexp.data."""

import hashlib

from omegaconf import OmegaConf

import lastexp.data as data
from lastexp.config import DatasetConfig, PreprocessingConfig, SyntheticConfig
from lastexp.data import dataset_config, preprocessing_config


def sha16(blob: str) -> str:
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


SYNTHETIC_DEFAULT = sha16(
    '{"benchmark": "synthetic", "copy_single_body": 0, "files": [], "limit": null, '
    '"max_frames": 300, "num_person": 1, "split": "xsub", "synthetic": {"max_frames": 110, '
    '"min_frames": 48, "noise": 0.01, "samples_per_class": 100, "seed": 0, "subjects": 40}, '
    f'"v": {data.CACHE_VERSION}}}'
)
NPZ = sha16(
    '{"benchmark": "ntu60", "copy_single_body": 0, "files": ["/d/x.npz", 10, 20], '
    '"limit": null, "max_frames": 300, "num_person": 2, "split": "xsub", "synthetic": null, '
    f'"v": {data.CACHE_VERSION}}}'
)


def test_synthetic_default_key_from_a_dataclass_a_node_and_a_dict():
    prep = PreprocessingConfig()
    assert data.cache_key(DatasetConfig(), prep, []) == SYNTHETIC_DEFAULT
    node = OmegaConf.structured(DatasetConfig())
    assert data.cache_key(dataset_config(node), preprocessing_config(
        OmegaConf.structured(prep)), []) == SYNTHETIC_DEFAULT
    plain = OmegaConf.to_container(node)
    plain["retired_key"] = 1  # a checkpoint's config may hold a key the schema dropped
    assert data.cache_key(dataset_config(plain), preprocessing_config({}), []) == SYNTHETIC_DEFAULT


def test_npz_key():
    ds = {"name": "ntu60_xsub", "benchmark": "ntu60", "split": "xsub", "num_classes": 60,
          "npz": "/d/x.npz"}  # no synthetic entry: a generated corpus is not hashed for an npz
    prep = {"num_person": 2, "window": 120, "sampling": "crop_resize"}  # draw-time fields
    assert data.cache_key(dataset_config(ds), preprocessing_config(prep),
                          ["/d/x.npz", 10, 20]) == NPZ


def test_dataset_config_converts_its_synthetic_node():
    node = OmegaConf.create({"benchmark": "synthetic", "synthetic": {"seed": 3}})
    ds = dataset_config(node)
    assert isinstance(ds, DatasetConfig) and ds.synthetic == SyntheticConfig(seed=3)
    same = DatasetConfig()
    assert dataset_config(same) is same
