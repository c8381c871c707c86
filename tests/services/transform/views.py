"""Views of a typing that only the tests read: every row typed beside the reasons it is invalid.

The stage itself writes the typing's raw text, staged rows and rejects (services.transform.service); these
views show the typed values and the reason codes of every row at once, which is what the rules' tests compare.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from services.transform import transforms as T
from shared.datasets import CONTRACTS, Dataset

ORIGINAL = "original"


def with_reasons(typing: T.Typing) -> DataFrame:
    """source_line, the original text of a rejected row (null for a valid one, which never needs it), the
    contract's columns typed, and ``reasons``: the code of every broken rule, in order."""
    broken = F.col(T.BROKEN)
    return typing.rows.select(
        F.col(T.SOURCE_LINE),
        F.when(broken != 0, typing.original_record()).alias(ORIGINAL),
        *[F.col(name) for name in CONTRACTS[typing.dataset].column_names],
        T.reason_list(broken, typing.codes).alias(T.REASONS),
    )


def type_rows(raw: DataFrame, dataset: Dataset, rules: T.CleaningRules) -> DataFrame:
    """Every row of ``dataset`` typed, with the list of reasons it is invalid (an empty list: valid)."""
    return with_reasons(T.CLEANING[dataset].typing(raw, rules))


def clean(raw: DataFrame, dataset: Dataset, rules: T.CleaningRules) -> tuple[DataFrame, DataFrame]:
    """(typed rows with their reasons, deduplicated valid rows) for a batch of ``dataset``."""
    cleaning = T.CLEANING[dataset]
    typing = cleaning.typing(raw, rules)
    return with_reasons(typing), cleaning.staged(typing)


def rejected_rows(typed: DataFrame) -> DataFrame:
    """Rejects of :func:`type_rows`' rows with the original text of the line and every reason code that applies."""
    return typed.where(F.size(F.col(T.REASONS)) > 0).select(
        F.col(T.SOURCE_LINE), F.col(T.REASONS), F.to_json(F.col(ORIGINAL)).alias("record")
    )
