"""The gravity model: populous, close provinces exchange the most travellers."""

from __future__ import annotations

import random

import pytest

from simulations.mobility import Mobility, distance_km, gravity_matrix
from simulations.provinces import all_provinces


def test_distance_beijing_shanghai_is_about_1070_km() -> None:
    p = all_provinces()
    assert distance_km(p["110000"], p["310000"]) == pytest.approx(1068, abs=30)


def test_rows_are_probabilities_without_self_trips() -> None:
    provinces = list(all_provinces().values())
    for i, row in enumerate(gravity_matrix(provinces)):
        assert sum(row) == pytest.approx(1.0)
        assert row[i] == 0.0


def test_guangdong_sends_more_to_neighbours_than_to_tibet() -> None:
    p = all_provinces()
    provinces = [p["440000"], p["450000"], p["540000"]]  # Guangdong, Guangxi, Tibet
    row = gravity_matrix(provinces)[0]
    assert row[1] > 20 * row[2]


def test_travellers_live_where_the_census_says() -> None:
    p = all_provinces()
    mobility = Mobility.populate([p["440000"], p["540000"]], 20000, random.Random(1))
    in_tibet = sum(1 for t in mobility.travellers if t.home == 1)
    assert 0 < in_tibet < 20000 * 0.05  # Tibet: 3.6 M of 130 M (2.8 %)
    traveller, origin, destination = mobility.next_trip()
    assert origin != destination and traveller.location == destination
