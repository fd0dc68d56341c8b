"""Realistic items for the demo fleet: what billing, CRM, support, infra, outreach and legal agents stop for a human.

Everything random comes from one `random.Random`, so a seeded fleet produces the same ids and contents every run
(timestamps still come from the clock the caller passes in).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from console.servers.protocol.rules import rfc3339

T = TypeVar("T")

ALL_DECISIONS = ["approve", "reject", "edit"]
DEMO_EXTEND = {"max_seconds": 3600}  # the demo approvals: an operator may give them up to an hour more
# The demo agents trace their runs to a tracing tool (PROTOCOL.md "The trace"): one project per agent.
TRACE_BASE = "https://tracing.example"
_RUN_NAMESPACE = uuid.UUID("0b7e3c2a-7d1f-4e55-8a0c-3f6d2b9e4a17")
NO_EDIT = ["approve", "reject"]

FIRST = [
    "Ana",
    "Bruno",
    "Chen",
    "Dara",
    "Elif",
    "Femi",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kavya",
    "Lena",
    "Marek",
    "Nadia",
    "Omar",
    "Priya",
    "Rafael",
    "Sofia",
    "Tomás",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zoe",
]
LAST = [
    "Almeida",
    "Brandt",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Varga",
    "Weber",
    "Yilmaz",
]
COMPANIES = [
    "Northwind Traders",
    "Acme Logistics",
    "Blue Harbor Foods",
    "Kestrel Analytics",
    "Lumen Dental Group",
    "Orbit Freight",
    "Pinecrest Clinics",
    "Quanta Retail",
    "Riverside Books",
    "Solace Insurance",
    "Tidewater Labs",
    "Umbra Security",
    "Verdant Energy",
    "Willow Health",
    "Zenith Travel",
]
SERVICES = [
    "checkout-api",
    "search",
    "payments-gateway",
    "notifications",
    "orders",
    "auth",
    "recommendations",
    "inventory",
    "pricing-engine",
    "webhooks-relay",
]
CLUSTERS = ["prod-eu-west-1", "prod-us-east-1", "prod-ap-south-1"]
DATABASES = ["orders-primary", "billing-pg", "crm-main", "ledger"]
CURRENCIES = ["EUR", "EUR", "EUR", "USD", "GBP"]
TICKET_LABELS = [
    "billing_dispute",
    "refund_request",
    "bug_report",
    "account_access",
    "cancellation",
    "feature_request",
    "shipping_delay",
    "data_privacy",
]
SEGMENTS = [
    "trial-ended-30d",
    "webinar-attendees-nov",
    "churned-q3",
    "enterprise-prospects-dach",
    "pricing-page-visitors",
]


# The demo's mean seconds between new items outside bursts. With the deadlines below (mostly 5 to 45 minutes) and the
# bursts of `Pacing`, about 85 items an hour: an unattended queue levels off at a few dozen pending, and an operator
# deciding one item every half minute or so keeps up with it.
DEMO_GAP = 60.0
BURST_EVERY = (600.0, 1500.0)  # seconds between bursts (an incident, a batch job finishing)
BURST_SIZE = (4, 9)  # items in a burst, besides the one that starts it
BURST_GAP = (1.0, 8.0)  # seconds between the items of a burst


class Pacing:
    """When the demo fleet's next item arrives: a busy shift, not a firehose.

    Outside bursts items arrive at random (a Poisson stream) `mean_gap` seconds apart on average; now and then a burst
    brings several items seconds apart. Its own `random.Random`, so the pace never changes what the items are.
    """

    def __init__(self, rng: random.Random, mean_gap: float = DEMO_GAP) -> None:
        if mean_gap <= 0:
            raise ValueError("mean_gap must be positive")
        self.rng = rng
        self.mean_gap = mean_gap
        self._burst_left = 0
        self._until_burst = rng.uniform(*BURST_EVERY)

    def next_gap(self) -> float:
        """Seconds from this item to the next."""
        if self._burst_left > 0:
            self._burst_left -= 1
            return self.rng.uniform(*BURST_GAP)
        gap = self.rng.expovariate(1.0 / self.mean_gap)
        self._until_burst -= gap
        if self._until_burst <= 0:
            self._burst_left = self.rng.randint(*BURST_SIZE)
            self._until_burst = self.rng.uniform(*BURST_EVERY)
        return gap


class Scenarios:
    """Generates item payloads (everything except `id`, `digest`, `seq`, `claimed_by`)."""

    def __init__(self, rng: random.Random, *, two_person: bool = False) -> None:
        self.rng = rng
        # The demo's irreversible deletions need two operators (PROTOCOL.md "Two-person items"); off for the tests'
        # fleets, whose seeded queues predate the rule (a test of the rule asks for such items itself).
        self.two_person = two_person
        # (weight, kind, agent, template): the weights give a realistic mix of kinds and risks.
        self.templates: list[tuple[int, str, str, Callable[[], dict[str, Any]]]] = [
            (14, "approval", "billing-agent", self._refund),
            (6, "approval", "billing-agent", self._discount),
            (4, "approval", "billing-agent", self._write_off),
            (7, "approval", "crm-agent", self._merge_contacts),
            (3, "approval", "crm-agent", self._delete_account),
            (6, "approval", "infra-agent", self._scale),
            (5, "approval", "infra-agent", self._deploy),
            (2, "approval", "infra-agent", self._rotate_keys),
            (3, "approval", "infra-agent", self._migration),
            (6, "approval", "outreach-agent", self._campaign),
            (7, "approval", "support-agent", self._credit),
            (12, "escalation", "support-agent", self._classify),
            (8, "escalation", "support-agent", self._reply),
            (6, "escalation", "crm-agent", self._lead_score),
            (3, "escalation", "legal-agent", self._clause),
            (4, "escalation", "billing-agent", self._match_payment),
        ]

        self._cumulative = list(itertools.accumulate(t[0] for t in self.templates))

    @property
    def agents(self) -> list[str]:
        return sorted({agent for _, _, agent, _ in self.templates})

    def new_id(self) -> str:
        return f"itm_{self.rng.getrandbits(40):010x}"

    def make(
        self, now: float, *, kind: str | None = None, agent: str | None = None, max_age: float = 0.0
    ) -> dict[str, Any]:
        """One item payload. `kind`/`agent` pick a matching template when there is one; `max_age` backdates creation."""
        rng = self.rng
        if kind is None and agent is None:
            template = rng.choices(self.templates, cum_weights=self._cumulative)[0]
        else:
            choices = [t for t in self.templates if kind in (None, t[1]) and agent in (None, t[2])]
            if not choices:
                choices = [t for t in self.templates if kind in (None, t[1])] or self.templates
            template = rng.choices(choices, weights=[t[0] for t in choices])[0]
        body = template[3]()
        created = int(now - rng.uniform(0, max_age)) if max_age > 0 else int(now)
        # Most deadlines are 5-45 minutes ahead; a few are close enough to watch expire.
        lifetime = rng.uniform(60, 240) if rng.random() < 0.08 else rng.uniform(300, 2700)
        item: dict[str, Any] = {
            "kind": template[1],
            "agent": template[2],
            "workflow": body.pop("workflow"),
            "action": body.pop("action"),
            "output": body.pop("output", None),
            "context": body.pop("context"),
        }
        confidence = body.pop("confidence", None)
        if confidence is not None:
            item["confidence"] = round(confidence, 2)
        item.update(
            {
                "risk": body.pop("risk"),
                "policy": body.pop("policy"),
                "created_at": rfc3339(created),
                "expires_at": rfc3339(int(now + lifetime)),
                "on_expiry": body.pop("on_expiry", "reject"),
                "allowed_decisions": body.pop("allowed_decisions", ALL_DECISIONS),
            }
        )
        required = body.pop("approvals_required", None)
        if required is not None and self.two_person:
            item["approvals_required"] = required
        if item["kind"] == "approval":
            item["extend"] = dict(DEMO_EXTEND)  # the demo's approvals may wait longer (PROTOCOL.md section 10)
        item["trace"] = demo_trace(item)
        return item

    # -- helpers -------------------------------------------------------------------------------------------------

    # random.randint and random.choice cost ten times these: it shows when generating a 100k queue.
    def _randint(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low + 1))

    def _pick(self, options: Sequence[T]) -> T:
        return options[int(self.rng.random() * len(options))]

    def _person(self) -> str:
        return f"{self._pick(FIRST)} {self._pick(LAST)}"

    def _email(self, name: str, company: str | None = None) -> str:
        domain = (company or self._pick(COMPANIES)).lower().split()[0] + ".example"
        first, last = name.lower().split(" ", 1)
        return f"{first[0]}.{last.replace(' ', '')}@{domain}".encode("ascii", "ignore").decode()

    def _customer(self) -> str:
        return f"cus_{self._randint(1000, 99999)}"

    def _ticket(self) -> str:
        return f"T-{self._randint(10000, 99999)}"

    def _invoice(self) -> str:
        return f"INV-{self._randint(1000, 99999)}"

    def _clock(self) -> str:
        return f"{self._randint(0, 23):02d}:{self._randint(0, 59):02d}"

    def _confidence(self, low: float, high: float, absent: float = 0.0) -> float | None:
        return None if self.rng.random() < absent else self.rng.uniform(low, high)

    # -- approvals -----------------------------------------------------------------------------------------------

    def _refund(self) -> dict[str, Any]:
        rng = self.rng
        customer, invoice, currency = self._customer(), self._invoice(), self._pick(CURRENCIES)
        amount = round(rng.uniform(510, 4900), 2)
        ticket = self._ticket()
        reason, summary, reasoning, evidence = self._pick(
            [
                (
                    "duplicate_charge",
                    f"Customer reports a double charge on invoice {invoice}.",
                    "Two captures of the same amount minutes apart; the second has no matching order.",
                    [
                        f"charge ch_{self._randint(100, 999)}a at {self._clock()}",
                        f"charge ch_{self._randint(100, 999)}b four minutes later",
                        "no second order in the shop",
                    ],
                ),
                (
                    "service_outage",
                    f"Customer asks for a refund after the outage on {self._randint(1, 28)} Nov.",
                    "Their account was unreachable for most of the billing period; the SLA promises a pro-rata refund.",
                    ["status page incident INC-" + str(self._randint(100, 999)), "SLA section 4.2 (99.9% monthly)"],
                ),
                (
                    "cancelled_in_trial",
                    "Customer cancelled within the trial but was charged for the annual plan.",
                    "The cancellation timestamp precedes the renewal run by two hours.",
                    [f"cancellation at {self._clock()} UTC", "renewal job ran two hours later"],
                ),
            ]
        )
        return {
            "workflow": "refunds",
            "action": {
                "name": "issue_refund",
                "args": {
                    "customer_id": customer,
                    "invoice_id": invoice,
                    "amount": amount,
                    "currency": currency,
                    "reason": reason,
                },
                "args_schema": {
                    "type": "object",
                    "required": ["customer_id", "invoice_id", "amount", "currency"],
                    "properties": {
                        "customer_id": {"type": "string", "pattern": "^cus_[0-9]+$"},
                        "invoice_id": {"type": "string"},
                        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 5000},
                        "currency": {"enum": ["EUR", "USD", "GBP"]},
                        "reason": {"type": "string", "maxLength": 200},
                    },
                    "additionalProperties": False,
                },
            },
            "context": {
                "summary": summary,
                "reasoning": reasoning,
                "evidence": evidence,
                "links": [f"https://billing.example/invoices/{invoice}", f"https://support.example/tickets/{ticket}"],
            },
            "confidence": self._confidence(0.62, 0.95),
            "risk": "high" if amount >= 2000 else "medium",
            "policy": f"refunds over 500 {currency} need a human",
        }

    def _discount(self) -> dict[str, Any]:
        company, customer = self._pick(COMPANIES), self._customer()
        percent, months = self._pick([15, 20, 25, 30, 40]), self._pick([3, 6, 12])
        seats = self._randint(12, 400)
        return {
            "workflow": "retention",
            "action": {
                "name": "apply_discount",
                "args": {
                    "customer_id": customer,
                    "percent": percent,
                    "months": months,
                    "plan": self._pick(["team", "business", "enterprise"]),
                },
                "args_schema": {
                    "type": "object",
                    "required": ["customer_id", "percent", "months"],
                    "properties": {
                        "percent": {"type": "integer", "minimum": 1, "maximum": 50},
                        "months": {"type": "integer", "minimum": 1, "maximum": 12},
                        "plan": {"enum": ["team", "business", "enterprise"]},
                    },
                },
            },
            "context": {
                "summary": f"{company} ({seats} seats) asked to cancel at renewal; a retention offer is proposed.",
                "reasoning": f"Usage fell {self._randint(20, 60)}% this quarter; similar accounts accepted {percent}% "
                f"discounts and stayed.",
                "evidence": [f"renewal in {self._randint(3, 30)} days", f"{seats} active seats", "NPS 6 last survey"],
                "links": [f"https://crm.example/accounts/{customer}"],
            },
            "confidence": self._confidence(0.55, 0.9, absent=0.2),
            "risk": "medium" if percent >= 25 else "low",
            "policy": "discounts above 10% or longer than 3 months need a human",
        }

    def _write_off(self) -> dict[str, Any]:
        rng = self.rng
        invoice, customer, company = self._invoice(), self._customer(), self._pick(COMPANIES)
        amount = round(rng.uniform(800, 24000), 2)
        return {
            "workflow": "collections",
            "action": {
                "name": "write_off_invoice",
                "args": {"invoice_id": invoice, "customer_id": customer, "amount": amount, "currency": "EUR"},
                "args_schema": {
                    "type": "object",
                    "required": ["invoice_id", "amount"],
                    "properties": {"amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 25000}},
                },
            },
            "context": {
                "summary": f"Invoice {invoice} for {company} is {self._randint(120, 400)} days overdue.",
                "reasoning": "Three dunning cycles failed and the collection agency declined the case.",
                "evidence": ["dunning emails bounced", "agency reference COL-" + str(self._randint(1000, 9999))],
                "links": [f"https://billing.example/invoices/{invoice}"],
            },
            "confidence": self._confidence(0.7, 0.93),
            "risk": "high" if amount > 10000 else "medium",
            "policy": "write-offs always need a human",
        }

    def _merge_contacts(self) -> dict[str, Any]:
        company = self._pick(COMPANIES)
        count = self._pick([self._randint(6, 19), self._randint(20, 240)])
        primary = f"ct_{self._randint(100000, 999999)}"
        duplicates = [f"ct_{self._randint(100000, 999999)}" for _ in range(count)]
        return {
            "workflow": "dedupe",
            "action": {
                "name": "merge_contacts",
                "args": {"primary_id": primary, "duplicate_ids": duplicates, "field_strategy": "keep_primary"},
                "args_schema": {
                    "type": "object",
                    "required": ["primary_id", "duplicate_ids"],
                    "properties": {
                        "primary_id": {"type": "string", "pattern": "^ct_[0-9]+$"},
                        "duplicate_ids": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 250,
                            "items": {"type": "string", "pattern": "^ct_[0-9]+$"},
                        },
                        "field_strategy": {"enum": ["keep_primary", "newest_wins", "most_complete"]},
                    },
                },
            },
            "context": {
                "summary": f"Merge {count} duplicate contacts into the primary record for {company}.",
                "reasoning": "Same normalised email domain and phone number; names differ only by spelling.",
                "evidence": [
                    f"{count} records share phone +49 30 {self._randint(1000000, 9999999)}",
                    "fuzzy name match >= 0.92",
                ],
                "links": [f"https://crm.example/contacts/{primary}"],
            },
            "confidence": self._confidence(0.6, 0.97),
            "risk": "high" if count >= 20 else "medium",
            "policy": "bulk merges of more than 5 contacts need a human",
        }

    def _delete_account(self) -> dict[str, Any]:
        name = self._person()
        account = f"acct_{self._randint(10000, 99999)}"
        return {
            "workflow": "privacy",
            "action": {
                "name": "delete_account",
                "args": {
                    "account_id": account,
                    "email": self._email(name),
                    "hard_delete": True,
                    "retain_invoices": True,
                    "request_ref": f"DSR-{self._randint(1000, 9999)}",
                },
                "args_schema": {
                    "type": "object",
                    "required": ["account_id", "hard_delete"],
                    "properties": {"hard_delete": {"type": "boolean"}, "retain_invoices": {"const": True}},
                },
            },
            "context": {
                "summary": f"Erasure request from {name}: delete the account and all personal data.",
                "reasoning": "Identity verified by the support agent; no open invoices; legal hold check passed.",
                "evidence": ["ID check passed", "no legal hold", f"last login {self._randint(40, 400)} days ago"],
                "links": [f"https://crm.example/accounts/{account}"],
            },
            "confidence": self._confidence(0.85, 0.99, absent=0.3),
            "risk": "critical",
            "policy": "irreversible deletions need two different operators to approve, and cannot be edited",
            "allowed_decisions": NO_EDIT,
            "approvals_required": 2,  # the two-person rule (PROTOCOL.md "Two-person items")
        }

    def _scale(self) -> dict[str, Any]:
        service, cluster = self._pick(SERVICES), self._pick(CLUSTERS)
        current = self._randint(8, 40)
        target = max(2, current // self._pick([2, 3, 4]))
        return {
            "workflow": "capacity",
            "action": {
                "name": "scale_deployment",
                "args": {
                    "cluster": cluster,
                    "namespace": "production",
                    "deployment": service,
                    "from_replicas": current,
                    "to_replicas": target,
                },
                "args_schema": {
                    "type": "object",
                    "required": ["cluster", "deployment", "to_replicas"],
                    "properties": {"to_replicas": {"type": "integer", "minimum": 2, "maximum": 60}},
                },
            },
            "context": {
                "summary": f"Scale {service} in {cluster} down from {current} to {target} replicas.",
                "reasoning": f"CPU has stayed under {self._randint(6, 18)}% for six hours; the nightly traffic dip "
                "started.",
                "evidence": [f"p95 latency {self._randint(40, 120)} ms", f"{current} pods at low CPU"],
                "links": [f"https://grafana.example/d/{service}?var-cluster={cluster}"],
            },
            "confidence": self._confidence(0.7, 0.95, absent=0.4),
            "risk": "high",
            "policy": "production scale-downs need a human",
        }

    def _deploy(self) -> dict[str, Any]:
        service = self._pick(SERVICES)
        version = f"v{self._randint(1, 4)}.{self._randint(0, 30)}.{self._randint(0, 9)}"
        return {
            "workflow": "releases",
            "action": {
                "name": "deploy_release",
                "args": {
                    "service": service,
                    "version": version,
                    "environment": "production",
                    "strategy": "canary",
                    "canary_percent": self._pick([5, 10, 25]),
                },
                "args_schema": {
                    "type": "object",
                    "required": ["service", "version", "environment"],
                    "properties": {
                        "strategy": {"enum": ["canary", "rolling", "blue_green"]},
                        "canary_percent": {"type": "integer", "minimum": 1, "maximum": 50},
                        "version": {"type": "string", "pattern": "^v[0-9]+\\.[0-9]+\\.[0-9]+$"},
                    },
                },
            },
            "context": {
                "summary": f"Deploy {service} {version} to production.",
                "reasoning": "All checks passed on staging; the change touches the payment retry path.",
                "evidence": [f"{self._randint(300, 1200)} tests passed", "staging soak 2 h, error rate 0.02%"],
                "links": [f"https://ci.example/{service}/releases/{version}"],
            },
            "confidence": self._confidence(0.6, 0.9, absent=0.3),
            "risk": self._pick(["high", "high", "critical"]),
            "policy": "production deploys outside the release window need a human",
        }

    def _rotate_keys(self) -> dict[str, Any]:
        rng = self.rng
        service = self._pick(SERVICES)
        keys = [f"key_{rng.getrandbits(32):08x}" for _ in range(self._randint(1, 4))]
        return {
            "workflow": "security",
            "action": {
                "name": "rotate_api_keys",
                "args": {"service": service, "key_ids": keys, "revoke_old_after_minutes": 30},
                "args_schema": {"type": "object", "required": ["service", "key_ids"]},
            },
            "context": {
                "summary": f"Rotate {len(keys)} API key(s) of {service}; old keys revoked after 30 minutes.",
                "reasoning": "A key prefix appeared in a public paste; rotation is the standard response.",
                "evidence": ["secret scanner alert SS-" + str(self._randint(100, 999)), "key last used 4 min ago"],
                "links": ["https://security.example/alerts"],
            },
            "risk": "critical",
            "policy": "key rotation breaks running clients: a human confirms, no edits",
            "allowed_decisions": NO_EDIT,
        }

    def _migration(self) -> dict[str, Any]:
        database = self._pick(DATABASES)
        migration = f"2026112{self._randint(0, 9)}_{self._pick(['add_index_orders_customer', 'drop_legacy_flags', 'split_address_table'])}"  # noqa: E501
        lock = self._randint(2, 90)
        return {
            "workflow": "databases",
            "action": {
                "name": "run_migration",
                "args": {
                    "database": database,
                    "migration_id": migration,
                    "estimated_lock_seconds": lock,
                    "statements": self._randint(1, 12),
                },
                "args_schema": {"type": "object", "required": ["database", "migration_id"]},
            },
            "context": {
                "summary": f"Run migration {migration} on {database}.",
                "reasoning": f"Estimated table lock {lock} s; traffic is at its daily low.",
                "evidence": ["dry run on a snapshot succeeded", "backup taken " + self._clock()],
                "links": [f"https://git.example/db/migrations/{migration}.sql"],
            },
            "confidence": self._confidence(0.7, 0.92, absent=0.5),
            "risk": "critical" if lock > 30 else "high",
            "policy": "schema migrations on primaries need a human",
            "allowed_decisions": NO_EDIT,
        }

    def _campaign(self) -> dict[str, Any]:
        segment = self._pick(SEGMENTS)
        recipients = self._pick([200, 200, self._randint(120, 480)])
        subject = self._pick(
            [
                "Your trial ended: 20% off if you come back this week",
                "Invitation: cutting cloud costs, live Q&A",
                "We miss you: here is what changed",
                "A faster checkout for your customers",
            ]
        )
        return {
            "workflow": "campaigns",
            "action": {
                "name": "send_email_campaign",
                "args": {
                    "campaign_id": f"cmp_{self._randint(100, 999)}",
                    "segment": segment,
                    "recipients": recipients,
                    "subject": subject,
                    "template_id": f"tpl_{self._randint(10, 99)}",
                    "send_at": "immediately",
                },
                "args_schema": {
                    "type": "object",
                    "required": ["segment", "recipients", "subject", "template_id"],
                    "properties": {
                        "recipients": {"type": "integer", "minimum": 1, "maximum": 500},
                        "subject": {"type": "string", "minLength": 5, "maxLength": 120},
                    },
                },
            },
            "context": {
                "summary": f"Send '{subject}' to {recipients} prospects in segment {segment}.",
                "reasoning": "The segment's open rate was 41% last month; the offer matches their trial usage.",
                "evidence": [f"{recipients} contacts opted in", "unsubscribe rate 0.3%"],
                "links": [f"https://outreach.example/segments/{segment}"],
            },
            "confidence": self._confidence(0.5, 0.85),
            "risk": "high" if recipients > 300 else "medium",
            "policy": "campaigns to more than 100 recipients need a human",
        }

    def _credit(self) -> dict[str, Any]:
        ticket, customer = self._ticket(), self._customer()
        amount = self._pick([25, 30, 40, 50, 75, 100, 150])
        return {
            "workflow": "goodwill",
            "action": {
                "name": "issue_credit",
                "args": {"ticket_id": ticket, "customer_id": customer, "credit_amount": amount, "currency": "EUR"},
                "args_schema": {
                    "type": "object",
                    "required": ["ticket_id", "customer_id", "credit_amount"],
                    "properties": {"credit_amount": {"type": "number", "minimum": 1, "maximum": 200}},
                },
            },
            "context": {
                "summary": f"Goodwill credit for a delayed order on ticket {ticket}.",
                "reasoning": "The parcel is nine days late and the customer has been with us three years.",
                "evidence": ["carrier status: held at depot", "3 prior orders, no complaints"],
                "links": [f"https://support.example/tickets/{ticket}"],
            },
            "confidence": self._confidence(0.7, 0.95),
            "risk": "low",
            "policy": "credits over 25 EUR need a human",
        }

    # -- escalations ---------------------------------------------------------------------------------------------

    def _classify(self) -> dict[str, Any]:
        rng = self.rng
        ticket = self._ticket()
        labels = rng.sample(TICKET_LABELS, 3)
        top = self._pick([0.41, round(rng.uniform(0.3, 0.58), 2)])
        second = round(rng.uniform(0.15, top - 0.02), 2)
        third = round(rng.uniform(0.02, second), 2)
        candidates = [
            {"label": labels[0], "score": top},
            {"label": labels[1], "score": second},
            {"label": labels[2], "score": third},
        ]
        return {
            "workflow": "triage",
            "action": {
                "name": "classify_ticket",
                "args": {"ticket_id": ticket},
                "args_schema": {
                    "type": "object",
                    "required": ["label"],
                    "properties": {"label": {"enum": TICKET_LABELS}, "candidates": {"type": "array"}},
                },
            },
            "output": {"label": labels[0], "candidates": candidates},
            "context": {
                "summary": f'Ticket {ticket}: "{self._pick(["I was charged but cannot log in", "Where is my order?", "Please remove my data", "The export button does nothing"])}"',  # noqa: E501
                "reasoning": f"The text mentions both {labels[0].replace('_', ' ')} and {labels[1].replace('_', ' ')}.",
                "evidence": [f"{c['label']}: {c['score']}" for c in candidates],
                "links": [f"https://support.example/tickets/{ticket}"],
            },
            "confidence": top,
            "risk": self._pick(["low", "low", "medium"]),
            "policy": "classifications under 0.6 confidence go to a human",
            "on_expiry": "route_to_general_queue",
        }

    def _reply(self) -> dict[str, Any]:
        rng = self.rng
        name, company = self._person(), self._pick(COMPANIES)
        ticket = self._ticket()
        first = name.split(" ")[0]
        topic, body = self._pick(
            [
                (
                    "Your refund",
                    f"Hi {first},\n\nWe have refunded the duplicate charge; it will reach your card within "
                    "5 business days.\n\nBest regards,\nSupport",
                ),
                (
                    "Your data export",
                    f"Hi {first},\n\nThe export you asked for is attached. It includes all invoices "
                    "since 2023.\n\nBest regards,\nSupport",
                ),
                (
                    "Account access",
                    f"Hi {first},\n\nWe reset your two-factor settings. Please sign in and enrol a new "
                    "device.\n\nBest regards,\nSupport",
                ),
            ]
        )
        return {
            "workflow": "replies",
            "action": {
                "name": "send_reply",
                "args": {"ticket_id": ticket},
                "args_schema": {
                    "type": "object",
                    "required": ["to", "subject", "body"],
                    "properties": {
                        "subject": {"type": "string", "maxLength": 200},
                        "body": {"type": "string", "minLength": 20, "maxLength": 4000},
                    },
                },
            },
            "output": {"to": self._email(name, company), "subject": f"Re: {topic}", "body": body},
            "context": {
                "summary": f"Drafted reply to {name} ({company}) on ticket {ticket}.",
                "reasoning": "The draft promises something the agent could not verify in the billing system.",
                "evidence": ["no refund record found yet", f"customer wrote {self._randint(2, 5)} times"],
                "links": [f"https://support.example/tickets/{ticket}"],
            },
            "confidence": round(rng.uniform(0.4, 0.62), 2),
            "risk": self._pick(["low", "medium", "medium"]),
            "policy": "replies with promises about money go to a human",
        }

    def _lead_score(self) -> dict[str, Any]:
        rng = self.rng
        company = self._pick(COMPANIES)
        lead = f"lead_{self._randint(10000, 99999)}"
        score = self._randint(35, 92)
        tier = "A" if score >= 80 else "B" if score >= 55 else "C"
        return {
            "workflow": "scoring",
            "action": {
                "name": "score_lead",
                "args": {"lead_id": lead},
                "args_schema": {
                    "type": "object",
                    "required": ["score", "tier"],
                    "properties": {
                        "score": {"type": "integer", "minimum": 0, "maximum": 100},
                        "tier": {"enum": ["A", "B", "C"]},
                    },
                },
            },
            "output": {"lead_id": lead, "score": score, "tier": tier},
            "context": {
                "summary": f"Lead score for {self._person()} at {company}.",
                "reasoning": "Strong fit on company size; weak signals on intent (one pricing page visit).",
                "evidence": [f"{self._randint(50, 5000)} employees", "1 pricing page visit", "webinar attended"],
                "links": [f"https://crm.example/leads/{lead}"],
            },
            "confidence": round(rng.uniform(0.45, 0.65), 2),
            "risk": "low",
            "policy": "lead scores under 0.7 confidence are reviewed before routing",
            "on_expiry": "approve",
        }

    def _clause(self) -> dict[str, Any]:
        rng = self.rng
        company = self._pick(COMPANIES)
        clause = self._pick(["14.2 Limitation of liability", "9.1 Data processing", "11.3 Termination for convenience"])
        return {
            "workflow": "contracts",
            "action": {
                "name": "summarize_clause",
                "args": {"contract_id": f"ctr_{self._randint(1000, 9999)}", "clause": clause},
                "args_schema": {"type": "object", "required": ["summary"]},
            },
            "output": {
                "summary": f"{company} caps liability at 12 months of fees and excludes indirect damages.",
                "flags": rng.sample(["uncapped_indemnity", "auto_renewal", "unilateral_price_change"], 2),
            },
            "context": {
                "summary": f"Summary of clause {clause} in the {company} MSA.",
                "reasoning": "The clause cross-references an annex the agent could not open.",
                "evidence": ["annex C missing from the upload"],
                "links": ["https://legal.example/contracts"],
            },
            "confidence": round(rng.uniform(0.35, 0.6), 2),
            "risk": self._pick(["medium", "high"]),
            "policy": "contract summaries below 0.7 confidence are checked by legal",
            "allowed_decisions": NO_EDIT,
        }

    def _match_payment(self) -> dict[str, Any]:
        rng = self.rng
        payment, invoice = f"pay_{self._randint(100000, 999999)}", self._invoice()
        amount = round(rng.uniform(90, 9000), 2)
        return {
            "workflow": "reconciliation",
            "action": {
                "name": "match_payment",
                "args": {"payment_id": payment},
                "args_schema": {
                    "type": "object",
                    "required": ["payment_id", "invoice_id"],
                    "properties": {"invoice_id": {"type": "string", "pattern": "^INV-[0-9]+$"}},
                },
            },
            "output": {"payment_id": payment, "invoice_id": invoice},
            "context": {
                "summary": f"Bank transfer of {amount} EUR without a reference; the agent matched it to {invoice}.",
                "reasoning": "Amount matches two open invoices of the same customer; picked the older one.",
                "evidence": [f"two open invoices of {amount} EUR", "payer IBAN known"],
                "links": [f"https://billing.example/payments/{payment}"],
            },
            "confidence": round(rng.uniform(0.4, 0.6), 2),
            "risk": "medium",
            "policy": "ambiguous payment matches go to a human",
        }


def demo_trace(item: dict[str, Any]) -> dict[str, str]:
    """The trace of the demo run that raised `item`: derived from its content, so the seeded generator's sequence (and
    every other field) stays as it was, and the same item always names the same run."""
    # Not its times: they follow the clock, and the same seed must give the same runs whenever the fleet starts.
    timeless = {k: v for k, v in item.items() if k not in ("created_at", "expires_at")}
    seed = hashlib.sha256(json.dumps(timeless, sort_keys=True, default=str).encode()).hexdigest()
    run_id = str(uuid.uuid5(_RUN_NAMESPACE, seed))
    project = f"{item['agent']}-prod"
    return {"run_id": run_id, "trace_id": run_id, "project": project, "url": f"{TRACE_BASE}/{project}/runs/{run_id}"}
