"""Writes for Datanets, one module per capability; views, the API, tasks and commands call these.

- ``datanets``: create a Datanet, change its settings, choose its curators.
- ``uploads``: chunked uploads, whole files and pastes become contributions (quota, format and size checks).
- ``ingestion``: a contribution's file becomes records on a worker (validation, exact and near duplicates, quota).
- ``review``: curators' votes and quorum.
- ``snapshots``: publish content-hashed snapshots, split train/validation, export them.
- ``standing``: a contributor's standing (penalty points, extra approvals), set by the rewards app.
- ``appeals``: a party appeals a decision; a panel drawn by standing (or the owner) decides it.

The names below are re-exported so ``from datanets import services; services.vote_cast(...)`` reads as one API.
"""

from datanets.services.appeals import appeal_file, appeal_vote, appeals_expire
from datanets.services.datanets import DATANET_FIELDS, curator_set, datanet_create, datanet_update
from datanets.services.ingestion import contribution_ingest
from datanets.services.review import vote_cast
from datanets.services.snapshots import snapshot_export_request, snapshot_export_run, snapshot_publish, split_of
from datanets.services.standing import contributor_standing_set
from datanets.services.uploads import (
    ContributionResult,
    contribution_from_paste,
    contribution_from_path,
    upload_append,
    upload_complete,
    upload_dir,
    upload_part_path,
    upload_start,
)

__all__ = [
    "appeal_file",
    "appeal_vote",
    "appeals_expire",
    "DATANET_FIELDS",
    "ContributionResult",
    "contribution_from_paste",
    "contribution_from_path",
    "contribution_ingest",
    "contributor_standing_set",
    "curator_set",
    "datanet_create",
    "datanet_update",
    "snapshot_export_request",
    "snapshot_export_run",
    "snapshot_publish",
    "split_of",
    "upload_append",
    "upload_complete",
    "upload_dir",
    "upload_part_path",
    "upload_start",
    "vote_cast",
]
