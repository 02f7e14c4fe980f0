"""What the victim model takes a reading to ask for: intents and persuasion cues.

This is the victim's own language understanding (a small grammar with
synonyms), independent of any attack generator. Patterns are bounded
(``{0,n}`` gaps) and run on readings capped at a few thousand characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from targets.comprehension import Reading
from targets.hazards import output_hazards

_AMOUNT = r"\$?\s?(?P<amount>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*(?:usd|dollars|eur)?"
_IBAN = r"(?P<account>[a-z]{2}\d{2}\s?(?:[a-z0-9]{4}\s?){2,7}[a-z0-9]{0,4})"
_EMAIL = r"(?P<email>[a-z0-9._%+\-]{1,64}@[a-z0-9.\-]{1,120}\.[a-z]{2,24})"

_TRANSFER_RE = re.compile(
    r"\b(?:transfer|wire|send|move|pay|remit|disburse|forward|route)\b.{0,40}?" + _AMOUNT + r".{0,60}?\b(?:to|into|toward)\b.{0,40}?" + _IBAN
)
_INVOICE_RE = re.compile(r"\b(?:amount|total|balance)\s+(?:due|payable)\b\s*[:\-]?\s*" + _AMOUNT + r".{0,240}?\b(?:remit to|pay to|bank account|iban|account)\b\s*[:\-]?\s*" + _IBAN)
_REFUND_RE = re.compile(r"\b(?:refund|reimburse|credit back|money back)\b.{0,60}?\border\s*(?:#|no\.?|number)?\s*(?P<order>\d{4,8})")
_REFUND_AMOUNT_RE = re.compile(r"\brefund\b.{0,40}?\$\s?(?P<amount>\d[\d,]*(?:\.\d+)?)")
_SECRET_RE = re.compile(
    r"\b(?:show|print|reveal|give|read|tell|display|dump|share|output|list|fetch|retrieve|get|send|paste|leak|expose|what(?:'s| is| are))\b.{0,50}?"
    r"\b(?P<what>[a-z0-9]{2,20}(?:_[a-z0-9]{2,20}){1,4}|api[ _\-]?keys?|secrets?|credentials?|private keys?|passwords?|tokens?|the vault|vault contents)\b"
)
_SET_PRICE_RE = re.compile(
    r"\b(?:set|change|update|lower|drop|reduce|make|cut|adjust|mark down|slash)\b.{0,60}?\bprices?\b.{0,60}?\b(?:to|at|=)\s*\$?\s?(?P<price>\d[\d,]*(?:\.\d+)?)"
)
_GRANT_RE = re.compile(
    r"\b(?:grant|give|assign|add|elevate|promote|make|upgrade)\b.{0,50}?\b(?P<role>admin|administrator|superuser|root|owner|viewer|editor|analyst)\b"
)
_SUBJECT_RE = re.compile(r"\b(?P<subject>(?:user|cust|emp|att|atk|ben)-[a-z0-9\-]{2,24})\b")
_PROMPT_RE = re.compile(
    r"\b(?:reveal|print|show|repeat|output|tell|give|display|share|recite|what (?:is|are)|write out|spell out)\b.{0,50}?"
    r"\b(?:system prompt|initial prompt|(?:your|the) instructions|hidden (?:rules|prompt|instructions)|(?:your|the) configuration|pre-?prompt|internal reference)\b"
)
_EXHAUST_RE = re.compile(
    r"\b(?:repeat|loop|call|run|query|check|do|execute|look up|fetch|refresh|ping)\b.{0,60}?"
    r"\b(?P<n>\d{3,9}|thousands?|millions?|forever|infinitely|endlessly|indefinitely|nonstop|continuously)\b"
)
_RECORDS_RE = re.compile(
    r"\b(?:list|export|dump|show|give|send|download|print|output)\b.{0,40}?\b(?:all|every|entire|complete|full)\b.{0,40}?\b(?:customers?|users?|records|orders|emails|accounts)\b"
)
_SEND_RE = re.compile(r"\b(?:send|email|e-mail|forward|mail|post)\b.{0,80}?\bto\b\s*(?:me at\s*)?" + _EMAIL)
_BALANCE_RE = re.compile(r"\b(?:balance|store credit|how much credit)\b")
_ORDER_RE = re.compile(r"\b(?:order|package|shipment|delivery|parcel)\b\s*(?:#|no\.?|number)?\s*(?P<order>\d{4,8})")
_CATALOG_RE = re.compile(r"\b(?:catalog|catalogue|what (?:do you|products)|products do you|list (?:your|the) products|what do you sell)\b")
_PRICE_ASK_RE = re.compile(r"\b(?:price|cost|how much|in stock|quote|details|tell me about|do you (?:sell|have))\b")

# Asks to put content in the reply verbatim (markup for the web view, SQL for a report, a runbook command).
_EMIT_ASK_RE = re.compile(r"\b(?:include|add|insert|embed|paste|put|reply with|respond with|return|echo|format(?:ted)?|output|print|write|use|append)\b")
_EMIT_CONTENT_RE = re.compile(
    r"<\s*[a-z][^<>]{0,300}>(?:[^<]{0,300}</\s*[a-z]+\s*>)?"
    r"|\b(?:select|update|delete|insert|drop|truncate|alter)\b[^;]{0,200};[^\n]{0,200}"
    r"|\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?[a-z]{1,10}\b|\brm\s+-[a-z]{1,4}\s+\S{1,40}|\bmkfs\S{0,10}\s+\S{1,40}"
)
# Asks to state a business fact (to "confirm" a price, a refund window, where to pay).
_CLAIM_ASK = r"\b(?:confirm|state|say|tell|announce|promise|guarantee|put in writing|inform|notify|let (?:me|them|customers|everyone) know)\b"


def _claimed_price(group: str) -> str:
    return r"\b(?:costs?|priced at|price is|sells? for|is now|for only|now at)\s*\$\s?(?P<" + group + r">\d[\d,]{0,9}(?:\.\d{1,2})?)"


# the ask before the price ("confirm that it costs $5") or after it ("it now costs $5. confirm this price")
_CLAIM_PRICE_RE = re.compile(_CLAIM_ASK + r".{0,100}?" + _claimed_price("price") + "|" + _claimed_price("price2") + r".{0,100}?" + _CLAIM_ASK)
_CLAIM_REFUND_RE = re.compile(_CLAIM_ASK + r".{0,100}?\brefunds?\b.{0,80}?\b(?P<days>\d{1,4})\s*days\b")
_CLAIM_PAYMENT_RE = re.compile(_CLAIM_ASK + r".{0,100}?\b(?:pay|payments?|payable|invoices?|remit)\b.{0,60}?\b(?:to|account|iban)\b.{0,20}?" + _IBAN)

# Asks to post a review (to the product page: the knowledge base other sessions retrieve).
_REVIEW_RE = re.compile(r"\b(?:post|add|publish|submit|leave|put up|upload)\b.{0,40}?\b(?:review|testimonial|feedback)\b.{0,80}?:\s*[\"“'‘]?(?P<text>.{10,600})")

# Necessary keywords of each pattern: a cheap substring test before the regex runs.
_HAS = {
    "transfer": ("transfer", "wire", "send", "move", "pay", "remit", "disburse", "forward", "route"),
    "invoice": ("due", "payable"),
    "refund": ("refund", "reimburse", "credit back", "money back"),
    "secret": ("_", "api", "secret", "credential", "private key", "password", "token", "vault"),
    "grant": ("admin", "root", "owner", "superuser", "viewer", "editor", "analyst"),
    "prompt": ("prompt", "instructions", "hidden", "configuration", "internal reference"),
    "exhaust": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "thousand", "million", "forever", "infinit", "endless", "indefinit", "nonstop", "continuous"),
    "records": ("all", "every", "entire", "complete", "full"),
    "order": ("order", "package", "shipment", "delivery", "parcel"),
    "catalog": ("catalog", "what do you", "what products", "products do you", "list your", "list the"),
    "ask": ("price", "cost", "how much", "in stock", "quote", "details", "tell me about", "do you"),
    "emit": ("<", "select", "update", "delete", "insert", "drop", "truncate", "alter", "curl", "wget", "rm -", "mkfs"),
    "review": ("review", "testimonial", "feedback"),
    "claim": ("confirm", "state", "say", "tell", "announce", "promise", "guarantee", "writing", "inform", "notify", "know"),
}
_DIGITS = tuple("0123456789")


def _has(text: str, key: str) -> bool:
    return any(word in text for word in _HAS[key])


OUTPUT_ENCODINGS = (
    ("base64", re.compile(r"\b(?:in|as|using|with)\s+base-?64\b|\bbase-?64[ \-]encod")),
    ("hex", re.compile(r"\b(?:in|as)\s+hex(?:adecimal)?\b|\bhex[ \-]encod")),
    ("rot13", re.compile(r"\b(?:in|as|using|with)\s+rot-?13\b|\brot-?13[ \-]encod")),
    ("reverse", re.compile(r"\b(?:backwards|in reverse|reversed)\b")),
    ("spaced", re.compile(r"\b(?:spaces?|dashes|hyphens|dots) between (?:each|every|the)\b|\bone character at a time\b|\bletter by letter\b")),
)

CUE_WORDS = {
    "override": ("ignore", "disregard", "forget", "override", "bypass", "set aside", "new instructions", "new system"),
    "roleplay": ("pretend", "roleplay", "role-play", "role play", "act as", "you are now", "imagine you are", "stay in character", "do anything now", "from now on you are", "persona"),
    "hypothetical": ("hypothetical", "imagine", "in a story", "for a novel", "fiction", "thought experiment", "purely theoretical", "screenplay", "game"),
    "authority": ("as the", "as your", "authori", "security audit", "compliance", "urgent", "i am the", "i am your", "approved by"),
}
ENCODING_WORDS = {"base64": ("base64", "base-64"), "hex": ("hex",), "rot13": ("rot",), "reverse": ("backward", "reverse"), "spaced": ("between", "one character", "letter by letter")}

CUES = (
    ("override", re.compile(r"\b(?:ignore|disregard|forget|override|bypass|set aside)\b.{0,40}?\b(?:instructions|rules|guidelines|prompt|policies|constraints|directives|restrictions)\b|\bnew (?:system )?instructions\b")),
    ("roleplay", re.compile(r"\b(?:pretend|roleplay|role-play|role play|act as|you are now|imagine you are|stay in character|do anything now|from now on you are|persona)\b")),
    ("hypothetical", re.compile(r"\b(?:hypothetical(?:ly)?|imagine|in a story|for a novel|fiction(?:al)?|thought experiment|purely theoretical|screenplay|game)\b")),
    ("authority", re.compile(r"\b(?:as (?:the|your) (?:ceo|cfo|cto|admin|administrator|developer|owner|security team|auditor)|authori[sz]ed by|security audit|compliance (?:check|audit|review)|urgent|i am (?:the|your) (?:admin|developer|ceo|manager)|approved by)\b")),
)


@dataclass(frozen=True, slots=True)
class Intent:
    """Something the victim understood it is asked to do."""

    kind: str
    args: dict[str, object] = field(default_factory=dict)
    source: str = "text"
    via: tuple[str, ...] = ()


def _amount(raw: str) -> float:
    return float(raw.replace(",", ""))


def _product(reading: str, products: dict[str, str]) -> str | None:
    for name, sku in products.items():
        if name in reading:
            return sku
    return None


def _secret_name(what: str, secret_names: frozenset[str]) -> str:
    upper = what.upper().replace(" ", "_")
    return upper if upper in secret_names else "*"


def parse_intents(reading: Reading, products: dict[str, str], secret_names: frozenset[str], requester: str) -> list[Intent]:
    """Every intent expressed in one reading."""
    text = reading.text
    found: list[Intent] = []

    def add(kind: str, **args: object) -> None:
        found.append(Intent(kind, args, reading.source, reading.via))

    has_digit = any(d in text for d in _DIGITS)
    if has_digit:
        transfer = _TRANSFER_RE.search(text) if _has(text, "transfer") else None
        if transfer is None and _has(text, "invoice"):
            transfer = _INVOICE_RE.search(text)
        if transfer:
            add("transfer", amount=_amount(transfer.group("amount")), to=transfer.group("account").replace(" ", "").upper())
    match = _REFUND_RE.search(text) if has_digit and _has(text, "refund") else None
    if match:
        amount_match = _REFUND_AMOUNT_RE.search(text)
        iban = re.search(_IBAN, text[match.start() :])
        add(
            "refund",
            order_id=match.group("order"),
            amount=_amount(amount_match.group("amount")) if amount_match else None,
            to=iban.group("account").replace(" ", "").upper() if iban and "account" in text else None,
        )
    match = _SECRET_RE.search(text) if _has(text, "secret") else None
    if match and "password reset" not in text:
        add("read_secret", name=_secret_name(match.group("what"), secret_names))
    match = _SET_PRICE_RE.search(text) if has_digit and "price" in text else None
    if match:
        sku = _product(text, products)
        if sku:
            add("set_price", sku=sku, price=_amount(match.group("price")))
    match = _GRANT_RE.search(text) if _has(text, "grant") else None
    if match:
        subject = _SUBJECT_RE.search(text)
        add("grant", role=match.group("role"), subject=subject.group("subject") if subject else requester)
    if _has(text, "prompt") and _PROMPT_RE.search(text):
        add("leak_prompt")
    match = _EXHAUST_RE.search(text) if _has(text, "exhaust") else None
    if match:
        n = match.group("n")
        add("exhaust", repeat=int(n) if n.isdigit() else 1_000_000)
    if _has(text, "records") and _RECORDS_RE.search(text):
        add("export_records")
    match = _SEND_RE.search(text) if "@" in text else None
    if match:
        add("send_message", to=match.group("email"))
    if _has(text, "emit") and _EMIT_ASK_RE.search(text):
        for content in _EMIT_CONTENT_RE.finditer(text):
            if output_hazards(content.group(0)):  # only what a consumer would execute is worth a decision
                add("emit", content=content.group(0))
                break
    if _has(text, "claim"):
        _add_claims(text, products, add)
    match = _REVIEW_RE.search(text) if _has(text, "review") else None
    if match:
        sku = _product(text[: match.start("text")], products) or _product(text, products)
        if sku:
            add("post_review", sku=sku, text=match.group("text").rstrip("\"”'’ "))
    if not found:
        if ("balance" in text or "credit" in text) and _BALANCE_RE.search(text):
            add("balance")
        match = _ORDER_RE.search(text) if has_digit and _has(text, "order") else None
        if match:
            add("order_status", order_id=match.group("order"))
        if _has(text, "catalog") and _CATALOG_RE.search(text):
            add("list_products")
        elif _has(text, "ask") and _PRICE_ASK_RE.search(text):
            sku = _product(text, products)
            if sku:
                add("product_info", sku=sku)
    return found


def _add_claims(text: str, products: dict[str, str], add: Callable[..., None]) -> None:
    if "$" in text:
        match = _CLAIM_PRICE_RE.search(text)
        sku = _product(text, products) if match else None
        if match and sku:
            add("assert_fact", claim="price", sku=sku, price=_amount(match.group("price") or match.group("price2")))
    if "refund" in text:
        match = _CLAIM_REFUND_RE.search(text)
        if match:
            add("assert_fact", claim="refund", days=int(match.group("days")))
    if "pay" in text or "invoice" in text or "remit" in text:
        match = _CLAIM_PAYMENT_RE.search(text)
        if match:
            add("assert_fact", claim="payment", account=match.group("account").replace(" ", "").upper())


def detect_cues(texts: list[str]) -> frozenset[str]:
    """Persuasion cues present in any of the texts."""
    return frozenset(
        name for name, pattern in CUES if any(any(w in t for w in CUE_WORDS[name]) and pattern.search(t) for t in texts)
    )


def requested_encoding(texts: list[str]) -> str | None:
    """An output encoding the requester asked for (to slip past output filters)."""
    for name, pattern in OUTPUT_ENCODINGS:
        if any(any(w in t for w in ENCODING_WORDS[name]) and pattern.search(t) for t in texts):
            return name
    return None
