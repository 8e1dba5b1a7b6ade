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
from core.errors import Forbidden, QuotaExceeded
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
    with pytest.raises(Forbidden, match="private"):
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
