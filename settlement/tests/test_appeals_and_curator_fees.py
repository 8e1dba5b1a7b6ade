"""Appeals reach rewards: an overturned penalty stops counting and what was withheld is paid at the next close; an
overturned confirmed flag takes its record's penalties with it. Curators' fee part goes by standing, so voting fast
on everything earns less than judging fewer records carefully."""

from __future__ import annotations

import os

import pytest

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from datanets import services as datanet_services
from datanets.models import Appeal, Contribution, Record, Vote
from datanets.tests.factories import DatanetFactory, add_curators
from settlement import epochs, penalties, rewards
from settlement.models import (
    Allocation,
    EpochPool,
    LedgerEntry,
    Penalty,
    PenaltyOverturn,
    RewardPolicy,
    WithheldRelease,
)
from settlement.tests.factories import model_version, ppm_shares, receipt, records_with_values
from settlement.tests.test_pools_and_penalties import confirmed_flags

pytestmark = pytest.mark.django_db


def close_open_epoch():
    return epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)


def penalized_world():
    datanet = DatanetFactory()
    version = model_version(datanet, builder=datanet.owner)  # the owner's model values the Datanet
    RewardPolicy.objects.create(datanet=datanet, penalty_threshold=1)
    alice, carol = UserFactory(), UserFactory()
    made = records_with_values(version, {alice: [0.4], carol: [0.5, -0.1, -0.2]})
    (confirmer,) = add_curators(datanet, 1)
    confirmed_flags(version, made[2:], confirmer)  # penalties come only from flags a curator confirmed
    EpochPool.objects.create(epoch=rewards.epoch_open_get(), datanet=datanet, amount=9_000, funded_by=datanet.owner)
    first = close_open_epoch()
    withheld = LedgerEntry.objects.get(epoch=first, kind="withheld")
    assert withheld.account_id == carol.pk
    return version, datanet, alice, carol, first, withheld


def test_an_overturned_penalty_stops_counting_and_releases_the_withheld_share_at_the_next_close() -> None:
    version, datanet, alice, carol, first, withheld = penalized_world()
    penalty = Penalty.objects.filter(account=carol).order_by("value").first()
    assert penalties.penalty_points(account=carol, datanet=datanet) == 2
    with pytest.raises(datanet_services.appeals.Forbidden):
        datanet_services.appeal_file(appellant=alice, kind="penalty", object_id=penalty.pk, reason="not mine")
    appeal = datanet_services.appeal_file(
        appellant=carol, kind="penalty", object_id=penalty.pk, reason="Correct label."
    )
    assert appeal.decider == Appeal.Decider.OWNER  # no curators in this Datanet
    datanet_services.appeal_vote(voter=datanet.owner, appeal_id=appeal.pk, decision="overturn", reason="Label ok.")
    assert PenaltyOverturn.objects.filter(penalty=penalty).exists()
    assert penalties.penalty_points(account=carol, datanet=datanet) == 1
    release = WithheldRelease.objects.get(account=carol)
    assert int(release.amount) == int(withheld.amount) and release.released_in is None
    assert AuditEvent.objects.filter(action="rewards.penalty_overturn", target_id=str(penalty.pk)).exists()

    second = close_open_epoch()

    assert Penalty.objects.filter(account=carol).count() == 2  # the overturned one is not assessed again
    paid = LedgerEntry.objects.get(epoch=second, account=carol, memo__contains="released")
    assert int(paid.amount) == int(withheld.amount) and paid.kind == "pool"
    release.refresh_from_db()
    assert release.released_in == second
    entries = LedgerEntry.objects.filter(epoch=second)
    assert sum(int(e.amount) for e in entries) == int(second.pools_in) + int(second.fees_in)
    assert not entries.filter(kind="withheld").exists()  # 1 point is not over the threshold of 1
    third = close_open_epoch()
    assert not LedgerEntry.objects.filter(epoch=third, memo__contains="released").exists()  # paid once


def test_an_overturned_flag_restores_the_record_and_removes_its_penalties() -> None:
    version, datanet, alice, carol, first, withheld = penalized_world()
    add_curators(datanet, 4)  # a panel of curators who did not confirm the flag
    penalty = Penalty.objects.filter(account=carol).order_by("value").first()
    record = penalty.record
    flag = penalty.flag
    assert flag.status == "confirmed" and record.status == "rejected"
    appeal = datanet_services.appeal_file(appellant=carol, kind="flag", object_id=flag.pk, reason="The label is right.")
    panel = [a.curator for a in appeal.assignments.all()]
    assert appeal.decider == Appeal.Decider.PANEL and flag.resolved_by not in panel and len(panel) == 3
    for judge in panel[:2]:
        datanet_services.appeal_vote(voter=judge, appeal_id=appeal.pk, decision="overturn", reason="Right label.")
    flag.refresh_from_db()
    record.refresh_from_db()
    assert flag.status == "dismissed" and record.status == "approved"
    assert PenaltyOverturn.objects.filter(penalty=penalty, appeal=appeal).exists()
    assert penalties.penalty_points(account=carol, datanet=datanet) == 1
    with pytest.raises(datanet_services.appeals.NotFound):  # the flag is no longer confirmed
        datanet_services.appeal_file(appellant=carol, kind="penalty", object_id=penalty.pk, reason="again")


def test_voting_fast_on_everything_earns_less_than_judging_fewer_records_carefully() -> None:
    version = model_version()
    datanet = version.ml_model.datanet
    rewards.epoch_open_get()  # votes count in the epoch they are cast in
    author = UserFactory()
    contribution = Contribution.objects.create(
        datanet=datanet,
        contributor=author,
        source="paste",
        filename="x",
        file_sha256=os.urandom(8).hex(),
        blob_name="-",
        size_bytes=1,
    )
    records = [
        Record.objects.create(
            datanet=datanet,
            contribution=contribution,
            contributor=author,
            line_no=i + 1,
            data={"text": str(i)},
            content_hash=os.urandom(16).hex(),
            status="approved" if i % 4 else "rejected",
        )
        for i in range(40)
    ]
    fast, careful = UserFactory(), UserFactory()
    for record in records:  # approves everything: 30 of its 40 votes match the outcome
        Vote.objects.create(record=record, curator=fast, decision="approve")
    for record in records[:10]:  # judges 10, all matching
        Vote.objects.create(
            record=record, curator=careful, decision="approve" if record.status == "approved" else "reject"
        )
    receipt(version, ppm_shares({author: 1}), fee=100)
    closed = close_open_epoch()
    by = {a.account_id: int(a.amount) for a in Allocation.objects.filter(epoch=closed)}
    assert LedgerEntry.objects.filter(epoch=closed, kind="curator").count() == 2
    assert by.get(careful.pk, 0) > 5 * by.get(fast.pk, 0)  # by matched-vote count fast would have taken 3/4
