"""What residents tell the province: health declarations and daily check-ins, checked.

Everything here is validated before anything is stored; InvalidRequest names the bad field.
Districts are GB/T 2260 county-level codes (nodes.districts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodes.districts import check_district
from trust.errors import InvalidRequest

SYMPTOMS = (
    "cough",
    "sore_throat",
    "fatigue",
    "loss_of_smell",
    "shortness_of_breath",
    "diarrhoea",
    "muscle_pain",
)
MAX_TRAVEL = 30  # districts in one declaration
TRAVEL_WINDOW_DAYS = 14  # travel further back does not count
CLOCK_SKEW_S = 300
MIN_TEMPERATURE_TENTHS, MAX_TEMPERATURE_TENTHS = 340, 430  # 34.0 to 43.0 °C: a reading


def _symptoms(values: Sequence[str], *, what: str) -> tuple[str, ...]:
    if len(values) > len(SYMPTOMS):
        raise InvalidRequest(f"{what}: at most {len(SYMPTOMS)} symptoms")
    unknown = [s for s in values if s not in SYMPTOMS]
    if unknown:
        shown = unknown[0][:32]  # never echo a whole hostile value back
        raise InvalidRequest(f"{what}: unknown symptom {shown!r}; known: {', '.join(SYMPTOMS)}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class Visit:
    district: str
    at: float  # unix seconds of the visit


@dataclass(frozen=True)
class Declaration:
    """A health declaration, checked."""

    fever: bool
    symptoms: tuple[str, ...]
    contact_with_confirmed_case: bool
    residence: str
    travel: tuple[Visit, ...]
    declared_at: float

    def recent_travel(self, now: float, day_seconds: float) -> tuple[Visit, ...]:
        limit = now - TRAVEL_WINDOW_DAYS * day_seconds
        return tuple(v for v in self.travel if v.at >= limit)

    def facts(self) -> dict[str, Any]:
        return {
            "fever": self.fever,
            "symptoms": list(self.symptoms),
            "symptom_count": len(self.symptoms),
            "contact_with_confirmed_case": self.contact_with_confirmed_case,
            "residence": self.residence,
            "travel": [v.district for v in self.travel],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "fever": self.fever,
            "symptoms": list(self.symptoms),
            "contact": self.contact_with_confirmed_case,
            "residence": self.residence,
            "travel": [[v.district, v.at] for v in self.travel],
            "at": self.declared_at,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Declaration:
        return cls(
            bool(doc["fever"]),
            tuple(doc["symptoms"]),
            bool(doc["contact"]),
            str(doc["residence"]),
            tuple(Visit(str(d), float(at)) for d, at in doc["travel"]),
            float(doc["at"]),
        )


def check_declaration(
    *,
    fever: bool,
    symptoms: Sequence[str],
    contact_with_confirmed_case: bool,
    residence: str,
    travel: Sequence[tuple[str, float]],
    now: float,
) -> Declaration:
    """A declaration made ``now``: districts known, no visit in the future, bounded lists."""
    if len(travel) > MAX_TRAVEL:
        raise InvalidRequest(f"travel lists at most {MAX_TRAVEL} districts")
    visits = []
    for index, (district, at) in enumerate(travel):
        what = f"travel[{index}]"
        check_district(district, what=f"{what}.district")
        if not at > 0:
            raise InvalidRequest(f"{what}.at must be a unix time")
        if at > now + CLOCK_SKEW_S:
            raise InvalidRequest(f"{what}.at is in the future")
        visits.append(Visit(district, float(at)))
    return Declaration(
        fever=bool(fever),
        symptoms=_symptoms(symptoms, what="symptoms"),
        contact_with_confirmed_case=bool(contact_with_confirmed_case),
        residence=check_district(residence, what="residence"),
        travel=tuple(visits),
        declared_at=now,
    )


@dataclass(frozen=True)
class CheckIn:
    """A daily health check-in, checked."""

    temperature_tenths: int
    symptoms: tuple[str, ...]
    at: float

    def facts(self) -> dict[str, Any]:
        return {
            "temperature_tenths": self.temperature_tenths,
            "symptoms": list(self.symptoms),
            "symptom_count": len(self.symptoms),
        }


def check_check_in(*, temperature_c: float, symptoms: Sequence[str], now: float) -> CheckIn:
    low, high = MIN_TEMPERATURE_TENTHS / 10, MAX_TEMPERATURE_TENTHS / 10
    if not low <= temperature_c <= high:  # NaN and the infinities too: no comparison holds
        raise InvalidRequest(f"temperature must be {low} to {high} °C")
    tenths = round(temperature_c * 10)
    if not MIN_TEMPERATURE_TENTHS <= tenths <= MAX_TEMPERATURE_TENTHS:
        raise InvalidRequest(
            f"temperature must be {MIN_TEMPERATURE_TENTHS / 10} to {MAX_TEMPERATURE_TENTHS / 10} °C"
        )
    return CheckIn(tenths, _symptoms(symptoms, what="symptoms"), now)
