"""A replica keeps the sessions it has read (a household's page and its check-in a minute
later cost one read), and forgets those ended on any replica at its next look at the
endings (every second): the cache never outlives a sign-out by more than that."""

from __future__ import annotations

from portal.service import PortalService


def path_of(url: str) -> str:
    return url.removeprefix("http://portal")


async def test_a_session_ended_on_another_replica_stops_working_at_its_next_look(portal):
    wang = await portal.register("王芳", "101")
    async with portal.browser() as phone:
        signed = await phone.get(path_of(await portal.household_link(wang)))
        assert signed.status_code == 303
        cookie = phone.cookies["firstline_session"]
    state = portal.app.state
    other = PortalService(state.runtime, state.settings, portal.service.notifier)  # another replica, same database
    assert (await other.session(cookie)).household_id == (await portal.service.session(cookie)).household_id

    await portal.service.sign_out(cookie)
    assert await portal.service.session(cookie) is None  # on the replica that ended it: at once
    assert await other.session(cookie) is not None  # the other still trusts what it read...
    assert await other.forget_ended_sessions() == 1
    assert await other.session(cookie) is None  # ...until its next look at the endings
    assert await other.forget_ended_sessions() == 1  # looked at again (the overlap): harmless
