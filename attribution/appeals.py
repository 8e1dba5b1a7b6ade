"""A confirmed flag as an appealable decision (``datanets.appeals``): the record's contributor appeals it; the
curator who confirmed it does not judge the appeal; an overturn dismisses the flag and approves the record again.

Penalties that came from the flag are the rewards app's: it listens for this kind being overturned.
"""

from __future__ import annotations

from typing import Any

from accounts.audit import audit_record
from accounts.models import User
from attribution.models import Flag
from datanets import appeals
from datanets.models import Appeal, Record


def _flag_target(object_id: str) -> appeals.AppealTarget | None:
    if not object_id.isdigit():
        return None
    flag = (
        Flag.objects.select_related("record__datanet", "version")
        .filter(pk=int(object_id), status=Flag.Status.CONFIRMED)
        .first()
    )
    if flag is None:
        return None
    return appeals.AppealTarget(
        datanet=flag.record.datanet,
        party_id=flag.record.contributor_id,
        decided_by=[flag.resolved_by_id] if flag.resolved_by_id else [],
        summary=f"Flag on record #{flag.record_id} confirmed harmful: {flag.reason}",
        url=flag.record.get_absolute_url(),
        record_id=flag.record_id,
    )


def _flag_overturn(appeal: Appeal, actor: User | None) -> dict[str, Any]:
    flag = Flag.objects.select_for_update().get(pk=int(appeal.object_id))
    before = {"flag": flag.status}
    flag.status = Flag.Status.DISMISSED
    flag.save(update_fields=["status"])
    restored = Record.objects.filter(pk=flag.record_id, status=Record.Status.REJECTED).update(
        status=Record.Status.APPROVED
    )
    audit_record(
        actor=actor,
        action="flag.overturn",
        target=flag,
        before=before,
        after={"flag": flag.status, "record_restored": bool(restored), "appeal": appeal.pk},
    )
    return {"flag": flag.pk, "record": flag.record_id, "record_restored": bool(restored)}


def register_flag_kind() -> None:
    appeals.register(
        "flag",
        label="Confirmed flag",
        target=_flag_target,
        overturn=_flag_overturn,
        refusal="There is no confirmed flag with that id; only a flag a curator confirmed can be appealed.",
    )
