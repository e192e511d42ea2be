"""The command center's use cases behind one facade, by area: the directory (rules, SLA,
people), intake (problems into tickets), the lifecycle (what people do to a ticket),
escalation, and reading (tickets, the daily meeting, the heat map). Consumers
(handlers.py), routes (api.py) and jobs (jobs.py) call them through `CommandService`."""

from __future__ import annotations

from command.directory import Directory
from command.escalation import Escalations
from command.intake import Intake
from command.lifecycle import Lifecycle
from command.privacy import Privacy
from command.reading import Reading
from command.settings import CommandSettings
from command.store import Stores
from common.runtime import Runtime


class CommandService:
    def __init__(self, runtime: Runtime, settings: CommandSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz
        self.directory = directory = Directory(runtime, settings)
        self.stores = stores = Stores(runtime.db, directory.config, settings.config_cache_s)
        self.intake = intake = Intake(runtime, settings, directory, stores)
        self.lifecycle = lifecycle = Lifecycle(runtime, settings, directory, stores)
        self.escalations = escalations = Escalations(runtime, settings, directory, stores)
        self.reading = reading = Reading(runtime, settings, directory)
        self.privacy = Privacy(runtime, settings, stores)  # erasure, retention, the access log

        self.config, self.seed, self.forget_config = directory.config, directory.seed, directory.forget_config
        self.restore_defaults, self.save_rule, self.save_sla = (
            directory.restore_defaults,
            directory.save_rule,
            directory.save_sla,
        )
        self.save_person, self.save_department = directory.save_person, directory.save_department

        self.take_report, self.report_by_hand = intake.take_report, intake.report_by_hand
        self.learn_resident, self.record_checkin_fact, self.record_signal = (
            intake.learn_resident, intake.record_checkin_fact, intake.record_signal,
        )  # fmt: skip

        self.acknowledge, self.resolve = lifecycle.acknowledge, lifecycle.resolve
        self.feedback, self.reassign, self.note = lifecycle.feedback, lifecycle.reassign, lifecycle.note

        self.escalate_overdue = escalations.escalate_overdue

        self.ticket, self.tickets, self.overdue_now = reading.ticket, reading.tickets, reading.overdue_now
        self.shared_with, self.by_reference = reading.shared_with, reading.by_reference
        self.agenda, self.figures, self.heatmap, self.today = (
            reading.agenda,
            reading.figures,
            reading.heatmap,
            reading.today,
        )

    @property
    def clock(self):
        return self.runtime.clock
