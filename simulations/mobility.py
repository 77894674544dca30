"""Who travels where: a gravity model on census population and distance between capitals.

The flow from province i to province j is proportional to P_i * P_j / d_ij^2 (the classic gravity
model of migration), so Guangdong and its neighbours exchange far more travellers than Tibet and
Heilongjiang. Distances are great-circle distances between the provincial capitals.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from simulations.provinces import ProvinceInfo

EARTH_RADIUS_KM = 6371.0
MIN_DISTANCE_KM = 100.0  # neighbouring capitals closer than this would dominate the model


def distance_km(a: ProvinceInfo, b: ProvinceInfo) -> float:
    """Great-circle distance between two capitals (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def gravity_matrix(provinces: Sequence[ProvinceInfo]) -> list[list[float]]:
    """Row-normalised destination probabilities: row i is where a traveller in i goes next."""
    rows: list[list[float]] = []
    for a in provinces:
        weights = [
            0.0
            if a.code == b.code
            else a.population_millions
            * b.population_millions
            / max(distance_km(a, b), MIN_DISTANCE_KM) ** 2
            for b in provinces
        ]
        total = sum(weights)
        rows.append([w / total for w in weights])
    return rows


@dataclass
class Traveller:
    """A holder of a code of their home province; travels between provinces."""

    index: int
    home: int  # index into the province list
    location: int
    code_id: bytes = b""
    token: str = ""
    expires_at: int = 0
    busy: bool = False  # a colour change for this holder is in flight


@dataclass
class Mobility:
    """The travelling population and the gravity model that moves it."""

    provinces: Sequence[ProvinceInfo]
    travellers: list[Traveller]
    rng: random.Random
    _cumulative: list[list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self._cumulative = [
            list(itertools.accumulate(row)) for row in gravity_matrix(self.provinces)
        ]

    @classmethod
    def populate(
        cls, provinces: Sequence[ProvinceInfo], count: int, rng: random.Random
    ) -> Mobility:
        """``count`` travellers, each resident where the census says people live."""
        weights = [p.population_millions for p in provinces]
        homes = rng.choices(range(len(provinces)), weights=weights, k=count)
        travellers = [Traveller(index=i, home=h, location=h) for i, h in enumerate(homes)]
        return cls(provinces=provinces, travellers=travellers, rng=rng)

    def destination(self, origin: int) -> int:
        """A destination drawn from the gravity row of ``origin``."""
        row = self._cumulative[origin]
        return min(bisect.bisect_left(row, self.rng.random() * row[-1]), len(row) - 1)

    def next_trip(self) -> tuple[Traveller, int, int]:
        """A random traveller moves on: (traveller, origin, destination)."""
        traveller = self.rng.choice(self.travellers)
        origin = traveller.location
        target = self.destination(origin)
        traveller.location = target
        return traveller, origin, target
