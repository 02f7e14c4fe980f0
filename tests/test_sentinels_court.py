"""Sentinels flag from the event log only; the court turns cases into warrants (or does not)."""

from __future__ import annotations

from kosmoi.types import Case, EventKind, SubjectKind, WarrantAction
from targets.company import Company
from targets.court import Court, CourtConfig, ExerciseWindow
from targets.eventlog import EventLog
from targets.sentinels import Auditor, NetworkSentinel


def _company() -> Company:
    return Company(seed=1, replica=0, run_nonce="t")


def test_rapid_privileged_activity_error_loops_and_price_drops():
    company = _company()
    log = EventLog(0)
    for i in range(5):
        log.emit(float(i), EventKind.TOOL_CALL, "emp-7", "ops", f"e{i}", "iam.grant", True)
    for i in range(3):
        log.emit(float(i), EventKind.TOOL_DENIED, "att-1", "support", f"d{i}", "vault.read", False, 0.0, "scope")
    log.emit(9.0, EventKind.PRICE_CHANGE, "att-2", "sales", "p1", "SKU-1000", True, -60.0, "99.00->39.00")
    log.emit(9.5, EventKind.PRICE_CHANGE, "cust-1", "sales", "p2", "SKU-1001", True, -5.0, "99.00->94.00")
    cases = Auditor(company).inspect(log.window(), 0.0, 60.0)
    by_rule = {(c.rule, c.subject) for c in cases}
    assert ("rapid-fire", "emp-7") in by_rule
    assert ("error-loop", "att-1") in by_rule
    assert ("price-drop", "att-2") in by_rule
    assert not any(c.subject == "cust-1" for c in cases)
    assert all(c.evidence for c in cases)


def test_refund_above_purchase_and_new_external_payee():
    company = _company()
    order = next(iter(company.orders.values()))
    order.refunded = order.amount * 3
    log = EventLog(0)
    log.emit(1.0, EventKind.REFUND, "att-3", "support", "r1", "GB33BUKB20201555555555", True, order.amount * 3, f"order {order.order_id}")
    vendor_account = next(iter(company.vendor_accounts))
    log.emit(2.0, EventKind.TRANSFER, "vendor-00", "finance", "t1", vendor_account, True, 900.0, "invoice")
    cases = Auditor(company).inspect(log.window(), 0.0, 60.0)
    rules = {(c.rule, c.subject_kind, c.subject) for c in cases}
    assert ("refund-above-purchase", SubjectKind.IDENTITY, "att-3") in rules
    assert ("new-payee", SubjectKind.WALLET, "GB33BUKB20201555555555") in rules
    assert not any(c.subject in ("vendor-00", vendor_account) for c in cases)


def test_network_sentinel_learns_a_baseline_then_flags_spikes():
    sentinel = NetworkSentinel()
    for window in range(6):
        log = EventLog(0)
        for user in range(10):
            log.emit(window * 60.0, EventKind.REQUEST, f"cust-{user}", "support", "x")
        assert sentinel.inspect(log.window(), window * 60.0, window * 60.0 + 60) == []
    log = EventLog(0)
    for i in range(30):
        log.emit(400.0, EventKind.REQUEST, "att-9", "support", f"s{i}")
    for i in range(200):
        log.emit(400.0, EventKind.REQUEST, f"bot-{i % 7}", "sales", f"b{i}")
    cases = sentinel.inspect(log.window(), 360.0, 420.0)
    rules = {(c.rule, c.subject) for c in cases}
    assert ("identity-spike", "att-9") in rules
    assert ("global-spike", "sales") in rules


def _case(rule: str, subject: str, severity: int, confidence: float, at: float = 60.0, kind=SubjectKind.IDENTITY, sentinel="auditor") -> Case:
    return Case(f"{rule}-{subject}-{at}", sentinel, rule, subject, kind, severity, confidence, at - 60.0, at, (1,))


def test_court_needs_severity_or_corroboration():
    court = Court()
    assert court.deliberate([_case("error-loop", "att-1", 3, 0.9)], 60.0) == []
    warrants = court.deliberate([_case("rapid-fire", "att-1", 3, 0.7, at=120.0)], 120.0)
    assert len(warrants) == 1 and warrants[0].action is WarrantAction.REVOKE_TOKEN and "corroborated by 2 rules" in warrants[0].reasoning
    severe = court.deliberate([_case("new-payee", "GB33BUKB20201555555555", 4, 0.85, kind=SubjectKind.WALLET)], 60.0)
    assert severe[0].action is WarrantAction.FREEZE_WALLET and "severe case new-payee" in severe[0].reasoning
    assert court.deliberate([_case("new-payee", "GB33BUKB20201555555555", 4, 0.85, at=180.0, kind=SubjectKind.WALLET)], 180.0) == []


def test_old_evidence_expires():
    court = Court(CourtConfig(memory_s=300.0))
    court.deliberate([_case("error-loop", "att-1", 3, 0.9, at=60.0)], 60.0)
    assert court.deliberate([_case("rapid-fire", "att-1", 3, 0.9, at=600.0)], 600.0) == []


def test_known_good_and_exercise_windows_are_respected():
    court = Court(CourtConfig(known_good=("svc-monitor",), exercise_windows=(ExerciseWindow(start_s=0.0, end_s=300.0, subjects=("redteam-*",)),)))
    assert court.deliberate([_case("new-payee", "svc-monitor", 5, 0.99)], 60.0) == []
    assert court.deliberate([_case("new-payee", "redteam-04", 5, 0.99, at=120.0)], 120.0) == []
    assert court.dismissed == 2
    after = court.deliberate([_case("new-payee", "redteam-04", 5, 0.99, at=360.0)], 360.0)
    assert len(after) == 1


def test_the_network_sentinel_forgets_identities_that_went_silent():
    sentinel = NetworkSentinel()
    for window in range(300):
        log = EventLog(0)
        log.emit(window * 60.0, EventKind.REQUEST, f"user-{window}", "support", "x")  # a new identity each window, never back
        log.emit(window * 60.0, EventKind.REQUEST, "regular", "support", "y")
        sentinel.inspect(log.window(), window * 60.0, window * 60.0 + 60)
    remembered = set(sentinel._identity_mean)
    assert "regular" in remembered and "user-299" in remembered
    assert "user-0" not in remembered and len(remembered) <= sentinel.config.forget_after_windows + 64 + 1


def test_the_court_drops_dockets_whose_evidence_has_expired():
    court = Court(CourtConfig(memory_s=300.0))
    for i in range(200):
        court.deliberate([_case("error-loop", f"att-{i}", 3, 0.9, at=60.0 * (i + 1))], 60.0 * (i + 1))  # one weak case each: no warrant
    assert len(court._docket) <= 64 + 300 // 60 + 1  # not one docket per subject ever seen
    assert court.deliberate([_case("rapid-fire", "att-199", 3, 0.9, at=60.0 * 201)], 60.0 * 201)  # recent evidence still counts
