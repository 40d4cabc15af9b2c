"""The demo bank's year of staff invite codes (员工邀请码): every member of staff gets a code on the first
day, and through the year new customers arrive through them — by a code typed in the app, or through a staff
member's share link on WeChat (clicked a few times first). Most open a card within weeks and spend on it; a
few bring a second code (already bound), a mistyped one, or use a code too late.

Written as the data contract's own files (the new customers, their events carrying ``invite_code`` and
``share_token``) and loaded like any bank's, then bound by the binding pass; the share links' clicks are
stored as the ``/s/`` server would have counted them. Deterministic for a seed (the codes themselves are
drawn by the platform, so they differ run to run; nothing depends on their letters).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select

from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.demo.year import Calendar
from omnibank.ingest.service import load_file
from omnibank.invites import binding, codes, share
from omnibank.kit.clock import local_today
from omnibank.kit.idcard import id_check_digit
from omnibank.orgs.models import Org, Staff

#: the roles that bring customers in through their codes, and how many each brings (relative)
SELLERS = {"rm": 5.0, "wealth_manager": 3.0, "teller": 1.5, "branch_manager": 1.0, "telemarketer": 2.0}
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬芳燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎"
    "锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思丽"
)
SCENES = (
    ("scene", "car_installment"),
    ("scene", "home_decoration"),
    ("product", "luckin_cobrand_card"),
    ("home", share.HOME_ID),
)
CHANNELS = ("app", "wechat", "wechat", "branch", "wecom")


@dataclass(frozen=True)
class InvitesYear:
    codes: int
    customers: int
    events: int
    links: int
    clicks: int
    bound: int
    refused: int

    def line(self) -> str:
        return (
            f"invite codes: {self.codes:,} issued; {self.customers:,} new customers came through them "
            f"({self.bound:,} bound, {self.refused:,} refused bindings kept with their reason); "
            f"{self.links:,} share links clicked {self.clicks:,} times"
        )


def _id_number(rng: random.Random, born: datetime) -> str:
    first17 = f"131102{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return first17 + id_check_digit(first17)


def _unit_of(org: Org, orgs: dict[str, Org]) -> str:
    """The branch or sub-branch a customer is held by (never a team)."""
    if org.level == "team" and org.parent_id:
        return orgs[org.parent_id].org_id
    return org.org_id


def _campaigns_see(settings: Settings, cal: Calendar) -> None:
    """The live campaigns apply the new customers' events too (they join what they are eligible for)."""
    from omnibank.campaigns import live
    from omnibank.campaigns.audience import eligible

    live.run_once(
        settings, eligible_for=lambda session, spec: eligible(session, settings, spec, as_of=cal.last)
    )


def acquire(settings: Settings, *, cal: Calendar, seed: int, customers: int, folder: Path) -> InvitesYear:
    """Issue the codes, write and load the year's new customers and their coded events, count the clicks of
    their share links, and bind. Roughly one new customer for every 16 of the bank's."""
    rng = random.Random(f"{seed}:invites")
    first = datetime.combine(cal.first, time(9), settings.tz)
    with unit_of_work(settings) as session:
        issued = codes.issue(session, now=first, actor="system:demo")
        orgs = {o.org_id: o for o in session.scalars(select(Org))}
        staff = [
            (s.staff_id, s.org_id, s.role) for s in session.scalars(select(Staff).order_by(Staff.staff_id))
        ]
        live = {s: c.code for s, c in codes.live_codes(session).items()}
    sellers = [s for s in staff if s[2] in SELLERS and s[0] in live]
    if not sellers:
        return InvitesYear(issued.issued, 0, 0, 0, 0, 0, 0)
    # some staff are far better at it than others (a long tail, as in every sales force)
    weights = [SELLERS[role] * rng.paretovariate(1.6) for _, _, role in sellers]
    n = max(20, customers // 16)
    # registered by 20 days before the year's end, and never after today (the customer file refuses that)
    days = max(1, (min(cal.last, local_today(settings.tz)) - cal.first).days - 20)
    rows: list[str] = []
    events: list[dict[str, object]] = []
    links: dict[tuple[str, str, str], str] = {}
    clicks: list[share.Click] = []
    with unit_of_work(settings) as session:
        for i in range(n):
            staff_id, org_id, _ = rng.choices(sellers, weights)[0]
            cid = f"N{i + 1:06d}"
            registered = cal.first + timedelta(days=rng.randrange(0, days))
            at = datetime.combine(registered, time(rng.randrange(8, 22), rng.randrange(60)), settings.tz)
            male = rng.random() < 0.5
            born = datetime(rng.randrange(1965, 2004), rng.randrange(1, 13), rng.randrange(1, 29))  # noqa: DTZ001
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            rows.append(
                f"{cid},{name},{'M' if male else 'F'},{born:%Y-%m-%d},166{i:08d},{_id_number(rng, born)},"
                f"{_unit_of(orgs[org_id], orgs)},,{rng.randrange(0, 200_000)}.00,employee,C3,app,true,"
                f"{registered.isoformat()}\n"
            )
            coded: dict[str, object] = {"invite_code": live[staff_id]}
            if rng.random() < 0.35:  # through a share link on WeChat, clicked a few times first
                kind, target = rng.choice(SCENES)
                key = (staff_id, kind, target)
                if key not in links:
                    link = share.make_link(
                        session,
                        staff_id=staff_id,
                        kind=kind,
                        target_id=target,
                        channel="wechat",
                        now=at - timedelta(days=3),
                        actor="system:demo",
                    )
                    links[key] = link.token
                coded["share_token"] = links[key]
                device = f"demo-{i:06d}"
                for k in range(rng.randrange(1, 5)):
                    clicks.append(
                        share.Click(
                            links[key],
                            staff_id,
                            "wechat",
                            device,
                            at - timedelta(hours=rng.randrange(1, 60), minutes=k * 7),
                        )
                    )
                for k in range(rng.randrange(0, 4)):  # friends who clicked and did not come
                    clicks.append(
                        share.Click(
                            links[key],
                            staff_id,
                            "wechat",
                            f"{device}-{k}",
                            at - timedelta(hours=rng.randrange(1, 200)),
                        )
                    )
            roll = rng.random()
            late = roll < 0.03  # the code typed only weeks after registering: outside the window
            opened = at + timedelta(days=rng.randrange(40, 60)) if late else at
            events.append(
                {
                    "event_id": f"inv-{cid}-open",
                    "type": "account.opened",
                    "customer_id": cid,
                    "ts": opened.isoformat(),
                    "channel": rng.choice(CHANNELS),
                    **coded,
                }
            )
            if 0.03 <= roll < 0.08:  # a second code later on: already bound
                other = rng.choice(sellers)[0]
                events.append(
                    {
                        "event_id": f"inv-{cid}-again",
                        "type": "app.login",
                        "customer_id": cid,
                        "ts": (at + timedelta(days=rng.randrange(1, 20))).isoformat(),
                        "invite_code": live[other],
                    }
                )
            elif 0.08 <= roll < 0.10:  # a mistyped code
                events.append(
                    {
                        "event_id": f"inv-{cid}-typo",
                        "type": "app.login",
                        "customer_id": cid,
                        "ts": (at + timedelta(hours=2)).isoformat(),
                        "invite_code": live[staff_id][::-1],
                    }
                )
            if rng.random() < 0.7:  # a card within a few weeks, then spending on it
                card_at = at + timedelta(days=rng.randrange(0, 21), hours=rng.randrange(0, 8))
                card = f"6259{i:012d}"
                events.append(
                    {
                        "event_id": f"inv-{cid}-card",
                        "type": "card.issued",
                        "customer_id": cid,
                        "ts": card_at.isoformat(),
                        "card_id": card,
                        "product": "luckin_cobrand",
                        "tier": rng.choice(("classic", "gold", "platinum")),
                        "primary": True,
                        "new_customer": True,
                    }
                )
                for k in range(rng.randrange(0, 12)):
                    spent = card_at + timedelta(days=rng.randrange(0, 60), minutes=rng.randrange(1440))
                    if spent.date() > cal.last:
                        continue
                    amount = f"{rng.randrange(15, 900)}.{rng.randrange(100):02d}"
                    events.append(
                        {
                            "event_id": f"inv-{cid}-tx{k}",
                            "type": "card.transaction",
                            "customer_id": cid,
                            "ts": spent.isoformat(),
                            "card_id": card,
                            "amount": amount,
                            "merchant": rng.choice(("瑞幸咖啡", "华联超市", "衡水老白干专卖")),
                        }
                    )
        stored = share.store_clicks(session, clicks)
    events = [e for e in events if datetime.fromisoformat(str(e["ts"])).date() <= cal.last]
    folder.mkdir(parents=True, exist_ok=True)
    people = folder / "invited_customers.csv"
    people.write_text(
        "customer_id,name,gender,birth_date,phone,id_number,branch_id,rm_id,aum,occupation,risk_tolerance,"
        "channel_pref,marketing_consent,registered_at\n" + "".join(rows),
        encoding="utf-8",
    )
    feed = folder / "invited_events.jsonl"
    feed.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    load_file("customers", people, settings=settings, progress=False)
    load_file("events", feed, settings=settings, progress=False)
    _campaigns_see(settings, cal)
    with unit_of_work(settings) as session:
        report = binding.bind_pass(session, settings, now=datetime.combine(cal.last, time(23), settings.tz))
    return InvitesYear(
        issued.issued, n, len(events), len(links), stored, report.bound, sum(report.refused.values())
    )
