"""Rewards pages: a contributor's earnings and claim, the admin's epochs. Each write calls one service."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.credits import credit_balance
from attribution.models import ValuationDesignation
from attribution.selectors import valuing_version
from core.errors import UserError
from datanets.models import Datanet
from datanets.selectors import datanet_ids_visible
from models_factory.models import MLModel, ModelVersion
from settlement import anchoring, challenges, claims, epochs, proofs, rewards, selectors
from settlement.models import Allocation, Epoch, ReceiptAccrual, Settlement


def staff_member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Epoch pages are for site admins. Django's own decorator sends everyone else to the admin site's login, which
    reads as a dead end: the logged-out get our login page, a signed-in non-admin a page saying who may enter."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied(
                "Reward epochs are closed and settled by site admins, so only they open these pages. "
                "Your own rewards and claims are on the Rewards page."
            )
        return view(request, *args, **kwargs)

    return wrapped


@login_required
def earnings(request: HttpRequest) -> HttpResponse:
    data = selectors.earnings_for(user=request.user)
    chart = {
        "epochs": [[r["epoch"], float(selectors.tokens(r["amount"]).replace(",", ""))] for r in data["per_epoch"]],
        "datanets": [
            [r["datanet"], float(selectors.tokens(r["amount"]).replace(",", ""))] for r in data["per_datanet"]
        ],
    }
    return render(
        request,
        "settlement/earnings.html",
        {**data, "chart": chart, "owned": selectors.owned_datanets(request.user)},  # json_script encodes it
    )


@login_required
def claim(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            relay = claims.claim_relay(user=request.user)
            messages.success(
                request,
                f"Claimed {selectors.tokens(relay.paid)} tokens to {relay.address} (transaction {relay.tx_hash}).",
            )
        except UserError as exc:
            messages.error(request, exc.message)
        return redirect("settlement:claim")
    status = claims.claim_status(user=request.user)
    return render(request, "settlement/claim.html", {"status": status})


@login_required
def claim_proof(request: HttpRequest) -> HttpResponse:
    if not request.user.wallet_address:
        raise Http404("no linked wallet")
    proof = proofs.latest_proof_for(request.user.wallet_address)
    if proof is None:
        raise Http404("no proof yet")
    response = JsonResponse(proof, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="datanets-proof-epoch-{proof["epoch"]}.json"'
    return response


@staff_member_required
def epoch_list(request: HttpRequest) -> HttpResponse:
    rewards.epoch_open_get()
    return render(request, "settlement/epochs.html", {"epochs": selectors.epochs_with_settlements()})


@staff_member_required
def epoch_detail(request: HttpRequest, number: int) -> HttpResponse:
    try:
        epoch = rewards.epoch_get(number)
    except UserError as exc:
        raise Http404(exc.message) from None
    rows = Allocation.objects.filter(epoch=epoch).select_related("account").order_by("account__username")
    page = Paginator(rows, 100).get_page(request.GET.get("page"))
    settlement = Settlement.objects.filter(epoch=epoch).first()
    return render(
        request,
        "settlement/epoch.html",
        {
            "epoch": epoch,
            "so_far": _counted_so_far(epoch) if epoch.status == Epoch.Status.OPEN else None,
            "page": page,
            "settlement": settlement,
            "transactions": settlement.transactions.all() if settlement else [],
            "allocated": sum(int(a) for a in Allocation.objects.filter(epoch=epoch).values_list("amount", flat=True)),
        },
    )


def _counted_so_far(epoch: Epoch) -> dict[str, int]:
    """An open epoch's receipts and fees counted so far (the epoch's own figures are written when it closes)."""
    fees = ReceiptAccrual.objects.filter(epoch=epoch).values_list("fee", flat=True)
    return {"receipts": len(fees), "fees": sum(int(f) for f in fees)}


@staff_member_required
@require_POST
def epoch_close(request: HttpRequest, number: int) -> HttpResponse:
    try:
        epoch = epochs.epoch_close(actor=request.user, number=number)
        messages.success(request, f"Epoch {number} closed with {epoch.receipt_count} receipts. Review it, then settle.")
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect("settlement:epoch", number=number)


@staff_member_required
@require_POST
def epoch_accrue(request: HttpRequest, number: int) -> HttpResponse:
    count = rewards.receipts_accrue()
    epoch = rewards.epoch_open_get()
    so_far = _counted_so_far(epoch)
    messages.success(
        request,
        f"Counted {count} new receipt(s) into the open epoch {epoch.number}: {so_far['receipts']} receipt(s) and "
        f"{selectors.tokens(so_far['fees'])} tokens of fees in it so far.",
    )
    if epoch.number != number:
        return redirect("settlement:epoch", number=epoch.number)
    return redirect("settlement:epoch", number=number)


@staff_member_required
@require_POST
def epoch_settle(request: HttpRequest, number: int) -> HttpResponse:
    try:
        if request.POST.get("retry"):
            anchoring.settlement_retry(actor=request.user, number=number)
        anchoring.settlement_request(actor=request.user, number=number)
        messages.success(request, f"Settling epoch {number}: a worker builds the tree and anchors it.")
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect("settlement:epoch", number=number)


def epoch_dump(request: HttpRequest, number: int) -> HttpResponse:
    """The published dump, byte for byte what was hashed and anchored (its keccak256 is the dataHash)."""
    settlement = Settlement.objects.filter(epoch__number=number).exclude(dump_name="").first()
    if settlement is None or settlement.state == Settlement.State.PENDING:
        raise Http404(f"Epoch {number} has no published dump yet.")
    response = HttpResponse(proofs.dump_bytes(settlement), content_type="application/json")
    response["X-Data-Hash"] = settlement.data_hash
    return response


def _visible_datanets(request: HttpRequest) -> QuerySet[Datanet]:
    return Datanet.objects.filter(pk__in=datanet_ids_visible(request.user))


@login_required
def datanet_rewards(request: HttpRequest, slug: str) -> HttpResponse:
    """A Datanet's rewards, for its owner (and admins, read-only): the fee split, its epoch pools, and a form that
    funds the open epoch's pool from the owner's credits."""
    datanet = get_object_or_404(_visible_datanets(request), slug=slug)  # a private one is a 404 to outsiders
    is_owner = request.user.pk == datanet.owner_id
    if not (is_owner or request.user.is_staff):
        raise PermissionDenied("Only the Datanet's owner can see and fund its reward pools.")
    epoch = rewards.epoch_open_get()
    pools = selectors.pools_of(datanet)
    valuer, valuer_rule = valuing_version(datanet)
    designation = ValuationDesignation.objects.filter(datanet=datanet).first()
    return render(
        request,
        "settlement/datanet.html",
        {
            "datanet": datanet,
            "is_owner": is_owner,
            "policy": selectors.policy_for(datanet),
            "epoch": epoch,
            "pools": pools,
            "open_pool_total": sum(int(p.amount) for p in pools if p.epoch_id == epoch.pk),
            "balance": credit_balance(user=request.user),
            "units_per_credit": selectors.token_units_per_credit(),
            "valuer": valuer,
            "valuer_rule": valuer_rule,
            "designation": designation,
            "designated_builders": " ".join(designation.builders.values_list("username", flat=True))
            if designation
            else "",
            "candidates": ModelVersion.objects.filter(ml_model__datanet=datanet, ml_model__kind=MLModel.Kind.CLASSIFIER)
            .select_related("ml_model__builder")
            .order_by("-pk")[:50],
        },
    )


@login_required
@require_POST
def datanet_pool_fund(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = get_object_or_404(_visible_datanets(request), slug=slug)
    raw = request.POST.get("amount_credits", "").strip()
    try:
        amount = int(raw)
    except ValueError:
        messages.error(request, "Fund the pool with a positive whole number of credits.")
        return redirect("settlement:datanet", slug=slug)
    epoch_number = request.POST.get("epoch", "").strip()
    try:
        pool = rewards.pool_fund(
            actor=request.user,
            datanet=datanet,
            amount_credits=amount,
            epoch_number=int(epoch_number) if epoch_number.isdigit() else None,
        )
        messages.success(
            request,
            f"Added {amount} credits ({selectors.tokens(pool.amount)} tokens) to epoch {pool.epoch.number}'s pool "
            f"for {datanet.title}. It is split by record valuation when the epoch closes.",
        )
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect("settlement:datanet", slug=slug)


@login_required
@require_POST
def receipt_challenge(request: HttpRequest, receipt_id: str) -> HttpResponse:
    """Recompute a receipt now (the receipt page's button); a mismatch freezes its accrual until resolved."""
    try:
        challenge = challenges.receipt_challenge(actor=request.user, receipt_id=receipt_id)
    except UserError as exc:
        messages.error(request, exc.message)
        return redirect("attribution:receipt", receipt_id) if len(receipt_id) == 64 else redirect("/")
    if challenge.status == challenge.Status.MATCHED:
        messages.success(request, "Recomputed from the published snapshot and model: the receipt matches.")
    else:
        messages.warning(
            request,
            "Recomputed: the receipt does NOT match (" + ", ".join(challenge.differences or ["encoding"]) + "). Its "
            "accrual is frozen until the Datanet's owner or staff resolve the challenge.",
        )
    return redirect("attribution:receipt", receipt_id)
