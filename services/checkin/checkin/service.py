"""Check-in use cases behind one facade: routes (api.py), jobs (jobs.py) and metrics call
them here; each area keeps its own module.

    registry.py   residents, the spreadsheet import, absences
    imports.py    spreadsheet imports as background jobs
    checkins.py   the daily check-in (group commit, idempotency keys)
    sweeps.py     the sweep of who missed the cutoff
    sampling.py   sampling rounds (核酸)
    reading.py    follow-up lists and completion
    erasure.py    erasing a resident, and who has confirmed it
    retention.py  deleting what is kept longer than its retention
"""

from __future__ import annotations

from collections.abc import Callable

from checkin.checkins import CheckIns
from checkin.erasure import Erasures
from checkin.imports import Imports
from checkin.reading import Reading
from checkin.registry import Registry
from checkin.retention import Retention
from checkin.sampling import Sampling
from checkin.settings import CheckinSettings
from checkin.sweeps import SweepResult, Sweeps
from checkin.usecases import UseCases
from common.accesslog import AccessLog
from common.errors import Forbidden
from common.runtime import Runtime

__all__ = ["CheckinService", "SweepResult", "ensure_scope"]


class CheckinService(UseCases):
    def __init__(self, runtime: Runtime, settings: CheckinSettings) -> None:
        super().__init__(runtime, settings)
        self.observe_check_in_batch: Callable[[int], None] = lambda size: None  # set by CheckinMetrics
        self.registry = Registry(runtime, settings)
        self.imports = Imports(runtime, settings, self.registry)
        self.checkins = CheckIns(runtime, settings, on_batch=lambda size: self.observe_check_in_batch(size))
        self.sweeps = Sweeps(runtime, settings)
        self.sampling = Sampling(runtime, settings)
        self.reading = Reading(runtime, settings)
        self.erasures = Erasures(runtime, settings)
        self.retention = Retention(runtime, settings)
        self.access_log = AccessLog(runtime.db, runtime.clock)
        # The use cases by name, as routes, jobs and tests call them.
        self.register = self.registry.register
        self.import_residents = self.registry.import_residents
        self.resident = self.registry.resident
        self.record_absence = self.registry.record_absence
        self.start_import = self.imports.start
        self.import_job = self.imports.job
        self.fail_interrupted_imports = self.imports.fail_interrupted
        self.check_in = self.checkins.check_in
        self.forget_old_idempotency_keys = self.checkins.forget_old_idempotency_keys
        self.sweep = self.sweeps.sweep
        self.sweep_at_cutoff = self.sweeps.sweep_at_cutoff
        self.open_round = self.sampling.open_round
        self.record_samples = self.sampling.record_samples
        self.round_status = self.sampling.round_status
        self.sampling_rounds = self.sampling.rounds
        self.evaluate_rounds = self.sampling.evaluate_rounds
        self.followups = self.reading.followups
        self.buildings_of_lead = self.reading.buildings_of_lead
        self.completion = self.reading.completion
        self.buildings = self.reading.buildings
        self.erase = self.erasures.erase
        self.erasure = self.erasures.status
        self.erasure_confirmed = self.erasures.confirmed
        self.apply_retention = self.retention.apply


def ensure_scope(allowed: bool, message: str) -> None:
    """Refuse (403) what the caller's role or scope does not allow."""
    if not allowed:
        raise Forbidden(message)
