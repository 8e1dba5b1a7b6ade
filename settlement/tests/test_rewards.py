"""Rewards in the database: accrual, curators, pools, penalties, epoch close, and the invariants (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.tests.factories import UserFactory
from attribution import valuation
from attribution.models import Flag
from datanets.models import Vote
from datanets.tests.factories import add_curators
from settlement import epochs as epoch_services
from settlement import penalties, rewards
from settlement.models import AccountTotal, Allocation, Epoch, EpochPool, LedgerEntry, Penalty, RewardPolicy
from settlement.tests.factories import model_version, ppm_shares, receipt, records_with_values

UNIT = 10**18


@pytest.mark.django_db
def test_close_splits_fees_curators_and_pools_and_penalizes() -> None:
    builder, alice, bob, carol = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    curator, lazy = UserFactory(), UserFactory()
    version = model_version(builder=builder)
    datanet = version.ml_model.datanet
    RewardPolicy.objects.create(datanet=datanet, penalty_threshold=1)
    epoch = rewards.epoch_open_get()
    records = records_with_values(version, {alice: [0.3, 0.1], bob: [0.2], carol: [0.5, -0.1, -0.2]})
    Vote.objects.create(record=records[0], curator=curator, decision="approve")
    Vote.objects.create(record=records[1], curator=lazy, decision="reject")  # did not match the outcome
    # The owner lets the builder's models value the Datanet; curators confirm carol's two flagged records.
    valuation.valuation_designate(actor=datanet.owner, datanet=datanet, builders=[builder.username])
    (checker,) = add_curators(datanet, 1)
    for record in records[4:]:
        flag = Flag.objects.create(record=record, version=version, severity=0.9, evidence={})
        valuation.flag_resolve(actor=checker, flag_id=flag.pk, decision="confirm")
    receipt(version, ppm_shares({alice: 1, bob: 1}), fee=10)
    receipt(version, [], fee=5)
    EpochPool.objects.create(epoch=epoch, datanet=datanet, amount=1_000, funded_by=datanet.owner)
    rewards.receipts_accrue()
    rewards.receipts_accrue()  # counting twice changes nothing

    closed = epoch_services.epoch_close(actor=None, number=epoch.number)

    assert closed.status == Epoch.Status.CLOSED and closed.receipt_count == 2 and closed.receipts_root
    entries = LedgerEntry.objects.filter(epoch=closed)
    assert sum(int(e.amount) for e in entries) == 15 * UNIT + 1_000
    by = {a.account_id: a for a in Allocation.objects.filter(epoch=closed)}
    assert int(by[alice.pk].breakdown["contributor"]) == 3 * UNIT
    assert int(by[builder.pk].amount) == 3 * UNIT  # 20% of both fees
    assert int(by[curator.pk].amount) == 15 * UNIT // 10 and lazy.pk not in by
    # pool by positive valuation: alice 0.4, bob 0.2, carol 0.5 (withheld: 2 penalty points > threshold 1)
    assert int(by[alice.pk].breakdown["pool"]) == 1_000 * 4 // 11
    withheld = entries.get(kind="withheld")
    assert withheld.account_id == carol.pk and "penalty points" in withheld.memo
    assert Penalty.objects.filter(account=carol).count() == 2
    assert penalties.penalty_points(account=carol, datanet=datanet) == 2
    carried = EpochPool.objects.get(carried_from=closed)
    assert int(carried.amount) == int(withheld.amount) and carried.epoch.status == Epoch.Status.OPEN
    no_shares = entries.filter(kind="platform", memo__contains="no contributor shares")
    assert no_shares.count() == 1


@pytest.mark.django_db
def test_closed_epoch_takes_no_more_receipts() -> None:
    version = model_version()
    alice = UserFactory()
    first = rewards.epoch_open_get()
    receipt(version, ppm_shares({alice: 1}), fee=3)
    epoch_services.epoch_close(actor=None, number=first.number)
    late = receipt(version, ppm_shares({alice: 1}), fee=4)
    rewards.receipts_accrue()
    assert LedgerEntry.objects.filter(receipt_id=late.id).values_list("epoch__number", flat=True).distinct().get() == 2
    assert sum(int(f) for f in Epoch.objects.get(number=1).accruals.values_list("fee", flat=True)) == 3 * UNIT


@pytest.mark.django_db
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    epochs=st.lists(
        st.lists(st.tuples(st.integers(0, 50), st.lists(st.integers(1, 9), min_size=0, max_size=3)), max_size=4),
        min_size=1,
        max_size=3,
    ),
    pool=st.integers(0, 10**20),
)
def test_epochs_add_up_and_cumulative_never_decreases(epochs: list[list[tuple[int, list[int]]]], pool: int) -> None:
    users = [UserFactory() for _ in range(3)]
    version = model_version()
    records_with_values(version, {users[0]: [0.25], users[1]: [0.5]})
    history: dict[int, int] = {}
    for calls in epochs:
        epoch = rewards.epoch_open_get()
        if pool:
            EpochPool.objects.create(epoch=epoch, datanet=version.ml_model.datanet, amount=pool)
        for fee, weights in calls:
            receipt(version, ppm_shares(dict(zip(users, weights))) if weights else [], fee=fee)
            rewards.receipts_accrue()
        rewards.receipts_accrue()
        closed = epoch_services.epoch_close(actor=None, number=epoch.number)
        entries = list(LedgerEntry.objects.filter(epoch=closed))
        pools_in = sum(int(p.amount) for p in EpochPool.objects.filter(epoch=closed))
        assert sum(int(e.amount) for e in entries) == int(closed.fees_in) + pools_in
        assert int(closed.fees_in) == sum(fee for fee, _ in calls) * UNIT
        allocated = sum(int(a.amount) for a in Allocation.objects.filter(epoch=closed))
        assert allocated + int(closed.platform_amount) + int(closed.carried_over) == int(closed.fees_in) + pools_in
        assert len({e.receipt_id for e in entries if e.kind == "builder"}) == len(
            [e for e in entries if e.kind == "builder"]
        )  # each receipt paid its builder once
        for total in AccountTotal.objects.all():
            assert int(total.cumulative) >= history.get(total.account_id, 0)
            history[total.account_id] = int(total.cumulative)


@pytest.mark.django_db
def test_an_abstaining_receipt_sends_the_contributors_part_to_the_datanets_epoch_pool() -> None:
    version = model_version()
    datanet = version.ml_model.datanet
    first = rewards.epoch_open_get()
    abstained = receipt(version, [], fee=10)
    abstained.body = {**abstained.body, "chance": {"abstained": True}}
    abstained.save(update_fields=["body"])
    rewards.receipts_accrue()
    to_pool = LedgerEntry.objects.get(receipt_id=abstained.id, kind="carry")
    assert int(to_pool.amount) == 6 * UNIT and "receipt abstained" in to_pool.memo  # the 60% contributors' part
    # builder 2 + platform 1 + pool 6; the curators' 1 is split among curators when the epoch closes
    assert sum(int(e.amount) for e in LedgerEntry.objects.filter(receipt_id=abstained.id)) == 9 * UNIT
    closed = epoch_services.epoch_close(actor=None, number=first.number)
    pool = EpochPool.objects.get(carried_from=closed, datanet=datanet)
    assert int(pool.amount) == 6 * UNIT and pool.epoch.status == Epoch.Status.OPEN
