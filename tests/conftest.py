"""Settings for the whole suite.

Hypothesis runs with ``deadline=None``: a test must not depend on how fast this machine is
(another run sharing the cores makes any per-example deadline flaky). Its example count is
modest so the property tests fit in CI; a test that needs more says so with ``@settings``.
``HYPOTHESIS_PROFILE=thorough`` runs ten times as many examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# No timing in any verdict: no per-example deadline, and no "data generation too slow" health
# check either (a loaded machine made it fail tests that had nothing wrong with them).
settings.register_profile(
    "hcx",
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("hcx"), max_examples=1000)
# make mutation: the same examples on every run, so a mutant's verdict does not depend on
# which examples a property happened to draw (docs/testing.md).
settings.register_profile("mutation", parent=settings.get_profile("hcx"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hcx"))
