"""Settings for the whole suite.

Hypothesis runs with ``deadline=None``: a test must not depend on how fast this machine is
(another run sharing the cores makes any per-example deadline flaky). Its example count is
modest so the property tests fit in CI; a test that needs more says so with ``@settings``.
``HYPOTHESIS_PROFILE=thorough`` runs ten times as many examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("hcx", deadline=None, max_examples=100, print_blob=True)
settings.register_profile("thorough", parent=settings.get_profile("hcx"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hcx"))
