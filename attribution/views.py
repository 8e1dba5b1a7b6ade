from __future__ import annotations

import html
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from accounts.models import User
from attribution.credit import contributor_credit
from attribution.indexes import SPAN_MIN_TOKENS, index_load
from attribution.models import AttributionIndex, Flag, RecordValuation
from attribution.selectors import (
    can_see_input,
    citations_visible,
    flags_for_curators,
    receipt_visible,
    record_text,
    valuations_visible,
    valuing_version,
)
from attribution.valuation import DISMISSAL_MARGIN, flag_resolve, valuation_designate
from core.errors import UserError
from core.models import Job
from datanets import selectors
from datanets.models import Datanet
from models_factory.models import ModelVersion

FLAGS_PER_PAGE = 50
EXCERPT_CHARS = 100
SCORE_MEANING = {
    "gradient": "A score estimates how much training on that record lowered this output's loss (its loss gradient "
    "against the output's, through the model's curvature): positive helped produce this output, negative worked "
    "against it, and credit is shared in proportion to the positive scores.",
    "spans": "A score weighs the output's word sequences (of 6 tokens or more) found verbatim in that record, longer "
    "and rarer sequences weighing more; credit is shared in proportion to it.",
    "similarity": "A score is the cosine similarity of that record to the prompt and output in a sentence encoder's "
    "space (1 = same meaning); no sequence of 6 tokens or more was found verbatim in the training data.",
}


def _rounded(score: float) -> str:
    """A score as a person reads it: three significant digits (never 0.09999999999999998)."""
    return f"{score:.3g}"


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
    predicted = receipt.inference.output.get("label") if show_input else None
    rows = []
    for t in body["top_k"]:
        rec = records.get(t["record"])
        text = (rec.data.get("text") or record_text(rec.data)) if rec else ""
        label = rec.data.get("label") if rec else None
        rows.append(
            {
                **t,
                "score_text": _rounded(t["score"]),
                "record_obj": rec,
                "label": label,
                "agrees": None if predicted is None or label is None else label == predicted,
                "excerpt": text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else ""),
                "long": len(text) > EXCERPT_CHARS,
                "source": mark_safe(_highlight(text, spans)),
            }
        )
    shares = [{**s, "percent": s["share_ppm"] / 10_000} for s in body["shares"]]
    chance = body.get("chance") or {}
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
            "predicted": predicted,
            "score_meaning": SCORE_MEANING.get(body["method"], ""),
            "abstained": bool(chance.get("abstained")),
            "chance": chance,
            "n_agree": sum(1 for r in rows if r["agrees"]),
            "n_labelled": sum(1 for r in rows if r["agrees"] is not None),
            "body_json": json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False),
        },
    )


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


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
        return redirect(f"{request.path}?{request.GET.urlencode()}" if request.GET else request.path)
    version_id = _int_or_none(request.GET.get("version"))
    reason = request.GET.get("reason", "") if request.GET.get("reason") in Flag.Reason.values else ""
    open_flags = flags_for_curators(datanet, version_id=version_id, reason=reason)
    page = Paginator(open_flags, FLAGS_PER_PAGE).get_page(request.GET.get("page"))
    valuer, rule = valuing_version(datanet)
    versions = (
        ModelVersion.objects.filter(flags__record__datanet=datanet, flags__status=Flag.Status.OPEN)
        .select_related("ml_model")
        .distinct()
        .order_by("-pk")
    )
    keep = request.GET.copy()
    keep.pop("page", None)
    return render(
        request,
        "attribution/flags.html",
        {
            "datanet": datanet,
            "page": page,
            "n_open": page.paginator.count,
            "versions": versions,
            "reasons": Flag.Reason.choices,
            "version_id": version_id,
            "reason": reason,
            "valuer": valuer,
            "valuer_rule": rule,
            "query": keep.urlencode(),
            "dismissal_margin": DISMISSAL_MARGIN,
        },
    )


@login_required
@require_POST
def valuer_designate(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner's form (on the Datanet's rewards page): which version values the Datanet, or whose models may."""
    datanet = get_object_or_404(Datanet, slug=slug)
    if not selectors.can_view(request.user, datanet):  # like a missing Datanet: the refusal would name a private one
        raise Http404("No such Datanet")
    try:
        valuation_designate(
            actor=request.user,
            datanet=datanet,
            version_id=_int_or_none(request.POST.get("version")),
            builders=request.POST.get("builders", "").replace(",", " ").split(),
        )
        valuer, rule = valuing_version(datanet)
        messages.success(
            request,
            f"{valuer.ml_model.name} v{valuer.version} values {datanet.title} ({rule})."
            if valuer
            else f"No valued version qualifies yet ({rule}): {datanet.title}'s pool carries over until one does.",
        )
    except UserError as exc:
        messages.error(request, exc.message)
    back = request.POST.get("next") or ""
    if not back.startswith("/") or back.startswith("//"):  # only back to a page of this site
        back = datanet.get_absolute_url()
    return redirect(back)


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
    valuer, rule = valuing_version(version.ml_model.datanet)
    return render_to_string(
        "attribution/_version_panel.html",
        {
            "v": version,
            "model": version.ml_model,
            "attribution_index": AttributionIndex.objects.filter(version=version).select_related("job").first(),
            "valuation_job": valuation_job,
            "n_flags": Flag.objects.filter(version=version, status=Flag.Status.OPEN).count(),
            "n_own_flagged": RecordValuation.objects.filter(version=version, flagged=True).count(),
            "is_valuer": valuer is not None and valuer.pk == version.pk,
            "valuer": valuer,
            "valuer_rule": rule,
        },
        request=request,
    )
