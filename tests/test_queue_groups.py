"""Grouped queue views in storage: groups by name or by their most urgent item, collapsed groups left out of the rows,
the count and the positions, each read one group's index at a time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from storage.db import Removal, Store
from storage.queue import Grouping, GroupOrder, QueueView, SortOrder
from storage.records import QueueGroup, QueueRow
from tests.factories import item

NOW = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def sample(store: Store) -> None:
    """billing holds more items, crm the most urgent one: the two group orders differ."""
    store.items.apply_changes(
        "billing",
        [
            item("b1", agent="billing-agent", risk="high", created_at=at(-5), expires_at=at(30)),
            item("b2", agent="billing-agent", risk="medium", created_at=at(-1), expires_at=at(50)),
            item("b3", agent="zeta-agent", risk="low", created_at=at(-9), expires_at=None),
        ],
        [],
        "c1",
    )
    store.items.apply_changes(
        "crm",
        [
            item("c1", agent="crm-agent", risk="critical", created_at=at(-2), expires_at=at(10)),
            item("c2", agent="crm-agent", risk="medium", created_at=at(-7), expires_at=at(20)),
        ],
        [],
        "c1",
    )


def ids(store: Store, view: QueueView) -> list[str]:
    return [row.id for row in store.queue.rows(0, 100, view)]


def test_groups_come_by_name_or_with_the_most_urgent_first(store: Store) -> None:
    sample(store)
    by_name = QueueView(SortOrder.urgency, Grouping.source)
    assert store.queue.groups(by_name) == [QueueGroup("billing", 3), QueueGroup("crm", 2)]
    assert ids(store, by_name) == ["b1", "b2", "b3", "c1", "c2"]
    urgent = QueueView(SortOrder.urgency, Grouping.source, group_order=GroupOrder.urgency)
    assert store.queue.groups(urgent) == [QueueGroup("crm", 2), QueueGroup("billing", 3)]
    assert ids(store, urgent) == ["c1", "c2", "b1", "b2", "b3"]
    assert [store.queue.index_of(s, i, urgent) for s, i in [("crm", "c1"), ("billing", "b1"), ("billing", "b3")]] == [
        0,
        2,
        4,
    ]
    # The order within each group stays the view's own (oldest first here), whatever the groups' order.
    by_age = QueueView(SortOrder.age, Grouping.agent, group_order=GroupOrder.urgency)
    assert [g.label for g in store.queue.groups(by_age)] == ["crm-agent", "billing-agent", "zeta-agent"]
    assert ids(store, by_age) == ["c2", "c1", "b1", "b2", "b3"]
    assert "grouped by agent, most urgent first" in by_age.describe()


def test_a_collapsed_group_keeps_its_header_and_count_but_lists_no_row(store: Store) -> None:
    sample(store)
    view = QueueView(SortOrder.urgency, Grouping.source).toggled("billing")
    assert view.collapsed == {"billing"}
    assert store.queue.groups(view) == [QueueGroup("billing", 3, True), QueueGroup("crm", 2)]
    assert store.queue.count(view) == 2
    assert ids(store, view) == ["c1", "c2"]
    assert store.queue.index_of("crm", "c2", view) == 1
    assert store.queue.index_of("billing", "b1", view) is None  # in a collapsed group: not listed
    assert "1 collapsed" in view.describe()
    assert view.toggled("billing").collapsed == frozenset()
    assert ids(store, view.toggled("billing")) == ["b1", "b2", "b3", "c1", "c2"]
    # With a filter: the collapsed group still says how many of its items match.
    filtered = QueueView(SortOrder.urgency, Grouping.agent, "agent:a", collapsed=frozenset({"crm-agent"}))
    assert store.queue.groups(filtered) == [
        QueueGroup("billing-agent", 2),
        QueueGroup("crm-agent", 2, True),
        QueueGroup("zeta-agent", 1),
    ]
    assert ids(store, filtered) == ["b1", "b2", "b3"]
    assert store.queue.index_of("billing", "b3", filtered) == 2
    assert store.queue.index_of("crm", "c1", filtered) is None


def test_the_groups_follow_a_write(store: Store) -> None:
    sample(store)
    view = QueueView(SortOrder.urgency, Grouping.source, group_order=GroupOrder.urgency)
    assert [g.label for g in store.queue.groups(view)] == ["crm", "billing"]
    store.items.apply_changes("crm", [], [Removal("c1", "withdrawn")], "c2")
    store.items.apply_changes("billing", [item("b4", risk="critical", expires_at=at(5))], [], "c2")
    assert store.queue.groups(view) == [QueueGroup("billing", 4), QueueGroup("crm", 1)]


@pytest.mark.parametrize("order", list(SortOrder))
@pytest.mark.parametrize("filter_text", ["", "ops", "b"])
def test_pages_of_a_grouped_view_are_its_groups_in_order_minus_the_collapsed(
    store: Store, order: SortOrder, filter_text: str
) -> None:
    """Every page and position against the whole queue regrouped by hand: each group is read from its own index."""
    rng = random.Random(5)
    agents = ["billing-agent", "crm-agent", "ops-agent", "infra-agent"]
    items = [
        item(
            f"x{n:04d}",
            source="ops",
            agent=rng.choice(agents),
            risk=rng.choice(["low", "medium", "high", "critical"]),
            confidence=rng.choice([None, 0.1, 0.5, 0.9]),
            created_at=at(-rng.randrange(600)),
            expires_at=rng.choice([None, at(rng.randrange(1, 600))]),
        )
        for n in range(3_000)
    ]
    store.items.apply_changes("ops", items, [], None)
    plain = QueueView(order, Grouping.agent, filter_text)
    whole = store.queue.rows(0, 10_000, plain)
    urgency = {
        (r.source, r.id): n for n, r in enumerate(store.queue.rows(0, 10_000, QueueView(filter_text=filter_text)))
    }
    first_urgent: dict[str, int] = {}
    for r in whole:
        first_urgent[r.agent] = min(first_urgent.get(r.agent, len(urgency)), urgency[(r.source, r.id)])
    collapsed = frozenset({"crm-agent"})
    view = QueueView(order, Grouping.agent, filter_text, group_order=GroupOrder.urgency, collapsed=collapsed)
    labels = sorted(first_urgent, key=first_urgent.__getitem__)
    expected: list[QueueRow] = [r for label in labels if label not in collapsed for r in whole if r.agent == label]
    assert [g.label for g in store.queue.groups(view)] == labels
    assert store.queue.count(view) == len(expected)
    assert len(expected) > 500
    for offset in (len(expected) - 150, 0, 200, len(expected) // 2, len(expected) - 1):
        assert store.queue.rows(offset, 200, view) == expected[offset : offset + 200], offset
    for index in (len(expected) - 1, 0, len(expected) // 3):
        row = expected[index]
        assert store.queue.index_of(row.source, row.id, view) == index


@pytest.mark.parametrize("order", list(SortOrder))
@pytest.mark.parametrize("grouping", [Grouping.source, Grouping.agent])
def test_one_group_is_one_index_walk(store: Store, order: SortOrder, grouping: Grouping) -> None:
    """Reading a group's page or its most urgent item never sorts: at 100,000 items a sort per page would be felt."""
    view = QueueView(order, grouping)
    where, params = view.where()
    column = view.group_column
    for sql in (
        f"SELECT id FROM items WHERE {where} AND {column} = ? ORDER BY {', '.join(view.key_columns)} LIMIT 200",
        f"SELECT id FROM items WHERE {where} AND {column} = ?"
        " ORDER BY risk_order, expires_sort, created_at, source, id LIMIT 1",
    ):
        plan = store.db.execute(f"EXPLAIN QUERY PLAN {sql}", (*params, "x")).fetchall()
        details = " ".join(str(row[-1]) for row in plan)
        assert "USE TEMP B-TREE" not in details, details
        assert "USING INDEX" in details or "USING COVERING INDEX" in details, details
