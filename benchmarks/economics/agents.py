"""Agents of the economics simulation: who uploads what, how curators vote, and what each strategy costs.

Django-free: an agent only produces records, votes and queries, and the simulation (``sim.py``) hands them to the
platform through ``platform.py``. Costs are in credits (the unit a consumer pays in), so a return on cost is
(credits earned - credits' worth spent) / credits' worth spent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

LABELS = ["negative", "positive"]

DRUGS = (
    "Zolvex Mirapam Tenarol Quenza Halpryn Ostavir Belcaine Rivopan Duxeril Sarnox Lemidol Corvasta Fenprax Ulmoren "
    "Taxiprol Vendura Kelotan Amprizol"
).split()
CONDITIONS = (
    "migraines|back pain|anxiety|insomnia|acne|high blood pressure|depression|allergies|acid reflux|arthritis|"
    "asthma|nerve pain"
).split("|")
DURATIONS = "two weeks|a month|three months|six months|a year|ten days|eight weeks".split("|")
GOOD = [
    "it worked within days and I feel like myself again",
    "the relief was real and the side effects were mild",
    "my symptoms are almost gone and I sleep through the night",
    "I would recommend it, nothing else helped this much",
    "it changed my life, I can work and exercise again",
    "no side effects at all and the pain eased quickly",
    "steady improvement every week, my doctor is pleased",
    "finally something that works without making me drowsy",
]
BAD = [
    "the nausea was constant and I had to stop",
    "it did nothing for me except cause headaches",
    "I gained weight and felt dizzy all the time",
    "terrible rash after a week, never again",
    "my symptoms got worse and I could not sleep",
    "awful side effects and no benefit whatsoever",
    "it made me anxious and shaky, a waste of money",
    "I felt sick every morning and the pain stayed",
]
TAILS = [
    "",
    " Taking it with food helped a little.",
    " My pharmacist warned me about this.",
    " I switched from a generic version.",
    " The dose was raised once.",
    " Insurance covered most of it.",
]
JUNK_WORDS = "lorem click free bonus token moon airdrop asdf qwerty zzz buy now best price win".split()


@dataclass(frozen=True)
class Review:
    text: str
    true_label: str


def review(rng: random.Random, *, positive: bool | None = None, drug: str = "", condition: str = "") -> Review:
    """A synthetic patient review whose sentiment is its true label."""
    positive = rng.random() < 0.5 if positive is None else positive
    drug = drug or rng.choice(DRUGS)
    condition = condition or rng.choice(CONDITIONS)
    body = rng.choice(GOOD if positive else BAD)
    text = f"I took {drug} for {condition} for {rng.choice(DURATIONS)}; {body}.{rng.choice(TAILS)}"
    return Review(text, "positive" if positive else "negative")


def popular_topics(rng: random.Random, n: int = 3) -> list[tuple[str, str]]:
    """The (drug, condition) pairs most consumers ask about: anyone watching a model's public page can guess them."""
    return [(rng.choice(DRUGS), rng.choice(CONDITIONS)) for _ in range(n)]


def consumer_query(rng: random.Random, topics: list[tuple[str, str]]) -> str:
    """A consumer's input: 70% about a popular topic, the rest about anything."""
    if rng.random() < 0.7:
        drug, condition = rng.choice(topics)
        return review(rng, drug=drug, condition=condition).text
    return review(rng).text


# ---- records as uploaded -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One record as an agent uploads it, with the ground truth the simulation keeps (the platform never sees it)."""

    text: str
    label: str
    good: bool  # a real review with its true label: what an honest curator approves


def honest_upload(rng: random.Random, noise: float) -> Upload:
    r = review(rng)
    if rng.random() < noise:
        return Upload(r.text, other_label(r.true_label), good=False)
    return Upload(r.text, r.true_label, good=True)


def other_label(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def junk_upload(rng: random.Random) -> Upload:
    text = " ".join(rng.choice(JUNK_WORDS) for _ in range(rng.randint(5, 12))) + f" {rng.randint(0, 10**9)}"
    return Upload(text, rng.choice(LABELS), good=False)


def near_copy(rng: random.Random, text: str) -> str:
    """A copy with one cosmetic edit, as a near-duplicate farmer makes it."""
    edits = [
        lambda t: t + " ",
        lambda t: t.replace("I took", "I used", 1),
        lambda t: t.rstrip(".") + "!",
        lambda t: t.replace(";", ",", 1),
        lambda t: "Honestly, " + t[0].lower() + t[1:],
    ]
    return rng.choice(edits)(text)


def near_copy_of(rng: random.Random, u: Upload) -> Upload:
    return Upload(near_copy(rng, u.text), u.label, u.good)


def retopic(text: str, drug: str, condition: str) -> str:
    """The same review about another drug and condition."""
    if not text.startswith("I took ") or " for " not in text:
        return text
    rest = text.split(" for ", 2)
    tail = rest[2] if len(rest) > 2 else ""
    return f"I took {drug} for {condition} for {tail}"


# ---- cost models -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    """What a strategy spends, in credits' worth: effort per uploaded record, per account opened (sybil), per vote
    cast (a curator's time), per training run (a builder's compute); credits spent on inferences are counted as paid.
    """

    per_record: float = 0.0
    per_account: float = 0.0
    per_vote: float = 0.0
    per_training_run: float = 0.0


# A careful reviewer's record costs about half a credit of effort; a clean copy or a generated line costs ~nothing.
HONEST_EFFORT_AT_ZERO_NOISE = 0.5
HONEST_EFFORT_AT_FULL_NOISE = 0.2


def honest_cost(noise: float) -> CostModel:
    frac = min(1.0, noise / 0.4)
    return CostModel(
        per_record=HONEST_EFFORT_AT_ZERO_NOISE + frac * (HONEST_EFFORT_AT_FULL_NOISE - HONEST_EFFORT_AT_ZERO_NOISE)
    )


STRATEGY_COSTS: dict[str, CostModel] = {
    "exact_dup": CostModel(per_record=0.01),
    "near_dup": CostModel(per_record=0.02),
    "paraphrase": CostModel(per_record=0.05),
    "junk": CostModel(per_record=0.01),
    "mislabel": CostModel(per_record=0.03),
    "sybil_ring": CostModel(per_record=0.05, per_account=1.0),
    "self_query": CostModel(per_record=0.4),  # decent records of its own; queries are paid for in credits
    "colluding_curators": CostModel(per_record=0.01, per_vote=0.01),
    "bad_builder": CostModel(per_record=0.3, per_training_run=2.0),
    "honest_curator": CostModel(per_vote=0.02),
}


# ---- agents --------------------------------------------------------------------------------------------------


@dataclass
class Agent:
    """One strategy's operator. ``accounts`` are the platform usernames it controls (several for a sybil ring)."""

    name: str
    strategy: str
    cost: CostModel
    accounts: list[str]
    noise: float = 0.0  # honest contributors: the share of their labels that are wrong
    is_curator: bool = False
    records_uploaded: int = 0
    votes_cast: int = 0
    training_runs: int = 0
    credits_paid: float = 0.0  # inferences bought
    own_receipts: list[str] = field(default_factory=list)  # receipts of inferences it paid for itself

    def spent(self) -> float:
        c = self.cost
        return (
            c.per_record * self.records_uploaded
            + c.per_account * len(self.accounts)
            + c.per_vote * self.votes_cast
            + c.per_training_run * self.training_runs
            + self.credits_paid
        )


@dataclass(frozen=True)
class Size:
    """How big one seed's world is."""

    honest: int = 6
    records_per_epoch: int = 24
    epochs: int = 3
    honest_curators: int = 4
    sybils: int = 5
    queries_per_epoch: int = 40
    self_queries_per_epoch: int = 12
    pool_credits_per_epoch: int = 60


SIZES = {
    "default": Size(),
    "tiny": Size(
        honest=3,
        records_per_epoch=8,
        epochs=2,
        honest_curators=3,
        sybils=3,
        queries_per_epoch=8,
        self_queries_per_epoch=4,
        pool_credits_per_epoch=20,
    ),
}


def population(size: Size) -> list[Agent]:
    """Every strategy once (honest contributors at label noise spread over 0-40%)."""
    agents: list[Agent] = []
    for i in range(size.honest):
        noise = 0.4 * i / max(1, size.honest - 1)
        agents.append(Agent(f"honest{i}", "honest", honest_cost(noise), [f"honest{i}"], noise=noise))
    for strategy in ("exact_dup", "near_dup", "paraphrase", "junk", "mislabel", "self_query", "bad_builder"):
        agents.append(Agent(strategy, strategy, STRATEGY_COSTS[strategy], [strategy]))
    agents.append(
        Agent("sybil_ring", "sybil_ring", STRATEGY_COSTS["sybil_ring"], [f"sybil{i}" for i in range(size.sybils)])
    )
    agents.append(
        Agent(
            "colluding_curators",
            "colluding_curators",
            STRATEGY_COSTS["colluding_curators"],
            ["colluder0", "colluder1"],
            is_curator=True,
        )
    )
    for i in range(size.honest_curators):
        agents.append(
            Agent(f"curator{i}", "honest_curator", STRATEGY_COSTS["honest_curator"], [f"curator{i}"], is_curator=True)
        )
    return agents


def uploads_for(
    agent: Agent, rng: random.Random, n: int, *, public: list[Upload], topics: list[tuple[str, str]], epoch: int
) -> dict[str, list[Upload]]:
    """What each of the agent's accounts uploads this epoch. ``public`` are the records of the latest published
    snapshot (anyone may read them): the copy farmers' raw material."""
    s = agent.strategy
    if s == "honest":
        return {agent.accounts[0]: [honest_upload(rng, agent.noise) for _ in range(n)]}
    # The copy farmers copy what the Datanet has published; before the first snapshot they have nothing to copy.
    if s == "exact_dup":
        return {agent.accounts[0]: [rng.choice(public) for _ in range(n)]} if public else {}
    if s == "near_dup":
        picks = [rng.choice(public) for _ in range(n)] if public else []
        return {agent.accounts[0]: [Upload(near_copy(rng, u.text), u.label, u.good) for u in picks]}
    if s == "paraphrase":
        # Published reviews rewritten onto the popular topics (drug and condition swapped, the rest kept, label kept):
        # records that sit next to what consumers ask, to catch attribution credit, at almost no effort.
        out = []
        for u in [rng.choice(public) for _ in range(n)] if public else []:
            drug, condition = rng.choice(topics)
            out.append(Upload(retopic(u.text, drug, condition), u.label, u.good))
        return {agent.accounts[0]: out}
    if s == "junk":
        return {agent.accounts[0]: [junk_upload(rng) for _ in range(n)]}
    if s == "mislabel":
        out = []
        for _ in range(n):
            r = review(rng)
            out.append(Upload(r.text, other_label(r.true_label), good=False))
        return {agent.accounts[0]: out}
    if s == "sybil_ring":
        # One operator writes a handful of careless reviews (30% wrong) and spreads copies and near-copies of them
        # over many accounts, so that each account looks busy and none carries the penalties alone.
        base = [honest_upload(rng, 0.3) for _ in range(max(2, n // 3))]
        batch = {}
        for i, account in enumerate(agent.accounts):
            rows = base[i :: len(agent.accounts)]
            rows += [
                rng.choice(base) if rng.random() < 0.5 else near_copy_of(rng, rng.choice(base)) for _ in range(n // 2)
            ]
            batch[account] = rows
        return batch
    if s == "self_query":
        return {agent.accounts[0]: [honest_upload(rng, 0.1) for _ in range(n)]}
    if s == "colluding_curators":
        half = max(1, n // 2)
        return {
            a: [junk_upload(rng) if rng.random() < 0.5 else mislabeled(rng) for _ in range(half)]
            for a in agent.accounts
        }
    if s == "bad_builder":
        # Contributes once, in the first epoch (so its records fill the first snapshot), at 30% noise.
        return {agent.accounts[0]: [honest_upload(rng, 0.3) for _ in range(n)]} if epoch == 0 else {}
    return {}


def mislabeled(rng: random.Random) -> Upload:
    r = review(rng)
    return Upload(r.text, other_label(r.true_label), good=False)


# ---- curators --------------------------------------------------------------------------------------------------

HONEST_CURATOR_ACCURACY = 0.92


def curator_decision(
    agent: Agent, rng: random.Random, upload: Upload | None, contributor: str, bloc_leader_vote: str | None
) -> str:
    """'approve' or 'reject'. Honest curators judge the record (right 92% of the time); the colluding bloc approves
    anything its members uploaded and otherwise votes together (the leader judges at 80%, the rest copy)."""
    good = upload.good if upload is not None else True
    if agent.strategy == "colluding_curators":
        if contributor in agent.accounts:
            return "approve"
        if bloc_leader_vote is not None:
            return bloc_leader_vote
        right = rng.random() < 0.8
        return ("approve" if good else "reject") if right else ("reject" if good else "approve")
    right = rng.random() < HONEST_CURATOR_ACCURACY
    return ("approve" if good else "reject") if right else ("reject" if good else "approve")


def flag_decision(agent: Agent, rng: random.Random, upload: Upload | None, contributor: str) -> str:
    """'confirm' or 'dismiss' a valuation flag."""
    good = upload.good if upload is not None else True
    if agent.strategy == "colluding_curators" and contributor in agent.accounts:
        return "dismiss"
    right = rng.random() < HONEST_CURATOR_ACCURACY
    return ("dismiss" if good else "confirm") if right else ("confirm" if good else "dismiss")


def self_queries(agent: Agent, rng: random.Random, own: list[Upload], n: int) -> list[str]:
    """A self-query farmer's paid inputs: near-copies of its own records, so attribution points at them."""
    return [near_copy(rng, rng.choice(own).text) for _ in range(n)] if own else []
