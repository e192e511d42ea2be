"""The time bank's part of privacy (docs/privacy.md): erasing a resident when check-in says
so (`ResidentErased`). A resident who is a member keeps their account and ledger (hours
are owed to and by others: the books must balance), under no name, off the leaderboard,
without family links; the member id is all that stays."""

from __future__ import annotations

from sqlalchemy import delete, or_, update

from common import retention
from common.events.checkin import ResidentErased
from common.events.timebank import ResidentErasedByTimebank
from common.outbox import UnitOfWork, delete_sent
from common.runtime import Runtime
from timebank.models import FamilyLink, Member

ERASED_NAME = "（已删除 / erased）"


class Privacy:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def erase_resident(self, event: ResidentErased, uow: UnitOfWork | None = None) -> dict[str, int]:
        resident_id = event.resident_id
        async with self.runtime.work(uow) as uow:
            session = uow.session
            await session.flush()
            records = {
                "members": (
                    await session.execute(
                        update(Member).where(Member.member_id == resident_id)
                        .values(name=ERASED_NAME, public_recognition=False).execution_options(synchronize_session=False)
                    )
                ).rowcount or 0,
                "family_links": (
                    await session.execute(
                        delete(FamilyLink).where(or_(FamilyLink.member_id == resident_id, FamilyLink.relative_id == resident_id))
                    )
                ).rowcount or 0,
                "outbox_events": await delete_sent(session, [resident_id]),
            }  # fmt: skip
            session.expire_all()
            uow.emit(ResidentErasedByTimebank(erasure_id=event.erasure_id, erased_at=self.runtime.clock.now(),
                                              records=records))  # fmt: skip
        retention.report(self.runtime.registry, "timebank", "erasure", {}, records)
        return records
