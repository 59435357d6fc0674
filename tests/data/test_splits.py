import pytest

from lastexp.data.skeleton import parse_ntu_name
from lastexp.data.splits import NUM_CLASSES, is_train, keep_action


def n(setup=1, camera=1, subject=1, action=1):
    return parse_ntu_name(f"S{setup:03d}C{camera:03d}P{subject:03d}R001A{action:03d}")


def test_xsub():
    for s in (1, 2, 4, 5, 8, 9, 13, 38):
        assert is_train(n(subject=s), "ntu60", "xsub")
        assert is_train(n(subject=s), "ntu120", "xsub")
        assert is_train(n(subject=s), "synthetic", "xsub")
    for s in (3, 6, 7, 10, 20, 39, 40):
        assert not is_train(n(subject=s), "ntu60", "xsub")
    for s in (45, 70, 103, 100):
        assert is_train(n(subject=s), "ntu120", "xsub")
        assert not is_train(n(subject=s), "ntu60", "xsub")
    for s in (44, 48, 51, 104, 106):
        assert not is_train(n(subject=s), "ntu120", "xsub")


def test_xview_and_xset():
    assert not is_train(n(camera=1), "ntu60", "xview")
    assert is_train(n(camera=2), "ntu60", "xview")
    assert is_train(n(camera=3), "synthetic", "xview")
    assert is_train(n(setup=2), "ntu120", "xset")
    assert is_train(n(setup=32), "ntu120", "xset")
    assert not is_train(n(setup=1), "ntu120", "xset")
    assert not is_train(n(setup=17), "synthetic", "xset")
    with pytest.raises(ValueError):
        is_train(n(), "ntu60", "xset")
    with pytest.raises(ValueError):
        is_train(n(), "ntu60", "nope")
    with pytest.raises(ValueError):
        is_train(n(), "kinetics", "xsub")


def test_classes_filter():
    assert NUM_CLASSES == {"ntu60": 60, "ntu120": 120}
    assert keep_action(n(action=60), "ntu60") and not keep_action(n(action=61), "ntu60")
    assert keep_action(n(action=120), "ntu120")
