"""The datasets the service accepts, with their contracts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from services.ingest.formats import FileFormat
from shared.datasets import CONTRACTS, Contract, json_schema
from shared.http import Authenticated

router = APIRouter(prefix="/v1/datasets")


class ColumnOut(BaseModel):
    name: str
    type: str
    required: bool


class DatasetOut(BaseModel):
    name: str
    key: str
    columns: list[ColumnOut]
    formats: list[str]
    json_schema: dict[str, Any]

    @classmethod
    def of(cls, contract: Contract) -> DatasetOut:
        return cls(
            name=contract.dataset.value,
            key=contract.key,
            columns=[ColumnOut(name=c.name, type=c.type, required=c.required) for c in contract.columns],
            formats=sorted(f.value for f in FileFormat),
            json_schema=json_schema(contract),
        )


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


@router.get("", response_model=DatasetList)
async def list_datasets(_: Authenticated) -> DatasetList:
    """The datasets accepted, each with its contract: columns, types, which are required."""
    return DatasetList(datasets=[DatasetOut.of(contract) for contract in CONTRACTS.values()])
