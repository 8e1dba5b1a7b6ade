"""The daily byte quota holds whatever the sequence of uploads: open uploads hold their declared size from the
start, completing re-checks quota and role, open uploads are capped and expire, parallel starts cannot overshoot."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from accounts.tests.factories import UserFactory
from core.errors import Conflict, NotFound, QuotaExceeded, TooLarge
from datanets import selectors, services
from datanets.models import Contribution, Membership, Upload
from datanets.services import uploads
from datanets.tests.factories import DatanetFactory, distinct_records, jsonl

LIMIT = 2_000


def body(n: int, seed: int) -> bytes:
    rows = distinct_records(max(1, n))
    for i, row in enumerate(rows):
        row["text"] = f"{seed}-{i}-{row['text']}"
    return jsonl(rows)


def stored_today(user) -> int:
    return selectors.quota_used_today(user)["bytes"]


@pytest.mark.django_db
def test_open_uploads_hold_their_declared_size(settings) -> None:
    settings.QUOTA_BYTES_PER_DAY = LIMIT
    datanet, user = DatanetFactory(), UserFactory()
    services.upload_start(user=user, datanet=datanet, filename="a.jsonl", size=1_500)
    with pytest.raises(QuotaExceeded, match="held by uploads still in progress"):
        services.upload_start(user=user, datanet=datanet, filename="b.jsonl", size=600)


@pytest.mark.django_db
def test_completing_rechecks_role_and_quota(settings) -> None:
    settings.QUOTA_BYTES_PER_DAY = LIMIT
    datanet = DatanetFactory(is_public=False)
    user = UserFactory()
    Membership.objects.create(datanet=datanet, user=user, role=Membership.Role.CONTRIBUTOR)
    data = body(3, 1)
    upload = services.upload_start(user=user, datanet=datanet, filename="a.jsonl", size=len(data))
    services.upload_append(user=user, upload_id=str(upload.pk), offset=0, data=data)
    Membership.objects.filter(datanet=datanet, user=user).delete()
    with pytest.raises(NotFound):  # a former member is answered like a stranger: as if the Datanet were not there
        services.upload_complete(user=user, upload_id=str(upload.pk))
    assert not Contribution.objects.filter(contributor=user).exists()


@pytest.mark.django_db
def test_open_uploads_are_capped_and_expire_freeing_their_quota(settings) -> None:
    settings.QUOTA_BYTES_PER_DAY = LIMIT
    settings.UPLOADS_OPEN_PER_USER = 2
    datanet, user = DatanetFactory(), UserFactory()
    first = services.upload_start(user=user, datanet=datanet, filename="a.jsonl", size=900)
    services.upload_start(user=user, datanet=datanet, filename="b.jsonl", size=900)
    with pytest.raises(QuotaExceeded, match="uploads in progress"):
        services.upload_start(user=user, datanet=datanet, filename="c.jsonl", size=10)
    part = uploads.upload_part_path(first)
    assert part.exists()
    Upload.objects.filter(pk=first.pk).update(updated_at=timezone.now() - timedelta(hours=25))
    services.upload_start(user=user, datanet=datanet, filename="c.jsonl", size=900)  # the stale one expired
    assert Upload.objects.get(pk=first.pk).status == Upload.Status.ABORTED and not part.exists()


@pytest.mark.django_db(transaction=True)
def test_parallel_starts_cannot_overshoot_the_quota(settings) -> None:
    settings.QUOTA_BYTES_PER_DAY = LIMIT
    settings.UPLOADS_OPEN_PER_USER = 50
    datanet, user = DatanetFactory(), UserFactory()

    def start() -> None:
        try:
            services.upload_start(user=user, datanet=datanet, filename="a.jsonl", size=700)
        except Exception:  # the quota, or SQLite's write lock timing out: either way, nothing admitted over the limit
            pass
        finally:
            close_old_connections()

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert selectors.upload_bytes_reserved(user) <= LIMIT
    assert Upload.objects.filter(user=user).count() == 2


step = st.one_of(
    st.tuples(st.just("start"), st.integers(1, 12)),  # start an upload of n records, send all its bytes
    st.tuples(st.just("complete"), st.integers(0, 5)),  # complete the i-th started upload
    st.tuples(st.just("paste"), st.integers(1, 12)),
    st.tuples(st.just("file"), st.integers(1, 12)),
)


@pytest.mark.django_db
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_no_sequence_of_uploads_passes_the_byte_quota(settings, tmp_path_factory, steps) -> None:
    settings.QUOTA_BYTES_PER_DAY = LIMIT
    settings.UPLOADS_OPEN_PER_USER = 50
    datanet, user = DatanetFactory(), UserFactory()
    started: list[Upload] = []
    folder = tmp_path_factory.mktemp("quota")
    for seed, (kind, n) in enumerate(steps):
        try:
            if kind == "start":
                data = body(n, seed)
                upload = services.upload_start(user=user, datanet=datanet, filename="a.jsonl", size=len(data))
                services.upload_append(user=user, upload_id=str(upload.pk), offset=0, data=data)
                started.append(upload)
            elif kind == "complete" and started:
                services.upload_complete(user=user, upload_id=str(started[n % len(started)].pk))
            elif kind == "paste":
                services.contribution_from_paste(user=user, datanet=datanet, text=body(n, seed).decode())
            elif kind == "file":
                path = folder / f"f{seed}.jsonl"
                path.write_bytes(body(n, seed))
                services.contribution_from_path(user=user, datanet=datanet, path=path, filename=path.name)
        except QuotaExceeded:
            pass
        assert stored_today(user) + selectors.upload_bytes_reserved(user) <= LIMIT


CHUNK = 64
POOL = distinct_records(40, words=5)
LOOSE = 10**9
# One limit tight per run, so each is the one that binds (a tight byte quota stops uploads before rows add up).
TIGHT = {"bytes": (1_500, LOOSE, LOOSE), "rows": (LOOSE, 24, LOOSE), "records": (LOOSE, LOOSE, 5)}


def rows_body(picks: list[int]) -> bytes:
    """JSONL of rows drawn from a small pool, so exact duplicates (which count as rows, not records) happen."""
    return jsonl([POOL[i % len(POOL)] for i in picks])


interleaved_step = st.one_of(
    st.tuples(st.just("open"), st.lists(st.integers(0, 39), min_size=1, max_size=8)),
    st.tuples(st.just("part"), st.integers(0, 5), st.booleans()),  # next chunk of open upload i, or a wrong offset
    st.tuples(st.just("complete"), st.integers(0, 5)),
    st.tuples(st.just("paste"), st.lists(st.integers(0, 39), min_size=1, max_size=8)),
    st.tuples(st.just("file"), st.lists(st.integers(0, 39), min_size=1, max_size=8)),
    st.tuples(st.just("ingest"), st.integers(0, 5)),  # a worker picks up the i-th waiting contribution
)


@pytest.mark.django_db
@pytest.mark.parametrize("tight", list(TIGHT))
@hsettings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(interleaved_step, min_size=1, max_size=14))
def test_no_interleaving_of_uploads_passes_the_byte_or_row_quota(settings, tmp_path_factory, tight, steps) -> None:
    """Pastes, whole files and resumable uploads sent in parts, several open at once with their parts interleaved
    (and some sent at the wrong offset), completed and ingested in any order: the bytes stored and held never pass
    the daily byte quota, and the rows read and records kept never pass the row and record quotas."""
    BYTES_LIMIT, ROWS_LIMIT, RECORDS_LIMIT = TIGHT[tight]  # noqa: N806
    settings.QUOTA_BYTES_PER_DAY = BYTES_LIMIT
    settings.QUOTA_ROWS_PER_DAY = ROWS_LIMIT
    settings.QUOTA_RECORDS_PER_DAY = RECORDS_LIMIT
    settings.UPLOADS_OPEN_PER_USER = 4
    settings.INGEST_BATCH_SIZE = 3
    datanet, user = DatanetFactory(), UserFactory()
    folder = tmp_path_factory.mktemp("interleaved")
    open_uploads: list[tuple[Upload, bytes]] = []
    waiting: list[str] = []
    for seed, (kind, *args) in enumerate(steps):
        try:
            if kind == "open":
                data = rows_body(args[0])
                upload = services.upload_start(user=user, datanet=datanet, filename=f"u{seed}.jsonl", size=len(data))
                open_uploads.append((upload, data))
            elif kind == "part" and open_uploads:
                upload, data = open_uploads[args[0] % len(open_uploads)]
                received = Upload.objects.get(pk=upload.pk).received
                offset = received if args[1] else received + CHUNK
                services.upload_append(
                    user=user, upload_id=str(upload.pk), offset=offset, data=data[offset : offset + CHUNK]
                )
            elif kind == "complete" and open_uploads:
                upload, data = open_uploads[args[0] % len(open_uploads)]
                result = services.upload_complete(user=user, upload_id=str(upload.pk))
                if result.created:
                    waiting.append(str(result.contribution.job_id))
            elif kind in {"paste", "file"}:
                data = rows_body(args[0])
                if kind == "paste":
                    result = services.contribution_from_paste(user=user, datanet=datanet, text=data.decode())
                else:
                    path = folder / f"f{seed}.jsonl"
                    path.write_bytes(data)
                    result = services.contribution_from_path(user=user, datanet=datanet, path=path, filename=path.name)
                if result.created:
                    waiting.append(str(result.contribution.job_id))
            elif kind == "ingest" and waiting:
                services.contribution_ingest(job_id=waiting.pop(args[0] % len(waiting)))
        except (QuotaExceeded, Conflict, TooLarge, NotFound):
            pass  # refused with a sentence: what matters is that nothing passed the limits
        used = selectors.quota_used_today(user)
        assert used["bytes"] + selectors.upload_bytes_reserved(user) <= BYTES_LIMIT, steps[: seed + 1]
        assert used["rows"] <= ROWS_LIMIT, steps[: seed + 1]
        assert used["records"] <= RECORDS_LIMIT, steps[: seed + 1]
    for job_id in waiting:  # the rest of the work, as the worker would do it
        services.contribution_ingest(job_id=job_id)
    used = selectors.quota_used_today(user)
    assert used["rows"] <= ROWS_LIMIT and used["records"] <= RECORDS_LIMIT
