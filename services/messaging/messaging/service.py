"""Messaging use cases: queue what events cause, send what is due, hear replies, follow up.

A message is queued in the transaction that applies the event causing it (its idempotency
key, the event and the recipient, is unique: a redelivered event queues nothing), then
sent by `send_due` from the database, so a crash loses none: an unrecorded send is retried
with the same `webhook-id`, on which gateways de-duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update

from common.auth import Principal, Role
from common.errors import Invalid, NotFound
from common.events.base import Event
from common.events.checkin import CheckInSubmitted, ResidentAway, ResidentRegistered
from common.events.command import TicketClosed, TicketEscalated, TicketOpened, TicketReassigned, TicketReopened
from common.events.dispatch import RequestRaised
from common.events.timebank import HoursCredited
from common.outbox import UnitOfWork
from common.runtime import Runtime
from messaging import domain
from messaging.gateway import Gateway, GatewayFailed, Outgoing
from messaging.models import Away, CheckinDay, Contact, InboundReply, Message, RequestRef, TicketNotice, TicketRef
from messaging.notices import Notices
from messaging.privacy import Privacy
from messaging.replies import Replies, _contact
from messaging.settings import MessagingSettings

log = logging.getLogger(__name__)

BATCH = "messaging-batch"  # the unit of work's memo entry of a consumer batch
RATE_LIMIT_DEFER = timedelta(minutes=15)  # a message over a person's hourly limit is looked at again after this


@dataclass
class _Batch:
    """A consumer batch's lookups and drafts: loaded once before its events are applied,
    inserted once before it commits (a resolved sweep's thousands of tickets are one batch)."""

    tickets: dict[str, domain.TicketRef | None] = field(default_factory=dict)
    residents: dict[str, str] = field(default_factory=dict)
    drafts: list[tuple[str, domain.Draft]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # non-urgent tickets for their owners' digests


class MessagingService(Replies, Notices):
    def __init__(self, runtime: Runtime, settings: MessagingSettings, gateway: Gateway) -> None:
        self.runtime = runtime
        self.settings = settings
        self.gateway = gateway
        self.tz = settings.tz
        self.wording = domain.Wording(settings.tz, settings.portal_url)
        self.privacy = Privacy(runtime, settings, self)  # erasing a resident, the retention job

    @property
    def clock(self):
        return self.runtime.clock

    # -- what other services tell us ----------------------------------------------------

    async def learn_resident(self, event: ResidentRegistered, uow: UnitOfWork | None = None) -> None:
        household = event.household_id or (
            f"H.{event.building_id}.{event.unit}.{event.room}" if event.unit and event.room else None
        )  # registered before the register named households: everyone at one room
        values = {"role": "resident", "name": event.name, "phone": event.phone, "tags": list(event.tags),
                  "grid_id": event.grid_id, "building_id": event.building_id, "unit": event.unit, "room": event.room,
                  "household_id": household, "updated_at": self.clock.now()}  # fmt: skip
        async with self.runtime.work(uow) as uow:
            insert = self.runtime.db.insert(Contact)
            await uow.session.execute(
                insert.values(person_id=event.resident_id, **values).on_conflict_do_update(
                    index_elements=["person_id"], set_=values
                )
            )

    async def note_away(self, event: ResidentAway, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            insert = self.runtime.db.insert(Away)
            values = {"resident_id": event.resident_id, "from_date": event.from_date, "to_date": event.to_date}
            await uow.session.execute(
                insert.values(absence_id=event.absence_id, **values).on_conflict_do_update(
                    index_elements=["absence_id"], set_=values
                )
            )

    async def note_check_in(self, event: CheckInSubmitted, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            insert = self.runtime.db.insert(CheckinDay)
            await uow.session.execute(
                insert.values(resident_id=event.resident_id, day=event.date).on_conflict_do_nothing()
            )

    async def learn_request(self, event: RequestRaised, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            insert = self.runtime.db.insert(RequestRef)
            await uow.session.execute(
                insert.values(request_id=event.request_id, resident_id=event.resident_id).on_conflict_do_nothing()
            )

    async def follow_ticket(self, event: Event, uow: UnitOfWork | None = None) -> None:
        """Keep what messaging knows of a ticket (owner, whether it is closed) up to date."""
        async with self.runtime.work(uow) as uow:
            session = uow.session
            batch = uow.memo.get(BATCH)
            if batch is not None and isinstance(event, TicketOpened):
                batch.tickets[event.ticket_id] = domain.TicketRef(event.ticket_id, event.kind, event.owner, event.priority,
                                                                  event.resident_id, event.grid_id, event.building_id)  # fmt: skip
            match event:
                case TicketOpened():
                    values = {"kind": event.kind, "owner": event.owner, "priority": event.priority, "resident_id": event.resident_id,
                              "grid_id": event.grid_id, "building_id": event.building_id}  # fmt: skip
                    insert = self.runtime.db.insert(TicketRef)
                    await session.execute(
                        insert.values(ticket_id=event.ticket_id, **values).on_conflict_do_update(
                            index_elements=["ticket_id"], set_=values
                        )
                    )
                case TicketEscalated() | TicketReassigned():
                    await session.execute(
                        update(TicketRef).where(TicketRef.ticket_id == event.ticket_id).values(owner=event.owner)
                    )
                case TicketClosed():
                    await session.execute(
                        update(TicketRef).where(TicketRef.ticket_id == event.ticket_id).values(closed_at=event.at)
                    )
                case TicketReopened():
                    await session.execute(
                        update(TicketRef).where(TicketRef.ticket_id == event.ticket_id).values(closed_at=None)
                    )

    async def notify(self, event: Event, cause_id: str, uow: UnitOfWork | None = None) -> int:
        """Queue the messages an event causes; returns how many were new."""
        async with self.runtime.work(uow) as uow:
            batch = uow.memo.get(BATCH)
            ticket_id = getattr(event, "ticket_id", None)
            request_ids = [r for r in [getattr(event, "request_id", None), *getattr(event, "stops", [])] if r]
            if batch is not None and (ticket_id is None or ticket_id in batch.tickets):
                ticket, residents = batch.tickets.get(ticket_id) if ticket_id else None, batch.residents
            else:
                ticket = await self._ticket(uow, ticket_id)
                residents = await self._request_residents(uow, request_ids)
            drafts = domain.plan(event, wording=self.wording, ticket=ticket, request_resident=residents)
            if (
                isinstance(event, TicketOpened)
                and event.priority != "urgent"
                and self.settings.ticket_digest_minutes > 0
            ):
                await self._hold_for_digest(uow, event, batch)
                drafts = []
            elif isinstance(event, HoursCredited) and event.request_id:
                drafts = await self._thanks(uow, event, drafts)
            if batch is not None:  # inserted with the batch's others by `flush`
                batch.drafts.extend((self._key(cause_id, d), d) for d in drafts)
                return len(drafts)
            return await self.queue(uow, drafts, cause_id)

    async def _hold_for_digest(self, uow: UnitOfWork, event: TicketOpened, batch: _Batch | None) -> None:
        """A non-urgent ticket: its owner hears of it in their next digest (`send_digests`)."""
        row = {"ticket_id": event.ticket_id, "owner": event.owner, "respond_by": event.respond_by,
               "created_at": self.clock.now(), "digested_at": None}  # fmt: skip
        if batch is not None:
            batch.pending.append(row)
        else:
            await self._insert_pending(uow, [row])

    async def _insert_pending(self, uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
        insert = self.runtime.db.insert(TicketNotice)
        await uow.session.execute(insert.on_conflict_do_nothing(index_elements=["ticket_id"]), rows)

    async def _thanks(self, uow: UnitOfWork, event: HoursCredited, drafts: list[domain.Draft]) -> list[domain.Draft]:
        """The volunteer's thank-you carries the resident's words about the request: sent at
        once when they are known, otherwise held up to MESSAGING_THANKS_WAIT_MINUTES for the
        resident's reply to "request fulfilled" (which releases it with their words)."""
        request = await uow.session.get(RequestRef, event.request_id)
        if request is None:
            return drafts  # no resident known to answer: thanks at once
        if request.comment:
            return [replace(d, facts=domain.thanks_facts(event.hours, request.comment)) for d in drafts]
        request.hours = event.hours
        wait = timedelta(minutes=self.settings.thanks_wait_minutes)
        return [replace(d, not_before=self.clock.now() + wait) for d in drafts]

    async def prefetch(self, uow: UnitOfWork, events: Sequence[Event]) -> None:
        """Before a consumer applies a batch: the tickets and requests it names, in two queries."""
        batch = uow.memo[BATCH] = _Batch()
        ticket_ids = {t for e in events if (t := getattr(e, "ticket_id", None))}
        if ticket_ids:
            rows = (await uow.session.execute(select(TicketRef).where(TicketRef.ticket_id.in_(ticket_ids)))).scalars()
            batch.tickets = dict.fromkeys(ticket_ids)
            batch.tickets.update({r.ticket_id: _ticket_ref(r) for r in rows})
        request_ids = {r for e in events for r in [getattr(e, "request_id", None), *getattr(e, "stops", [])] if r}
        raised = {e.request_id: e.resident_id for e in events if isinstance(e, RequestRaised)}
        batch.residents = {**await self._request_residents(uow, sorted(request_ids - raised.keys())), **raised}

    async def flush(self, uow: UnitOfWork) -> None:
        """Before a consumer's batch commits: its messages, in one statement."""
        batch = uow.memo.pop(BATCH, None)
        if batch is not None and batch.drafts:
            await self._insert(uow, batch.drafts)
        if batch is not None and batch.pending:
            await self._insert_pending(uow, batch.pending)

    @staticmethod
    def _key(cause_id: str, draft: domain.Draft) -> str:
        return f"{cause_id}:{draft.recipient_id}:{draft.kind}"[:200]

    async def take_alerts(self, alerts: list[dict[str, Any]]) -> int:
        """Alertmanager's notification: one chat message per alert and state, once each."""
        drafts = domain.alert_drafts(alerts, self.settings.alerts_recipient)
        if not drafts:
            return 0
        async with self.runtime.work() as uow:
            contacts = await self._contacts(uow, {self.settings.alerts_recipient})
            now = self.clock.now()
            rows = [
                self._row(draft, contacts.get(draft.recipient_id), key[:200], now, channel="chat")
                for key, draft in drafts
            ]
            insert = self.runtime.db.insert(Message)
            result = await uow.session.execute(
                insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message.message_id), rows
            )
            return len(result.all())

    async def send_digests(self) -> int:
        """Each owner's non-urgent tickets in one message, at most one per owner every
        MESSAGING_TICKET_DIGEST_MINUTES: an owner's digest goes once their oldest waiting ticket
        has waited that long. Claimed with an update, so replicas never send one twice; a
        ticket closed or handed to someone else meanwhile is left out."""
        now = self.clock.now()
        due = now - timedelta(minutes=self.settings.ticket_digest_minutes)
        async with self.runtime.work() as uow:
            owners = (
                select(TicketNotice.owner)
                .where(TicketNotice.digested_at.is_(None))
                .group_by(TicketNotice.owner)
                .having(func.min(TicketNotice.created_at) <= due)
            )
            claimed = (
                await uow.session.execute(
                    update(TicketNotice)
                    .where(TicketNotice.digested_at.is_(None), TicketNotice.owner.in_(owners.scalar_subquery()))
                    .values(digested_at=now)
                    .returning(TicketNotice.ticket_id, TicketNotice.owner, TicketNotice.respond_by)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            if not claimed:
                return 0
            tickets = {
                row.ticket_id: row
                for row in (
                    await uow.session.execute(select(TicketRef).where(TicketRef.ticket_id.in_({c[0] for c in claimed})))
                ).scalars()
            }
            by_owner: dict[str, list[domain.Pending]] = {}
            for ticket_id, owner, respond_by in claimed:
                ticket = tickets.get(ticket_id)
                if ticket is None or ticket.closed_at is not None or ticket.owner != owner:
                    continue  # closed, or someone else's now (they were told by the escalation)
                by_owner.setdefault(owner, []).append(
                    domain.Pending(ticket_id, ticket.kind, ticket.priority, respond_by)
                )
            drafts = [
                (f"digest:{owner}:{now.isoformat()}", domain.digest(owner, sorted(pending, key=lambda p: p.respond_by),
                                                                    self.wording))
                for owner, pending in by_owner.items()
            ]  # fmt: skip
            return await self._insert(uow, drafts)

    async def _ticket(self, uow: UnitOfWork, ticket_id: str | None) -> domain.TicketRef | None:
        if ticket_id is None:
            return None
        row = await uow.session.get(TicketRef, ticket_id)
        return None if row is None else _ticket_ref(row)

    async def _request_residents(self, uow: UnitOfWork, request_ids: Sequence[str]) -> dict[str, str]:
        if not request_ids:
            return {}
        rows = await uow.session.execute(
            select(RequestRef.request_id, RequestRef.resident_id).where(RequestRef.request_id.in_(request_ids))
        )
        return {key: value for key, value in rows.all()}

    async def queue(self, uow: UnitOfWork, drafts: Sequence[domain.Draft], cause_id: str) -> int:
        """Insert the drafts as queued messages, each once (the key is the cause and the recipient)."""
        return await self._insert(uow, [(self._key(cause_id, d), d) for d in drafts])

    async def _insert(self, uow: UnitOfWork, keyed: Sequence[tuple[str, domain.Draft]]) -> int:
        if not keyed:
            return 0
        contacts = await self._contacts(uow, {d.recipient_id for _, d in keyed})
        now = self.clock.now()
        rows = [self._row(d, contacts.get(d.recipient_id), key, now) for key, d in keyed]
        insert = self.runtime.db.insert(Message)
        result = await uow.session.execute(
            insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message.message_id), rows
        )
        return len(result.all())

    def _row(self, draft: domain.Draft, contact: domain.Contact | None, key: str, now: datetime,
             channel: str | None = None, fallback_of: str | None = None) -> dict[str, Any]:  # fmt: skip
        channel = channel or domain.channel_for(draft.kind, contact)
        on_page = channel == "page"  # nothing to send: the person reads it on their page
        earliest = max(now, draft.not_before) if draft.not_before and not on_page else now
        when = domain.not_before(
            earliest,
            self.tz,
            self.settings.quiet_hours_start,
            self.settings.quiet_hours_end,
            urgent=draft.urgent,
            channel=channel,
        )
        return {
            "message_id": uuid.uuid4().hex, "idempotency_key": key, "kind": draft.kind, "channel": channel,
            "recipient_id": draft.recipient_id, "phone": contact.phone if contact else None, "text": draft.text(),
            "ticket_id": draft.ticket_id, "request_id": draft.request_id, "notice_id": draft.notice_id,
            "household_id": contact.household_id if contact else None, "urgent": draft.urgent,
            "status": "delivered" if on_page else "queued", "attempts": 0, "last_error": None, "fallback_of": fallback_of,
            "created_at": now, "next_attempt_at": when, "lease_until": None, "sent_at": now if on_page else None,
            "accepted_at": None, "delivered_at": now if on_page else None, "failed_at": None, "replied_at": None,
            "followed_up_at": None,
        }  # fmt: skip

    async def _contacts(self, uow: UnitOfWork, person_ids: Iterable[str]) -> dict[str, domain.Contact]:
        ids = list(person_ids)
        if not ids:
            return {}
        rows = (await uow.session.execute(select(Contact).where(Contact.person_id.in_(ids)))).scalars()
        return {row.person_id: _contact(row) for row in rows}

    # -- sending ------------------------------------------------------------------------

    async def send_due(self) -> dict[str, int]:
        """Send the messages that are due, a batch at a time; record each outcome. Claimed
        with a lease, so replicas share the work and a dead sender's claims come back."""
        now = self.clock.now()
        async with self.runtime.work() as uow:
            due = (
                select(Message.message_id)
                .where(Message.status == "queued", Message.next_attempt_at <= now,
                       or_(Message.lease_until.is_(None), Message.lease_until < now))
                .order_by(Message.next_attempt_at)
                .limit(self.settings.send_batch)
            )  # fmt: skip
            claimed = list(
                (
                    await uow.session.execute(
                        update(Message)
                        .where(
                            Message.message_id.in_(due.scalar_subquery()),
                            or_(Message.lease_until.is_(None), Message.lease_until < now),
                        )
                        .values(lease_until=now + timedelta(seconds=self.settings.send_lease_s))
                        .returning(Message)
                        .execution_options(synchronize_session=False)
                    )
                ).scalars()
            )
            if not claimed:
                return {}
            recent = await self._sent_in_last_hour(uow, {m.recipient_id for m in claimed if not m.urgent}, now)
        outcomes = await self._send_all(claimed, recent, now)
        return await self._record(claimed, outcomes)

    async def _sent_in_last_hour(self, uow: UnitOfWork, recipients: set[str], now: datetime) -> dict[str, int]:
        if self.settings.rate_limit_per_hour <= 0 or not recipients:
            return {}
        rows = await uow.session.execute(
            select(Message.recipient_id, func.count())
            .where(Message.recipient_id.in_(recipients), Message.sent_at >= now - timedelta(hours=1),
                   Message.channel.in_(("sms", "voice")), Message.urgent.is_(False))
            .group_by(Message.recipient_id)
        )  # fmt: skip
        return {key: value for key, value in rows.all()}

    async def _send_all(
        self, claimed: list[Message], recent: dict[str, int], now: datetime
    ) -> dict[str, tuple[str, str | None]]:
        limit = asyncio.Semaphore(self.settings.send_concurrency)
        outcomes: dict[str, tuple[str, str | None]] = {}

        async def one(message: Message) -> None:
            counted = message.channel in ("sms", "voice")
            if counted and domain.over_rate_limit(
                recent.get(message.recipient_id, 0), self.settings.rate_limit_per_hour, urgent=message.urgent
            ):
                outcomes[message.message_id] = ("deferred", None)
                return
            if counted and not message.urgent:
                recent[message.recipient_id] = recent.get(message.recipient_id, 0) + 1
            outgoing = Outgoing(message.message_id, message.kind, message.channel, message.recipient_id, message.phone,
                                message.text, message.idempotency_key)  # fmt: skip
            async with limit:
                try:
                    outcomes[message.message_id] = (await self.gateway.send(outgoing), None)
                except GatewayFailed as exc:
                    outcomes[message.message_id] = ("error", str(exc)[:500])

        await asyncio.gather(*(one(m) for m in claimed))
        return outcomes

    async def _record(self, claimed: list[Message], outcomes: dict[str, tuple[str, str | None]]) -> dict[str, int]:
        now = self.clock.now()
        changes: list[dict[str, Any]] = []
        fallbacks: list[tuple[Message, str]] = []
        counts: dict[str, int] = {}
        for message in claimed:
            outcome, error = outcomes[message.message_id]
            change: dict[str, Any] = {"message_id": message.message_id, "lease_until": None}
            if outcome == "deferred":
                change["next_attempt_at"] = now + RATE_LIMIT_DEFER
            elif outcome in ("sent", "accepted"):
                change.update(status=outcome, attempts=message.attempts + 1, sent_at=now, last_error=None)
                if outcome == "accepted":
                    change["accepted_at"] = now
            else:
                attempts = message.attempts + 1
                change.update(attempts=attempts, last_error=error)
                if attempts >= self.settings.send_max_attempts:
                    change.update(status="failed", failed_at=now)
                    fallbacks.append((message, error or ""))
                    outcome = "failed"
                else:
                    change["next_attempt_at"] = domain.retry_at(now, attempts, self.settings.send_retry_backoff_s)
                    outcome = "retry"
            counts[outcome] = counts.get(outcome, 0) + 1
            changes.append(change)
        async with self.runtime.work() as uow:
            for _keys, group in _by_keys(changes).items():  # one executemany per shape of change
                await uow.session.execute(update(Message), group)
            if fallbacks:
                counts["fallback"] = await self._fall_back(uow, fallbacks, now)
        return counts

    async def _fall_back(self, uow: UnitOfWork, failed: list[tuple[Message, str]], now: datetime) -> int:
        """A failed SMS to an elderly resident (or one living alone) becomes a voice call."""
        contacts = await self._contacts(uow, {m.recipient_id for m, _ in failed})
        rows = []
        for message, _error in failed:
            contact = contacts.get(message.recipient_id)
            channel = domain.fallback_channel(message.channel, contact)
            if channel is None:
                continue
            row = self._row(domain.Draft(message.kind, message.recipient_id, {}, message.ticket_id, message.request_id, True,
                                         notice_id=message.notice_id),
                            contact, f"fallback:{message.message_id}", now, channel=channel, fallback_of=message.message_id)  # fmt: skip
            row["text"] = message.text  # the same words, spoken
            rows.append(row)
        if not rows:
            return 0
        insert = self.runtime.db.insert(Message)
        result = await uow.session.execute(
            insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message.message_id), rows
        )
        return len(result.all())

    # -- replies ------------------------------------------------------------------------

    async def messages(self, user: Principal, *, recipient: str | None = None, ticket_id: str | None = None,
                       request_id: str | None = None, kind: str | None = None, status: str | None = None,
                       limit: int = 100) -> list[Message]:  # fmt: skip
        """Messages the caller may see: staff all; a grid worker their grids' residents'; a
        building lead their buildings'; everyone their own."""
        query = select(Message)
        if not user.is_staff:
            own = Message.recipient_id == user.sub
            scoped = None
            if user.role == Role.grid_worker and user.grid_ids:
                scoped = exists().where(Contact.person_id == Message.recipient_id, Contact.grid_id.in_(user.grid_ids))
            elif user.role == Role.building_lead and user.building_ids:
                scoped = exists().where(
                    Contact.person_id == Message.recipient_id, Contact.building_id.in_(user.building_ids)
                )
            query = query.where(or_(own, scoped) if scoped is not None else own)
        filters = {Message.recipient_id: recipient, Message.ticket_id: ticket_id, Message.request_id: request_id,
                   Message.kind: kind, Message.status: status}  # fmt: skip
        for column, value in filters.items():
            if value:
                query = query.where(column == value)
        async with self.runtime.db.session() as session:
            rows = await session.execute(query.order_by(Message.created_at.desc()).limit(limit))
            return list(rows.scalars())

    async def save_contact(self, person_id: str, **fields: Any) -> Contact:
        if fields.get("preferred_channel") not in (None, *domain.CHANNELS):
            raise Invalid(f"preferred_channel must be one of {', '.join(domain.CHANNELS)}")
        async with self.runtime.work() as uow:
            contact = await uow.session.get(Contact, person_id)
            if contact is None:
                contact = Contact(person_id=person_id, updated_at=self.clock.now())
                uow.session.add(contact)
            for name, value in fields.items():
                setattr(contact, name, value)
            contact.updated_at = self.clock.now()
        return contact

    async def contact(self, person_id: str) -> Contact:
        async with self.runtime.db.session() as session:
            contact = await session.get(Contact, person_id)
        if contact is None:
            raise NotFound(f"no contact {person_id!r}")
        return contact

    async def figures(self) -> list[tuple[str, str, str, int]]:
        """Messages by kind, channel and status, for the metrics."""
        async with self.runtime.db.session() as session:
            rows = await session.execute(
                select(Message.kind, Message.channel, Message.status, func.count()).group_by(
                    Message.kind, Message.channel, Message.status
                )
            )
            return [tuple(r) for r in rows.all()]

    async def reply_figures(self) -> list[tuple[str, str, int]]:
        async with self.runtime.db.session() as session:
            rows = await session.execute(
                select(InboundReply.channel, InboundReply.outcome, func.count()).group_by(
                    InboundReply.channel, InboundReply.outcome
                )
            )
            return [tuple(r) for r in rows.all()]


def _ticket_ref(row: TicketRef) -> domain.TicketRef:
    return domain.TicketRef(
        row.ticket_id, row.kind, row.owner, row.priority, row.resident_id, row.grid_id, row.building_id
    )


def _by_keys(changes: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    return groups
