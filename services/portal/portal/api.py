"""Portal routes: the pages (server-rendered, a little JavaScript on top), the JSON the
pages' script calls, the keys services verify with, and the operator's admin calls.

A route reads the session from its cookie, calls a use case or a service on the
person's behalf, and renders a template; every text comes from the message catalog.
"""

from __future__ import annotations

from fastapi import APIRouter

from portal.routes import admin, board, desk, dispatch_desk, grid, household, lead, paper, screen, signin, supplies_desk
from portal.web import CATEGORIES, SYMPTOMS, _SignIn, message_page, redirect

__all__ = ["CATEGORIES", "SYMPTOMS", "_SignIn", "message_page", "redirect", "router"]

router = APIRouter()
for area in (signin, household, lead, admin, grid, board, desk, screen, paper, supplies_desk, dispatch_desk):
    router.include_router(area.router)
