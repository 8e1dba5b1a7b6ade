"""Rewards and settlement: who earned what in each epoch, and how each epoch's totals reached the chain.

Amounts are integers in token base units (``TokenAmountField``). The ledger (``LedgerEntry``) is the truth about
where every unit of every fee and pool went; ``Allocation`` and ``AccountTotal`` are what it adds up to per account.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from datanets.models import Datanet, Record
from settlement.fields import TokenAmountField
from settlement.splits import BPS


class RewardPolicy(models.Model):
    """How a Datanet's inference fees split, in basis points that sum to 10,000, and when penalties bite."""

    datanet = models.OneToOneField(Datanet, on_delete=models.CASCADE, related_name="reward_policy")
    platform_bps = models.PositiveIntegerField(default=1_000)
    builder_bps = models.PositiveIntegerField(default=2_000)
    curators_bps = models.PositiveIntegerField(default=1_000)
    contributors_bps = models.PositiveIntegerField(default=6_000)
    penalty_threshold = models.PositiveIntegerField(
        default=3, help_text="Penalty points above which a contributor's epoch pool share is withheld."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "reward policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(platform_bps__gte=0, builder_bps__gte=0, curators_bps__gte=0, contributors_bps__gte=0),
                name="policy_bps_non_negative",
            ),
            # p > 0 is what makes querying a model to farm one's own attribution lose money
            models.CheckConstraint(condition=Q(platform_bps__gte=1), name="policy_platform_positive"),
        ]

    def __str__(self) -> str:
        return f"reward policy of {self.datanet}"

    @property
    def total_bps(self) -> int:
        return self.platform_bps + self.builder_bps + self.curators_bps + self.contributors_bps

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.total_bps != BPS:
            raise ValidationError(
                f"The four parts must add up to 100.00% (10,000 basis points); they add up to {self.total_bps}."
            )
        if self.platform_bps < 1:
            raise ValidationError("The platform part must be above zero, or farming one's own attribution pays.")


class Epoch(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        SETTLING = "settling", "Settling"
        SETTLED = "settled", "Settled"
        FAILED = "failed", "Failed"

    number = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fees_in = TokenAmountField(default=0)
    pools_in = TokenAmountField(default=0)
    platform_amount = TokenAmountField(default=0)
    carried_over = TokenAmountField(default=0)
    receipt_count = models.PositiveIntegerField(default=0)
    receipts_root = models.CharField(max_length=66, blank=True)
    valuing_versions = models.JSONField(
        default=list,
        blank=True,
        help_text="Per Datanet with a pool or penalties: the model version whose valuation split the pool and whose "
        "curator-confirmed flags set penalties, and the rule that chose it.",
    )

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="open"), name="one_open_epoch"),
            models.CheckConstraint(condition=Q(number__gte=1), name="epoch_number_positive"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(closed_at__isnull=False), name="closed_epoch_has_close_time"
            ),
        ]

    def __str__(self) -> str:
        return f"epoch {self.number}"

    def get_absolute_url(self) -> str:
        return reverse("settlement:epoch", args=[self.number])


class EpochPool(models.Model):
    """Tokens a Datanet owner put into an epoch, split by the epoch valuation (or carried over from the last one)."""

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="pools")
    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="reward_pools")
    amount = TokenAmountField()
    funded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    carried_from = models.ForeignKey(
        Epoch, null=True, blank=True, on_delete=models.PROTECT, related_name="pools_carried_out"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["epoch", "datanet", "carried_from"],
                condition=Q(carried_from__isnull=False),
                name="one_carry_per_datanet_epoch",
            ),
        ]


class ReceiptAccrual(models.Model):
    """A receipt counted in an epoch. The unique receipt id is what makes accrual safe to run twice."""

    receipt_id = models.CharField(max_length=64, unique=True)
    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="accruals")
    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="+")
    fee = TokenAmountField()
    curators_part = TokenAmountField(default=0)
    receipt_created_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["epoch", "datanet"])]


class LedgerEntry(models.Model):
    """Where units went. Every unit of fees and pools in an epoch lands in exactly one entry of that epoch."""

    class Kind(models.TextChoices):
        CONTRIBUTOR = "contributor", "Contributor share of a fee"
        CURATOR = "curator", "Curator share of fees"
        BUILDER = "builder", "Model builder share of a fee"
        POOL = "pool", "Epoch pool share"
        PLATFORM = "platform", "Platform"
        WITHHELD = "withheld", "Withheld pool share (carried over)"
        CARRY = "carry", "Unallocated pool (carried over)"

    PAYABLE = (Kind.CONTRIBUTOR, Kind.CURATOR, Kind.BUILDER, Kind.POOL)

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="reward_entries"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = TokenAmountField()
    datanet = models.ForeignKey(Datanet, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    receipt_id = models.CharField(max_length=64, blank=True, db_index=True)
    pool = models.ForeignKey(EpochPool, null=True, blank=True, on_delete=models.PROTECT, related_name="entries")
    memo = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "epoch"]), models.Index(fields=["epoch", "kind"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["platform", "carry"], account__isnull=True)
                | (~Q(kind__in=["platform", "carry"]) & Q(account__isnull=False)),
                name="ledger_account_matches_kind",
            ),
        ]


class Allocation(models.Model):
    """What one account earned in one closed epoch, and its cumulative total through that epoch."""

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="allocations")
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="allocations")
    amount = TokenAmountField()
    cumulative = TokenAmountField()
    breakdown = models.JSONField(default=dict)

    class Meta:
        ordering = ["epoch__number", "account__username"]
        constraints = [models.UniqueConstraint(fields=["epoch", "account"], name="one_allocation_per_epoch_account")]


class AccountTotal(models.Model):
    """An account's cumulative earnings over closed epochs. Only ever added to."""

    account = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reward_total")
    cumulative = TokenAmountField(default=0)
    through_epoch = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class Penalty(models.Model):
    """Penalty points from a flag that a curator confirmed, with the reason the contributor sees (in words)."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reward_penalties")
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="+")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("models_factory.ModelVersion", on_delete=models.CASCADE, related_name="+")
    flag = models.ForeignKey("attribution.Flag", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="penalties")
    points = models.PositiveIntegerField(default=1)
    value = models.FloatField()
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["flag"], name="one_penalty_per_flag")]


class PenaltyOverturn(models.Model):
    """A penalty removed by an appeal: it no longer counts, and is never assessed again for the same record and
    version (the penalty row stays, so the history does too)."""

    penalty = models.OneToOneField(Penalty, on_delete=models.CASCADE, related_name="overturn")
    appeal = models.ForeignKey("datanets.Appeal", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)


class WithheldRelease(models.Model):
    """Pool shares withheld from an account while its penalties were over the threshold, owed back after an
    appeal removed penalties; paid from the Datanet's pool at the next epoch close (``released_in``)."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withheld_releases")
    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="+")
    amount = TokenAmountField()
    appeal = models.ForeignKey("datanets.Appeal", on_delete=models.PROTECT, related_name="+")
    released_in = models.ForeignKey(Epoch, null=True, blank=True, on_delete=models.PROTECT, related_name="releases")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class ReceiptChallenge(models.Model):
    """Someone recomputed a receipt (``receipt_recompute``). A match changes nothing; a mismatch keeps the receipt
    out of accrual (frozen) until its Datanet's owner or staff resolve it: upheld (it accrues again) or voided
    (it never accrues, and its fee goes back to the consumer if no epoch counted it)."""

    class Status(models.TextChoices):
        MATCHED = "matched", "Recomputed: matches"
        OPEN = "open", "Mismatch: accrual frozen"
        UPHELD = "upheld", "Mismatch resolved: receipt upheld"
        VOIDED = "voided", "Mismatch resolved: receipt voided"

    receipt_id = models.CharField(max_length=64, db_index=True)
    challenger = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recomputed_id = models.CharField(max_length=64)
    differences = models.JSONField(default=list, help_text="Top-level fields of the body that differ.")
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    frozen_epoch = models.PositiveIntegerField(
        null=True, blank=True, help_text="The open epoch whose accrual of this receipt was taken back."
    )
    settled_epoch = models.PositiveIntegerField(
        null=True, blank=True, help_text="The closed epoch that had already counted it (too late to freeze)."
    )
    resolution = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["receipt_id"], condition=Q(status__in=["open", "voided"]), name="one_open_challenge_per_receipt"
            ),
        ]


class PayoutAddress(models.Model):
    """The cumulative amount published for one address in the latest tree. An address keeps its leaf after its
    owner links another wallet, so what it can still claim stays claimable and is never credited twice."""

    address = models.CharField(max_length=42, unique=True)
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payout_addresses")
    cumulative = TokenAmountField(default=0)
    through_epoch = models.PositiveIntegerField(default=0)


class ChainDeployment(models.Model):
    """The token and distributor the platform settles with on one chain; deployed once on dev chains."""

    chain_id = models.PositiveBigIntegerField()
    token = models.CharField(max_length=42)
    distributor = models.CharField(max_length=42)
    deployer = models.CharField(max_length=42, blank=True)
    block_number = models.PositiveBigIntegerField(default=0)
    is_dev = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["chain_id", "distributor"], name="unique_deployment")]

    def __str__(self) -> str:
        return f"chain {self.chain_id}: distributor {self.distributor}"


class Settlement(models.Model):
    """One epoch's anchor, as a state machine. Each state names the next step; every step is safe to repeat.

    pending -> built (tree and dump stored; root fixed for good) -> signed (raw tx stored) -> broadcast
    -> mined -> confirmed; ``failed`` stops everything and raises the alarm (another root on chain, a revert).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        BUILT = "built", "Tree built"
        SIGNED = "signed", "Signed"
        BROADCAST = "broadcast", "Broadcast"
        MINED = "mined", "Mined"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Failed"

    TERMINAL = (State.CONFIRMED, State.FAILED)

    epoch = models.OneToOneField(Epoch, on_delete=models.PROTECT, related_name="settlement")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    chain_id = models.PositiveBigIntegerField(default=0)
    distributor = models.CharField(max_length=42, blank=True)
    anchor_address = models.CharField(max_length=42, blank=True)
    root = models.CharField(max_length=66, blank=True)
    data_hash = models.CharField(max_length=66, blank=True)
    total_cumulative = TokenAmountField(default=0)
    leaf_count = models.PositiveIntegerField(default=0)
    unlinked_count = models.PositiveIntegerField(default=0)
    dump_name = models.CharField(max_length=300, blank=True)
    dump_size = models.PositiveBigIntegerField(default=0)
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    gas_used = models.PositiveBigIntegerField(null=True, blank=True)
    confirmations = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    alarm = models.TextField(blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(state__in=["pending"]) | ~Q(root=""), name="built_settlement_has_root"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "built", "failed", "confirmed"]) | ~Q(tx_hash=""),
                name="sent_settlement_has_tx",
            ),
        ]

    def __str__(self) -> str:
        return f"settlement of epoch {self.epoch.number} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL


class SettlementTx(models.Model):
    """A signed anchor transaction, stored before it is broadcast. Fee bumps add rows with the same nonce."""

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="transactions")
    nonce = models.PositiveBigIntegerField()
    tx_hash = models.CharField(max_length=66, unique=True)
    raw = models.TextField(help_text="The signed bytes as 0x hex: what a restart broadcasts again.")
    fields = models.JSONField(help_text="The unsigned transaction, for re-signing the same nonce with higher fees.")
    max_fee_per_gas = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    broadcasts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]


class ClaimRelay(models.Model):
    """A claim the platform sent on a contributor's behalf (the contract pays the account, whoever sends)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="claim_relays")
    address = models.CharField(max_length=42)
    epoch_number = models.PositiveIntegerField()
    cumulative = TokenAmountField()
    paid = TokenAmountField(default=0)
    tx_hash = models.CharField(max_length=66, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENT)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
