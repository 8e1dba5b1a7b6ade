from __future__ import annotations

import html
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from accounts.models import User
from attribution.credit import contributor_credit
from attribution.indexes import SPAN_MIN_TOKENS, index_load
from attribution.models import AttributionIndex, Flag
from attribution.selectors import can_see_input, citations_visible, receipt_visible, valuations_visible
from attribution.valuation import flag_resolve
from core.errors import UserError
from core.models import Job
from datanets import selectors
from datanets.models import Datanet
from models_factory.models import ModelVersion


def _highlight(text: str, needles: list[str]) -> str:
    """HTML of text with each needle marked; everything else escaped."""
    spans: list[tuple[int, int]] = []
    for needle in needles:
        start = text.find(needle) if needle.strip() else -1
        if start >= 0:
            spans.append((start, start + len(needle)))
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out.append(html.escape(text[pos:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _matched_spans(receipt: Any) -> list[str]:
    """The output's spans found in the training data, as text (for highlighting)."""
    version = receipt.version
    record = AttributionIndex.objects.filter(version=version, status=AttributionIndex.Status.READY).first()
    if record is None or receipt.method != "spans":
        return []
    index, extra = index_load(version, record)
    tokenizer = extra["tokenizer"]
    tokens = tokenizer(str(receipt.inference.output.get("text", "")), add_special_tokens=False)["input_ids"]
    if not tokens:  # an empty output (recorded before such calls were refused) has no spans to show
        return []
    spans = index.find_spans(tokens, min_len=SPAN_MIN_TOKENS)
    return [tokenizer.decode(tokens[s.start : s.end]).strip() for s in spans]


def receipt_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """The receipt of one inference. Its consumer (and staff) see their input and output; everyone else who may see
    the receipt sees their hashes. Cited records' text shows only to those who can see the records."""
    try:
        receipt = receipt_visible(request.user, pk)
    except UserError:
        raise Http404("No such receipt") from None
    body = receipt.body
    show_input = can_see_input(request.user, receipt.inference)
    cited = [t["record"] for t in body["top_k"]]
    records = {r.pk: r for r in selectors.records_visible(request.user).filter(pk__in=cited)}
    spans = _matched_spans(receipt) if show_input else []
    output_text = receipt.inference.output.get("text") if show_input else None
    empty_output = (
        receipt.version.ml_model.kind == "generative" and not str(receipt.inference.output.get("text") or "").strip()
    )
    rows = []
    for t in body["top_k"]:
        rec = records.get(t["record"])
        source = " · ".join(str(v) for v in rec.data.values()) if rec else ""
        rows.append({**t, "record_obj": rec, "source": mark_safe(_highlight(source, spans))})
    shares = [{**s, "percent": s["share_ppm"] / 10_000} for s in body["shares"]]
    return render(
        request,
        "attribution/receipt.html",
        {
            "receipt": receipt,
            "body": body,
            "rows": rows,
            "shares": shares,
            "spans": spans,
            "output_html": mark_safe(_highlight(output_text, spans)) if output_text else None,
            "inference": receipt.inference if show_input else None,
            "show_input": show_input,
            "empty_output": empty_output,
            "body_json": json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False),
        },
    )


@login_required
def flags(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = get_object_or_404(Datanet.objects.filter(pk__in=selectors.datanet_ids_visible(request.user)), slug=slug)
    if not selectors.is_curator(request.user, datanet):
        messages.error(request, "Only this Datanet's curators review flagged records.")
        return redirect(datanet)
    if request.method == "POST":
        flag = get_object_or_404(Flag, pk=request.POST.get("flag"), record__datanet=datanet)
        decision = request.POST.get("decision", "")
        try:
            flag_resolve(actor=request.user, flag_id=flag.pk, decision=decision, reason=request.POST.get("reason", ""))
            messages.success(
                request,
                "Confirmed: the record is rejected and leaves future snapshots."
                if decision == "confirm"
                else "Dismissed: the record stays.",
            )
        except UserError as exc:
            messages.error(request, exc.message)
        return redirect("attribution:flags", slug=slug)
    open_flags = Flag.objects.filter(record__datanet=datanet, status=Flag.Status.OPEN).select_related(
        "record__contributor", "version__ml_model"
    )
    return render(
        request, "attribution/flags.html", {"datanet": datanet, "flags": open_flags[:200], "n_open": open_flags.count()}
    )


def contributor(request: HttpRequest, username: str) -> HttpResponse:
    user = get_object_or_404(User, username=username)
    per_record = (
        citations_visible(request.user)
        .filter(contributor=user)
        .values("record_id", "record__datanet__title")
        .annotate(citations=Count("id"))
        .order_by("-citations")[:100]
    )
    valuations = (
        valuations_visible(request.user)
        .filter(record__contributor=user)
        .values("version_id", "version__ml_model__name", "version__version")
        .annotate(total=Sum("knn_shapley"), n=Count("id"))
        .order_by("version_id")
    )
    points = [[i + 1, round(v["total"], 6)] for i, v in enumerate(valuations)]
    return render(
        request,
        "attribution/contributor.html",
        {
            "person": user,
            "per_record": per_record,
            "valuations": valuations,
            "points": points,
            "credit": contributor_credit(user=user, viewer=request.user),
        },
    )


def version_panel(request: HttpRequest, version: ModelVersion) -> str:
    """The attribution part of a version's page (``models_factory.hooks.on_version_page``): the index and its
    build, the epoch valuation and the flags it sent to curators."""
    valuation_job = Job.objects.filter(kind="valuation", target_id=str(version.pk)).order_by("-created_at").first()
    return render_to_string(
        "attribution/_version_panel.html",
        {
            "v": version,
            "model": version.ml_model,
            "attribution_index": AttributionIndex.objects.filter(version=version).select_related("job").first(),
            "valuation_job": valuation_job,
            "n_flags": Flag.objects.filter(version=version, status=Flag.Status.OPEN).count(),
        },
        request=request,
    )
