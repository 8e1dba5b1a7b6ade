from django.contrib import admin

from settlement.models import ChainDeployment, ClaimRelay, Epoch, Penalty, RewardPolicy, Settlement, SettlementTx


@admin.register(RewardPolicy)
class RewardPolicyAdmin(admin.ModelAdmin):
    list_display = ["datanet", "platform_bps", "builder_bps", "curators_bps", "contributors_bps", "penalty_threshold"]


@admin.register(Epoch)
class EpochAdmin(admin.ModelAdmin):
    list_display = ["number", "status", "opened_at", "closed_at", "settled_at", "receipt_count"]
    readonly_fields = [f.name for f in Epoch._meta.fields]


class SettlementTxInline(admin.TabularInline):
    model = SettlementTx
    extra = 0
    readonly_fields = ["nonce", "tx_hash", "max_fee_per_gas", "broadcasts", "broadcast_at", "created_at"]
    exclude = ["raw", "fields"]


@admin.register(Settlement)
class SettlementAdmin(admin.ModelAdmin):
    # state changes go through the services (the state machine), never through this form
    list_display = ["epoch", "state", "tx_hash", "block_number", "confirmations", "attempts"]
    readonly_fields = [f.name for f in Settlement._meta.fields]
    inlines = [SettlementTxInline]


admin.site.register(ChainDeployment)
admin.site.register(Penalty)
admin.site.register(ClaimRelay)
