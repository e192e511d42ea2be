"""What every area of check-in use cases shares: the runtime, the settings, the local date."""

from __future__ import annotations

from datetime import date

from checkin.settings import CheckinSettings
from common.clock import Clock, local_date
from common.runtime import Runtime


class UseCases:
    def __init__(self, runtime: Runtime, settings: CheckinSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)
