"""`insert_missing` inserts only the rows whose key is not taken (a big batch of new rows is
copied on PostgreSQL; one known row sends it to ON CONFLICT), and answers which were new;
`Database.any_of` selects by a set of values on either database."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Field, SQLModel

from common.db import COPY_PAYS_FROM, Database, insert_missing


class Known(SQLModel, table=True):
    __tablename__ = "test_known"
    name: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    note: str | None = None


def rows(names) -> list[dict]:
    return [{"name": n, "kind": "k", "note": None} for n in names]


async def test_only_rows_not_there_are_inserted_and_the_new_ones_are_named(database_url):
    db = Database(database_url)
    await db.create_all()
    try:
        table = Known.__table__
        async with db.session() as session:
            first = [f"n{i}" for i in range(COPY_PAYS_FROM)]
            assert await insert_missing(session, table, rows(first), ["name", "kind"], returning="name") == set(first)
            again = ["n0", "x1", "x2"]  # small: one statement
            assert await insert_missing(session, table, rows(again), ["name", "kind"], returning="name") == {"x1", "x2"}
            big = [f"m{i}" for i in range(COPY_PAYS_FROM)] + ["n1"]  # big, with one known: the copy gives way
            assert await insert_missing(session, table, rows(big), ["name", "kind"], returning="name") == set(big) - {
                "n1"
            }
            await insert_missing(session, table, rows(["y"]), ["name", "kind"])
            await session.commit()
            names = set((await session.execute(select(Known.name))).scalars())
            assert names == set(first) | {"x1", "x2", "y"} | {f"m{i}" for i in range(COPY_PAYS_FROM)}
            picked = select(Known.name).where(db.any_of(Known.name, ["n3", "y", "absent"]))
            assert set((await session.execute(picked)).scalars()) == {"n3", "y"}
    finally:
        await db.drop_all()
        await db.dispose()
