"""Deterministic sample data: customers, products and sales as CSV.

Sales carry a controlled share of dirty rows (exact duplicates, re-sent transactions, invalid values) so
ingestion, quality checks and KPIs can be tested against a known answer. Customers and products are one
clean row per key, plus, at ``dimension_dirty_rate``, extra dirty rows: exact duplicates, later versions
of a key (a new ``updated_at`` with changed attributes: what SCD2 tracks) and invalid rows. The same
config always gives byte-identical files.

CLI: ``python -m devtools.sampledata --out DIR [--sales N ...] [--dimension-dirty-rate R]
[--only sales|customers|products]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random

from shared.datasets import CONTRACTS, PAYMENT_METHODS, SALE_STATUSES, Dataset

CUSTOMER_COLUMNS = CONTRACTS[Dataset.customers].column_names
PRODUCT_COLUMNS = CONTRACTS[Dataset.products].column_names
SALES_COLUMNS = CONTRACTS[Dataset.sales].column_names

STATUSES = SALE_STATUSES
CATEGORIES: tuple[str, ...] = (
    "electronics",
    "books",
    "home",
    "clothing",
    "sports",
    "toys",
    "beauty",
    "grocery",
)
_C_EMAIL, _C_CITY, _C_STATE, _C_COUNTRY, _C_ACTIVE, _C_UPDATED = 2, 3, 4, 5, 6, 7
_P_NAME, _P_CATEGORY, _P_CREATED, _P_UPDATED = 1, 2, 3, 4
# How an invalid customers / products row breaks exactly one rule: kind -> (column, its new text).
Spoils = dict[str, tuple[int, Callable[[str], str]]]
_CUSTOMER_SPOILS: Spoils = {
    "empty_customer_id": (0, lambda _: ""),
    "empty_updated_at": (_C_UPDATED, lambda _: ""),
    "unparseable_updated_at": (_C_UPDATED, lambda _: "yesterday"),
    "invalid_email": (_C_EMAIL, lambda email: email.replace("@", " at ")),
    "invalid_is_active": (_C_ACTIVE, lambda _: "maybe"),
}
_PRODUCT_SPOILS: Spoils = {
    "empty_product_id": (0, lambda _: ""),
    "empty_updated_at": (_P_UPDATED, lambda _: ""),
    "unparseable_updated_at": (_P_UPDATED, lambda _: "2024-13-45T00:00:00Z"),
    "unparseable_created_at": (_P_CREATED, lambda _: "not-a-date"),
}
# Invalid customers and products rows cycle through these kinds in this order.
INVALID_CUSTOMER_KINDS: tuple[str, ...] = tuple(_CUSTOMER_SPOILS)
INVALID_PRODUCT_KINDS: tuple[str, ...] = tuple(_PRODUCT_SPOILS)
# Invalid sales rows cycle through these kinds in this order.
INVALID_KINDS: tuple[str, ...] = (
    "empty_transaction_id",
    "empty_transaction_ts",
    "unparseable_transaction_ts",
    "non_positive_quantity",
    "non_integer_quantity",
    "negative_unit_price",
    "total_mismatch",
    "unknown_status",
    "unknown_payment_method",
)

_STATUS_CUM = (80, 88, 95, 100)
_PAYMENT_CUM = (35, 50, 80, 90, 95, 100)
_QUANTITIES = tuple(range(1, 11))
_QUANTITY_CUM = (40, 65, 78, 86, 91, 94, 96, 98, 99, 100)
# A re-sent transaction is the source system correcting an earlier status.
_RESEND_STATUS = {
    "pending": "completed",
    "completed": "refunded",
    "cancelled": "pending",
    "refunded": "completed",
}
_NO_Z_RATE = 0.05
_DISCOUNT_RATE = 0.10

_BATCH = 10_000
# Duplicates and re-sends copy from a bounded window of recent rows so memory stays flat for any size.
_WINDOW = 1_000
_DAY = 86_400

_I_ID, _I_TS, _I_CUSTOMER, _I_PRODUCT, _I_QTY, _I_PRICE, _I_TOTAL, _I_PAYMENT, _I_STATUS = range(9)

_FIRST_NAMES = (
    "Ana",
    "João",
    "Maria",
    "Pedro",
    "Lucas",
    "Juliana",
    "Gabriel",
    "Beatriz",
    "Rafael",
    "Camila",
    "Matheus",
    "Larissa",
    "Felipe",
    "Fernanda",
    "Bruno",
    "Letícia",
    "Thiago",
    "Mariana",
    "Diego",
    "Sofia",
    "Antônio",
    "Inês",
    "Martín",
    "Valentina",
    "John",
    "Emily",
)
_LAST_NAMES = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Araújo",
    "Conceição",
    "Barbosa",
    "Fernández",
    "González",
    "Smith",
    "O'Neil",
)
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com.br")
_COUNTRIES = ("BR", "US", "PT", "AR")
_COUNTRY_CUM = (85, 92, 97, 100)
_LOCATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "BR": (
        ("São Paulo", "SP"),
        ("Campinas", "SP"),
        ("Rio de Janeiro", "RJ"),
        ("Belo Horizonte", "MG"),
        ("Curitiba", "PR"),
        ("Porto Alegre", "RS"),
        ("Florianópolis", "SC"),
        ("Salvador", "BA"),
        ("Recife", "PE"),
        ("Fortaleza", "CE"),
        ("Brasília", "DF"),
        ("Goiânia", "GO"),
        ("Manaus", "AM"),
        ("Belém", "PA"),
    ),
    "US": (("New York", "NY"), ("Miami", "FL"), ("Austin", "TX"), ("San Francisco", "CA")),
    "PT": (("Lisboa", "11"), ("Porto", "13"), ("Braga", "03")),
    "AR": (("Buenos Aires", "C"), ("Córdoba", "X"), ("Rosario", "S")),
}
_PRODUCT_NOUNS: dict[str, tuple[str, ...]] = {
    "electronics": ("Headphones", "Smartphone", "USB-C Charger", 'Monitor 24"', "Keyboard"),
    "books": ("Novel", "Cookbook", "Atlas", "Biography", "Poetry Collection"),
    "home": ("Mug, ceramic", "Frying Pan", "Lamp", "Pillow", "Towel Set"),
    "clothing": ("T-Shirt", "Jeans", "Jacket", "Sneakers", "Scarf"),
    "sports": ("Football", "Yoga Mat", "Dumbbell", "Bike Helmet", "Running Shorts"),
    "toys": ("Puzzle", "Board Game", "Building Blocks", "Doll", "Kite"),
    "beauty": ("Shampoo", "Perfume", "Lipstick", "Face Cream", "Sunscreen"),
    "grocery": ("Coffee Beans", "Olive Oil", "Dark Chocolate", "Green Tea", "Açaí Powder"),
}
_ADJECTIVES = ("Classic", "Premium", "Eco", "Smart", "Compact", "Deluxe", "Basic", "Ultra")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; every field takes part in the output, so equal configs give equal files."""

    seed: int = 42
    customers: int = 1_000
    products: int = 100
    sales: int = 10_000
    dirty_rate: float = 0.02  # fraction of sales rows that are dirty (duplicates or invalid)
    # extra customers/products rows (duplicates, later versions, invalid), as a fraction of their counts
    dimension_dirty_rate: float = 0.0
    start: date = date(2025, 1, 1)  # first sale date (UTC); must be in the past
    days: int = 30  # sales spread evenly-ish over this many days

    def __post_init__(self) -> None:
        if self.customers < 1 or self.products < 1:
            raise ValueError("customers and products must be at least 1")
        if self.sales < 0:
            raise ValueError("sales must not be negative")
        if not 0.0 <= self.dirty_rate < 1.0:
            raise ValueError("dirty_rate must be in [0, 1)")
        if not 0.0 <= self.dimension_dirty_rate < 1.0:
            raise ValueError("dimension_dirty_rate must be in [0, 1)")
        if self.days < 1:
            raise ValueError("days must be at least 1")

    @property
    def dirty_rows(self) -> int:
        """Number of dirty sales rows; the first row is always clean so copies have a source."""
        return min(round(self.sales * self.dirty_rate), max(self.sales - 1, 0))


@dataclass(frozen=True)
class GeneratedFiles:
    """Paths of the files generate() wrote."""

    customers: Path
    products: Path
    sales: Path


def generate(config: GeneratorConfig, out_dir: Path) -> GeneratedFiles:
    """Write customers.csv, products.csv and sales.csv into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return GeneratedFiles(
        customers=write_customers(config, out_dir / "customers.csv"),
        products=write_products(config, out_dir / "products.csv"),
        sales=write_sales(config, out_dir / "sales.csv"),
    )


def write_sales(config: GeneratorConfig, path: Path) -> Path:
    """Write only the sales file; its rows are the ones generate() writes."""
    return _write_csv(path, SALES_COLUMNS, _sales_batches(config))


def write_customers(config: GeneratorConfig, path: Path) -> Path:
    """Write only the customers file; its rows are the ones generate() writes."""
    return _write_csv(path, CUSTOMER_COLUMNS, _batched(_customer_rows(config)))


def write_products(config: GeneratorConfig, path: Path) -> Path:
    """Write only the products file; its rows are the ones generate() writes."""
    return _write_csv(path, PRODUCT_COLUMNS, _batched(_product_rows(config)))


def unique_transaction_ids(path: Path, tag: str) -> None:
    """Prefix each transaction_id with the file's tag: every file's sales are its own, so the facts they
    must give are the union of the files' valid rows whatever the order of their loads."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        if row and row[0].strip():
            row[0] = f"{tag}-{row[0]}"
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _write_csv(path: Path, header: Sequence[str], batches: Iterator[list[list[str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for batch in batches:
            writer.writerows(batch)
    return path


def _streams(seed: int) -> tuple[Random, Random, Random]:
    """Independent generators for customers, products and sales.

    Separate streams let write_sales() reproduce generate()'s sales without generating the other files.
    """
    master = Random(seed)
    return Random(master.getrandbits(64)), Random(master.getrandbits(64)), Random(master.getrandbits(64))


def _customer_id(number: int) -> str:
    return f"C{number:06d}"


def _product_id(number: int) -> str:
    return f"P{number:05d}"


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _timestamp(moment: datetime, with_z: bool) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if with_z else "")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


def _start_moment(config: GeneratorConfig) -> datetime:
    return datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)


def _batched(rows: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    """Rows in lists of ``_BATCH``, as the CSV writer takes them."""
    batch: list[list[str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _customer_rows(config: GeneratorConfig) -> Iterator[list[str]]:
    rng = _streams(config.seed)[0]
    dirt = _DimensionDirt(config, config.customers, rng, _revise_customer, _CUSTOMER_SPOILS)
    start = _start_moment(config)
    for number in range(1, config.customers + 1):
        first = rng.choice(_FIRST_NAMES)
        last = rng.choice(_LAST_NAMES)
        country = rng.choices(_COUNTRIES, cum_weights=_COUNTRY_CUM)[0]
        city, state = rng.choice(_LOCATIONS[country])
        domain = rng.choice(_EMAIL_DOMAINS)
        updated = start - timedelta(seconds=rng.randrange(1, 365 * _DAY))
        row = [
            _customer_id(number),
            f"{first} {last}",
            f"{_slug(first)}.{_slug(last)}.{number}@{domain}",
            city,
            state,
            country,
            "true" if rng.random() < 0.9 else "false",
            _timestamp(updated, rng.random() >= _NO_Z_RATE),
        ]
        yield row
        yield from dirt.after(row, updated)


def _product_rows(config: GeneratorConfig) -> Iterator[list[str]]:
    rng = _streams(config.seed)[1]
    dirt = _DimensionDirt(config, config.products, rng, _revise_product, _PRODUCT_SPOILS)
    start = _start_moment(config)
    for number in range(1, config.products + 1):
        category = rng.choice(CATEGORIES)
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_PRODUCT_NOUNS[category])} {number}"
        age = rng.randrange(30 * _DAY, 730 * _DAY)
        created = start - timedelta(seconds=age)
        updated = created + timedelta(seconds=rng.randrange(0, age))
        with_z = rng.random() >= _NO_Z_RATE
        row = [
            _product_id(number),
            name,
            category,
            _timestamp(created, with_z),
            _timestamp(updated, with_z),
        ]
        yield row
        yield from dirt.after(row, updated)


class _DimensionDirt:
    """Extra dirty rows of a customers or products file, each placed right after a clean row.

    Exactly ``round(count * dimension_dirty_rate)`` of them, cycling through: an exact duplicate of a
    recent row, a later version of it (``updated_at`` moves forward, at most to the end of the sales
    period, and attributes change) and an invalid copy (one rule broken, the kinds in turn). A version
    replaces the row it revises in the window, so a later duplicate repeats the latest version. With a
    rate of 0 it draws nothing from ``rng``, so the clean rows are those of a file without dirt.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        count: int,
        rng: Random,
        revise: Callable[[list[str], Random], None],
        spoils: Spoils,
    ) -> None:
        self.rng, self.count = rng, count
        self.revise, self.spoils = revise, list(spoils.values())
        self.left = round(count * config.dimension_dirty_rate)
        self.end = _start_moment(config) + timedelta(days=config.days)
        self.seen = self.invalid = self.clean = 0
        self.window: list[tuple[list[str], datetime]] = []

    def after(self, row: list[str], updated: datetime) -> list[list[str]]:
        if len(self.window) < _WINDOW:
            self.window.append((row, updated))
        else:
            self.window[self.clean % _WINDOW] = (row, updated)
        self.clean += 1
        # Selection sampling over the clean rows: exactly `left` of the remaining ones get a dirty row.
        if self.left == 0 or self.rng.random() * (self.count - self.clean + 1) >= self.left:
            return []
        self.left -= 1
        kind = self.seen % 3
        self.seen += 1
        slot = int(self.rng.random() * len(self.window))
        source, source_updated = self.window[slot]
        dirty = source.copy()
        if kind == 0:
            return [dirty]
        if kind == 1:
            gap = int((self.end - source_updated).total_seconds())
            later = source_updated + timedelta(seconds=self.rng.randrange(1, max(gap, 2)))
            # updated_at is the last column of both contracts.
            dirty[-1] = _timestamp(later, source[-1].endswith("Z"))
            self.revise(dirty, self.rng)
            self.window[slot] = (dirty, later)
            return [dirty]
        column, spoil = self.spoils[self.invalid % len(self.spoils)]
        dirty[column] = spoil(dirty[column])
        self.invalid += 1
        return [dirty]


def _revise_customer(row: list[str], rng: Random) -> None:
    """The customer moves within its country and may change its activity."""
    city, state = rng.choice(_LOCATIONS[row[_C_COUNTRY]])
    row[_C_CITY], row[_C_STATE] = city, state
    if rng.random() < 0.5:
        row[_C_ACTIVE] = "false" if row[_C_ACTIVE] == "true" else "true"


def _revise_product(row: list[str], rng: Random) -> None:
    """The product is renamed (another adjective) and may change category."""
    *_, noun_and_number = row[_P_NAME].partition(" ")
    row[_P_NAME] = f"{rng.choice(_ADJECTIVES)} {noun_and_number}"
    if rng.random() < 0.3:
        row[_P_CATEGORY] = rng.choice(CATEGORIES)


def _list_price_cents(rng: Random) -> int:
    # Integer tiers rather than a float distribution keep prices identical on every platform.
    tier = rng.random()
    if tier < 0.5:
        return rng.randrange(100, 5_000)
    if tier < 0.85:
        return rng.randrange(5_000, 30_000)
    return rng.randrange(30_000, 100_000)


def _sales_batches(config: GeneratorConfig) -> Iterator[list[list[str]]]:
    rng = _streams(config.seed)[2]
    rnd: Callable[[], float] = rng.random
    n = config.sales
    customer_ids = [_customer_id(number) for number in range(1, config.customers + 1)]
    product_ids = [_product_id(number) for number in range(1, config.products + 1)]
    product_range = range(config.products)
    # A product has one list price so repeated sales of it look plausible.
    list_prices = [_list_price_cents(rng) for _ in product_range]
    list_price_texts = [_money(cents) for cents in list_prices]

    # Formatting a datetime per row dominates the cost at a million rows; a lookup table does not.
    span = config.days * _DAY
    day_prefixes = [(config.start + timedelta(days=day)).isoformat() + "T" for day in range(config.days)]
    clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]

    window: list[list[str]] = []
    ring = 0
    next_number = 1
    dirty_left = config.dirty_rows
    dirty_seen = 0
    invalid_seen = 0

    for base in range(0, n, _BATCH):
        size = min(_BATCH, n - base)
        customers = rng.choices(customer_ids, k=size)
        products = rng.choices(product_range, k=size)
        quantities = rng.choices(_QUANTITIES, cum_weights=_QUANTITY_CUM, k=size)
        statuses = rng.choices(STATUSES, cum_weights=_STATUS_CUM, k=size)
        payments = rng.choices(PAYMENT_METHODS, cum_weights=_PAYMENT_CUM, k=size)
        batch: list[list[str]] = []
        append = batch.append
        for j in range(size):
            i = base + j
            # Selection sampling: exactly dirty_rows dirty positions, spread over the file, in one pass.
            dirty = i > 0 and dirty_left > 0 and rnd() * (n - i) < dirty_left
            kind = dirty_seen % 3 if dirty else -1
            if dirty:
                dirty_left -= 1
                dirty_seen += 1
            if kind == 0:
                append(window[int(rnd() * len(window))])
                continue
            if kind == 1:
                slot = int(rnd() * len(window))
                resent = window[slot].copy()
                resent[_I_STATUS] = _RESEND_STATUS[resent[_I_STATUS]]
                # Later copies must repeat the latest version, not resurrect the superseded one.
                window[slot] = resent
                append(resent)
                continue

            # Non-decreasing offsets: row i lands in the i-th slice of the period at a random second.
            offset = (i * span + int(rnd() * span)) // n
            ts = day_prefixes[offset // _DAY] + clock[offset % _DAY]
            if rnd() >= _NO_Z_RATE:
                ts += "Z"
            product = products[j]
            quantity = quantities[j]
            cents = list_prices[product]
            if rnd() < _DISCOUNT_RATE:
                cents = max(100, cents * (95 - int(rnd() * 16)) // 100)
                price_text = _money(cents)
            else:
                price_text = list_price_texts[product]
            total = cents * quantity
            # Inlined id and money formatting: function calls per row are a visible share at 1M rows.
            row = [
                f"T{next_number:010d}",
                ts,
                customers[j],
                product_ids[product],
                str(quantity),
                price_text,
                f"{total // 100}.{total % 100:02d}",
                payments[j],
                statuses[j],
            ]
            next_number += 1
            if kind == 2:
                _spoil(row, INVALID_KINDS[invalid_seen % len(INVALID_KINDS)], cents, quantity, rng)
                invalid_seen += 1
                append(row)
                continue
            append(row)
            if len(window) < _WINDOW:
                window.append(row)
            else:
                window[ring] = row
                ring = (ring + 1) % _WINDOW
        yield batch


def _spoil(row: list[str], kind: str, cents: int, quantity: int, rng: Random) -> None:
    """Make exactly one rule fail; other fields stay consistent so the cause is unambiguous."""
    if kind == "empty_transaction_id":
        row[_I_ID] = ""
    elif kind == "empty_transaction_ts":
        row[_I_TS] = ""
    elif kind == "unparseable_transaction_ts":
        row[_I_TS] = "not-a-date"
    elif kind == "non_positive_quantity":
        bad = -rng.randrange(0, 3)
        row[_I_QTY] = str(bad)
        row[_I_TOTAL] = _money(cents * bad)
    elif kind == "non_integer_quantity":
        row[_I_QTY] = "abc"
    elif kind == "negative_unit_price":
        row[_I_PRICE] = _money(-cents)
        row[_I_TOTAL] = _money(-cents * quantity)
    elif kind == "total_mismatch":
        row[_I_TOTAL] = _money(cents * quantity + rng.randrange(2, 5_000))
    elif kind == "unknown_status":
        row[_I_STATUS] = "shipped"
    elif kind == "unknown_payment_method":
        row[_I_PAYMENT] = "bitcoin"
    else:
        raise ValueError(f"unknown invalid kind {kind!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints the paths written, one a line."""
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m devtools.sampledata", description="Write deterministic sample CSV files."
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--customers", type=int, default=defaults.customers)
    parser.add_argument("--products", type=int, default=defaults.products)
    parser.add_argument("--sales", type=int, default=defaults.sales)
    parser.add_argument("--dirty-rate", type=float, default=defaults.dirty_rate)
    parser.add_argument(
        "--dimension-dirty-rate",
        type=float,
        default=defaults.dimension_dirty_rate,
        help="extra dirty customers/products rows, as a fraction of their counts",
    )
    parser.add_argument("--start", type=date.fromisoformat, default=defaults.start, help="YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--only", choices=("sales", "customers", "products"), help="write one file only")
    args = parser.parse_args(argv)
    values = {field.name: getattr(args, field.name) for field in fields(GeneratorConfig)}
    try:
        config = GeneratorConfig(**values)
    except ValueError as exc:
        parser.error(str(exc))
    # Warn rather than fail: the files stay valid CSV, but rows after now are rejected as future-dated.
    if config.start + timedelta(days=config.days) > datetime.now(UTC).date():
        print("warning: some transaction_ts fall in the future and will be rejected", file=sys.stderr)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[GeneratorConfig, Path], Path]] = {
        "customers": write_customers,
        "products": write_products,
        "sales": write_sales,
    }
    for name, write in writers.items():
        if args.only in (None, name):
            print(write(config, out / f"{name}.csv"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
