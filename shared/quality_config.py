"""Declarative quality checks: one versioned TOML file per deployment, validated here.

The quality worker reads the file for every batch it checks, so an edit takes effect for the next batch
without a deploy; the API lists it and the reconciler evaluates its freshness SLAs. A result records the
version that produced it: the file's declared ``version`` plus a hash of its bytes, so an edit that
forgets to bump the declared version is still told apart.

Thresholds say how many failing rows a check tolerates: a count (``3``) or a share (``"5%"``). A check
past its threshold ends ``fail`` when its severity is ``error`` (the batch is quarantined) and ``warn``
when it is ``warn`` (the batch loads with the warning attached).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.datasets import CONTRACTS, Dataset

Severity = Literal["warn", "error"]
Layer = Literal["raw", "staging"]

NUMERIC_TYPES = frozenset({"integer", "numeric(12,2)"})
ORDERED_TYPES = NUMERIC_TYPES | {"timestamptz"}
# Columns of an expression rule are identifiers of the dataset; anything else is one of these tokens.
EXPRESSION_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[a-z_][a-z0-9_]*)|(?P<op>[-+*/()]))")
COMPARATORS = ("<=", ">=", "=", "<", ">")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Threshold(BaseModel):
    """At most ``value`` failing rows (``count``) or ``value`` percent of the rows checked (``percent``)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["count", "percent"]
    value: float = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise ValueError("a threshold is a count (3) or a percentage ('5%')")
        if isinstance(data, int | float):
            return {"kind": "count", "value": data}
        if isinstance(data, str):
            text = data.strip()
            if text.endswith("%"):
                return {"kind": "percent", "value": float(text[:-1])}
            return {"kind": "count", "value": float(text)}
        return data

    def exceeded(self, failing: int, total: int) -> bool:
        if self.kind == "count":
            return failing > self.value
        return total > 0 and failing * 100 > self.value * total

    def __str__(self) -> str:
        return f"<= {self.value:g}%" if self.kind == "percent" else f"<= {self.value:g} rows"


def parse_duration(value: Any) -> float:
    """Seconds from ``90`` (seconds), ``"90s"``, ``"30m"``, ``"48h"`` or ``"7d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and (match := DURATION.match(value)):
        return float(match.group(1)) * DURATION_SECONDS[match.group(2)]
    raise ValueError(f"not a duration: {value!r} (e.g. 90, '90s', '30m', '48h', '7d')")


Seconds = Annotated[float, Field(gt=0)]


class CheckBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_][a-z0-9_.:-]*$", max_length=200)
    severity: Severity = "error"
    description: str = ""

    def columns(self) -> list[tuple[str, Layer]]:
        """The dataset columns the check reads, with their layer; validated against the contract."""
        return []


class SchemaCheck(CheckBase):
    """The file's header has the contract's required columns (and, with ``require_all``, every column), the
    staging table has each column with the contract's type; extra columns are reported as drift."""

    type: Literal["schema"]
    require_all: bool = False
    fail_on_drift: bool = False


class NotNullCheck(CheckBase):
    type: Literal["not_null"]
    column: str
    layer: Layer = "staging"
    max_failing: Threshold = Threshold(kind="count", value=0)

    def columns(self) -> list[tuple[str, Layer]]:
        return [(self.column, self.layer)]


class UniqueCheck(CheckBase):
    """No two of the batch's staged rows share these columns' values (failing: every row of such a group)."""

    type: Literal["unique"]
    columns_: list[str] = Field(alias="columns", min_length=1)
    max_failing: Threshold = Threshold(kind="count", value=0)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def columns(self) -> list[tuple[str, Layer]]:
        return [(c, "staging") for c in self.columns_]


class AcceptedValuesCheck(CheckBase):
    """A non-null value outside ``values`` (compared as text) fails."""

    type: Literal["accepted_values"]
    column: str
    values: list[str] = Field(min_length=1)
    layer: Layer = "staging"
    max_failing: Threshold = Threshold(kind="count", value=0)

    def columns(self) -> list[tuple[str, Layer]]:
        return [(self.column, self.layer)]


class RangeCheck(CheckBase):
    """A non-null value below ``min`` or above ``max`` fails; bounds are cast to the column's type, so a
    timestamp column takes ISO timestamps."""

    type: Literal["range"]
    column: str
    min: float | str | None = None
    max: float | str | None = None
    max_failing: Threshold = Threshold(kind="count", value=0)

    @model_validator(mode="after")
    def _a_bound(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs min, max or both")
        return self

    def columns(self) -> list[tuple[str, Layer]]:
        return [(self.column, "staging")]


class RegexCheck(CheckBase):
    """A non-null value (as text) that does not match ``pattern`` (a PostgreSQL regular expression) fails."""

    type: Literal["regex"]
    column: str
    pattern: str = Field(min_length=1)
    layer: Layer = "staging"
    max_failing: Threshold = Threshold(kind="count", value=0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return pattern

    def columns(self) -> list[tuple[str, Layer]]:
        return [(self.column, self.layer)]


class RowCountCheck(CheckBase):
    """The batch's staged row count lies within [min, max]."""

    type: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _a_bound(self) -> RowCountCheck:
        if self.min is None and self.max is None:
            raise ValueError("a row_count check needs min, max or both")
        return self


class RowCountChangeCheck(CheckBase):
    """The staged row count changed by at most ``max_change`` percent against the dataset's previous loaded
    batch (none yet: pass)."""

    type: Literal["row_count_change"]
    max_change: Threshold

    @field_validator("max_change")
    @classmethod
    def _percent(cls, value: Threshold) -> Threshold:
        if value.kind != "percent":
            raise ValueError("max_change is a percentage, e.g. '50%'")
        return value


class RejectRateCheck(CheckBase):
    """The transform's rejected rows against the rows read from the file."""

    type: Literal["reject_rate"]
    max_failing: Threshold


class ExpressionCheck(CheckBase):
    """A rule across numeric columns, ``lhs OP rhs`` with OP one of = < <= > >=, each side built from the
    dataset's columns, numbers, + - * / and parentheses; ``=`` holds within ``tolerance``. A row with a
    null operand is not judged."""

    type: Literal["expression"]
    rule: str
    tolerance: Decimal = Field(default=Decimal(0), ge=0)
    max_failing: Threshold = Threshold(kind="count", value=0)

    @field_validator("rule")
    @classmethod
    def _parses(cls, rule: str) -> str:
        split_rule(rule)
        return rule

    def columns(self) -> list[tuple[str, Layer]]:
        lhs, _, rhs = split_rule(self.rule)
        return [(name, "staging") for name in expression_names(lhs) + expression_names(rhs)]


class ReferentialCheck(CheckBase):
    """A staged key that names no known member of ``references`` (a current dimension row that is not
    inferred, or a staged row of a validated or loaded batch of that dataset). ``unknown = "infer"``:
    such keys are reported and the warehouse infers members for them (the check passes);
    ``unknown = "reject"``: they are failing rows, judged against the threshold."""

    type: Literal["referential"]
    column: str
    references: Literal[Dataset.customers, Dataset.products]
    unknown: Literal["infer", "reject"] = "infer"
    max_failing: Threshold = Threshold(kind="count", value=0)

    def columns(self) -> list[tuple[str, Layer]]:
        return [(self.column, "staging")]


class FreshnessCheck(CheckBase):
    """The newest ``column`` value of the batch is at most ``max_lag`` old when the batch is checked."""

    type: Literal["freshness"]
    column: str
    max_lag: Seconds

    @field_validator("max_lag", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    def columns(self) -> list[tuple[str, Layer]]:
        return [(self.column, "staging")]


Check = Annotated[
    SchemaCheck
    | NotNullCheck
    | UniqueCheck
    | AcceptedValuesCheck
    | RangeCheck
    | RegexCheck
    | RowCountCheck
    | RowCountChangeCheck
    | RejectRateCheck
    | ExpressionCheck
    | ReferentialCheck
    | FreshnessCheck,
    Field(discriminator="type"),
]
CHECK_TYPES = (
    "schema",
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "regex",
    "row_count",
    "row_count_change",
    "reject_rate",
    "expression",
    "referential",
    "freshness",
)


class FreshnessSla(BaseModel):
    """Evaluated on a schedule (the reconciler), not only when a batch arrives: the newest ``column`` value
    of the dataset's loaded batches is at most ``max_event_lag`` old, and its last batch loaded at most
    ``max_load_lag`` ago."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    max_event_lag: Seconds | None = None
    max_load_lag: Seconds | None = None
    severity: Severity = "warn"

    @field_validator("max_event_lag", "max_load_lag", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class DatasetChecks(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    checks: list[Check] = []
    freshness: FreshnessSla | None = None


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, max_length=100)
    datasets: dict[Dataset, DatasetChecks] = {}

    @model_validator(mode="after")
    def _columns_exist(self) -> QualityConfig:
        for dataset, spec in self.datasets.items():
            contract = CONTRACTS[dataset]
            types = {c.name: c.type for c in contract.columns}
            names = [check.name for check in spec.checks]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{dataset.value}: check names repeat: {duplicates}")
            for check in spec.checks:
                for column, _layer in check.columns():
                    if column not in types:
                        raise ValueError(f"{dataset.value}.{check.name}: {column} is not a column of {dataset.value}")
                if isinstance(check, RangeCheck | FreshnessCheck) and types[check.column] not in ORDERED_TYPES:
                    raise ValueError(f"{dataset.value}.{check.name}: {check.column} is not numeric or a timestamp")
                if isinstance(check, FreshnessCheck) and types[check.column] != "timestamptz":
                    raise ValueError(f"{dataset.value}.{check.name}: {check.column} is not a timestamp")
                if isinstance(check, ExpressionCheck):
                    for column, _layer in check.columns():
                        if types[column] not in NUMERIC_TYPES:
                            raise ValueError(f"{dataset.value}.{check.name}: {column} is not numeric")
                if isinstance(check, ReferentialCheck) and dataset is not Dataset.sales:
                    raise ValueError(f"{dataset.value}.{check.name}: referential checks are for sales")
            if spec.freshness and types.get(spec.freshness.column) != "timestamptz":
                raise ValueError(f"{dataset.value}.freshness: {spec.freshness.column} is not a timestamp column")
        return self

    def checks_for(self, dataset: Dataset) -> list[Check]:
        spec = self.datasets.get(dataset)
        return list(spec.checks) if spec else []


def expression_names(side: str) -> list[str]:
    """The identifiers of one side of a rule; raises unless the side is only names, numbers and + - * / ( )."""
    names: list[str] = []
    position, depth, expect_operand = 0, 0, True
    while position < len(side.rstrip()):
        match = EXPRESSION_TOKEN.match(side, position)
        if match is None:
            raise ValueError(f"unexpected text in expression at {side[position:]!r}")
        position = match.end()
        if match.group("name") or match.group("number"):
            if not expect_operand:
                raise ValueError(f"an operator is missing before {match.group(0).strip()!r}")
            if match.group("name"):
                names.append(match.group("name"))
            expect_operand = False
        elif match.group("op") == "(":
            depth += 1
        elif match.group("op") == ")":
            depth -= 1
            if depth < 0 or expect_operand:
                raise ValueError("unbalanced parentheses")
        else:
            if expect_operand and match.group("op") != "-":
                raise ValueError(f"an operand is missing before {match.group('op')!r}")
            expect_operand = True
    if depth != 0 or expect_operand:
        raise ValueError(f"incomplete expression: {side!r}")
    return names


def split_rule(rule: str) -> tuple[str, str, str]:
    """``lhs OP rhs``, each side checked by :func:`expression_names`."""
    for comparator in COMPARATORS:
        lhs, found, rhs = rule.partition(comparator)
        if found and not rhs.startswith(("=", ">")) and not lhs.endswith(("<", ">", "=")):
            expression_names(lhs)
            expression_names(rhs)
            return lhs.strip(), comparator, rhs.strip()
    raise ValueError(f"a rule compares two expressions with one of {COMPARATORS}: {rule!r}")


@dataclass(frozen=True)
class LoadedConfig:
    config: QualityConfig
    version: str  # declared version + content hash: what each result records
    path: Path


def load_quality_config(path: Path) -> LoadedConfig:
    """Read and validate the config file; raises ``ValueError`` (pydantic's or TOML's) naming what is wrong."""
    content = path.read_bytes()
    try:
        document = tomllib.loads(content.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    config = QualityConfig.model_validate(document)
    return LoadedConfig(config, f"{config.version}+{hashlib.sha256(content).hexdigest()[:12]}", path)
