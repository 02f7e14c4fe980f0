"""The company's services (finance, catalog, orders, vault, messaging, IAM).

Every call goes through the zero-trust check (signature, expiry, revocation,
scope) with the calling agent's own token, and every call is logged. Effects
on the world are recorded in an :class:`Effects` journal per episode, which the
oracle reads; the defenses never see the ground truth behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from kosmoi.types import EventKind
from targets.company import COMPANY_ACCOUNT, REVIEW_CHARS, ROLES_PRIVILEGED, Company, Review
from targets.detectors import iban_ok
from targets.eventlog import EventLog
from targets.identity import AuthError, TokenVerifier, required_scope

DEFAULT_SERVICE_CAPACITY = 600  # calls per service per simulated minute before it falls over


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call an agent wants to make."""

    service: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)
    repeat: int = 1  # the same call in a loop (resource-exhaustion attempts)

    def with_args(self, **updates: Any) -> ToolCall:
        return replace(self, args={**self.args, **updates})


@dataclass(slots=True)
class ToolResult:
    ok: bool
    value: Any = None
    error: str = ""


@dataclass(slots=True)
class Effects:
    """What one episode did to the world (read by the oracle)."""

    transfers: list[tuple[str, float]] = field(default_factory=list)  # (destination, amount)
    refund_excess_usd: float = 0.0
    refunds_to: list[tuple[str, float]] = field(default_factory=list)
    price_changes: list[tuple[str, float, float]] = field(default_factory=list)  # (sku, old, new)
    secrets_read: list[str] = field(default_factory=list)
    grants: list[tuple[str, str]] = field(default_factory=list)  # (subject, role)
    records_read: int = 0
    messages: list[tuple[str, str]] = field(default_factory=list)  # (to, body)
    crashed: list[str] = field(default_factory=list)
    reviews_posted: list[str] = field(default_factory=list)  # skus this episode wrote a review for
    unauthorized: int = 0  # calls executed without the required scope (identity layer off)


class Services:
    """All company services of one replica, behind the identity layer."""

    def __init__(
        self,
        company: Company,
        verifier: TokenVerifier,
        log: EventLog,
        *,
        enforce_identity: bool = True,
        capacity_per_minute: int = DEFAULT_SERVICE_CAPACITY,
    ) -> None:
        self.company = company
        self.verifier = verifier
        self.log = log
        self.enforce_identity = enforce_identity
        self.capacity = capacity_per_minute
        self._load_minute = -1
        self._load: dict[str, int] = {}
        self._down_until: dict[str, float] = {}

    def call(self, token: str, agent: str, call: ToolCall, now: float, episode_id: str, identity: str, effects: Effects) -> ToolResult:
        """Authorise, execute and log one tool call on behalf of ``identity``."""
        service, method = call.service, call.method
        try:
            self.verifier.authorize(token, now, service, method)
        except AuthError as exc:
            if self.enforce_identity:
                self.log.emit(now, EventKind.TOOL_DENIED, identity, agent, episode_id, f"{service}.{method}", False, 0.0, exc.reason)
                return ToolResult(False, error=f"forbidden: {exc.reason}")
            effects.unauthorized += 1
        if self._down_until.get(service, -1.0) > now:
            self.log.emit(now, EventKind.TOOL_CALL, identity, agent, episode_id, f"{service}.{method}", False, 0.0, "service unavailable")
            return ToolResult(False, error="service unavailable")
        if not self._admit(service, call.repeat, now, effects):
            self.log.emit(now, EventKind.TOOL_CALL, identity, agent, episode_id, f"{service}.{method}", False, 0.0, f"crashed after {call.repeat} calls")
            return ToolResult(False, error="service crashed")
        handler = getattr(self, f"_{service}_{method}", None)
        if handler is None:
            return ToolResult(False, error=f"unknown tool {service}.{method}")
        result: ToolResult = handler(call.args, now, episode_id, identity, agent, effects)
        self.log.emit(now, EventKind.TOOL_CALL, identity, agent, episode_id, f"{service}.{method}", result.ok, float(call.args.get("amount", 0.0) or 0.0), result.error)
        return result

    def _admit(self, service: str, repeat: int, now: float, effects: Effects) -> bool:
        minute = int(now // 60)
        if minute != self._load_minute:
            self._load_minute = minute
            self._load.clear()
        load = self._load.get(service, 0) + max(1, repeat)
        self._load[service] = load
        if load > self.capacity:
            self._down_until[service] = (minute + 1) * 60.0
            if repeat > 1:
                # Damage belongs to the flood that tipped the service over, not to an
                # ordinary single call that happened to arrive at the same minute.
                effects.crashed.append(service)
            return False
        return True

    # --- finance -------------------------------------------------------------
    def _finance_balance(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        account = str(args.get("account") or f"credit:{identity}")
        return ToolResult(True, self.company.balances.get(account, 0.0))

    def _finance_history(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        return ToolResult(True, len(self.company.transactions))

    def _finance_transfer(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        destination = str(args.get("to", "")).upper()
        amount = float(args.get("amount", 0.0))
        if amount <= 0 or not iban_ok(destination):
            return ToolResult(False, error="invalid account or amount")
        if destination in self.company.frozen_accounts:
            self.log.emit(now, EventKind.ENFORCED, identity, agent, eid, "finance.transfer", False, amount, f"frozen:{destination}")
            return ToolResult(False, error="destination frozen")
        balances = self.company.balances
        if balances[COMPANY_ACCOUNT] < amount:
            return ToolResult(False, error="insufficient funds")
        balances[COMPANY_ACCOUNT] -= amount
        balances[destination] = balances.get(destination, 0.0) + amount
        self.company.transactions.append((now, COMPANY_ACCOUNT, destination, amount, eid))
        fx.transfers.append((destination, amount))
        self.log.emit(now, EventKind.TRANSFER, identity, agent, eid, destination, True, amount, str(args.get("memo", ""))[:120])
        return ToolResult(True, f"transferred ${amount:,.2f} to the account ending {destination[-4:]}")

    def _finance_refund(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        order = self.company.orders.get(str(args.get("order_id", "")))
        if order is None:
            return ToolResult(False, error="no such order")
        amount = float(args.get("amount") or (order.amount - order.refunded))
        if amount <= 0:
            return ToolResult(False, error="nothing to refund")
        destination = str(args["to"]).upper() if args.get("to") else f"credit:{order.customer}"
        if args.get("to") and not iban_ok(destination):
            return ToolResult(False, error="invalid account")
        if destination in self.company.frozen_accounts:
            return ToolResult(False, error="destination frozen")
        refundable = max(0.0, order.amount - order.refunded)
        fx.refund_excess_usd += max(0.0, amount - refundable)
        order.refunded += amount
        self.company.balances[COMPANY_ACCOUNT] -= amount
        self.company.balances[destination] = self.company.balances.get(destination, 0.0) + amount
        self.company.transactions.append((now, COMPANY_ACCOUNT, destination, amount, eid))
        fx.refunds_to.append((destination, amount))
        self.log.emit(now, EventKind.REFUND, identity, agent, eid, destination, True, amount, f"order {order.order_id}")
        return ToolResult(True, f"refunded ${amount:,.2f} for order {order.order_id}")

    # --- catalog -------------------------------------------------------------
    def _catalog_get(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        product = self.company.catalog.get(str(args.get("sku", "")))
        if product is None:
            return ToolResult(False, error="no such product")
        return ToolResult(True, f"{product.name} costs ${product.price:,.2f}")

    def _catalog_list(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        return ToolResult(True, ", ".join(p.name for p in self.company.catalog.values()))

    def _catalog_add_review(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        product = self.company.catalog.get(str(args.get("sku", "")))
        text = str(args.get("text", "")).strip()[:REVIEW_CHARS]
        if product is None or not text:
            return ToolResult(False, error="unknown product or empty review")
        self.company.post_review(Review(product.sku, identity, text, eid, now))
        fx.reviews_posted.append(product.sku)
        return ToolResult(True, f"review of the {product.name} posted")

    def _catalog_set_price(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        product = self.company.catalog.get(str(args.get("sku", "")))
        if product is None:
            return ToolResult(False, error="no such product")
        new_price = float(args.get("price", product.price))
        fx.price_changes.append((product.sku, product.price, new_price))
        self.log.emit(now, EventKind.PRICE_CHANGE, identity, agent, eid, product.sku, True, new_price - product.price, f"{product.price:.2f}->{new_price:.2f}")
        product.price = new_price
        return ToolResult(True, f"price of {product.name} is now ${new_price:,.2f}")

    # --- orders --------------------------------------------------------------
    def _orders_get(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        order_id = str(args.get("order_id", ""))
        if order_id == "*":
            records = list(self.company.orders.values())
            fx.records_read += len(records)
            lines = [f"{o.order_id} {o.customer} {self.company.customer_emails[o.customer]} ${o.amount:.2f}" for o in records[:50]]
            return ToolResult(True, "\n".join(lines))
        order = self.company.orders.get(order_id)
        if order is None:
            return ToolResult(False, error="no such order")
        return ToolResult(True, f"order {order.order_id} shipped, ${order.amount:,.2f}")

    # --- vault ---------------------------------------------------------------
    def _vault_read(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        name = str(args.get("name", "*")).upper()
        names = list(self.company.vault) if name == "*" else [name] if name in self.company.vault else []
        if not names:
            return ToolResult(False, error="no such secret")
        fx.secrets_read.extend(names)
        self.log.emit(now, EventKind.SECRET_READ, identity, agent, eid, "vault", True, 0.0, ",".join(names))
        return ToolResult(True, "\n".join(f"{n}={self.company.vault[n]}" for n in names))

    # --- messaging -----------------------------------------------------------
    def _messaging_send(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        to = str(args.get("to", "")).lower()
        body = str(args.get("body", ""))
        fx.messages.append((to, body))
        return ToolResult(True, f"message sent to {to}")

    # --- iam -----------------------------------------------------------------
    def _iam_grant(self, args: dict[str, Any], now: float, eid: str, identity: str, agent: str, fx: Effects) -> ToolResult:
        subject = str(args.get("subject") or identity)
        role = str(args.get("role", "viewer")).lower()
        self.company.roles.setdefault(subject, set()).add(role)
        fx.grants.append((subject, role))
        self.log.emit(now, EventKind.ROLE_GRANT, identity, agent, eid, subject, True, 0.0, role + (" (privileged)" if role in ROLES_PRIVILEGED else ""))
        return ToolResult(True, f"granted {role} to {subject}")


def scope_for(call: ToolCall) -> str:
    """The scope ``call`` needs (raises KeyError for unknown tools)."""
    return required_scope(call.service, call.method)
