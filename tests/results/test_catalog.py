"""The ablation catalog mirrors the training plan §9: 32 IDs in order, baselines, budgets."""

import pytest

from lastexp import catalog


def test_32_ids_in_seed_order():
    expected = [f"B{i}" for i in range(15)] + [f"L{i}" for i in range(13)]
    expected += [f"P{i}" for i in range(4)]
    assert list(catalog.ABLATIONS) == expected
    assert catalog.ids("base") == expected[:15]
    assert catalog.ids("lite") == expected[15:28]
    assert catalog.ids("preprocessing") == expected[28:]
    assert catalog.ids() == expected


def test_budgets_match_the_seed():
    # Row sums computed from the plan's rows; the plan's own totals are ~217h / ~46h / ~26h.
    assert catalog.rows_budget("base") == 8 + 10 * 4 + 12 * 2 + 15 * 7 + 60  # 237
    assert catalog.rows_budget("lite") == 3 * 10 + 4 + 4 + 8  # 46
    assert catalog.rows_budget("preprocessing") == 6 + 6 + 8 + 6  # 26
    assert [catalog.TABLES[t].budget_hours for t in ("base", "lite", "preprocessing")] == [
        217.0, 46.0, 26.0,
    ]  # fmt: skip
    for t in catalog.TABLES:
        assert catalog.rows_budget(t) == pytest.approx(catalog.TABLES[t].budget_hours, rel=0.1)


@pytest.mark.parametrize(
    ("ablation", "baseline"),
    [("B0", None), ("B1", "B0"), ("B7", "B0"), ("B8", "B7"), ("B11", "B7"), ("B12", "B7"),
     ("B14", "B7"), ("L0", None), ("L5", "L0"), ("L6", "L5"), ("L12", "L5"), ("P0", None),
     ("P3", "P0")],
)  # fmt: skip
def test_baselines(ablation, baseline):
    assert catalog.get(ablation).baseline == baseline


def test_texts_are_the_seeds():
    b11 = catalog.get("B11")
    assert b11.title == "− PartitionedAttn (use factorized S+T)"
    assert b11.changes == "Replace SkateFormer with ST_JointAtt"
    assert b11.purpose == "Partition vs factorized"
    assert b11.table == "base" and b11.gpu_hours == 15.0
    assert catalog.get("L12").title == "+ MaskCLR → Distill"


def test_unknown_id_lists_valid_ids():
    with pytest.raises(KeyError) as err:
        catalog.get("B99")
    message = str(err.value)
    assert "B99" in message
    for ablation in ("B0", "B14", "L12", "P3"):
        assert ablation in message


def test_frozen():
    with pytest.raises(AttributeError):
        catalog.get("B0").gpu_hours = 1.0  # type: ignore[misc]
