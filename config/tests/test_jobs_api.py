"""Issue 12, oracles: a job answers only to who started it and to staff; to anyone else it does not exist (here in
config because it needs accounts' factories, and core imports nothing to its right)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from core.jobs import job_create

pytestmark = pytest.mark.django_db


def test_a_job_answers_to_its_creator_and_staff_only():
    creator = UserFactory()
    job = job_create(kind="export", user=creator, message="Exporting ward notes")
    url = f"/api/jobs/{job.pk}/"
    missing = f"/api/jobs/{'0' * 8}-0000-0000-0000-{'0' * 12}/"
    anonymous = APIClient()
    assert anonymous.get(url).status_code == anonymous.get(missing).status_code == 404
    stranger = APIClient()
    stranger.force_login(UserFactory())
    hidden = stranger.get(url)
    assert hidden.status_code == 404 and "ward notes" not in hidden.content.decode()
    assert hidden.json() == stranger.get(missing).json()
    assert stranger.post(f"{url}cancel/").status_code == 404
    for user in (creator, UserFactory(is_staff=True)):
        api = APIClient()
        api.force_login(user)
        assert api.get(url).json()["message"] == "Exporting ward notes"
    owner = APIClient()
    owner.force_login(creator)
    assert owner.post(f"{url}cancel/").status_code == 200


def test_a_datanets_owner_watches_the_jobs_that_ran_on_it_but_cannot_cancel_them(tmp_path):
    from datanets import services
    from datanets.tests.factories import DatanetFactory, jsonl, review_records

    for public in (True, False):
        datanet = DatanetFactory(is_public=public)
        contributor = UserFactory()
        if not public:
            from datanets.models import Membership

            Membership.objects.create(datanet=datanet, user=contributor, role=Membership.Role.CONTRIBUTOR)
        result = services.contribution_from_paste(
            user=contributor, datanet=datanet, text=jsonl(review_records(2)).decode(), fmt="jsonl"
        )
        url = f"/api/jobs/{result.contribution.job_id}/"
        owner = APIClient()
        owner.force_login(datanet.owner)
        assert owner.get(url).status_code == 200
        refused = owner.post(f"{url}cancel/")
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        stranger = APIClient()
        stranger.force_login(UserFactory())
        assert stranger.get(url).status_code == 404
        assert APIClient().get(url).status_code == 404
        other_owner = APIClient()
        other_owner.force_login(DatanetFactory().owner)  # owning some other Datanet gives nothing here
        assert other_owner.get(url).status_code == 404
