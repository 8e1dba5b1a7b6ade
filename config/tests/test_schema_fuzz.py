"""Schemathesis against our own OpenAPI schema (drf-spectacular), in-process through the WSGI app.

Every operation is called with generated requests as an anonymous client and with the API tokens of three roles
(a contributor, a curator, an owner who also builds models), half the time on real objects (a public and a private
Datanet, their records, snapshots, contributions, jobs, an epoch) so the 200 paths run too, then a stateful run
follows the links schemathesis infers between operations. Checks: no 5xx, every status documented, every body and
content type as the schema says. Bounded: a fixed number of examples per operation and role, derandomized, so a run
takes about the same time and finds the same things every time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiToken
from accounts.services import token_create
from accounts.tests.factories import UserFactory
from core.models import Job
from datanets import services as datanets_services
from datanets.models import Contribution, Membership, Record
from datanets.tests.factories import jsonl, review_records, snapshot_with
from models_factory import services as mf
from settlement import rewards

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_ROLE = 6  # per operation; about 60 operations x 4 roles
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 6
ROLES = ["anonymous", "contributor", "curator", "owner"]


@dataclass
class World:
    tokens: dict[str, ApiToken] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    real: dict[str, list[Any]] = field(default_factory=dict)
    seen: dict[str, set[int]] = field(default_factory=dict)  # statuses answered, per operation

    def headers(self, role: str) -> dict[str, str]:
        cache.clear()  # throttle counters: every case reaches its view (throttles have their own tests)
        if role == "anonymous":
            return {}
        # A case may revoke its own token (POST /api/tokens/{id}/revoke/): keep it live so later cases run as the role.
        ApiToken.objects.filter(pk=self.tokens[role].pk).update(revoked_at=None)
        return {"Authorization": f"Bearer {self.raw[role]}"}


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """The WSGI handler closes the database connection after each request; inside a test transaction it must not
    (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(in_process_requests: None) -> World:
    public, public_snapshot = snapshot_with(review_records(6), slug="fuzz-public", title="Fuzz public")
    private, private_snapshot = snapshot_with(
        review_records(6), slug="fuzz-private", title="Fuzz private", is_public=False, owner=public.owner
    )
    owner = public.owner
    contributor, curator = UserFactory(), UserFactory()
    for datanet in (public, private):
        Membership.objects.create(datanet=datanet, user=curator, role=Membership.Role.CURATOR)
        Membership.objects.create(datanet=datanet, user=contributor, role=Membership.Role.CONTRIBUTOR)
    pasted = datanets_services.contribution_from_paste(
        user=contributor, datanet=public, text=jsonl(review_records(3)).decode(), fmt="jsonl"
    )
    upload = datanets_services.upload_start(user=contributor, datanet=public, filename="more.jsonl", size=100)
    model = mf.model_create(builder=owner, datanet_slug=public.slug, name="Fuzz model")
    epoch = rewards.epoch_open_get()
    w = World()
    for role, user in (("contributor", contributor), ("curator", curator), ("owner", owner)):
        w.tokens[role], w.raw[role] = token_create(user=user, name=f"fuzz {role}")
    w.real = {
        "/api/datanets/{slug}": [public.slug, private.slug],
        "/api/ml-models/{slug}": [model.slug],
        "/api/records/{id}": list(
            Record.objects.filter(datanet__in=[public, private]).values_list("pk", flat=True)[:4]
        ),
        "/api/snapshots/{id}": [public_snapshot.pk, private_snapshot.pk],
        "/api/contributions/{id}": list(Contribution.objects.values_list("pk", flat=True)[:3]),
        "/api/uploads/{id}": [str(upload.pk)],
        "/api/jobs/{id}": [
            str(pasted.contribution.job_id),
            *[str(j) for j in Job.objects.values_list("pk", flat=True)[:2]],
        ],
        "/api/rewards/epochs/{number}": [epoch.number],
        "/api/rewards/proofs/{number}": [epoch.number],
    }
    return w


def load_schema() -> Any:
    document = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document, default=str)))
    schema.app = get_wsgi_application()
    return schema


def with_real_objects(case: Any, world: World, pick: Callable[[list[Any]], Any]) -> None:
    """Point the case's path parameters at objects that exist (the parameter's value in a real URL prefix)."""
    for prefix, values in world.real.items():
        name = prefix.rsplit("{", 1)[1].rstrip("}")
        if case.path.startswith(prefix) and name in case.path_parameters and values:
            case.path_parameters[name] = pick(values)


def failure_lines(role: str, label: str, exc: BaseException) -> list[str]:
    """One line per distinct failure: the check's title and the first lines of its explanation."""
    parts = getattr(exc, "exceptions", None) or [exc]
    lines = []
    for part in parts:
        text = " ".join(str(part).split())[:400]
        lines.append(f"{role:11} {label}: {type(part).__name__}: {text}")
    return lines


def test_every_operation_answers_as_documented_for_every_role(world: World) -> None:
    schema = load_schema()
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40, "the schema lost its operations"
    for operation in operations:
        for role in ROLES:
            fuzz_operation(operation, role, world, failures)
    answered_200 = {label for label, statuses in world.seen.items() if 200 in statuses}
    assert {"GET /api/datanets/{slug}/", "GET /api/records/{id}/", "GET /api/snapshots/{id}/"} <= answered_200
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(failures.values()))


def fuzz_operation(operation: Any, role: str, world: World, failures: dict[str, str]) -> None:
    label = operation.label

    @given(case=operation.as_strategy(), real=st.booleans(), pick=st.randoms(use_true_random=False))
    @hsettings(
        max_examples=EXAMPLES_PER_ROLE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, real: bool, pick: Any) -> None:
        if real:
            with_real_objects(case, world, pick.choice)
        try:
            response = case.call(headers=world.headers(role))
            world.seen.setdefault(label, set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as exc:
            for line in failure_lines(role, label, exc):
                failures.setdefault(line.split(": ", 2)[0] + line.split(": ", 2)[1], line)

    run()


def test_stateful_sequences_answer_as_documented(world: World) -> None:
    schema = load_schema()
    failures: dict[str, str] = {}
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        role_cycle = ["owner", "contributor", "curator"]
        calls = 0

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            Machine.calls += 1
            return {"headers": world.headers(self.role_cycle[Machine.calls % len(self.role_cycle)])}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, FailureGroup) as exc:
                for line in failure_lines("stateful", case.operation.label, exc):
                    failures.setdefault(line, line)

    try:
        Machine.run(
            settings=hsettings(
                max_examples=STATEFUL_SCENARIOS,
                stateful_step_count=STATEFUL_STEPS,
                derandomize=True,
                # No shrinking: each step changes the world the next examples draw links from, so a replay draws
                # differently and hypothesis calls that flaky; a failure is reported as first found instead.
                phases=[Phase.explicit, Phase.generate],
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    except FlakyStrategyDefinition:
        # Links draw their values from earlier responses, and each step changes the world they come from; when
        # Hypothesis notices a draw that went differently from an earlier scenario it stops the machine. Every call
        # made until then was checked (``failures``), and the machine must have made a real number of them.
        pass
    assert Machine.calls >= 10, f"the state machine made only {Machine.calls} calls"
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(failures.values()))
