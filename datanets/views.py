"""HTML pages. Each page calls the same services and selectors as the REST API."""

from __future__ import annotations

import math
import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import User
from core.errors import UserError, validation_message
from datanets import selectors, services
from datanets.ingest.schema import RECORD_KINDS
from datanets.models import Contribution, Datanet, Record, Snapshot, SnapshotExport


class DatanetForm(forms.ModelForm):
    labels_text = forms.CharField(
        required=False, label="Labels", help_text="For labeled text: the fixed label set, separated by commas."
    )
    curators_text = forms.CharField(
        required=False, label="Curators", help_text="Usernames of the curators, separated by commas."
    )

    class Meta:
        model = Datanet
        fields = [
            "title",
            "slug",
            "domain",
            "description",
            "license",
            "guidelines",
            "record_kind",
            "approvals_needed",
            "rejections_needed",
            "max_extra_votes",
            "appeal_panel",
            "near_dup_threshold",
            "is_public",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "guidelines": forms.Textarea(attrs={"rows": 4})}
        labels = {
            "near_dup_threshold": "Near-duplicate threshold",
            "max_extra_votes": "Extra votes when curators disagree (cap)",
            "appeal_panel": "Appeal panel size",
            "is_public": "Public (anyone signed in may contribute)",
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False
        self.fields["slug"].help_text = "Part of the address; made from the title when empty."
        order = list(self.fields)
        for name in ("labels_text", "curators_text"):
            order.remove(name)
        at = order.index("record_kind") + 1
        order[at:at] = ["labels_text"]
        order.insert(order.index("rejections_needed") + 1, "curators_text")
        self.order_fields(order)
        if self.instance.pk:
            self.fields["slug"].disabled = True
            self.fields["labels_text"].initial = ", ".join(self.instance.labels or [])
            self.fields["curators_text"].initial = ", ".join(u.username for u in selectors.curators_of(self.instance))

    def clean_labels_text(self) -> list[str]:
        return [label.strip() for label in self.cleaned_data["labels_text"].split(",") if label.strip()]

    def clean_curators_text(self) -> list[User]:
        names = [n.strip() for n in self.cleaned_data["curators_text"].split(",") if n.strip()]
        users = list(User.objects.filter(username__in=names))
        missing = set(names) - {u.username for u in users}
        if missing:
            raise ValidationError(f"No such user: {', '.join(sorted(missing))}.")
        return users

    def _post_clean(self) -> None:  # the service validates the whole model; skip ModelForm's unique checks on slug
        pass


def _datanet_for(request: HttpRequest, slug: str) -> Datanet:
    datanet = get_object_or_404(Datanet.objects.select_related("owner"), slug=slug)
    if not selectors.can_view(request.user, datanet):
        raise Http404("No such Datanet")
    return datanet


def datanet_list(request: HttpRequest) -> HttpResponse:
    datanets = selectors.datanets_visible(request.user).order_by("-created_at")
    return render(request, "datanets/list.html", {"datanets": datanets})


def _fields_from_form(form: DatanetForm) -> dict[str, object]:
    data = {k: v for k, v in form.cleaned_data.items() if k not in {"labels_text", "curators_text", "slug"}}
    data["labels"] = form.cleaned_data["labels_text"] if form.cleaned_data.get("record_kind") == "labeled_text" else []
    return data


@login_required
def datanet_create(request: HttpRequest) -> HttpResponse:
    form = DatanetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            datanet = services.datanet_create(
                owner=request.user,
                slug=form.cleaned_data.get("slug") or "",
                curators=form.cleaned_data["curators_text"],
                **_fields_from_form(form),
            )
            messages.success(request, f"Created {datanet.title}. Share its page and start uploading.")
            return redirect(datanet)
        except ValidationError as exc:
            form.add_error(None, validation_message(exc))
        except UserError as exc:
            form.add_error(None, exc.message)
    return render(request, "datanets/form.html", {"form": form, "kinds": RECORD_KINDS})


@login_required
def datanet_edit(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    if not selectors.is_owner(request.user, datanet):
        messages.error(request, "Only the owner can change this Datanet's settings.")
        return redirect(datanet)
    form = DatanetForm(request.POST or None, instance=Datanet.objects.get(pk=datanet.pk))
    if request.method == "POST" and form.is_valid():
        try:
            datanet = services.datanet_update(actor=request.user, datanet=datanet, **_fields_from_form(form))
            wanted = set(form.cleaned_data["curators_text"])
            current = set(selectors.curators_of(datanet))
            for user in wanted - current:
                services.curator_set(actor=request.user, datanet=datanet, user=user, curator=True)
            for user in current - wanted:
                services.curator_set(actor=request.user, datanet=datanet, user=user, curator=False)
            messages.success(request, "Saved.")
            return redirect(datanet)
        except ValidationError as exc:
            form.add_error(None, validation_message(exc))
        except UserError as exc:
            form.add_error(None, exc.message)
    return render(request, "datanets/form.html", {"form": form, "datanet": datanet, "kinds": RECORD_KINDS})


def datanet_detail(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    user = request.user
    context = {
        "datanet": datanet,
        "counts": selectors.datanet_counts(datanet),
        "snapshots": datanet.snapshots.all()[:20],
        "curators": selectors.curators_of(datanet),
        "is_owner": selectors.is_owner(user, datanet),
        "is_curator": selectors.is_curator(user, datanet),
        "can_contribute": selectors.can_contribute(user, datanet),
        "my_contributions": Contribution.objects.filter(datanet=datanet, contributor=user).select_related("job")[:10]
        if user.is_authenticated
        else [],
    }
    return render(request, "datanets/detail.html", context)


@login_required
def upload(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    if request.method == "POST":
        try:
            result = services.contribution_from_paste(
                user=request.user,
                datanet=datanet,
                text=request.POST.get("text", ""),
                fmt=request.POST.get("format", "jsonl"),
            )
            (messages.success if result.created else messages.warning)(request, result.message)
            return redirect(result.contribution)
        except UserError as exc:
            messages.error(request, exc.message)
    return render(
        request,
        "datanets/upload.html",
        {
            "datanet": datanet,
            "fields": [f.name for f in datanet.kind.fields],
            "chunk_size": settings.UPLOAD_CHUNK_BYTES,
            "max_bytes": settings.UPLOAD_MAX_BYTES,
            "quota": selectors.quota_used_today(request.user),
            "quota_records": settings.QUOTA_RECORDS_PER_DAY,
            "quota_bytes": settings.QUOTA_BYTES_PER_DAY,
            "quota_rows": settings.QUOTA_ROWS_PER_DAY,
            "can_contribute": selectors.can_contribute(request.user, datanet),
        },
    )


LINE_PREFIX = re.compile(r"^(?:line \d+: )+")


def contribution_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    contribution = get_object_or_404(Contribution.objects.select_related("contributor", "job"), pk=pk, datanet=datanet)
    errors = Paginator(contribution.row_errors.all(), 100).get_page(request.GET.get("page"))
    # The table has a Line column: the stored message's own "line N: " would say it twice.
    error_rows = [(e.line_no, LINE_PREFIX.sub("", e.message)) for e in errors]
    duplicates = (
        contribution.records.filter(duplicate_of__isnull=False)
        .select_related("duplicate_of__contributor")
        .order_by("line_no")[:100]
    )
    return render(
        request,
        "datanets/contribution.html",
        {
            "datanet": datanet,
            "contribution": contribution,
            "job": contribution.job,
            "errors": errors,
            "error_rows": error_rows,
            "duplicates": duplicates,
            "same_file": bool(request.GET.get("same_file")),
            "is_mine": contribution.contributor_id == request.user.pk,
            "takes_column_map": contribution.filename.lower().split(".gz")[0].endswith((".csv", ".parquet")),
        },
    )


@login_required
def review_queue(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    if not selectors.is_curator(request.user, datanet):
        messages.error(request, "Only this Datanet's curators review its records.")
        return redirect(datanet)
    label = request.GET.get("label", "")
    contributor = request.GET.get("contributor", "")
    records = selectors.review_queue(
        datanet=datanet,
        curator=request.user,
        label=label,
        contributor=contributor,
        limit=50,
        after_id=int(request.GET.get("after", 0) or 0),
    )
    return render(
        request,
        "datanets/review.html",
        {
            "datanet": datanet,
            "records": records,
            "asked": selectors.vote_requests_for(request.user, datanet),
            "label": label,
            "contributor": contributor,
            "fields": [f.name for f in datanet.kind.fields],
        },
    )


def record_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    record = get_object_or_404(
        selectors.records_visible(request.user).select_related("contributor", "duplicate_of__contributor"),
        pk=pk,
        datanet=datanet,
    )
    if request.method == "POST":
        try:
            services.vote_cast(
                curator=request.user,
                record_id=record.pk,
                decision=request.POST.get("decision", ""),
                reason=request.POST.get("reason", ""),
            )
            messages.success(request, "Vote recorded.")
        except UserError as exc:
            messages.error(request, exc.message)
        return redirect(record)
    return render(
        request,
        "datanets/record.html",
        {
            "datanet": datanet,
            "record": record,
            "votes": selectors.votes_visible(request.user, record),
            "votes_open": selectors.votes_open(request.user, record),
            "duplicates": record.duplicates.select_related("contributor")[:20],
            "is_curator": selectors.is_curator(request.user, datanet),
            "appeal": selectors.appeal_for("rejection", record.pk),
            "can_appeal": record.status == Record.Status.REJECTED
            and record.contributor_id == request.user.pk
            and record.votes.filter(decision="reject").exists(),
            "vote_request": selectors.vote_request_open(record) if record.status == Record.Status.PENDING else None,
            "fields": [f.name for f in datanet.kind.fields],
        },
    )


def percent_text(rate: float | None) -> str:
    """A rate as a percentage that never rounds up to a whole one: 559 of 560 reads 99.8%, not 100%."""
    if rate is None:
        return "–"
    value = math.floor(rate * 1000) / 10
    return f"{value:.1f}".removesuffix(".0") + "%"


def stats(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    curators = [
        {
            **c,
            "agreement_text": percent_text(c["agreement"]),
            "appeal_agreement_text": percent_text(c["appeal_agreement"]),
        }
        for c in selectors.curator_stats(datanet)
    ]
    contributors = [
        {**c, "acceptance_text": percent_text(c["acceptance_rate"])} for c in selectors.contributor_stats(datanet)
    ]
    return render(
        request,
        "datanets/stats.html",
        {
            "datanet": datanet,
            "counts": selectors.datanet_counts(datanet),
            "agreement": selectors.datanet_agreement(datanet),
            "curators": curators,
            "contributors": contributors,
        },
    )


@login_required
def my_records(request: HttpRequest) -> HttpResponse:
    records = (
        Record.objects.filter(contributor=request.user)
        .select_related("datanet", "duplicate_of__duplicate_of")
        .order_by("-id")
    )
    status = request.GET.get("status", "")
    if status:
        records = records.filter(status=status)
    page = Paginator(records, 50).get_page(request.GET.get("page"))
    return render(
        request, "datanets/my_records.html", {"page": page, "status": status, "statuses": Record.Status.choices}
    )


@login_required
@require_POST
def snapshot_publish(request: HttpRequest, slug: str) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    try:
        snapshot = services.snapshot_publish(
            actor=request.user,
            datanet=datanet,
            notes=request.POST.get("notes", ""),
            validation_percent=int(request.POST.get("validation_percent", 10) or 10),
        )
        messages.success(request, f"Published version {snapshot.version} with {snapshot.record_count:,} records.")
        return redirect(snapshot)
    except (UserError, ValueError) as exc:
        messages.error(request, getattr(exc, "message", "The validation split must be a whole number."))
        return redirect(datanet)


def snapshot_detail(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    snapshot = get_object_or_404(Snapshot, datanet=datanet, version=version)
    exports = {e.format: e for e in snapshot.exports.select_related("job")}
    labels = snapshot.card.get("labels", {})
    top = max(labels.values()) if labels else 1
    return render(
        request,
        "datanets/snapshot.html",
        {
            "datanet": datanet,
            "snapshot": snapshot,
            "exports": exports,
            "label_bars": [(k, v, 100 * v / top) for k, v in labels.items()],
        },
    )


@login_required
@require_POST
def snapshot_export(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    snapshot = get_object_or_404(Snapshot, datanet=datanet, version=version)
    try:
        services.snapshot_export_request(actor=request.user, snapshot=snapshot, fmt=request.POST.get("format", ""))
        messages.success(request, "The export is being built; the download link appears when it is ready.")
    except UserError as exc:
        messages.error(request, exc.message)
    return redirect(snapshot)


def snapshot_manifest(request: HttpRequest, slug: str, version: int) -> FileResponse:
    """The manifest the root is computed from: one line per record (position, record hash, id, split)."""
    datanet = _datanet_for(request, slug)
    snapshot = get_object_or_404(Snapshot, datanet=datanet, version=version)
    if not snapshot.manifest_name:
        raise Http404("This version has no stored manifest.")
    return FileResponse(
        default_storage.open(snapshot.manifest_name, "rb"),
        as_attachment=True,
        filename=f"{datanet.slug}-v{version}.manifest.jsonl",
        content_type="application/x-ndjson",
    )


def snapshot_card(request: HttpRequest, slug: str, version: int) -> JsonResponse:
    """The dataset card: license, counts, labels, contributors and the root, as published."""
    datanet = _datanet_for(request, slug)
    snapshot = get_object_or_404(Snapshot, datanet=datanet, version=version)
    response = JsonResponse(snapshot.card, json_dumps_params={"indent": 2, "sort_keys": True})
    response["Content-Disposition"] = f'attachment; filename="{datanet.slug}-v{version}.card.json"'
    return response


def export_download(request: HttpRequest, slug: str, version: int, fmt: str) -> FileResponse:
    datanet = _datanet_for(request, slug)
    export = get_object_or_404(SnapshotExport, snapshot__datanet=datanet, snapshot__version=version, format=fmt)
    if not export.ready:
        raise Http404("This export is not ready yet.")
    filename = f"{datanet.slug}-v{version}.{fmt}"
    return FileResponse(default_storage.open(export.blob_name, "rb"), as_attachment=True, filename=filename)


# ---- appeals -------------------------------------------------------------------------------------------------


@login_required
@require_POST
def appeal_new(request: HttpRequest, slug: str) -> HttpResponse:
    """File an appeal of one decision (the record page posts a rejection; other pages post a flag or penalty)."""
    datanet = _datanet_for(request, slug)
    back = request.POST.get("next") or datanet.get_absolute_url()
    if not back.startswith("/") or back.startswith("//"):
        back = datanet.get_absolute_url()
    try:
        appeal = services.appeal_file(
            appellant=request.user,
            kind=request.POST.get("kind", ""),
            object_id=request.POST.get("object_id", ""),
            reason=request.POST.get("reason", ""),
        )
    except UserError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    if appeal.decider == appeal.Decider.OWNER:
        messages.success(request, "Appeal filed. Too few curators are free to judge it, so the owner decides it.")
    else:
        messages.success(request, f"Appeal filed: {appeal.assignments.count()} curators were drawn to judge it.")
    return redirect(appeal)


@login_required
def appeal_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The appeals queue: what waits on you (as drawn curator, or as owner), and the appeals you are a party to."""
    datanet = _datanet_for(request, slug)
    services.appeals_expire()
    mine = selectors.appeals_visible(request.user).filter(datanet=datanet).order_by("-created_at")
    return render(
        request,
        "datanets/appeals.html",
        {
            "datanet": datanet,
            "to_judge": selectors.appeals_to_judge(request.user, datanet),
            "appeals": mine[:200],
            "is_owner": selectors.is_owner(request.user, datanet),
        },
    )


@login_required
def appeal_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    datanet = _datanet_for(request, slug)
    services.appeals_expire()
    appeal = get_object_or_404(selectors.appeals_visible(request.user), pk=pk, datanet=datanet)
    if request.method == "POST":
        try:
            appeal = services.appeal_vote(
                voter=request.user,
                appeal_id=appeal.pk,
                decision=request.POST.get("decision", ""),
                reason=request.POST.get("reason", ""),
            )
            messages.success(request, "Vote recorded." if appeal.is_open else f"Appeal {appeal.status}.")
        except UserError as exc:
            messages.error(request, exc.message)
        return redirect(appeal)
    user = request.user
    assigned = appeal.assignments.filter(curator=user).exists()
    voted = appeal.votes.filter(voter=user).exists()
    can_judge = (
        appeal.is_open
        and user.pk != appeal.appellant_id
        and not voted
        and (
            (appeal.decider == appeal.Decider.PANEL and assigned)
            or (appeal.decider == appeal.Decider.OWNER and (selectors.is_owner(user, datanet) or user.is_staff))
        )
    )
    return render(
        request,
        "datanets/appeal.html",
        {
            "datanet": datanet,
            "appeal": appeal,
            "panel": appeal.assignments.select_related("curator"),
            "votes": selectors.appeal_votes_visible(user, appeal),
            "can_judge": can_judge,
            "is_appellant": user.pk == appeal.appellant_id,
        },
    )
