"""The seed library: attack goals x channels x target agents, as templates."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from kosmoi.types import Channel, Goal


@dataclass(frozen=True, slots=True)
class Seed:
    """One attack template."""

    seed_id: str
    goal: Goal
    agent: str
    channel: Channel
    template: str
    carrier: str | None = None


@dataclass(frozen=True, slots=True)
class AttackerAssets:
    """What a logical attacker owns and knows (its own identity, accounts, public recon)."""

    identity: str
    account: str  # an IBAN the attacker controls
    email: str  # a mailbox the attacker controls
    products: tuple[str, ...]
    secret_names: tuple[str, ...]


def _parse(raw: dict[str, Any]) -> tuple[Seed, ...]:
    seeds: list[Seed] = []
    for goal_name, entries in raw.items():
        goal = Goal(goal_name)
        for index, entry in enumerate(entries):
            seeds.append(
                Seed(
                    seed_id=f"{goal.value}.{index}",
                    goal=goal,
                    agent=str(entry["agent"]),
                    channel=Channel(entry.get("channel", "direct")),
                    template=str(entry["template"]),
                    carrier=entry.get("carrier"),
                )
            )
    return tuple(seeds)


@functools.lru_cache(maxsize=1)
def builtin_seeds() -> tuple[Seed, ...]:
    """The project's own seed library (``attackers/data/seeds.yaml``)."""
    text = resources.files("attackers").joinpath("data", "seeds.yaml").read_text("utf-8")
    return _parse(yaml.safe_load(text))


def seeds_for(goal: Goal, channels: frozenset[Channel] | None = None) -> tuple[Seed, ...]:
    """The library's seeds for ``goal``; with ``channels``, only those on them (all of the goal's when it has none there)."""
    seeds = tuple(seed for seed in builtin_seeds() if seed.goal is goal)
    on = tuple(seed for seed in seeds if channels is None or seed.channel in channels)
    return on or seeds


def render(seed: Seed, assets: AttackerAssets, rng: random.Random) -> str:
    """Fill a seed's placeholders from the attacker's assets and fresh parameters."""
    return seed.template.format(
        account=assets.account,
        email=assets.email,
        identity=assets.identity,
        amount=rng.choice((120, 380, 450, 900, 2400, 4900, 9500)),
        product=rng.choice(assets.products),
        price=rng.choice((1, 5, 9, 19, 25, 49)),
        secret=rng.choice(assets.secret_names),
        order=rng.randrange(20000, 20400),
        invoice=rng.randrange(10000, 99999),
    )
