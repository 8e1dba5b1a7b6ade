"""Pool funding by a Datanet's owner (service, page, API) and the penalty hook on review quorum."""

from __future__ import annotations

import os

import pytest
from django.test import Client

from accounts.models import AuditEvent, CreditAccount
from accounts.tests.factories import UserFactory
from attribution import valuation
from attribution.models import Flag, RecordValuation
from attribution.selectors import valuing_version
from core.errors import Conflict, Forbidden, NotFound, UserError
from datanets import services as datanet_services
from datanets.models import Contribution, Record
from datanets.selectors import extra_approvals_for
from datanets.tests.factories import DatanetFactory, add_curators
from settlement import epochs, penalties, rewards
from settlement.chain.config import token_units_per_credit
from settlement.models import EpochPool, LedgerEntry, Penalty, RewardPolicy
from settlement.tests.factories import model_version, records_with_values

pytestmark = pytest.mark.django_db


def owner_with_credits(credits: int = 100):
    datanet = DatanetFactory()
    CreditAccount.objects.create(user=datanet.owner, balance=credits)
    return datanet, datanet.owner


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


# ---- service ---------------------------------------------------------------------------------------------------


def test_owner_funds_open_epoch_pool_with_audit_row() -> None:
    datanet, owner = owner_with_credits(100)
    epoch = rewards.epoch_open_get()
    pool = rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=40, epoch_number=epoch.number)
    assert pool.epoch == epoch and pool.funded_by == owner
    assert int(pool.amount) == 40 * token_units_per_credit()
    assert balance(owner) == 60
    event = AuditEvent.objects.get(action="rewards.pool_fund", target_id=str(pool.pk))
    assert event.actor == owner and event.before == {"balance": 100}
    assert event.after["credits"] == 40 and event.after["balance"] == 60 and event.after["epoch"] == epoch.number


@pytest.mark.parametrize("amount", [0, -5])
def test_non_positive_amount_is_refused(amount: int) -> None:
    datanet, owner = owner_with_credits(100)
    with pytest.raises(UserError, match="positive whole number"):
        rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=amount)
    assert balance(owner) == 100 and not EpochPool.objects.exists()


def test_not_the_owner_even_staff_is_forbidden() -> None:
    datanet, _ = owner_with_credits(100)
    for other in (UserFactory(), UserFactory(is_staff=True)):
        CreditAccount.objects.create(user=other, balance=100)
        with pytest.raises(Forbidden, match="Only the owner"):
            rewards.pool_fund(actor=other, datanet=datanet, amount_credits=10)
    assert not EpochPool.objects.exists()


def test_not_enough_credits_changes_nothing() -> None:
    datanet, owner = owner_with_credits(5)
    with pytest.raises(UserError, match="your balance is 5"):
        rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=6)
    no_account = DatanetFactory()
    with pytest.raises(UserError, match="your balance is 0"):
        rewards.pool_fund(actor=no_account.owner, datanet=no_account, amount_credits=1)
    assert balance(owner) == 5 and not EpochPool.objects.exists()
    assert not AuditEvent.objects.filter(action="rewards.pool_fund").exists()


def test_closed_or_unknown_epoch_is_refused() -> None:
    datanet, owner = owner_with_credits(100)
    first = rewards.epoch_open_get()
    epochs.epoch_close(actor=None, number=first.number)
    with pytest.raises(Conflict, match=f"Epoch {first.number} is not open"):
        rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=10, epoch_number=first.number)
    with pytest.raises(NotFound, match="There is no epoch 99"):
        rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=10, epoch_number=99)
    assert balance(owner) == 100 and not EpochPool.objects.exists()


def test_funded_pool_is_split_by_valuation_when_the_epoch_closes() -> None:
    datanet, owner = owner_with_credits(100)
    version = model_version(datanet, builder=owner)
    alice, bob = UserFactory(), UserFactory()
    records_with_values(version, {alice: [0.3], bob: [0.1]})
    epoch = rewards.epoch_open_get()
    rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=8, epoch_number=epoch.number)
    closed = epochs.epoch_close(actor=None, number=epoch.number)
    paid = {e.account_id: int(e.amount) for e in LedgerEntry.objects.filter(epoch=closed, kind=LedgerEntry.Kind.POOL)}
    units = 8 * token_units_per_credit()
    assert (
        paid[alice.pk]
        + paid[bob.pk]
        + sum(int(e.amount) for e in LedgerEntry.objects.filter(epoch=closed, kind=LedgerEntry.Kind.PLATFORM))
        == units
    )
    assert paid[alice.pk] == 3 * units // 4 and int(closed.pools_in) == units
    # The epoch records which version split the pool, on its page and in what it publishes.
    assert closed.valuing_versions == [
        {
            "datanet": datanet.slug,
            "version": version.pk,
            "model": version.ml_model.slug,
            "model_version": 1,
            "builder": owner.username,
            "rule": "the newest valued version of the owner's own models",
            "penalties": 0,
        }
    ]
    admin = Client()
    admin.force_login(UserFactory(is_staff=True))
    page = admin.get(f"/rewards/epochs/{closed.number}/").content.decode()
    assert 'data-testid="valuing-versions"' in page and f"{version.ml_model.slug} v1 (#{version.pk}" in page
    assert admin.get(f"/api/rewards/epochs/{closed.number}/").json()["valuing_versions"] == closed.valuing_versions


def test_a_strangers_model_cannot_withhold_the_owners_pool() -> None:
    """The issue's reproduction: a stranger's (lr=0.5) model valued every record negatively; its newest valuation
    drove penalties and withheld the owner's whole pool. Now only the owner's choice values the Datanet."""
    datanet, owner = owner_with_credits(100)
    threshold = RewardPolicy.objects.create(datanet=datanet, penalty_threshold=0).penalty_threshold
    mine = model_version(datanet, builder=owner)
    alice, bob = UserFactory(), UserFactory()
    records = records_with_values(mine, {alice: [0.3, 0.2], bob: [0.1]})
    stranger = model_version(datanet)  # newer, by someone the owner never chose
    for record in records:
        RecordValuation.objects.create(version=stranger, record=record, knn_shapley=-0.5, flagged=True)
    epoch = rewards.epoch_open_get()
    rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=10, epoch_number=epoch.number)
    closed = epochs.epoch_close(actor=None, number=epoch.number)
    kinds = {e.kind for e in LedgerEntry.objects.filter(epoch=closed, datanet=datanet)}
    assert LedgerEntry.Kind.WITHHELD not in kinds and LedgerEntry.Kind.CARRY not in kinds
    paid = {e.account_id: int(e.amount) for e in LedgerEntry.objects.filter(epoch=closed, kind=LedgerEntry.Kind.POOL)}
    assert paid[alice.pk] == 10 * token_units_per_credit() * 5 // 6
    assert not Penalty.objects.exists() and threshold == 0
    assert closed.valuing_versions[0]["version"] == mine.pk

    # The owner may allow that builder, or designate the stranger's version: then (and only then) it values.
    valuation.valuation_designate(actor=owner, datanet=datanet, version_id=stranger.pk)
    assert valuing_version(datanet)[0] == stranger
    with pytest.raises(Forbidden, match="Only the owner"):
        valuation.valuation_designate(actor=stranger.ml_model.builder, datanet=datanet, version_id=stranger.pk)


def test_a_record_rejected_since_its_valuation_draws_no_pool_share() -> None:
    """A confirmed flag rejects a valued record; the pool then goes to the records still approved (found by the
    economics simulation: rejected junk kept earning pool share from the valuing version's snapshot)."""
    datanet, owner = owner_with_credits(100)
    version = model_version(datanet, builder=owner)  # the owner's model values the Datanet
    alice, mallory = UserFactory(), UserFactory()
    _, junk = records_with_values(version, {alice: [0.3], mallory: [0.3]})
    Record.objects.filter(pk=junk.pk).update(status=Record.Status.REJECTED)
    epoch = rewards.epoch_open_get()
    rewards.pool_fund(actor=owner, datanet=datanet, amount_credits=8, epoch_number=epoch.number)
    closed = epochs.epoch_close(actor=None, number=epoch.number)
    paid = {e.account_id: int(e.amount) for e in LedgerEntry.objects.filter(epoch=closed, kind=LedgerEntry.Kind.POOL)}
    assert paid == {alice.pk: 8 * token_units_per_credit()}


# ---- page ------------------------------------------------------------------------------------------------------


def test_owner_funds_from_the_datanet_rewards_page() -> None:
    datanet, owner = owner_with_credits(50)
    number = rewards.epoch_open_get().number
    client = Client()
    client.force_login(owner)
    earnings = client.get("/rewards/").content.decode()
    assert f"/rewards/datanets/{datanet.slug}/" in earnings
    assert '<script id="earnings-chart" type="application/json">{"epochs": [' in earnings  # an object, not a string
    page = client.get(f"/rewards/datanets/{datanet.slug}/").content.decode()
    assert 'data-testid="pool-fund"' in page and "50</span> credits" in page
    answer = client.post(
        f"/rewards/datanets/{datanet.slug}/pools/", {"amount_credits": "20", "epoch": str(number)}, follow=True
    )
    text = answer.content.decode()
    assert f"Added 20 credits (20 tokens) to epoch {number}" in text and "funded by " + owner.username in text
    assert balance(owner) == 30
    text = client.post(
        f"/rewards/datanets/{datanet.slug}/pools/", {"amount_credits": "999", "epoch": str(number)}, follow=True
    ).content.decode()
    assert "your balance is 30" in text
    text = client.post(f"/rewards/datanets/{datanet.slug}/pools/", {"amount_credits": "abc"}, follow=True)
    assert "positive whole number" in text.content.decode()
    assert EpochPool.objects.count() == 1


def test_page_is_for_the_owner_and_admins_only() -> None:
    datanet, _ = owner_with_credits(50)
    stranger, admin = Client(), Client()
    stranger.force_login(UserFactory())
    admin.force_login(UserFactory(is_staff=True))
    assert stranger.get(f"/rewards/datanets/{datanet.slug}/").status_code == 403
    assert stranger.post(f"/rewards/datanets/{datanet.slug}/pools/", {"amount_credits": "1"}).status_code == 302
    assert not EpochPool.objects.exists()
    page = admin.get(f"/rewards/datanets/{datanet.slug}/")
    assert page.status_code == 200 and 'data-testid="pool-fund"' not in page.content.decode()
    assert Client().get(f"/rewards/datanets/{datanet.slug}/").status_code == 302  # to the login page


# ---- API -------------------------------------------------------------------------------------------------------


def test_api_funds_and_lists_pools_with_clear_errors() -> None:
    datanet, owner = owner_with_credits(30)
    number = rewards.epoch_open_get().number
    url = f"/api/rewards/epochs/{number}/pools/"
    client = Client()
    client.force_login(owner)

    made = client.post(url, {"datanet": datanet.slug, "amount_credits": 10}, content_type="application/json")
    assert made.status_code == 201, made.content
    assert made.json()["amount"] == str(10 * token_units_per_credit()) and made.json()["funded_by"] == owner.username
    listed = Client().get(url).json()  # anyone can read an epoch's pools
    assert [p["datanet"] for p in listed] == [datanet.slug] and listed[0]["epoch"] == number

    def post(body, who=client, to=url):
        return who.post(to, body, content_type="application/json")

    too_much = post({"datanet": datanet.slug, "amount_credits": 21})
    assert too_much.status_code == 400 and "your balance is 20" in too_much.json()["detail"]
    assert too_much.json()["balance"] == 20
    zero = post({"datanet": datanet.slug, "amount_credits": 0})
    assert zero.status_code == 400 and "positive whole number" in zero.json()["detail"]
    assert post({"datanet": datanet.slug, "amount_credits": "x"}).status_code == 400
    assert post({"datanet": "no-such-datanet", "amount_credits": 1}).status_code == 404
    stranger = Client()
    stranger.force_login(UserFactory())
    forbidden = post({"datanet": datanet.slug, "amount_credits": 1}, who=stranger)
    assert forbidden.status_code == 403 and "Only the owner" in forbidden.json()["detail"]
    assert post({"datanet": datanet.slug, "amount_credits": 1}, who=Client()).status_code in (401, 403)

    epochs.epoch_close(actor=None, number=number)
    closed = post({"datanet": datanet.slug, "amount_credits": 1})
    assert closed.status_code == 409 and f"Epoch {number} is not open" in closed.json()["detail"]
    assert post({"datanet": datanet.slug, "amount_credits": 1}, to="/api/rewards/epochs/99/pools/").status_code == 404
    assert balance(owner) == 20 and EpochPool.objects.filter(funded_by=owner).count() == 1


# ---- penalties on review quorum --------------------------------------------------------------------------------


def pending_record(datanet, contributor) -> Record:
    contribution = Contribution.objects.create(
        datanet=datanet,
        contributor=contributor,
        source="paste",
        filename="x.jsonl",
        file_sha256=os.urandom(32).hex(),
        blob_name="-",
        size_bytes=1,
    )
    return Record.objects.create(
        datanet=datanet,
        contribution=contribution,
        contributor=contributor,
        line_no=1,
        data={"text": "new upload", "label": "positive"},
        content_hash=os.urandom(32).hex(),
    )


def confirmed_flags(version, records, curator) -> None:
    for record in records:
        flag = Flag.objects.create(
            record=record,
            version=version,
            reason=Flag.Reason.LABEL,
            severity=0.9,
            evidence={
                "label": "negative",
                "cross_fit": {
                    "suggested_label": "positive",
                    "suggested_probability": 0.95,
                    "own_label_probability": 0.02,
                },
            },
        )
        valuation.flag_resolve(actor=curator, flag_id=flag.pk, decision="confirm")


def test_penalties_come_only_from_confirmed_flags_explained_in_words() -> None:
    datanet = DatanetFactory(approvals_needed=2)
    RewardPolicy.objects.create(datanet=datanet, penalty_threshold=3)
    c1, c2, c3 = add_curators(datanet, 3)
    version = model_version(datanet, builder=datanet.owner)
    bob, carol = UserFactory(), UserFactory()
    made = records_with_values(version, {bob: [-0.2] * 5, carol: [-0.2] * 3})
    # Raw negative valuation alone costs nothing, even from the valuing version.
    epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)
    assert not Penalty.objects.exists()
    confirmed_flags(version, made[:4] + made[5:8], c1)  # bob: 4 confirmed (> 3), carol: 3 (not over)
    epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)
    assert penalties.penalty_points(account=bob, datanet=datanet) == 4
    penalty = Penalty.objects.filter(account=bob).order_by("pk").first()
    assert penalty.reason.startswith(f"Curator {c1.username} confirmed on ")
    assert f"that record #{penalty.record_id}'s label 'negative' contradicts the rest of the data" in penalty.reason
    assert "1 point." in penalty.reason
    # The contributor's page says what the points do, and until when.
    page = Client()
    page.force_login(bob)
    text = page.get("/rewards/").content.decode()
    assert 'data-testid="penalty-rule"' in text and "only from a flag that a curator confirmed" in text
    assert (
        "your next uploads need one more approval and your epoch pool share is withheld, until your points are back at 3 or below"
        in text
    )
    assert extra_approvals_for(bob.pk, datanet) == 1
    assert extra_approvals_for(carol.pk, datanet) == 0
    assert extra_approvals_for(bob.pk, DatanetFactory()) == 0  # penalties are per Datanet
    epochs.epoch_close(actor=None, number=rewards.epoch_open_get().number)
    assert Penalty.objects.filter(account=bob).count() == 4  # one per confirmed flag, never twice

    record = pending_record(datanet, bob)
    assert datanet_services.vote_cast(curator=c1, record_id=record.pk, decision="approve").status == "pending"
    assert datanet_services.vote_cast(curator=c2, record_id=record.pk, decision="approve").status == "pending"
    assert datanet_services.vote_cast(curator=c3, record_id=record.pk, decision="approve").status == "approved"

    fine = pending_record(datanet, carol)
    datanet_services.vote_cast(curator=c1, record_id=fine.pk, decision="approve")
    assert datanet_services.vote_cast(curator=c2, record_id=fine.pk, decision="approve").status == "approved"

    # rejections are untouched by penalties
    rejected = pending_record(datanet, bob)
    datanet_services.vote_cast(curator=c1, record_id=rejected.pk, decision="reject", reason="off topic")
    assert (
        datanet_services.vote_cast(curator=c2, record_id=rejected.pk, decision="reject", reason="spam").status
        == "rejected"
    )

    # raising the threshold lifts the extra approval
    rewards.policy_set(
        actor=datanet.owner,
        datanet=datanet,
        platform_bps=1000,
        builder_bps=2000,
        curators_bps=1000,
        contributors_bps=6000,
        penalty_threshold=4,
    )
    assert extra_approvals_for(bob.pk, datanet) == 0
    assert Penalty.objects.filter(account=bob).count() == 4
