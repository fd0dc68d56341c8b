"""The filter's full-text index: words find the agent's summary and reasoning, the index follows every write to the
items cache, and a filtered view's count, pages and positions agree with the whole queue's order. Real SQLite files."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.db import Removal, Store
from storage.queue import KIND_LABELS, Grouping, QueueView, SortOrder
from storage.records import Item, QueueRow
from storage.schema import MIGRATIONS
from storage.search import FILTER_FIELDS, FieldTerm, parse_filter
from tests import factories
from tests.factories import item


def _with_context(item_id: str, summary: str, reasoning: str) -> Item:
    return item(item_id, context={"summary": summary, "reasoning": reasoning, "evidence": [], "links": []})


def ids(store: Store, text: str) -> list[str]:
    return sorted(row.id for row in store.queue.rows(0, 1_000, QueueView(filter_text=text)))


def fts_ids(store: Store, word: str) -> list[str]:
    """What the index alone finds for a word (every state), by item id; it names no row that is not stored."""
    found = [r[0] for r in store.db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", (f'"{word}"',))]
    names = dict(store.db.execute("SELECT rowid, id FROM items").fetchall())
    assert set(found) <= set(names), "the index holds a row that was replaced"
    return sorted(names[rowid] for rowid in found)


def index_is_sound(store: Store) -> None:
    """The index holds each stored row once, and nothing else."""
    store.db.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
    held = [r[0] for r in store.db.execute("SELECT rowid FROM items_fts")]
    assert sorted(held) == sorted(r[0] for r in store.db.execute("SELECT rowid FROM items"))


def test_words_find_the_summary_and_the_reasoning(store: Store) -> None:
    store.items.apply_changes(
        "billing",
        [
            _with_context("a", "Customer was charged twice", "Two captures on one order"),
            _with_context("b", "Address update", "The CRM record is stale"),
        ],
        [],
        None,
    )
    assert ids(store, "charged") == ["a"]
    assert ids(store, "CAPTURES") == ["a"]  # any case
    assert ids(store, "crm record") == ["b"]  # every word, each anywhere
    assert ids(store, '"record is stale"') == ["b"]
    assert ids(store, "twice address") == []
    assert ids(store, "issue_refund") == ["a", "b"]  # the item's own fields still match
    # A word of one or two letters matches the item's fields only: in prose it would match nearly everything.
    assert ids(store, "tw") == []
    assert ids(store, "a") == ["a", "b"]  # "billing-agent"
    view = QueueView(filter_text="stale")
    assert store.queue.count(view) == 1
    assert store.queue.index_of("billing", "b", view) == 0
    assert store.queue.index_of("billing", "a", view) is None


def test_the_index_follows_inserts_new_versions_claims_removals_and_a_full_relisting(store: Store) -> None:
    store.items.apply_changes("billing", [_with_context("a", "refund requested", "duplicate order")], [], "1")
    assert fts_ids(store, "duplicate") == ["a"]
    # A new version replaces the row: the old words leave the index, the new ones come in.
    store.items.apply_changes("billing", [_with_context("a", "refund requested", "fraud suspected")], [], "2")
    assert fts_ids(store, "duplicate") == [] and fts_ids(store, "fraud") == ["a"]
    assert ids(store, "fraud") == ["a"]
    # A claim rewrites the payload (outside the digest): the index still holds the item once, with the same words.
    store.items.set_claim("billing", "a", "bob")
    assert fts_ids(store, "fraud") == ["a"]
    # A removal keeps the row (history reads it) but takes it out of every view.
    ring = _with_context("b", "fraud ring", "same card")
    store.items.apply_changes("billing", [ring], [Removal("a", "withdrawn")], "3")
    assert ids(store, "fraud") == ["b"]
    # A full relisting: what it lists again (a new version of b, and c) is in; what it does not is out of the queue.
    generation = store.items.begin_snapshot("billing")
    store.items.apply_changes(
        "billing",
        [_with_context("b", "fraud ring", "card reused"), _with_context("c", "fraud check", "new device")],
        [],
        None,
        snapshot=generation,
    )
    store.items.end_snapshot("billing", generation, "4")
    assert ids(store, "fraud") == ["b", "c"]
    assert fts_ids(store, "same card") == [] and fts_ids(store, "card reused") == ["b"]
    assert fts_ids(store, "fraud") == ["a", "b", "c"]  # the index holds each row once, whatever its state
    index_is_sound(store)


def test_the_index_matches_a_plain_substring_search_after_many_writes(store: Store) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    rng = random.Random(5)
    texts: dict[str, str] = {}
    for round_ in range(6):
        batch = []
        for n in rng.sample(range(40), 15):
            summary, reasoning = " ".join(rng.sample(words, 2)), f"round {round_} " + rng.choice(words)
            batch.append(_with_context(f"i{n}", summary, reasoning))
            texts[f"i{n}"] = f"{summary} {reasoning}"
        store.items.apply_changes("billing", batch, [], str(round_))
    for word in words:
        expected = sorted(i for i, text in texts.items() if word in text)
        assert fts_ids(store, word) == expected, word
        assert ids(store, word) == expected, word
    index_is_sound(store)


@pytest.mark.parametrize("order", list(SortOrder))
@pytest.mark.parametrize("grouping", list(Grouping))
def test_a_filtered_view_is_the_whole_queue_in_order_with_the_others_left_out(
    store: Store, order: SortOrder, grouping: Grouping
) -> None:
    """Deep pages and positions included: the matches are found in order a part at a time, so compare every page."""
    rng = random.Random(11)
    agents = ["billing-agent", "crm-agent", "ops-agent"]
    items = [
        item(
            f"x{n:04d}",
            source="ops",
            agent=rng.choice(agents),
            risk=rng.choice(["low", "medium", "high", "critical"]),
            confidence=rng.choice([None, 0.1, 0.5, 0.9]),
            context={"summary": rng.choice(["chargeback", "merge", "scale"]), "reasoning": ""},
        )
        for n in range(3_000)
    ]
    store.items.apply_changes("ops", items, [], None)
    whole = store.queue.rows(0, 10_000, QueueView(order, grouping))
    summary = {i.id: i.context.summary for i in items}
    cases: list[tuple[str, Callable[[QueueRow], bool]]] = [
        ("chargeback", lambda r: summary[r.id] == "chargeback"),
        ("b", lambda r: "b" in r.agent),  # one letter: only billing-agent has it
    ]
    for text, keeps in cases:
        view = QueueView(order, grouping, text)
        expected = [r for r in whole if keeps(r)]
        assert len(expected) > 500  # more than one sort's worth: found by walking the order's index
        assert store.queue.count(view) == len(expected)
        # Pages in any order (a jump to the end first), each the same slice of the whole queue's order.
        for offset in (len(expected) - 150, 0, 200, 600, len(expected) - 1):
            assert store.queue.rows(offset, 200, view) == expected[offset : offset + 200], (text, offset)
        for index in (len(expected) - 1, 0, 777):
            row = expected[index]
            assert store.queue.index_of(row.source, row.id, view) == index
        hidden = next(r for r in whole if not keeps(r))
        assert store.queue.index_of(hidden.source, hidden.id, view) is None
        if grouping is not Grouping.none:
            labels = [r.group for r in expected]
            assert store.queue.groups(view) == [(g, labels.count(g), False) for g in dict.fromkeys(labels)]


def test_a_filtered_view_follows_writes_of_this_and_of_another_connection(tmp_path: Path) -> None:
    ui = Store(tmp_path / "console.db")
    background = Store(tmp_path / "console.db", background=True)
    try:
        view = QueueView(filter_text="refund")
        background.items.apply_changes("billing", [item("a"), item("b")], [], "1")
        assert ui.queue.count(view) == 2
        background.items.apply_changes("billing", [item("c")], [], "2")  # another connection commits
        assert ui.queue.count(view) == 3
        ui.outbox.record(factories.decision(item("a")))  # this connection writes
        assert ui.queue.count(view) == 2
        assert [r.id for r in ui.queue.rows(0, 10, view)] == ["b", "c"]
    finally:
        background.close()
        ui.close()


def test_an_older_database_gets_the_index_of_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    store = Store(path)
    store.items.apply_changes("billing", [_with_context("a", "chargeback", "")], [], None)
    store.db.execute("DROP TABLE items_fts")  # as version 6 left it: the items, no index
    store.db.execute("PRAGMA user_version = 6")
    store.close()
    store = Store(path)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert ids(store, "chargeback") == ["a"]
        index_is_sound(store)
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------ filter syntax


def test_the_parser_reads_either_values_exclusions_and_quoted_words() -> None:
    parsed = parse_filter('agent:billing,"crm agent" -risk:low refund -"dry run" -ab kind:ESC')
    assert parsed.fields == (
        FieldTerm("agent", ("billing", "crm agent")),
        FieldTerm("risk", ("low",), exclude=True),
        FieldTerm("kind", ("escalation",)),
    )
    assert parsed.words == ("refund",) and parsed.excluded == ("dry run", "ab")
    assert parsed.problems == ()
    # A lone `-` is the character; a comma in a plain word is part of the word; `agent:` still being typed is nothing.
    assert parse_filter("- a,b agent:").words == ("-", "a,b") and parse_filter("agent:").empty
    assert parse_filter("AGENT:x").fields == (FieldTerm("agent", ("x",)),)  # field names in any case


def test_kind_takes_the_kind_columns_labels_and_risk_its_levels() -> None:
    for kind, label in KIND_LABELS.items():
        for typed in (label, label.lower(), kind, kind[:3]):
            assert parse_filter(f"kind:{typed}").fields == (FieldTerm("kind", (kind,)),), typed
    assert parse_filter("risk:crit,h").fields == (FieldTerm("risk", ("critical", "high")),)
    refused = parse_filter("kind:APPR,job risk:urgent")
    assert refused.fields == (FieldTerm("kind", ("approval",)),)  # what it takes still applies
    assert refused.refused == (("kind", "job"), ("risk", "urgent"))
    assert refused.problems == (
        f"kind:job is not a kind (takes {', '.join(KIND_LABELS.values())})",
        "risk:urgent is not a risk (takes low, medium, high, critical)",
    )


def test_an_unknown_field_is_a_problem_naming_every_field_and_is_not_applied() -> None:
    parsed = parse_filter("owner:bob refund")
    assert parsed.unknown == ("owner",) and parsed.words == ("refund",) and parsed.fields == ()
    [problem] = parsed.problems
    assert problem.startswith("unknown field owner:")
    assert all(f"{name}:" in problem for name in FILTER_FIELDS)
    assert parse_filter('"owner:bob"').words == ("owner:bob",)  # quoted: the text itself
    assert parse_filter("-owner:bob").unknown == ("owner",)


def _syntax_sample(store: Store) -> None:
    def summary(text: str) -> dict[str, object]:
        return {"summary": text, "reasoning": "", "evidence": [], "links": []}

    store.items.apply_changes(
        "billing",
        [
            item("b1", agent="billing-agent", risk="high", context=summary("refund a double charge")),
            item("b2", agent="billing-agent", risk="low", context=summary("dry run of the export")),
            item("b3", risk="critical", kind="escalation", output={"tag": "x"}, context=summary("tag the lead")),
        ],
        [],
        None,
    )
    store.items.apply_changes(
        "crm",
        [
            item(
                "c1",
                source="crm",
                agent="crm-agent",
                risk="medium",
                workflow="leads",
                context=summary("merge leads"),
                action={"name": "merge_leads", "args": {}, "args_schema": None},
            ),
            item("c2", source="crm", agent="ops-agent", risk="critical", context=summary("refund the fee")),
        ],
        [],
        None,
    )
    store.items.set_claim("billing", "b1", "alice")
    store.items.set_claim("crm", "c2", "alicia")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("agent:billing,crm", ["b1", "b2", "b3", "c1"]),  # either value
        ("source:crm agent:ops,nobody", ["c2"]),  # each field term must hold
        ("risk:critical,high", ["b1", "b3", "c2"]),
        ("-risk:low,medium", ["b1", "b3", "c2"]),
        ("kind:ESC", ["b3"]),
        ("-kind:ESC risk:crit", ["c2"]),
        ("refund", ["b1", "b2", "b3", "c2"]),  # b2, b3: the action is issue_refund
        ("-refund", ["c1"]),
        ("-charge", ["b2", "b3", "c1", "c2"]),  # a long word excluded by the summary (the full-text index)
        ('-"double charge" -"dry run" agent:billing', ["b3"]),
        ("-ag", []),  # a short word excluded by the fields: every agent has it
        ("-b1 -c2 -zz", ["b2", "b3", "c1"]),
        ("claimed:alice", ["b1"]),  # a name, not a part of one: alicia is someone else
        ("-claimed:alice", ["b2", "b3", "c1", "c2"]),  # nobody's claim is not alice's
        ("workflow:refunds", ["b1", "b2", "b3", "c2"]),
        ("-workflow:refunds", ["c1"]),
        ("owner:bob", ["b1", "b2", "b3", "c1", "c2"]),  # an unknown field is not applied (it is said)
        ("kind:job,ESC", ["b3"]),
        # The operator's text is a value, never SQL, a LIKE pattern or FTS5 syntax.
        ("agent:%", []),
        ("-agent:_", ["b1", "b2", "b3", "c1", "c2"]),
        ('x" OR "1', []),
        ("-NEAR(refund", ["b1", "b2", "b3", "c1", "c2"]),
        ("agent:x') OR 1=1 --", []),
    ],
)
def test_the_syntax_selects_over_real_sqlite(store: Store, text: str, expected: list[str]) -> None:
    _syntax_sample(store)
    assert ids(store, text) == expected
    view = QueueView(filter_text=text)
    assert store.queue.count(view) == store.queue.count_apart(view) == len(expected)


def test_counting_a_view_apart_keeps_the_lists_matches(store: Store) -> None:
    """The tabs count other views between the list's reads: the list's matches are not searched again for that."""
    _syntax_sample(store)
    shown = QueueView(filter_text="refund")
    assert store.queue.count(shown) == 4
    kept = store.queue._matched(shown)
    for text in ("risk:critical,high", "", "-refund", "claimed:alice"):
        store.queue.count_apart(QueueView(filter_text=text))
    assert store.queue._matched(shown) is kept
    assert [r.id for r in store.queue.rows(0, 10, shown)] == [r.id for r in store.queue.rows(0, 10, shown)]
    assert sorted(r.id for r in store.queue.rows(0, 10, shown)) == ["b1", "b2", "b3", "c2"]


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("risk:critical,high", "items_urgency (risk_order=?)"),  # a range of the index's first column
        ("kind:ESC -risk:low agent:billing", "items_urgency"),  # every column in the index: never the table
        ("claimed:alice", "items_claimed"),  # the Mine view: the few claimed items
    ],
)
def test_a_views_filter_is_found_in_an_index(store: Store, text: str, index: str) -> None:
    """What keeps the view tabs' counts, and switching to a view, cheap at 100k items (no clock: the query plan)."""
    _syntax_sample(store)
    sql, params = QueueView(filter_text=text).match_query()
    plan = " ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN SELECT count(*) FROM ({sql})", params))
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
