"""Dispatch use cases, behind one facade: routes (api.py), consumers (handlers.py) and
periodic jobs (jobs.py) all call `DispatchService`.

Each area lives in its own module, stacked so that none imports upward: matching (the base:
volunteers, assignment), requests and runs on it, recurrences on requests, demand on matching.
A use case that writes takes `uow: UnitOfWork | None = None`: a consumer passes its batch's
(the runner commits), a route passes none.
"""

from __future__ import annotations

from functools import cached_property

from dispatch.demand import Demand
from dispatch.matching import VolunteerDraft
from dispatch.privacy import Privacy
from dispatch.recurrences import Recurrences
from dispatch.runs import PlanRequest, PlanResult, Runs

__all__ = ["DispatchService", "PlanRequest", "PlanResult", "VolunteerDraft"]


class DispatchService(Recurrences, Runs, Demand):
    """Requests, matching, delivery runs, the green channel and hot demands."""

    @cached_property
    def privacy(self) -> Privacy:
        """Erasing a resident, and the retention job."""
        return Privacy(self.runtime, self.settings)
