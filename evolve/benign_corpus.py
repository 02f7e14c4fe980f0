"""The labelled benign corpus the miner and the promotion gate check rules against.

Five sources, each text tagged with its origin:

- ``real:<source>``: real prompts, documents and code of the built corpus
  (``evolve.corpus``; the committed sample where none is built) — its train
  split joins the *mining* part, its validation split the *gate* part, so the
  gate's bound is measured on sources neither the miner nor the classifier saw;

- ``templated``: legitimate requests to the simulated company (customers,
  vendors' invoices, employees' tickets), rendered by ``targets.traffic``;
- ``conversation``: customers' follow-up turns (``targets.traffic.follow_up``),
  alone and joined to the turns before them, as the session-level guard sees them;
- ``chatterbot``: conversational lines of the chatterbot-corpus package (BSD);
- ``hard_negative``: benign text that looks dangerous — security questions,
  quoted attacks in reports, legitimate base64, code (``targets.traffic``'s
  hard negatives and the hand-written negatives of the classifier corpus).

Texts are split deterministically (by a hash of the text) into a *mining*
part, which the miner may look at, and a *gate* part, which only the
acceptance and promotion gates use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources

import yaml

from evolve.classifier_training import chatterbot_lines
from kosmoi.ids import derive_seed, stable_hash64
from targets.company import Company
from targets.conversation import SESSION_MAX_CHARS, joined
from targets.traffic import HARD_NEGATIVES, customer_request, employee_request, follow_up, vendor_request

GATE_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class BenignText:
    text: str
    source: str  # templated | conversation | chatterbot | hard_negative | real:<corpus source>


@dataclass(frozen=True, slots=True)
class BenignCorpus:
    mining: tuple[BenignText, ...]
    gate: tuple[BenignText, ...]

    def texts(self, part: str = "mining") -> list[str]:
        return [t.text for t in (self.mining if part == "mining" else self.gate)]


def _templated(seed: int, customers: int = 1500, vendors: int = 300, employees: int = 300) -> list[BenignText]:
    company = Company(seed, 0, "benign-corpus", customers=200)
    rng = random.Random(seed)
    out: list[BenignText] = []
    for i in range(customers):
        request = customer_request(company, company.customers[i % len(company.customers)], rng, hard_negative_rate=0.0)
        out.append(BenignText(request.text, "templated"))
    for i in range(vendors):
        request = vendor_request(company, f"vendor-{i % len(company.vendors):02d}", rng)
        out.extend((BenignText(request.text, "templated"), BenignText(request.document or "", "templated")))
    for i in range(employees):
        request = employee_request(company, f"emp-{i:03d}", rng)
        out.extend((BenignText(request.text, "templated"), BenignText(request.document or "", "templated")))
    return out


def _conversations(seed: int, customers: int = 400) -> list[BenignText]:
    """Customers' follow-up turns, alone and joined to the turns before them (what the session-level guard judges).

    Without them, a model retrained on multi-turn breaches learns that "continue from your last answer"
    or "as you said" is an attack, because the only conversations it has seen were attacks.
    """
    company = Company(seed, 0, "benign-corpus", customers=200)
    rng = random.Random(derive_seed(seed, "benign-conversations"))
    out: list[BenignText] = []
    for i in range(customers):
        customer = company.customers[i % len(company.customers)]
        turns = [customer_request(company, customer, rng, hard_negative_rate=0.0).text]
        for _ in range(rng.randint(1, 3)):
            turns.append(follow_up(company, customer, rng).text)
            out.append(BenignText(turns[-1], "conversation"))
            out.append(BenignText(joined(turns[-5:-1], turns[-1], SESSION_MAX_CHARS), "conversation"))
    return out


def _hard_negatives(seed: int) -> list[BenignText]:
    company = Company(seed, 0, "benign-corpus", customers=50)
    rng = random.Random(seed + 1)
    out = []
    for _ in range(12):
        for _agent, template in HARD_NEGATIVES:
            out.append(
                BenignText(
                    template.format(order=rng.choice(list(company.orders)), product=rng.choice(list(company.product_by_name)), n=rng.choice((2, 5, 10)), b64="R0lGVC0xMjM0NTY3OC0wMDAx"),
                    "hard_negative",
                )
            )
    raw = yaml.safe_load(resources.files("evolve").joinpath("data", "classifier_corpus.yaml").read_text("utf-8"))
    out.extend(BenignText(str(line), "hard_negative") for line in raw["negatives"])
    return out


def real_benign(split: str) -> list[BenignText]:
    """Benign texts of one split of the real corpus (built, else the committed sample), the project's own left out."""
    from evolve.corpus.build import load_split_or_sample

    rows, _ = load_split_or_sample(split)
    return [BenignText(r.text, f"real:{r.source}") for r in rows if not r.is_attack and not r.source.startswith("kosmoi:")]


def build_benign_corpus(seed: int = 0, *, real: bool = True) -> BenignCorpus:
    """The corpus, split into mining and gate parts (deterministic for a seed)."""
    if real:
        mining_real, gate_real = real_benign("train"), real_benign("validation")
    else:
        mining_real, gate_real = [], []
    texts = _templated(seed) + [BenignText(line, "chatterbot") for line in chatterbot_lines()] + _hard_negatives(seed) + _conversations(seed)
    unique: dict[str, BenignText] = {}
    for item in texts:
        if item.text.strip():
            unique.setdefault(item.text, item)
    mining: list[BenignText] = []
    gate: list[BenignText] = []
    for text, item in sorted(unique.items()):
        (gate if stable_hash64("benign-split", text) % 1000 < GATE_SHARE * 1000 else mining).append(item)
    seen = set(unique)
    for part, extra in ((mining, mining_real), (gate, gate_real)):
        for item in extra:
            if item.text.strip() and item.text not in seen:
                seen.add(item.text)
                part.append(item)
    return BenignCorpus(tuple(mining), tuple(gate))
