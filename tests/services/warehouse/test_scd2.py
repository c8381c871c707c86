"""SCD2 histories of DESIGN §5, each asserting the exact dimension rows and every fact's point-in-time versions.

Every load in these tests also checks the invariants (one current row per key, no overlaps, no gaps, no
adjacent twins, facts inside their version's interval, one fact per loaded transaction id) and the
analytics against a recomputation (tests/services/warehouse/harness.py).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from services.warehouse.settings import WarehouseSettings
from tests.services.warehouse.harness import (
    OPEN_END,
    Customer,
    Product,
    Sale,
    Warehouse,
    at,
    inferred,
    run_scenario,
    versions,
)


def test_a_change_opens_a_version_and_facts_after_it_move_to_it(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c, p = w.key("C"), w.key("P")
        v1 = Customer(c, at(1), city="Recife", state="PE")
        v2 = Customer(c, at(3), city="Natal", state="RN")
        await w.products(Product(p, at(1)))
        await w.customers(v1)
        # sales before and after the change arrive before the change itself
        await w.sales(Sale(w.key("S1"), at(2), c, p), Sale(w.key("S2"), at(4), c, p))
        assert (await w.bindings())[w.key("S2")] == (c, at(1), p, at(1))
        first_key = await w.surrogate_keys("customers", c)

        result = await w.load("customers", await w.stage("customers", [v2]))

        assert await w.versions("customers", c) == versions(v1, v2)
        assert (await w.surrogate_keys("customers", c))[0] == first_key[0]  # the old version kept its key
        assert await w.bindings() == {w.key("S1"): (c, at(1), p, at(1)), w.key("S2"): (c, at(3), p, at(1))}
        assert (result.facts, result.versions, result.removed, result.dates) == (1, 1, 0, 1)
        # the region of S2's day moved from PE to RN
        assert await w.analytics("daily_region_sales", f"date = '{at(4).date()}' AND state IS NOT NULL") != []

    run_scenario(settings, scenario)


def test_a_sale_at_the_instant_a_version_starts_belongs_to_that_version(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c, p = w.key("C"), w.key("P")
        await w.products(Product(p, at(1)))
        await w.customers(Customer(c, at(1)))
        early = Sale(w.key("S1"), at(3), c, p)
        await w.sales(early)  # loaded before the version it falls in: re-bound when that version arrives
        await w.customers(Customer(c, at(3), city="Natal", state="RN"))
        late = Sale(w.key("S2"), at(3), c, p)
        await w.sales(late)  # loaded after: bound to it at once
        assert await w.bindings() == {
            early.transaction_id: (c, at(3), p, at(1)),
            late.transaction_id: (c, at(3), p, at(1)),
        }

    run_scenario(settings, scenario)


def test_an_identical_record_resent_changes_nothing(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        v1 = Customer(c, at(1))
        first = await w.customers(v1)
        await w.sales(Sale(w.key("S1"), at(5), c, None))
        before = await w.snapshot()
        keys = await w.surrogate_keys("customers", c)

        replay = await w.load("customers", first)  # the same batch again
        resend = await w.load("customers", await w.stage("customers", [v1]))  # the same record, another batch
        later = await w.load("customers", await w.stage("customers", [dataclasses.replace(v1, updated_at=at(4))]))

        assert await w.snapshot() == before
        assert await w.surrogate_keys("customers", c) == keys
        assert await w.versions("customers", c) == versions(v1)
        for result in (replay, resend, later):
            assert (result.facts, result.versions, result.removed, result.dates) == (0, 0, 0, 0)
        batch = await w.conn.exec_driver_sql(f"SELECT batch_id FROM processed.dim_customers WHERE customer_id = '{c}'")
        assert batch.scalar_one() == first  # no load rewrote the row

    run_scenario(settings, scenario)


def test_change_and_revert_are_three_versions(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        a1, b, a2 = Customer(c, at(1)), Customer(c, at(3), city="Natal", state="RN"), Customer(c, at(5))
        await w.customers(a1)
        await w.sales(*(Sale(w.key(f"S{m}"), at(m, 15), c, None) for m in (1, 3, 5)))
        await w.customers(b)
        await w.customers(a2)

        assert await w.versions("customers", c) == versions(a1, b, a2)
        assert await w.bindings() == {
            w.key("S1"): (c, at(1), None, None),
            w.key("S3"): (c, at(3), None, None),
            w.key("S5"): (c, at(5), None, None),
        }

    run_scenario(settings, scenario)


def test_several_changes_in_one_batch_become_versions_in_order(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        a = Customer(c, at(1))
        a_again = Customer(c, at(2))  # equal to its predecessor: no version
        b = Customer(c, at(3), city="Natal", state="RN")
        d = Customer(c, at(4), city="Natal", state="RN", is_active=False)
        await w.sales(Sale(w.key("S0"), at(1, 1), c, None), Sale(w.key("S3"), at(3, 2), c, None))
        # staged out of order on purpose: the load orders by updated_at, not by line
        result = await w.load("customers", await w.stage("customers", [d, a_again, b, a]))

        assert await w.versions("customers", c) == versions(a, b, d)
        assert await w.bindings() == {w.key("S0"): (c, at(1), None, None), w.key("S3"): (c, at(3), None, None)}
        # the inferred member became the first version in place; S3 moved to the second
        assert (result.versions, result.facts) == (3, 1)

    run_scenario(settings, scenario)


def test_an_out_of_order_record_splits_the_version_it_falls_into(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        a, cc = Customer(c, at(1), city="A"), Customer(c, at(5), city="C")
        await w.customers(a, cc)
        await w.sales(*(Sale(w.key(f"S{m}"), at(m, 10), c, None) for m in (2, 4, 6)))
        keys = await w.surrogate_keys("customers", c)

        b = Customer(c, at(3), city="B")
        await w.customers(b)
        assert await w.versions("customers", c) == versions(a, b, cc)
        assert [k for k in await w.surrogate_keys("customers", c) if k in keys] == keys
        assert await w.bindings() == {
            w.key("S2"): (c, at(1), None, None),
            w.key("S4"): (c, at(3), None, None),
            w.key("S6"): (c, at(5), None, None),
        }

        # a late record equal to the version it falls into: nothing changes
        before = await w.snapshot()
        await w.customers(Customer(c, at(2), city="A"))
        assert await w.snapshot() == before

        # a late record equal to its successor: the successor now starts earlier (merged, no twin versions)
        await w.customers(Customer(c, at(4), city="C"))
        assert await w.versions("customers", c) == versions(a, b, Customer(c, at(4), city="C"))
        assert (await w.bindings())[w.key("S4")] == (c, at(4), None, None)

        # a record before the first version becomes the first; a fact before it moves to it
        early = Sale(w.key("S0"), datetime(2023, 12, 15, tzinfo=UTC), c, None)
        await w.sales(early)
        assert (await w.bindings())[early.transaction_id] == (c, at(1), None, None)
        zero = Customer(c, datetime(2023, 12, 1, tzinfo=UTC), city="Z")
        await w.customers(zero)
        assert await w.versions("customers", c) == versions(zero, a, b, Customer(c, at(4), city="C"))
        assert (await w.bindings())[early.transaction_id] == (c, zero.updated_at, None, None)

    run_scenario(settings, scenario)


def test_a_late_out_of_order_record_equal_to_its_predecessor_merges_two_versions(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        await w.customers(Customer(c, at(1), city="A"), Customer(c, at(3), city="B"), Customer(c, at(5), city="C"))
        await w.sales(*(Sale(w.key(f"S{m}"), at(m, 10), c, None) for m in (2, 4, 6)))
        # B's version turns out to start with A's attributes until 4 Apr: [3, 4) A is A's version grown
        await w.customers(Customer(c, at(3), city="A"), Customer(c, at(4), city="B"))
        assert await w.versions("customers", c) == versions(
            Customer(c, at(1), city="A"), Customer(c, at(4), city="B"), Customer(c, at(5), city="C")
        )
        assert await w.bindings() == {
            w.key("S2"): (c, at(1), None, None),
            w.key("S4"): (c, at(4), None, None),
            w.key("S6"): (c, at(5), None, None),
        }

    run_scenario(settings, scenario)


def test_a_customer_arriving_after_its_sales_completes_the_inferred_member(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c, p = w.key("C"), w.key("P")
        await w.sales(Sale(w.key("S1"), at(2), c, p), Sale(w.key("S2"), at(6), c, p))
        assert await w.versions("customers", c) == [inferred(6)]
        assert await w.versions("products", p) == [inferred(3)]
        inferred_key = await w.surrogate_keys("customers", c)
        region = "state IS NULL AND country IS NULL"
        assert len(await w.analytics("daily_region_sales", region)) >= 2

        real = Customer(c, at(4), city="Natal", state="RN")
        batch = await w.customers(real)
        # completed in place: same surrogate key, real attributes from the record's updated_at on
        assert await w.surrogate_keys("customers", c) == inferred_key
        assert await w.versions("customers", c) == versions(real)
        # S1 (before the first version) binds to the first version
        unknown_product = inferred(3).valid_from
        assert await w.bindings() == {
            w.key("S1"): (c, at(4), p, unknown_product),
            w.key("S2"): (c, at(4), p, unknown_product),
        }
        assert (await w.load("customers", batch)).dates == 0  # replay

        moved = Customer(c, at(5), city="Recife", state="PE")
        await w.customers(moved)
        assert await w.versions("customers", c) == versions(real, moved)
        assert (await w.bindings())[w.key("S1")][:2] == (c, at(4))
        assert (await w.bindings())[w.key("S2")][:2] == (c, at(5))

        # the product, too
        product = Product(p, at(7), category="books")
        await w.products(product)
        assert await w.versions("products", p) == versions(product)
        assert {b[3] for b in (await w.bindings()).values()} == {at(7)}

    run_scenario(settings, scenario)


def test_a_product_category_change_between_two_sales(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        p = w.key("P")
        toys, books = Product(p, at(1), category="toys"), Product(p, at(3), category="books")
        await w.products(toys)
        await w.sales(Sale(w.key("S1"), at(2), None, p, quantity=2), Sale(w.key("S2"), at(4), None, p, quantity=3))
        await w.products(books)

        assert await w.versions("products", p) == versions(toys, books)
        assert await w.bindings() == {w.key("S1"): (None, None, p, at(1)), w.key("S2"): (None, None, p, at(3))}
        rows = await w.conn.exec_driver_sql(
            f"""SELECT date, category, units, revenue FROM analytics.daily_category_sales
                WHERE date IN ('{at(2).date()}', '{at(4).date()}') AND category IN ('toys', 'books')"""
        )
        assert sorted(tuple(r) for r in rows) == [
            (at(2).date(), "toys", 2, Decimal("20.00")),
            (at(4).date(), "books", 3, Decimal("30.00")),
        ]
        # dim_products.updated_at is the source updated_at that started the version
        updated = await w.conn.exec_driver_sql(
            f"SELECT updated_at FROM processed.dim_products WHERE product_id = '{p}' ORDER BY valid_from"
        )
        assert [r[0] for r in updated] == [at(1), at(3)]

    run_scenario(settings, scenario)


def test_a_resent_transaction_is_an_update_never_a_second_fact(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        await w.customers(Customer(c, at(1)))
        pending = Sale(w.key("S1"), at(2, 1, 10), c, None, status="pending")
        await w.sales(pending)
        completed = await w.sales(dataclasses.replace(pending, status="completed"))
        await w.sales(dataclasses.replace(pending, status="refunded", transaction_ts=at(2, 3)))
        facts = await w.conn.exec_driver_sql(
            f"SELECT status, date_key FROM processed.fact_sales WHERE transaction_id = '{pending.transaction_id}'"
        )
        assert [tuple(r) for r in facts] == [("refunded", 20240203)]
        # 1 Feb has no fact left: no analytics row for it; the customer has no completed order any more
        assert await w.analytics("daily_sales", "date = '2024-02-01'") == []
        assert await w.analytics("customer_summary", f"customer_id = '{c}'") == []
        # replaying an older batch changes nothing: the fact holds a later batch's record
        assert (await w.load("sales", completed)).facts == 0
        status = await w.conn.exec_driver_sql(
            f"SELECT status FROM processed.fact_sales WHERE transaction_id = '{pending.transaction_id}'"
        )
        assert status.scalar_one() == "refunded"

    run_scenario(settings, scenario)


def test_new_and_returning_customers_follow_the_first_order_even_when_it_arrives_late(
    settings: WarehouseSettings,
) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        await w.sales(Sale(w.key("S2"), at(2), c, None))
        assert (await w.analytics("daily_customer_activity", f"date = '{at(2).date()}'"))[0][2] >= 1
        await w.sales(Sale(w.key("S1"), at(1), c, None))  # an earlier order of the same customer, loaded later
        summary = await w.analytics("customer_summary", f"customer_id = '{c}'")
        assert [r[1:4] for r in summary] == [(at(1).date(), at(2).date(), 2)]

    run_scenario(settings, scenario)


def test_distinct_customers_move_by_the_customers_that_start_or_stop_counting(settings: WarehouseSettings) -> None:
    """Two customers share a region's day; one moves away, the other's orders are refunded one by one. A third
    has two versions that day whose states differ only as empty and unknown: two regions, never one."""

    async def scenario(w: Warehouse) -> None:
        a, b, e = w.key("A"), w.key("B"), w.key("E")
        day = f"date = '{at(4).date()}'"
        await w.customers(Customer(a, at(1)), Customer(b, at(1)), Customer(e, at(1), state=None))
        await w.customers(Customer(e, at(4, 1, 12), state=""))
        a1, a2 = Sale(w.key("A1"), at(4, 1, 10), a, None), Sale(w.key("A2"), at(4, 1, 11), a, None)
        e1, e2 = Sale(w.key("E1"), at(4, 1, 10), e, None), Sale(w.key("E2"), at(4, 1, 13), e, None)
        await w.sales(a1, a2, Sale(w.key("B1"), at(4, 1, 10), b, None), e1, e2)
        pe = f"{day} AND state = 'PE'"
        assert [r[4] for r in await w.analytics("daily_region_sales", pe)] == [2]

        await w.customers(Customer(b, at(3), city="Natal", state="RN"))  # B lived in RN by then
        assert [r[4] for r in await w.analytics("daily_region_sales", pe)] == [1]

        await w.sales(dataclasses.replace(a1, status="refunded"))  # A still has A2 that day
        assert [r[4] for r in await w.analytics("daily_region_sales", pe)] == [1]
        await w.sales(dataclasses.replace(a2, status="refunded"), dataclasses.replace(e1, status="refunded"))
        assert [r[3:5] for r in await w.analytics("daily_region_sales", pe)] == [(0, 0)]  # refunds stay
        distinct = await w.conn.exec_driver_sql(f"SELECT distinct_customers FROM analytics.daily_sales WHERE {day}")
        assert distinct.scalar_one() == 2  # B and E
        regions = await w.analytics("daily_region_sales", f"{day} AND country = 'BR' AND coalesce(state, '') = ''")
        assert sorted((r[2] is None, r[3], r[4]) for r in regions) == [(False, 1, 1), (True, 0, 0)]

    run_scenario(settings, scenario)


def test_one_load_moving_a_busy_day_and_rebuilding_a_new_one(settings: WarehouseSettings) -> None:
    """Under the ``mixed`` policy this load moves day 4 (4 changed rows of 10) and rebuilds day 5 (new); C's
    first order moves from the one to the other."""

    async def scenario(w: Warehouse) -> None:
        a, b, c, d, e = (w.key(n) for n in "ABCDE")
        await w.customers(*(Customer(k, at(1)) for k in (a, b, c, d)))
        day4 = [
            Sale(w.key(f"{k}4-{i}"), at(4, 1, i), k, None)
            for k, n in ((a, 2), (b, 2), (c, 1), (d, 5))
            for i in range(n)
        ]
        await w.sales(*day4)
        a4, c4 = day4[0], day4[4]
        await w.sales(
            dataclasses.replace(a4, status="refunded"),  # A still has another order on day 4
            dataclasses.replace(c4, status="refunded"),  # C stops counting on day 4 ...
            Sale(w.key("C5"), at(5, 1), c, None),  # ... and orders first on day 5
            Sale(w.key("A5"), at(5, 1, 1), a, None),
            Sale(w.key("E5"), at(5, 1, 2), e, None),  # an unknown customer: inferred
        )
        rows = await w.conn.exec_driver_sql(
            """SELECT date, customers, new_customers, returning_customers FROM analytics.daily_customer_activity
               WHERE date IN ('2024-04-01', '2024-05-01') ORDER BY date"""
        )
        assert [tuple(r[1:]) for r in rows] == [(3, 3, 0), (3, 2, 1)]  # day 4: A, B, D; day 5: C, E new, A

    run_scenario(settings, scenario)


def test_any_load_order_respecting_effective_times_gives_the_same_warehouse(settings: WarehouseSettings) -> None:
    prefix = "order-independence"
    c, p = f"{prefix}-C", f"{prefix}-P"
    customers = [Customer(c, at(1), city="A"), Customer(c, at(3), city="B"), Customer(c, at(5), city="A")]
    products = [Product(p, at(1), category="toys"), Product(p, at(4), category="books")]
    sales = [Sale(f"{prefix}-S{m}", at(m, 10), c, p) for m in range(1, 7)]
    snapshots = []

    def loads(order: list[tuple[str, list[object]]]) -> None:
        async def scenario(w: Warehouse) -> None:
            batches = []
            for dataset, rows in order:
                batch = await w.stage(dataset, rows)
                await w.load(dataset, batch)
                batches.append((dataset, batch))
            first = await w.snapshot()
            for dataset, batch in batches:  # every batch replayed
                await w.load(dataset, batch)
            assert await w.snapshot() == first
            snapshots.append(first)

        run_scenario(settings, scenario, prefix=prefix)

    loads([("customers", customers), ("products", products), ("sales", sales)])
    loads([("sales", sales), ("products", products), *(("customers", [x]) for x in customers)])
    loads(
        [
            ("customers", customers[:1]),
            ("sales", sales[:3]),
            ("products", products),
            ("customers", customers[1:]),
            ("sales", sales[3:]),
        ]
    )
    loads(
        [
            ("customers", [customers[2]]),
            ("products", products[1:]),
            ("sales", sales),
            ("customers", customers[:2]),
            ("products", products[:1]),
        ]
    )
    assert all(s == snapshots[0] for s in snapshots), snapshots
    assert snapshots[0]["dims"]["customers"][-1][1:4] == (at(5), OPEN_END, True)


def test_the_same_record_time_from_two_batches_keeps_the_later_batch(settings: WarehouseSettings) -> None:
    async def scenario(w: Warehouse) -> None:
        c = w.key("C")
        older = await w.stage("customers", [Customer(c, at(1), city="Old")])
        newer = await w.stage("customers", [Customer(c, at(1), city="New")])
        await w.load("customers", newer)
        await w.load("customers", older)  # received earlier: loses
        assert [v.attributes[2] for v in await w.versions("customers", c)] == ["New"]

    run_scenario(settings, scenario)
