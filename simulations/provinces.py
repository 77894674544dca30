"""The 31 mainland provincial-level divisions (GB/T 2260 codes, 2020 census, capitals)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("data") / "provinces.csv"


@dataclass(frozen=True)
class ProvinceInfo:
    code: str
    name_en: str
    name_zh: str
    capital: str
    population_millions: float
    lat: float
    lon: float


@cache
def all_provinces() -> dict[str, ProvinceInfo]:
    with DATA.open(encoding="utf-8") as f:
        return {
            row["code"]: ProvinceInfo(
                code=row["code"],
                name_en=row["name_en"],
                name_zh=row["name_zh"],
                capital=row["capital"],
                population_millions=float(row["population_2020_millions"]),
                lat=float(row["capital_lat"]),
                lon=float(row["capital_lon"]),
            )
            for row in csv.DictReader(f)
        }
