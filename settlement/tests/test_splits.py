"""The pure splits (no Django, no database): every unit accounted for, exactly (property-based)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from settlement.splits import PPM, Bps, contributor_amount_units, split_fee, split_pro_rata

UNIT = 10**18


def ppm_lists(draw: st.DrawFn) -> list[dict[str, object]]:
    n = draw(st.integers(0, 6))
    if n == 0:
        return []
    cuts = sorted(draw(st.lists(st.integers(0, 1_000_000), min_size=n - 1, max_size=n - 1)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 1_000_000])]
    return [{"contributor": f"c{i}", "share_ppm": p} for i, p in enumerate(parts)]


@st.composite
def policies(draw: st.DrawFn) -> Bps:
    platform = draw(st.integers(1, 10_000))
    builder = draw(st.integers(0, 10_000 - platform))
    curators = draw(st.integers(0, 10_000 - platform - builder))
    return Bps(platform, builder, curators, 10_000 - platform - builder - curators)


@given(fee=st.integers(0, 10**30), bps=policies(), shares=st.composite(ppm_lists)())
def test_fee_split_accounts_for_every_unit(fee: int, bps: Bps, shares: list[dict[str, object]]) -> None:
    split = split_fee(fee, bps, shares)
    assert split.total == fee
    assert min([split.platform, split.builder, split.curators, *split.contributors.values()]) >= 0
    assert split.platform >= fee * bps.platform // 10_000
    if not shares:
        assert split.contributors == {}


@given(amount=st.integers(0, 10**30), weights=st.dictionaries(st.integers(0, 50), st.integers(0, 10**15)))
def test_pro_rata_split_is_exact(amount: int, weights: dict[int, int]) -> None:
    shares, remainder = split_pro_rata(amount, weights)
    assert sum(shares.values()) + remainder == amount
    assert all(v > 0 for v in shares.values()) and remainder >= 0
    if any(w > 0 for w in weights.values()):
        assert remainder < max(1, len([w for w in weights.values() if w > 0]))


def test_split_of_one_receipt() -> None:
    split = split_fee(
        100 * UNIT, Bps(), [{"contributor": "a", "share_ppm": 750_000}, {"contributor": "b", "share_ppm": 250_000}]
    )
    assert (split.platform, split.builder, split.curators) == (10 * UNIT, 20 * UNIT, 10 * UNIT)
    assert split.contributors == {"a": 45 * UNIT, "b": 15 * UNIT}
    odd = split_fee(7, Bps(), [{"contributor": "a", "share_ppm": 333_333}, {"contributor": "b", "share_ppm": 666_667}])
    assert odd.total == 7 and odd.builder == 1 and odd.curators == 0  # remainders went to the platform


def test_contributor_amount_rounds_down_in_base_units() -> None:
    assert contributor_amount_units(60 * UNIT, 750_000) == 45 * UNIT
    assert contributor_amount_units(7, 333_333) == 2
    assert contributor_amount_units(10**30, PPM) == 10**30


def test_splits_module_needs_no_django() -> None:
    import ast
    from pathlib import Path

    import settlement.splits

    tree = ast.parse(Path(settlement.splits.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(name.split(".")[0] in {"django", "rest_framework"} for name in imported), imported
    assert not any(name.startswith(("accounts", "datanets", "settlement.models")) for name in imported), imported
