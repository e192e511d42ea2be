"""A synthetic community, the same every run (seeded): 4 grids, 20 buildings, 2,000+ residents."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date

from openpyxl import Workbook

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国文斌宇浩凯晨欣悦婷雪琳晶"
CENTER = (31.2304, 121.4737)  # a community in Shanghai


@dataclass(frozen=True)
class Building:
    building_id: str
    grid_id: str
    lat: float
    lon: float


def buildings() -> list[Building]:
    out = []
    for n in range(20):
        row, col = divmod(n, 5)
        out.append(
            Building(
                building_id=f"B{n + 1:02d}",
                grid_id=f"G{n // 5 + 1}",
                lat=round(CENTER[0] + row * 0.0011, 6),
                lon=round(CENTER[1] + col * 0.0013, 6),
            )
        )
    return out


def residents(count: int = 2000, registered_on: date | None = None, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        b = buildings()[i % 20]
        k = i // 20  # the resident's place within the building: 4 units of 25 homes
        unit, j = k // 25 % 4 + 1, k % 25
        room = f"{j // 2 + 1}0{j % 2 + 1}"
        tags = []
        roll = rng.random()
        if roll < 0.18:
            tags.append("elderly")
            if rng.random() < 0.4:
                tags.append("living_alone")
        elif roll < 0.24:
            tags.append("chronic")
        elif roll < 0.26:
            tags.append("pregnant")
        elif roll < 0.28:
            tags.append("disabled")
        rows.append(
            {
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN + " ").strip(),
                "address": f"{b.building_id}-{unit}-{room}",
                "phone": f"13{rng.randint(100000000, 999999999)}",
                "grid": b.grid_id,
                "tags": "、".join(
                    {
                        "elderly": "老人",
                        "living_alone": "独居",
                        "chronic": "慢病",
                        "pregnant": "孕妇",
                        "disabled": "残疾",
                    }[t]
                    for t in tags
                ),
                "lat": round(b.lat + rng.uniform(-0.0002, 0.0002), 6),
                "lon": round(b.lon + rng.uniform(-0.0002, 0.0002), 6),
                "registered_on": registered_on.isoformat() if registered_on else "",
            }
        )
    return rows


def xlsx(rows: list[dict]) -> bytes:
    """The register as communities keep it: Chinese headers, building-unit-room in one column."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民花名册")
    sheet.append(["姓名", "楼栋-单元-房号", "电话", "网格", "标签", "纬度", "经度", "登记日期"])
    for r in rows:
        sheet.append(
            [r["name"], r["address"], r["phone"], r["grid"], r["tags"], r["lat"], r["lon"], r["registered_on"]]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
