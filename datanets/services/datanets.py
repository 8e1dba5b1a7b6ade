"""Datanet settings: create a Datanet, change its settings, choose its curators. Each change writes an audit row."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from accounts.audit import audit_record
from accounts.models import User
from core.errors import Conflict, Forbidden, UserError
from datanets import selectors
from datanets.models import Datanet, Membership, Record

DATANET_FIELDS = (
    "title",
    "domain",
    "description",
    "license",
    "guidelines",
    "record_kind",
    "labels",
    "approvals_needed",
    "rejections_needed",
    "max_extra_votes",
    "appeal_panel",
    "near_dup_threshold",
    "is_public",
)


def _snapshot_of(datanet: Datanet) -> dict[str, Any]:
    return {field: getattr(datanet, field) for field in DATANET_FIELDS}


def datanet_create(
    *, owner: User, title: str, slug: str = "", curators: list[User] | None = None, **fields: Any
) -> Datanet:
    if not owner.is_authenticated:
        raise Forbidden("Log in to create a Datanet.")
    slug = slugify(slug or title)[:60]
    if not slug:
        raise UserError("Give the Datanet a title with at least one letter or digit.")
    unknown = set(fields) - set(DATANET_FIELDS)
    if unknown:
        raise UserError(f"Unknown Datanet settings: {', '.join(sorted(unknown))}.")
    datanet = Datanet(owner=owner, title=title.strip(), slug=slug, **fields)
    datanet.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        try:
            with transaction.atomic():
                datanet.save()
        except IntegrityError:
            raise Conflict(f"The address '{slug}' is taken: choose another slug.") from None
        for curator in curators or []:
            Membership.objects.get_or_create(datanet=datanet, user=curator, role=Membership.Role.CURATOR)
        audit_record(actor=owner, action="datanet.create", target=datanet, after=_snapshot_of(datanet))
    return datanet


def datanet_update(*, actor: User, datanet: Datanet, **fields: Any) -> Datanet:
    if not selectors.is_owner(actor, datanet):
        raise Forbidden("Only the Datanet's owner can change its settings.")
    unknown = set(fields) - set(DATANET_FIELDS)
    if unknown:
        raise UserError(f"Unknown Datanet settings: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        datanet = Datanet.objects.select_for_update().get(pk=datanet.pk)
        before = _snapshot_of(datanet)
        has_records = Record.objects.filter(datanet=datanet).exists()
        if has_records and "record_kind" in fields and fields["record_kind"] != datanet.record_kind:
            raise Conflict("The record kind cannot change once records exist: create a new Datanet instead.")
        if has_records and "labels" in fields and datanet.record_kind == "labeled_text":
            removed = set(datanet.labels) - set(fields["labels"] or [])
            if removed and Record.objects.filter(datanet=datanet, label__in=removed).exists():
                raise Conflict(
                    f"Records use the label(s) {', '.join(sorted(removed))}: labels in use cannot be removed."
                )
        for key, value in fields.items():
            setattr(datanet, key, value)
        datanet.full_clean()
        datanet.save()
        audit_record(actor=actor, action="datanet.update", target=datanet, before=before, after=_snapshot_of(datanet))
    return datanet


def curator_set(*, actor: User, datanet: Datanet, user: User, curator: bool) -> None:
    if not selectors.is_owner(actor, datanet):
        raise Forbidden("Only the Datanet's owner can choose its curators.")
    with transaction.atomic():
        if curator:
            _, created = Membership.objects.get_or_create(datanet=datanet, user=user, role=Membership.Role.CURATOR)
        else:
            created = bool(
                Membership.objects.filter(datanet=datanet, user=user, role=Membership.Role.CURATOR).delete()[0]
            )
        if created:
            audit_record(
                actor=actor,
                action="curator.add" if curator else "curator.remove",
                target=datanet,
                after={"user": user.username},
            )
