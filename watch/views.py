"""Pages: your webhook endpoints and their delivery log; the public explorer."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.errors import NotFound, UserError
from datanets.models import Datanet
from watch import explorer, selectors, webhooks
from watch.forms import EndpointForm

SECRET_KEY = "watch.new_endpoint_secret"


@login_required
def endpoints(request: HttpRequest) -> HttpResponse:
    owned = list(Datanet.objects.filter(owner=request.user).order_by("title"))
    form = EndpointForm(request.POST or None, owned=owned)
    if request.method == "POST" and form.is_valid():
        slug = form.cleaned_data["datanet"]
        try:
            endpoint, secret = webhooks.endpoint_create(
                actor=request.user,
                url=form.cleaned_data["url"],
                event_types=form.cleaned_data["event_types"],
                datanet=next((d for d in owned if d.slug == slug), None) if slug else None,
                description=form.cleaned_data["description"],
            )
            # Shown once, on the page the redirect lands on: a reload neither repeats the POST nor the secret.
            request.session[SECRET_KEY] = {"endpoint": endpoint.pk, "secret": secret}
            return redirect("watch:endpoints")
        except UserError as exc:
            form.add_error(None, exc.message)
    created = None
    if shown := request.session.pop(SECRET_KEY, None):
        endpoint = selectors.endpoints_visible(request.user).filter(pk=shown["endpoint"]).first()
        created = {"endpoint": endpoint, "secret": shown["secret"]} if endpoint else None
    return render(
        request,
        "watch/endpoints.html",
        {"endpoints": selectors.endpoints_visible(request.user), "form": form, "created": created},
    )


@login_required
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(selectors.endpoints_visible(request.user), pk=pk)
    rows = selectors.deliveries_visible(request.user).filter(endpoint=endpoint).prefetch_related("attempt_log")
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    for d in page:
        d.payload_json = json.dumps(d.payload, indent=2)
    return render(request, "watch/endpoint.html", {"endpoint": endpoint, "page": page})


@login_required
@require_POST
def endpoint_enable(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(selectors.endpoints_visible(request.user), pk=pk)
    try:
        webhooks.endpoint_enable(actor=request.user, endpoint=endpoint)
        messages.success(request, "Enabled: new events are delivered again.")
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect("watch:endpoint", pk=pk)


@login_required
@require_POST
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(selectors.endpoints_visible(request.user), pk=pk)
    webhooks.endpoint_delete(actor=request.user, endpoint=endpoint)
    messages.success(request, "Deleted the endpoint and its delivery log.")
    return redirect("watch:endpoints")


def explorer_index(request: HttpRequest) -> HttpResponse:
    base = request.build_absolute_uri("/").rstrip("/")
    anchors = list(explorer.anchors()[:200])
    for a in anchors:
        a.verify = explorer.verify_command(a, base)
    return render(
        request,
        "watch/explorer.html",
        {
            "anchors": anchors,
            "snapshots": explorer.snapshots_public()[:100],
            "receipts": explorer.receipts_public()[:50],
            "proposals": explorer.proposals_executed(),
        },
    )


def explorer_search(request: HttpRequest) -> HttpResponse:
    result = explorer.search(request.GET.get("q", ""))
    if len(result.receipts) == 1 and not (result.anchors or result.snapshots) and len(result.query) >= 64:
        return redirect("watch:explorer-receipt", pk=result.receipts[0].pk)
    base = request.build_absolute_uri("/").rstrip("/")
    for a in result.anchors:
        a.verify = explorer.verify_command(a, base)
    return render(request, "watch/search.html", {"result": result})


def explorer_receipt(request: HttpRequest, pk: str) -> HttpResponse:
    try:
        receipt = explorer.receipt_public(pk)
    except NotFound as exc:
        raise Http404(exc.message) from None
    return render(
        request,
        "watch/receipt.html",
        {"receipt": receipt, "body": receipt.body, "body_json": json.dumps(receipt.body, indent=2, sort_keys=True)},
    )
