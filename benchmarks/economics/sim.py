"""One seed of the economics simulation: a population of agents through a few epochs of the platform.

Each epoch: agents upload; curators review (adaptive quorum honoured); the owner publishes a snapshot, trains the
Datanet's model on it (head-only) and funds the epoch pool; the bad builder trains its own version afterwards;
consumers and the self-query farmer pay for inferences on the owner's model; curators resolve the valuation's flags;
the admin closes the epoch. The agents decide (``agents.py``); the platform acts (``platform.py``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from benchmarks.economics import agents as ag
from benchmarks.economics.platform import Platform

OWNER_MODEL = "Review sentiment"
OWNER_HYPERPARAMETERS = {"epochs": 3, "max_length": 48}
# The bad builder's model: one pass at a learning rate too small to learn, on the first snapshot (where its own
# records weigh most), registered after the owner's so that it is the newest valued version.
BAD_HYPERPARAMETERS = {"epochs": 1, "max_length": 16, "lr": 1e-6}
CONSUMER_CREDITS = 10_000


def _key(text: str, label: str) -> str:
    return hashlib.sha256(f"{label}\x00{text}".encode()).hexdigest()


@dataclass
class SeedResult:
    seed: int
    agents: list[ag.Agent]
    earnings: dict[str, dict[str, float]]
    status_counts: dict[str, dict[str, int]]
    penalty_points: dict[str, int]
    notes: dict[str, Any] = field(default_factory=dict)


def run_seed(seed: int, size: ag.Size, *, log: Any = print) -> SeedResult:
    rng = random.Random(seed)
    population = ag.population(size)
    by_account = {a: agent for agent in population for a in agent.accounts}
    curators = [a for agent in population if agent.is_curator for a in agent.accounts]
    platform = Platform(curators=curators)
    truth: dict[str, ag.Upload] = {}
    own_uploads: dict[str, list[ag.Upload]] = {}
    topics = ag.popular_topics(rng)
    platform.grant("consumer", CONSUMER_CREDITS)
    platform.grant("self_query", CONSUMER_CREDITS)
    public: list[ag.Upload] = []
    owner_version: int | None = None
    deciding: list[str] = []
    bad_share: list[tuple[float, float]] = []
    self_query = next(a for a in population if a.strategy == "self_query")
    builder = next(a for a in population if a.strategy == "bad_builder")
    bloc = next(a for a in population if a.strategy == "colluding_curators")

    for epoch in range(size.epochs):
        # 1. Uploads.
        for agent in population:
            if agent.strategy == "honest_curator":
                continue
            batch = ag.uploads_for(agent, rng, size.records_per_epoch, public=public, topics=topics, epoch=epoch)
            for account, rows in batch.items():
                for u in rows:
                    truth.setdefault(_key(u.text, u.label), u)
                own_uploads.setdefault(account, []).extend(rows)
                agent.records_uploaded += len(rows)
                platform.upload(account, [(u.text, u.label) for u in rows])
        # 2. Review.
        _review(platform, rng, population, by_account, bloc, truth)
        # 3. Snapshot, the owner's model, the pool.
        if platform.publish() is None:
            log(f"  seed {seed} epoch {epoch + 1}: nothing approved, nothing published")
            platform.close_epoch()
            continue
        public = [truth.get(_key(t, label), ag.Upload(t, label, True)) for t, label in platform.public_records()]
        owner_version = platform.train("owner", model_name=OWNER_MODEL, hyperparameters=OWNER_HYPERPARAMETERS)
        platform.fund_pool(size.pool_credits_per_epoch)
        bad_version = platform.train(
            "bad_builder", model_name="Sentiment (cheap)", snapshot_version=1, hyperparameters=BAD_HYPERPARAMETERS
        )
        if bad_version is not None:
            builder.training_runs += 1
        decider = platform.deciding_version()
        deciding.append("bad_builder" if decider == bad_version and bad_version else "owner")
        if owner_version and bad_version:
            bad_share.append(
                (
                    platform.pool_weight_share(bad_version, builder.accounts),
                    platform.pool_weight_share(owner_version, builder.accounts),
                )
            )
        # 4. Paid inferences.
        if owner_version is not None:
            for _ in range(size.queries_per_epoch):
                platform.infer("consumer", owner_version, ag.consumer_query(rng, topics))
            for text in ag.self_queries(
                self_query, rng, own_uploads.get("self_query", []), size.self_queries_per_epoch
            ):
                receipt, paid = platform.infer("self_query", owner_version, text)
                self_query.credits_paid += paid
                if receipt:
                    self_query.own_receipts.append(receipt)
        # 5. Flags from the valuation go back to curators.
        for flag in platform.open_flags():
            name = rng.choice(curators)
            agent = by_account[name]
            decision = ag.flag_decision(agent, rng, truth.get(_key(flag.text, flag.label)), flag.contributor)
            if platform.resolve_flag(name, flag.id, decision):
                agent.votes_cast += 1
        # 6. Close.
        platform.close_epoch()
        log(f"  seed {seed} epoch {epoch + 1}/{size.epochs} closed")

    self_earned = platform.earned_from_receipts(self_query.accounts, self_query.own_receipts)
    notes = {
        "deciding_version": deciding,
        "bad_builder_pool_weight_share": bad_share,
        "self_query_paid": self_query.credits_paid,
        "self_query_earned_from_own_receipts": self_earned,
    }
    return SeedResult(
        seed=seed,
        agents=population,
        earnings=platform.earnings(),
        status_counts=platform.status_counts(),
        penalty_points=platform.penalty_points(),
        notes=notes,
    )


def _review(
    platform: Platform,
    rng: random.Random,
    population: list[ag.Agent],
    by_account: dict[str, ag.Agent],
    bloc: ag.Agent,
    truth: dict[str, ag.Upload],
) -> None:
    """Every pending record gets votes until it resolves or no curator is left. The bloc votes first on its own
    members' records (it watches for them); otherwise curators come in random order, and a curator that an
    adaptive-quorum request reserved the next vote for takes it."""
    curators = [a for agent in population if agent.is_curator for a in agent.accounts]
    for record in platform.pending():
        upload = truth.get(_key(record.text, record.label))
        order = curators[:]
        rng.shuffle(order)
        if record.contributor in bloc.accounts:
            order.sort(key=lambda c: c not in bloc.accounts)
        leader_vote: str | None = None
        tried: set[str] = set()
        while True:
            voted = platform.voters(record.id)
            reserved = platform.requested_curator(record.id)
            if reserved:
                candidates = [reserved] if reserved not in tried else []
            else:
                candidates = [c for c in order if c not in voted and c not in tried and c != record.contributor]
            if not candidates:
                break
            name = candidates[0]
            tried.add(name)
            agent = by_account[name]
            decision = ag.curator_decision(agent, rng, upload, record.contributor, leader_vote)
            if agent is bloc and leader_vote is None:
                leader_vote = decision
            result = platform.vote(name, record.id, decision)
            if result is None:
                continue
            agent.votes_cast += 1
            if result.status != "pending":
                break
