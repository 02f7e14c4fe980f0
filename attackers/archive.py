"""The attackers' MAP-Elites archive: the best attack recipes per (technique family, goal) cell.

As Rainbow Teaming does for prompts, the archive keeps diversity: every cell
keeps its own elites, so a family that stopped working is not forgotten while
another one pays. A recipe is ``(seed_id, operators)``. Its fitness is judged
over every episode that used it, not by one lucky episode: each episode
scores how far it got (1.0 for a breach, see :func:`attackers.progress.progress`), and a recipe's
score is the smoothed mean ``(sum + PRIOR_MEAN * PRIOR_N) / (n + PRIOR_N)``.
Evidence from earlier generations decays by :data:`DECAY` per generation, so
a recipe the defenders patched falls behind as soon as it is tried again.

The next generation's attackers start from elites chosen by tournament
(the best of :data:`TOURNAMENT` recipes of their goal, drawn uniformly), then
replayed as they are, mutated (add or swap one operator) or recombined with a
second tournament winner of the same goal — and keep adapting within their
campaign as usual.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from attackers.mutations import EVASION_OPS, FRAMING_OPS, OPERATORS
from attackers.progress import progress
from kosmoi.types import Goal

FAMILIES = ("plain", *sorted({op.family for op in OPERATORS.values()}))
GOALS = tuple(goal.value for goal in Goal if goal is not Goal.NONE)
ELITES_PER_CELL = 4
DECAY = 0.5
PRIOR_MEAN = 0.1
PRIOR_N = 2.0
TOURNAMENT = 3
REPLAY, MUTATE = 0.4, 0.4  # the rest recombines


def family_of(operators: tuple[str, ...] | list[str]) -> str:
    """The cell family of a recipe: the family of its most recent operator."""
    known = [op for op in operators if op in OPERATORS]
    return OPERATORS[known[-1]].family if known else "plain"


@dataclass
class Elite:
    """One recipe and the evidence on it."""

    goal: str
    family: str
    seed_id: str
    operators: tuple[str, ...]
    n: float  # episodes that used it (decayed)
    fitness_sum: float  # their fitness (decayed)
    breaches: int  # all breaches ever (not decayed; for humans)
    payload: str  # an example, the best one seen
    generation: int  # last generation that used it

    @property
    def score(self) -> float:
        return (self.fitness_sum + PRIOR_MEAN * PRIOR_N) / (self.n + PRIOR_N)

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return self.goal, self.seed_id, self.operators


class Archive:
    """Elites per cell; JSON-serialisable so an evolution can resume."""

    def __init__(self, cells: dict[str, list[Elite]] | None = None) -> None:
        self.cells: dict[str, list[Elite]] = cells or {}
        self.breaching: set[str] = set()  # cells with a breach in the last update

    @staticmethod
    def cell(goal: str, family: str) -> str:
        return f"{family}|{goal}"

    @property
    def elites(self) -> dict[str, Elite]:
        """The best recipe of every filled cell."""
        return {key: recipes[0] for key, recipes in self.cells.items() if recipes}

    @property
    def coverage(self) -> float:
        """Filled cells / all (family, goal) cells."""
        return len(self.elites) / (len(FAMILIES) * len(GOALS))

    @property
    def breaching_coverage(self) -> float:
        """Cells with a breach in the last generation / all cells: how diverse the red team's wins are."""
        return len(self.breaching) / (len(FAMILIES) * len(GOALS))

    def update(self, episodes: pa.Table, generation: int) -> int:
        """Fold a generation's attack episodes in; returns how many cells changed their best recipe."""
        attacks = episodes.filter(pc.and_(pc.equal(episodes["kind"], "attack"), pc.not_equal(episodes["seed_id"], "")))
        before = {key: elite.key for key, elite in self.elites.items()}
        recipes: dict[tuple[str, str, tuple[str, ...]], Elite] = {}
        for recipes_in_cell in self.cells.values():
            for elite in recipes_in_cell:
                elite.n *= DECAY
                elite.fitness_sum *= DECAY
                recipes[elite.key] = elite
        best_fitness: dict[tuple[str, str, tuple[str, ...]], float] = {}
        self.breaching = set()
        for row in attacks.select(["goal", "seed_id", "techniques", "blocked_stage", "breached", "payload"]).to_pylist():
            ops = tuple(op for op in row["techniques"] if op in OPERATORS)
            fitness = progress(row["breached"], row["blocked_stage"])
            key = (row["goal"], row["seed_id"], ops)
            elite = recipes.get(key) or Elite(row["goal"], family_of(ops), row["seed_id"], ops, 0.0, 0.0, 0, row["payload"][:500], generation)
            recipes[key] = elite
            elite.n += 1.0
            elite.fitness_sum += fitness
            elite.breaches += int(row["breached"])
            if row["breached"]:
                self.breaching.add(self.cell(elite.goal, elite.family))
            elite.generation = generation
            if fitness > best_fitness.get(key, -1.0):
                best_fitness[key] = fitness
                elite.payload = row["payload"][:500]
        cells: dict[str, list[Elite]] = {}
        for elite in recipes.values():
            cells.setdefault(self.cell(elite.goal, elite.family), []).append(elite)
        self.cells = {
            key: sorted(members, key=lambda e: (-e.score, e.seed_id, e.operators))[:ELITES_PER_CELL] for key, members in sorted(cells.items())
        }
        return sum(1 for key, elite in self.elites.items() if before.get(key) != elite.key)

    def _tournament(self, pool: list[Elite], rng: random.Random) -> Elite:
        return max((pool[rng.randrange(len(pool))] for _ in range(TOURNAMENT)), key=lambda e: (e.score, e.seed_id, e.operators))

    def recipe_for(self, goal: str, rng: random.Random, max_depth: int) -> tuple[str, tuple[str, ...]] | None:
        """A replayed, mutated or recombined elite of ``goal`` (None when the archive has none)."""
        pool = [elite for key in sorted(self.cells) for elite in self.cells[key] if elite.goal == goal]
        if not pool:
            return None
        elite = self._tournament(pool, rng)
        ops = list(elite.operators)
        roll = rng.random()
        if roll < REPLAY:
            pass
        elif roll < REPLAY + MUTATE:  # add or swap one operator
            op = rng.choice(EVASION_OPS + FRAMING_OPS)
            if op not in ops:
                if len(ops) < max_depth:
                    ops.append(op)
                elif ops:
                    ops[rng.randrange(len(ops))] = op
        else:  # recombine: keep this seed, splice another winner's operators in
            other = self._tournament(pool, rng)
            cut = rng.randrange(len(ops) + 1)
            ops = ops[:cut] + [op for op in other.operators if op not in ops[:cut]]
        return elite.seed_id, tuple(dict.fromkeys(ops))[:max_depth]

    def to_json(self) -> str:
        return json.dumps({key: [asdict(elite) for elite in recipes] for key, recipes in sorted(self.cells.items())}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Archive:
        raw = json.loads(text)
        return cls({key: [Elite(**{**value, "operators": tuple(value["operators"])}) for value in recipes] for key, recipes in raw.items()})

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), "utf-8")
