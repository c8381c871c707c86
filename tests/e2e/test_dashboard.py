"""The dashboard in Debian's headless Chromium against the running platform: its headline figures are the
API's to the cent, its chart has a point per day, a batch quarantined while the page is open appears with
its failed check and rejected rows (live, from /v1/events), an admin releases it from the page, and the
browser never leaves the loopback interface."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.sampledata import GeneratorConfig, unique_transaction_ids, write_customers, write_products, write_sales
from tests.browser import chromium_page, screenshot
from tests.conftest import Platform
from tests.e2e.test_quality_gate import HEADER
from tests.e2e.test_sales_pipeline import post_file, wait_terminal

pytestmark = pytest.mark.e2e

# A range no other test loads: 16 days, of which the sample data fills the first 12 (the rest draw as zero).
START = date(2021, 4, 1)
END = date(2021, 4, 16)
DATA_DAYS = 12
WAIT_MS = 60_000


def bad_sales_file(path: Path, prefix: str) -> Path:
    """Four rows in ten with an unreadable quantity: over the 10% reject rate, so the batch is quarantined."""
    lines = [
        f"{prefix}-{i},2021-06-0{1 + i % 5}T10:00:00Z,C{i},P1,{'x' if i % 10 < 4 else 2},10.00,20.00,pix,completed\n"
        for i in range(20)
    ]
    path.write_text(HEADER + "".join(lines))
    return path


def load(client: httpx.Client, platform: Platform, path: Path, dataset: str) -> None:
    accepted = post_file(client, platform, path, dataset).raise_for_status()
    assert wait_terminal(client, platform, accepted.json()["batch_id"])["status"] == "loaded"


def sign_in(page: Page, platform: Platform, key: str) -> None:
    page.goto(f"{platform.api}/#from={START}&to={END}")
    page.fill("#api-key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-rendered-range", f"{START}/{END}", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def percent(text: str) -> Decimal:
    assert text.endswith("%"), text
    return Decimal(text[:-1]) / 100


def kpi(page: Page, name: str) -> str:
    return page.locator(f'[data-kpi="{name}"]').inner_text()


def test_dashboard_shows_the_apis_figures_and_a_quarantined_batch(platform: Platform, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    config = GeneratorConfig(seed=18, customers=60, products=12, sales=900, dirty_rate=0.03, start=START, days=12)
    sales = write_sales(config, tmp_path / "sales.csv")
    unique_transaction_ids(sales, f"DB-{run}")
    admin_key = platform.key("ingest:write", "batches:read", "kpis:read", "admin")
    with httpx.Client(headers={"Authorization": f"Bearer {admin_key}"}, timeout=60.0) as client:
        load(client, platform, write_customers(config, tmp_path / "customers.csv"), "customers")
        load(client, platform, write_products(config, tmp_path / "products.csv"), "products")
        load(client, platform, sales, "sales")
        params = {"from": str(START), "to": str(END)}
        summary: dict[str, Any] = client.get(f"{platform.api}/v1/kpis/summary", params=params).raise_for_status().json()
        daily = client.get(f"{platform.api}/v1/kpis/daily", params=params).raise_for_status().json()["days"]
    assert summary["orders"] > 0 and len(daily) == DATA_DAYS

    with chromium_page() as (page, traffic):
        response = page.goto(platform.api)
        assert response is not None and response.ok
        assert "script-src 'self'" in response.headers["content-security-policy"]
        sign_in(page, platform, admin_key)

        # The headline figures, as rendered, are the summary's to the cent.
        assert int(number(kpi(page, "orders"))) == summary["orders"]
        assert number(kpi(page, "revenue")) == Decimal(str(summary["revenue"]))
        assert number(kpi(page, "avg_order_value")) == Decimal(str(summary["avg_order_value"]))
        assert int(number(kpi(page, "distinct_customers"))) == summary["distinct_customers"]
        assert percent(kpi(page, "cancellation_rate")) == Decimal(str(summary["cancellation_rate"]))
        assert percent(kpi(page, "refund_rate")) == Decimal(str(summary["refund_rate"]))

        # One point per day of the range, the days without sales at zero.
        labels, revenue = page.evaluate(
            "() => { const c = Chart.getChart('daily-chart'); return [c.data.labels, c.data.datasets[0].data]; }"
        )
        days = [str(START + timedelta(days=i)) for i in range((END - START).days + 1)]
        assert labels == days
        by_day = {d["date"]: Decimal(str(d["revenue"])) for d in daily}
        assert [Decimal(str(v)) for v in revenue] == [by_day.get(day, Decimal(0)) for day in days]
        expect(page.locator("#categories tbody tr").first).not_to_contain_text("none")
        expect(page.locator("#top-products tbody tr")).to_have_count(10)
        expect(page.locator("#freshness")).to_contain_text("sales")
        expect(page.locator("#live")).to_have_attribute("data-live", "on", timeout=WAIT_MS)

        # A batch quarantined while the page is open shows up through the live stream, with its failed
        # check and its rejected rows, without a reload.
        with httpx.Client(headers={"Authorization": f"Bearer {admin_key}"}, timeout=60.0) as client:
            accepted = post_file(client, platform, bad_sales_file(tmp_path / "bad.csv", f"DQ-{run}")).raise_for_status()
            held_id = accepted.json()["batch_id"]
            assert wait_terminal(client, platform, held_id)["status"] == "quarantined"
        held = page.locator(f'.quarantined-batch[data-batch-id="{held_id}"]')
        expect(held).to_be_visible(timeout=WAIT_MS)
        expect(held.locator(".failed-checks")).to_contain_text("rows.reject_rate")
        expect(held.locator(".rejects tbody tr")).to_have_count(8)
        expect(held.locator(".rejects")).to_contain_text("invalid_quantity")
        expect(page.locator('#events li[data-type="batch.quarantined"]').first).to_be_visible(timeout=WAIT_MS)
        expect(page.locator(f'#batches tr[data-batch-id="{held_id}"] .timeline .seg-quality')).to_have_count(1)
        screenshot(page, "dashboard.png")

        # The admin's release button calls the admin endpoint; the batch then loads.
        held.locator("input").fill("e2e dashboard")
        held.locator("button.release").click()
        expect(page.locator("#action-result")).to_contain_text("release: validated", timeout=WAIT_MS)
        expect(page.locator('#events li[data-type="batch.loaded"]')).not_to_have_count(0, timeout=WAIT_MS)
        expect(held).to_have_count(0, timeout=WAIT_MS)

        assert traffic.refused == [], traffic.refused
        assert all(admin_key not in url for url in traffic.requests)
        assert traffic.console_errors == [], traffic.console_errors
        assert page.evaluate("() => sessionStorage.getItem('sdp-api-key')") == admin_key


def test_a_read_only_key_sees_no_admin_buttons_and_a_bad_key_is_refused(platform: Platform) -> None:
    reader = platform.key("kpis:read", "batches:read")
    with chromium_page() as (page, traffic):
        page.goto(platform.api)
        page.fill("#api-key", "sdp_not_a_key")
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#sign-in-error")).to_contain_text("refused")
        assert page.evaluate("() => sessionStorage.getItem('sdp-api-key')") is None

        sign_in(page, platform, reader)
        expect(page.locator("#who-scopes")).to_have_text("batches:read, kpis:read")
        expect(page.locator("button.release")).to_have_count(0)
        # The key survives a reload of the tab (sessionStorage), and signing out forgets it.
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
        page.click("#sign-out")
        assert page.evaluate("() => sessionStorage.getItem('sdp-api-key')") is None
        assert traffic.refused == [], traffic.refused
