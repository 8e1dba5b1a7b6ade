"""Agreement: Krippendorff's alpha (checked against Krippendorff's own worked example), a curator's kappa with
outcomes (about 0 for approving everything), and both on the stats page and API."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from datanets import selectors, services
from datanets.agreement import krippendorff_alpha_nominal, smoothed_kappa
from datanets.tests.factories import DatanetFactory, add_curators
from datanets.tests.test_appeals import pending_records


def test_alpha_matches_krippendorffs_worked_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, nominal alpha 0.743.
    units = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4], [4, 4, 4, 4]]
    units += [[1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]) is None  # no variation: undefined
    assert krippendorff_alpha_nominal([["a", "b"], ["b", "a"]]) < 0


def test_approving_everything_scores_near_chance_and_judging_scores_high() -> None:
    rubber_stamp = [(True, True)] * 80 + [(True, False)] * 20
    careful = [(True, True)] * 20 + [(False, False)] * 5
    assert abs(smoothed_kappa(rubber_stamp)) < 0.05 and smoothed_kappa(careful) > 0.85
    assert smoothed_kappa([]) == 0


@pytest.mark.django_db
def test_stats_show_alpha_per_label_and_each_curators_standing() -> None:
    datanet = DatanetFactory(approvals_needed=2, rejections_needed=2, max_extra_votes=0)
    careful, stamp, third = add_curators(datanet, 3)
    records = pending_records(datanet, UserFactory(), 8)
    for i, record in enumerate(records):
        good = i % 4 != 0
        services.vote_cast(curator=careful, record_id=record.pk, decision="approve" if good else "reject", reason="r")
        services.vote_cast(curator=stamp, record_id=record.pk, decision="approve")
        if not good:
            services.vote_cast(curator=third, record_id=record.pk, decision="reject", reason="r")
    standings = selectors.curator_standings(datanet)
    assert standings[careful.pk].standing > standings[stamp.pk].standing
    body = APIClient().get(f"/api/datanets/{datanet.slug}/stats/").json()
    assert -1 <= body["agreement"]["alpha"] < 1 and {x["label"] for x in body["agreement"]["labels"]} == {
        "positive",
        "negative",
    }
    by_name = {c["curator"]: c for c in body["curators"]}
    assert by_name[careful.username]["agreement"] == 1 and by_name[stamp.username]["agreement"] == 0.75
    assert by_name[careful.username]["standing"] > by_name[stamp.username]["standing"]
    html = Client().get(f"/d/{datanet.slug}/stats/").content.decode()
    assert 'data-testid="alpha"' in html and "Krippendorff" in html and 'data-testid="standing"' in html
