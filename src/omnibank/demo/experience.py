"""The demo bank's customer-experience data (issue 17): what ``omnibank cx index``, ``cx survey`` and the
feedback analytics read from the event log.

Written into the year of events beside the generator's own (:class:`Experience` hands each day's rows to
:class:`~omnibank.demo.events.EventDays`, which numbers them with the rest in time order):

* ``branch.visit`` — mostly at the customer's home branch, older customers and those who prefer the
  branch more often; ``wait_min`` varies by branch (two busy branches markedly worse), by weekday (Monday,
  Friday and Saturday worse) and by hour;
* ``card.application_submitted`` → ``card.application_approved`` (1–10 days later; the card is issued a day
  or two after) for every card issued in the year, and ``card.application_declined`` for a third as many
  other applications;
* ``card.activated`` for most cards issued in the year (some late, some never);
* ``app.login_failed`` among logins, a few percent, much more in one month (an incident);
* ``survey.response`` — ``csat_branch`` after some branch visits (lower where the wait was long) and
  ``nps_card`` after some card activations, with Chinese comments whose tone follows the score.

``ces_service`` answers follow resolved tickets: the service desk's tickets are made later, in the living
demo (:func:`service_responses`, called by :mod:`omnibank.demo.desk`).

Deterministic by seed: one stream of its own (:data:`S_EXPERIENCE`), drawn whole when the generator starts,
so the other streams' draws are unchanged. The volume follows ``events_per_customer`` (about 5% of the
events at the default 50 a year): visits and failed logins in proportion, the card events thinned below
the default rate.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from numpy.random import Generator

from omnibank.demo.rates import CARD_PRODUCTS, Behaviour
from omnibank.demo.sampling import AnyArr, BoolArr, FloatArr, IntArr, cdf, pick, stream

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from omnibank.demo.orgs import OrgTree
    from omnibank.demo.people import Customers
    from omnibank.demo.year import Calendar

__all__ = [
    "COMMENTS",
    "EXPERIENCE_TYPES",
    "S_EXPERIENCE",
    "Experience",
    "service_responses",
]

S_EXPERIENCE = 17  # the stream key (sampling.py's keys: 1-4 and 100)
EXPERIENCE_TYPES = (
    "branch.visit",
    "card.application_submitted",
    "card.application_approved",
    "card.application_declined",
    "card.activated",
    "app.login_failed",
    "survey.response",
)
_CARD_BASE = 1_000_000_000  # as in events.py: card ids are "CD" + str(_CARD_BASE + n)
_DEFAULT_RATE = 50.0
_DAY_S = 86_400

# Branch visits: a year's visits per customer on average, by age (<35, 35-59, 60+) and preferred channel.
VISITS_PER_YEAR = 1.5
_AGE_VISITS = (0.5, 0.9, 1.8)
_CHANNEL_VISITS = {"app": 0.6, "wechat": 0.7, "sms": 1.0, "phone": 1.3, "branch": 2.5}
_WEEKDAY_VISITS = (1.3, 1.0, 1.0, 1.0, 1.2, 0.9, 0.5)
_WEEKDAY_WAIT = (1.45, 1.0, 0.95, 1.0, 1.2, 1.35, 0.8)
_VISIT_HOURS = (9, 10, 11, 12, 13, 14, 15, 16)
_VISIT_HOUR_WEIGHTS = (1.0, 1.4, 1.3, 0.7, 0.8, 1.2, 1.2, 0.9)
_HOUR_WAIT = (0.9, 1.2, 1.15, 0.8, 0.85, 1.2, 1.1, 0.9)
_BAD_BRANCH_WAIT = (2.6, 2.0)  # the two markedly worse branches
_HOME_VISIT_SHARE = 0.9
SERVICES = ("存取款", "开户", "理财咨询", "信用卡", "挂失补办", "社保卡业务", "转账汇款", "贷款咨询")
_SERVICE_WEIGHTS = (25, 10, 15, 12, 8, 12, 10, 8)

# Cards: applications, decisions and activations.
_LEAD_DAYS = tuple(range(1, 11))
_LEAD_WEIGHTS = (10, 18, 20, 15, 10, 8, 6, 5, 4, 4)
_DECLINED_PER_ISSUED = 0.35
_ACTIVATED_SHARE = 0.85
_APPLY_CHANNELS = ("app", "wechat", "branch")
_APPLY_CHANNEL_WEIGHTS = (55, 25, 20)

# Failed logins: a share of the login rate, much higher in the incident month.
_LOGIN_FAILED_SHARE = 0.04
_INCIDENT_SHARE = 0.18

# Surveys.
_RESPONSE_RATE = 0.18
_ANSWER_CHANNELS = ("wechat", "sms", "app")
_ANSWER_CHANNEL_WEIGHTS = (50, 30, 20)
_NPS_WEIGHTS = (2, 1, 1, 2, 2, 4, 6, 10, 14, 24, 34)  # 0..10

# Comment templates (no names, phones or numbers that could be taken for them), by survey and tone, each
# with its topic: the feedback analytics (X4) find these topics back.
Tone = str  # "pos" | "neg" | "mid"
COMMENTS: dict[str, dict[Tone, tuple[tuple[str, str], ...]]] = {
    "branch": {
        "pos": (
            ("排队", "今天排队很快, 几分钟就办完了"),
            ("排队", "取号后基本不用等, 效率很高"),
            ("柜员", "柜员态度很好, 讲解得很耐心"),
            ("柜员", "大堂经理主动帮忙填单, 很贴心"),
            ("环境", "网点环境干净整洁, 还有饮用水"),
            ("效率", "开户流程简单, 一次就办好了"),
            ("长辈", "工作人员对老年人很照顾, 点赞"),
            ("理财", "理财经理介绍产品很专业, 不强行推销"),
            ("预约", "线上预约后到网点直接办理, 很方便"),
            ("效率", "社保卡补办当场就拿到了, 满意"),
            ("排队", "周末去人不多, 排队不到十分钟"),
        ),
        "neg": (
            ("排队", "排队太久了, 等了快一个小时"),
            ("排队", "只开了两个窗口, 排队的人很多"),
            ("排队", "周一上午去办业务, 排队排到中午"),
            ("排队", "叫号系统乱, 排队等了很久也没人管"),
            ("排队", "排队时间太长, 下次不想来网点了"),
            ("柜员", "柜员态度冷淡, 问问题爱答不理"),
            ("柜员", "工作人员一直推销理财, 很反感"),
            ("效率", "办个业务要填好几张表, 流程太繁琐"),
            ("预约", "网点预约了也没用, 到了还是要排队"),
            ("环境", "网点座位太少, 老人只能站着等"),
            ("效率", "系统故障办不了业务, 白跑一趟"),
            ("排队", "只有一个窗口办个人业务, 排队效率太低"),
        ),
        "mid": (
            ("排队", "排队时间还可以, 窗口可以再多开一个"),
            ("柜员", "服务一般, 没什么特别的"),
            ("环境", "网点有点旧, 不过办事还算顺利"),
        ),
    },
    "card": {
        "pos": (
            ("瑞幸券", "瑞幸联名卡很划算, 每周都用券买咖啡"),
            ("瑞幸券", "瑞幸券到账很快, 用起来方便"),
            ("积分", "积分兑换瑞幸券很实惠, 推荐"),
            ("积分", "积分累积快, 兑换流程简单"),
            ("年费", "首年免年费, 刷卡几次就免了, 不错"),
            ("分期", "分期手续费比别家低, 还款灵活"),
            ("额度", "额度给得挺合理, 审批也快"),
            ("激活", "在手机银行上激活信用卡很顺利"),
            ("手机银行", "手机银行查账单很清楚, 好用"),
            ("权益", "新户礼很实在, 会推荐给朋友"),
            ("分期", "分期办理很方便, 手机上点几下就好了"),
        ),
        "neg": (
            ("瑞幸券", "瑞幸券总是领不到, 活动形同虚设"),
            ("瑞幸券", "瑞幸券核销失败, 在店里很尴尬"),
            ("积分", "积分规则太复杂, 看不懂怎么算"),
            ("积分", "积分兑换的券很快就过期了"),
            ("年费", "年费没有提前说清楚, 被扣了很不爽"),
            ("年费", "办卡时说免年费, 结果还是收了"),
            ("分期", "分期手续费太高, 感觉被坑了"),
            ("分期", "客服一直打电话推销分期, 很烦"),
            ("额度", "额度太低, 申请提额一直不通过"),
            ("手机银行", "手机银行闪退, 激活了好几次才成功"),
            ("手机银行", "手机银行经常闪退, 查个账单都费劲"),
            ("激活", "激活流程太麻烦, 验证码一直收不到"),
            ("客服态度", "打客服电话问年费, 客服态度很敷衍"),
        ),
        "mid": (
            ("瑞幸券", "瑞幸券还行, 希望能多给几张"),
            ("积分", "积分还可以, 兑换的选择少了点"),
            ("年费", "年费规则一般, 希望更透明"),
        ),
    },
    "service": {
        "pos": (
            ("客服态度", "客服态度很好, 耐心解答了我的问题"),
            ("客服态度", "客服专员很专业, 一次就说清楚了"),
            ("处理速度", "问题当天就解决了, 效率很高"),
            ("处理速度", "投诉后很快有人回电, 处理及时"),
            ("权益", "权益补发到账了, 感谢跟进"),
            ("瑞幸券", "瑞幸券的问题处理得很快, 已经能用了"),
            ("手机银行", "手机银行闪退的问题更新后好了"),
            ("退款", "退款很快就到账了, 满意"),
            ("热线", "热线很快接通, 没有等待"),
            ("跟进", "处理完还回访确认, 很负责"),
            ("客服态度", "客服说话很客气, 问题也解决了"),
        ),
        "neg": (
            ("客服态度", "客服态度差, 说话很不耐烦"),
            ("客服态度", "客服一直推脱, 没有人愿意负责"),
            ("处理速度", "一个问题拖了半个月才处理"),
            ("处理速度", "反映了好几次都没有结果, 太慢了"),
            ("热线", "热线一直打不通, 转人工要等很久"),
            ("热线", "电话转来转去, 每次都要重新说一遍"),
            ("手机银行", "手机银行闪退的问题到现在还没解决"),
            ("瑞幸券", "瑞幸券的问题一直没解决, 只会说在核实"),
            ("权益", "权益说好补发, 到现在也没到账"),
            ("退款", "退款流程太复杂, 要提交很多材料"),
            ("积分", "积分被扣了也没人解释清楚"),
            ("年费", "年费投诉处理结果不满意"),
            ("手机银行", "手机银行一直闪退, 客服只会让我重装"),
        ),
        "mid": (
            ("处理速度", "问题解决了, 就是时间有点长"),
            ("客服态度", "客服还行, 流程可以再简化"),
            ("热线", "热线等了一会儿, 总体还可以"),
        ),
    },
}
# One flat list: a comment's code is its index.
_COMMENT_LIST: list[tuple[str, str, str, str]] = [
    (area, tone, topic, text)
    for area, tones in COMMENTS.items()
    for tone, rows in tones.items()
    for topic, text in rows
]
_COMMENT_CODES: dict[tuple[str, str], list[int]] = {}
for _i, (_area, _tone, _topic, _text) in enumerate(_COMMENT_LIST):
    _COMMENT_CODES.setdefault((_area, _tone), []).append(_i)
_QUEUE_NEG = [i for i in _COMMENT_CODES[("branch", "neg")] if _COMMENT_LIST[i][2] == "排队"]

# Kinds of rows (codes into EXPERIENCE_TYPES, with the survey rows split by survey).
K_VISIT, K_SUBMITTED, K_APPROVED, K_DECLINED, K_ACTIVATED, K_LOGIN_FAILED, K_CSAT, K_NPS = range(8)
_KIND_TYPE = (*EXPERIENCE_TYPES[:6], "survey.response", "survey.response")

#: a day's rows of one type: (type, seconds of the day, a renderer as events.py's batches take it)
DayBatch = tuple[str, IntArr, Callable[[IntArr], tuple[list[bytes], IntArr]]]


@dataclass
class _Rows:
    """The year's rows, sorted by (day, second)."""

    day: IntArr
    sec: IntArr
    cust: IntArr
    kind: IntArr
    a: IntArr  # visit/csat: org index; activated: card number; applications: application number
    b: IntArr  # visit: wait minutes; csat/nps: score; applications: product
    c: IntArr  # visit: service; csat/nps: comment code or -1
    ch: IntArr  # channel code (answers: _ANSWER_CHANNELS; applications/activations: _APPLY_CHANNELS)


def _comment(rng: Generator, area: str, tone: AnyArr, want: BoolArr) -> IntArr:
    """Comment codes for ``want`` rows of tone 0 (neg), 1 (mid), 2 (pos); -1 where no comment."""
    out = np.full(len(tone), -1, dtype=np.int64)
    for t, name in enumerate(("neg", "mid", "pos")):
        rows = np.flatnonzero(want & (tone == t))
        codes = np.array(_COMMENT_CODES[(area, name)], dtype=np.int64)
        out[rows] = codes[rng.integers(0, len(codes), len(rows))]
    return out


class Experience:
    """The year's experience rows, drawn at once; :meth:`day` gives a day's as batches."""

    def __init__(
        self,
        seed: int,
        start: date,
        days: int,
        cust: Customers,
        tree: OrgTree,
        beh: Behaviour,
        login_mult: FloatArr,
        events_per_customer: float,
    ) -> None:
        from omnibank.customers.values import CHANNEL_PREFS

        rng = stream(seed, S_EXPERIENCE)
        self.start = start
        self.days = days
        self.cid_width = max(6, len(str(cust.n)))
        self.org_ids = [o.org_id for o in tree.orgs]
        scale = events_per_customer / _DEFAULT_RATE
        keep_cards = min(1.0, scale)
        n = cust.n
        weekday = np.array([(start + timedelta(days=d)).weekday() for d in range(days)], dtype=np.int64)
        parts: list[tuple[IntArr, ...]] = []

        def add(kind: int, day: AnyArr, sec: AnyArr, c: AnyArr, *cols: AnyArr) -> None:
            k = len(day)
            filled = [*cols, *([np.full(k, -1, dtype=np.int64)] * (4 - len(cols)))]
            inside = (day >= 0) & (day < days)
            arrays = (day, sec, c, np.full(k, kind, dtype=np.int64), *filled)
            parts.append(tuple(np.asarray(x, dtype=np.int64)[inside] for x in arrays))

        # -- branch visits -------------------------------------------------------------------------------
        life = np.where(cust.age < 35, 0, np.where(cust.age < 60, 1, 2))
        chan = np.array([_CHANNEL_VISITS[c] for c in CHANNEL_PREFS])
        w = np.asarray(_AGE_VISITS)[life] * chan[cust.channel]
        cum = np.cumsum(w / w.mean()) if n else np.zeros(0)
        n_visits = int(rng.poisson(n * VISITS_PER_YEAR * scale * days / 365)) if n else 0
        v_c = np.searchsorted(cum, rng.random(n_visits) * cum[-1], side="right") if n_visits else np.zeros(0)
        v_c = np.minimum(v_c, n - 1).astype(np.int64)
        day_w = np.asarray(_WEEKDAY_VISITS)[weekday]
        v_d = pick(rng, cdf(day_w.tolist()), n_visits)
        v_h = pick(rng, cdf(_VISIT_HOUR_WEIGHTS), n_visits)
        v_s = np.asarray(_VISIT_HOURS, dtype=np.int64)[v_h] * 3600 + rng.integers(0, 3600, n_visits)
        # where: the home branch mostly, else another branch or sub-branch of the same city
        city_orgs = [[tree.branches[ci], *tree.subbranches[ci]] for ci in range(len(tree.branches))]
        width = max(len(x) for x in city_orgs)
        table = np.array([x + [x[0]] * (width - len(x)) for x in city_orgs], dtype=np.int64)
        sizes = np.array([len(x) for x in city_orgs], dtype=np.int64)
        v_city = cust.city[v_c]
        other = table[v_city, (rng.random(n_visits) * sizes[v_city]).astype(np.int64)]
        v_o = np.where(rng.random(n_visits) < _HOME_VISIT_SHARE, cust.home[v_c], other).astype(np.int64)
        # waits: a mean per org, two busy branches markedly worse
        mean_wait = 8.0 + rng.gamma(12.0, 0.35, len(tree.orgs))
        homes = np.bincount(cust.home, minlength=len(tree.orgs))
        busiest = np.argsort(-homes, kind="stable")[:8]
        bad = rng.choice(busiest, size=min(len(_BAD_BRANCH_WAIT), len(busiest)), replace=False)
        for o, f in zip(bad.tolist(), _BAD_BRANCH_WAIT, strict=False):
            mean_wait[o] *= f
        self.bad_branches = [self.org_ids[o] for o in bad.tolist()]
        wait = (
            mean_wait[v_o]
            * np.asarray(_WEEKDAY_WAIT)[weekday[v_d]]
            * np.asarray(_HOUR_WAIT)[v_h]
            * rng.gamma(2.0, 0.5, n_visits)
        )
        v_wait = np.clip(np.rint(wait), 0, 180).astype(np.int64)
        v_svc = pick(rng, cdf(_SERVICE_WEIGHTS), n_visits)
        add(K_VISIT, v_d, v_s, v_c, v_o, v_wait, v_svc)

        # csat_branch after some visits: lower where the wait was long
        ans = rng.random(n_visits) < _RESPONSE_RATE
        latent = 4.7 - 0.045 * np.maximum(v_wait - 8, 0) + rng.normal(0.0, 0.7, n_visits)
        csat = np.clip(np.rint(latent), 1, 5).astype(np.int64)
        at = v_d * _DAY_S + v_s + rng.integers(600, 4 * 3600, n_visits)
        tone = np.where(csat >= 4, 2, np.where(csat == 3, 1, 0))
        noisy = rng.random(n_visits) < 0.08
        tone = np.where(noisy & (tone == 2), 1, np.where(noisy & (tone == 0), 1, tone))
        want = rng.random(n_visits) < np.where(csat <= 2, 0.85, 0.55)
        comment = _comment(rng, "branch", tone, want)
        queue = (tone == 0) & want & (v_wait > 20) & (rng.random(n_visits) < 0.7)
        comment[queue] = np.array(_QUEUE_NEG)[rng.integers(0, len(_QUEUE_NEG), int(queue.sum()))]
        a_ch = pick(rng, cdf(_ANSWER_CHANNEL_WEIGHTS), n_visits)
        add(K_CSAT, (at // _DAY_S)[ans], (at % _DAY_S)[ans], v_c[ans], v_o[ans], csat[ans], comment[ans],
            a_ch[ans])  # fmt: skip

        # -- card applications, decisions, activations ---------------------------------------------------
        held = np.flatnonzero((beh.card1 >= 0) & (beh.issue1 < days))
        held = held[rng.random(len(held)) < keep_cards]
        k = len(held)
        i_day = beh.issue1[held].astype(np.int64)
        i_sec = beh.issue_sec[held].astype(np.int64)
        lead = np.asarray(_LEAD_DAYS, dtype=np.int64)[pick(rng, cdf(_LEAD_WEIGHTS), k)]
        ap_day = i_day - 1 - (rng.random(k) < 0.4)
        sub_day = ap_day - lead
        ap_sec = rng.integers(9 * 3600, 18 * 3600, k)
        sub_sec = rng.integers(8 * 3600, 23 * 3600, k)
        ap_prod = beh.product1[held].astype(np.int64)
        ap_ch = pick(rng, cdf(_APPLY_CHANNEL_WEIGHTS), k)
        # declined: other customers' applications
        n_dec = int(rng.poisson(_DECLINED_PER_ISSUED * k)) if k else 0
        d_c = rng.integers(0, n, n_dec) if n else np.zeros(0, dtype=np.int64)
        d_sub = rng.integers(0, days, n_dec)
        d_lead = rng.integers(1, 7, n_dec)
        d_prod = ap_prod[rng.integers(0, k, n_dec)] if k else np.zeros(0, dtype=np.int64)
        d_sub_sec = rng.integers(8 * 3600, 23 * 3600, n_dec)
        d_sec = rng.integers(9 * 3600, 18 * 3600, n_dec)
        d_ch = pick(rng, cdf(_APPLY_CHANNEL_WEIGHTS), n_dec)
        # application numbers in the order of submission
        all_sub = np.concatenate([sub_day * _DAY_S + sub_sec, d_sub * _DAY_S + d_sub_sec])
        order = np.argsort(all_sub, kind="stable")
        number = np.empty(len(order), dtype=np.int64)
        number[order] = np.arange(1, len(order) + 1, dtype=np.int64)
        app_no, dec_no = number[:k], number[k:]
        add(K_SUBMITTED, sub_day, sub_sec, held, app_no, ap_prod, ap_prod, ap_ch)
        add(K_APPROVED, ap_day, ap_sec, held, app_no, ap_prod, ap_prod, ap_ch)
        add(K_SUBMITTED, d_sub, d_sub_sec, d_c, dec_no, d_prod, d_prod, d_ch)
        add(K_DECLINED, d_sub + d_lead, d_sec, d_c, dec_no, d_prod, d_prod, d_ch)

        # activations: most, soon; some late; some never
        active = rng.random(k) < _ACTIVATED_SHARE
        band = rng.random(k)
        lag = np.where(
            band < 0.6,
            rng.integers(0, 3, k),
            np.where(band < 0.85, rng.integers(3, 15, k), rng.integers(15, 61, k)),
        )
        same = i_day * _DAY_S + i_sec + rng.integers(300, 6 * 3600, k)
        later = (i_day + lag) * _DAY_S + rng.integers(8 * 3600, 22 * 3600, k)
        act = np.where(lag == 0, same, later)
        act_ch = pick(rng, cdf(_APPLY_CHANNEL_WEIGHTS), k)
        card = beh.card1[held].astype(np.int64) + _CARD_BASE
        add(K_ACTIVATED, (act // _DAY_S)[active], (act % _DAY_S)[active], held[active], card[active],
            ap_prod[active], ap_prod[active], act_ch[active])  # fmt: skip

        # nps_card after some activations: late activations score lower
        ans = active & (rng.random(k) < _RESPONSE_RATE)
        nps = pick(rng, cdf(_NPS_WEIGHTS), k)
        nps = np.where(lag > 14, np.maximum(nps - 2, 0), nps)
        n_at = (act // _DAY_S + rng.integers(1, 8, k)) * _DAY_S + rng.integers(9 * 3600, 21 * 3600, k)
        tone = np.where(nps >= 9, 2, np.where(nps >= 7, 1 + (rng.random(k) < 0.4), 0))
        want = rng.random(k) < np.where(nps <= 6, 0.8, 0.5)
        comment = _comment(rng, "card", tone, want)
        a_ch = pick(rng, cdf(_ANSWER_CHANNEL_WEIGHTS), k)
        n_day, n_sec = n_at // _DAY_S, n_at % _DAY_S
        add(K_NPS, n_day[ans], n_sec[ans], held[ans], ap_prod[ans], nps[ans], comment[ans], a_ch[ans])

        # -- failed logins -------------------------------------------------------------------------------
        cum_login = np.cumsum(beh.login_w)
        total = float(cum_login[-1]) if len(cum_login) else 0.0
        incident = start + timedelta(days=int(days * 0.6))
        self.incident_month = f"{incident:%Y-%m}"
        share = np.array(
            [
                _INCIDENT_SHARE if (start + timedelta(days=d)).strftime("%Y-%m") == self.incident_month
                else _LOGIN_FAILED_SHARE
                for d in range(days)
            ]
        )  # fmt: skip
        per_day = rng.poisson(total * login_mult[:days] * share) if total > 0 else np.zeros(days, np.int64)
        m = int(per_day.sum())
        f_d = np.repeat(np.arange(days, dtype=np.int64), per_day)
        f_c = np.searchsorted(cum_login, rng.random(m) * total, side="right").astype(np.int64)
        f_c = np.minimum(f_c, max(n - 1, 0))
        f_s = rng.integers(7 * 3600, 23 * 3600, m)
        add(K_LOGIN_FAILED, f_d, f_s, f_c)

        cols = [np.concatenate([p[i] for p in parts]) for i in range(8)]
        order = np.lexsort((cols[1], cols[0]))
        self.rows = _Rows(*(c[order] for c in cols))
        self.first = np.searchsorted(self.rows.day, np.arange(days + 1, dtype=np.int64))

    # ------------------------------------------------------------------------------------------ a day

    def _tail(self, kind: int, a: int, b: int, c: int, ch: int) -> str:
        if kind == K_VISIT:
            return (f',"channel":"branch","branch_id":"{self.org_ids[a]}","wait_min":{b},'
                    f'"service":"{SERVICES[c]}"}}\n')  # fmt: skip
        if kind in (K_SUBMITTED, K_APPROVED, K_DECLINED):
            return (f',"channel":"{_APPLY_CHANNELS[ch]}","application_id":"AP{a:08d}",'
                    f'"product":"{CARD_PRODUCTS[b]}"}}\n')  # fmt: skip
        if kind == K_ACTIVATED:
            return f',"channel":"{_APPLY_CHANNELS[ch]}","card_id":"CD{a}"}}\n'
        if kind == K_LOGIN_FAILED:
            return ',"channel":"app"}\n'
        fields: dict[str, object] = {"channel": _ANSWER_CHANNELS[ch]}
        if kind == K_CSAT:
            fields.update(survey="csat_branch", csat=b, branch_id=self.org_ids[a], touchpoint="branch_visit")
        else:
            fields.update(survey="nps_card", nps=b, touchpoint="card_activation")
        if c >= 0:
            fields["comment"] = _COMMENT_LIST[c][3]
        return "," + json.dumps(fields, ensure_ascii=False, separators=(",", ":"))[1:] + "\n"

    def day(self, d: int, day: date) -> list[DayBatch]:
        """Day ``d``'s rows as batches (one per type) for :class:`~omnibank.demo.events.EventDays`."""
        if d >= self.days:
            return []
        lo, hi = int(self.first[d]), int(self.first[d + 1])
        r = self.rows
        types = np.asarray([EXPERIENCE_TYPES.index(t) for t in _KIND_TYPE], dtype=np.int64)[r.kind[lo:hi]]
        out: list[DayBatch] = []
        for t in np.unique(types).tolist():
            idx = lo + np.flatnonzero(types == t)
            out.append(
                (EXPERIENCE_TYPES[t], r.sec[idx].copy(), self._renderer(day, EXPERIENCE_TYPES[t], idx))
            )
        return out

    def _renderer(self, day: date, kind: str, idx: IntArr) -> Callable[[IntArr], tuple[list[bytes], IntArr]]:
        r = self.rows
        w = self.cid_width
        prefix = f'","type":"{kind}","customer_id":"C'

        def render(eids: IntArr) -> tuple[list[bytes], IntArr]:
            width = max(10, len(str(int(eids.max())))) if len(eids) else 10
            lines = [
                (
                    f'{{"event_id":"EV{e:0{width}d}{prefix}{c + 1:0{w}d}","ts":"{day.isoformat()}T'
                    f'{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+08:00"' + self._tail(k, a, b, cc, ch)
                ).encode()
                for e, c, s, k, a, b, cc, ch in zip(
                    eids.tolist(),
                    r.cust[idx].tolist(),
                    r.sec[idx].tolist(),
                    r.kind[idx].tolist(),
                    r.a[idx].tolist(),
                    r.b[idx].tolist(),
                    r.c[idx].tolist(),
                    r.ch[idx].tolist(),
                    strict=True,
                )
            ]
            return lines, np.arange(len(idx), dtype=np.int64)

        return render


# ---------------------------------------------------------------------------------- after resolved tickets


@dataclass(frozen=True)
class ResolvedTicket:
    ticket_id: str
    customer_id: str
    kind: str
    opened_at: datetime
    resolved_at: datetime


def resolved_tickets(session: Session) -> list[ResolvedTicket]:
    """The desk's resolved tickets, in ticket order."""
    from sqlalchemy import select

    from omnibank.service.models import Ticket

    q = (
        select(Ticket.ticket_id, Ticket.customer_id, Ticket.kind, Ticket.opened_at, Ticket.resolved_at)
        .where(Ticket.resolved_at.is_not(None))
        .order_by(Ticket.ticket_id)
    )
    return [ResolvedTicket(t, c, k, o, r) for t, c, k, o, r in session.execute(q) if r is not None]


def service_responses(
    tickets: Iterable[ResolvedTicket], *, seed: int, cal: Calendar
) -> list[dict[str, object]]:
    """``ces_service`` answers (CES 1-7, 7 = very easy) to some resolved tickets, a few hours to two days
    after the resolution: lower for complaints and for tickets that took long, with comments to match."""
    rng = random.Random(f"{seed}:ces")
    codes = {t: _COMMENT_CODES[("service", t)] for t in ("neg", "mid", "pos")}
    out: list[dict[str, object]] = []
    for t in tickets:
        if rng.random() >= _RESPONSE_RATE * 1.3:
            continue
        at = t.resolved_at + timedelta(minutes=rng.randrange(60, 48 * 60))
        if at >= cal.end:
            continue
        took = (t.resolved_at - t.opened_at).total_seconds() / 86_400
        latent = 6.2 - 0.12 * took - (0.8 if t.kind == "complaint" else 0.0) + rng.gauss(0.0, 1.0)
        ces = min(7, max(1, round(latent)))
        tone = "pos" if ces >= 6 else "mid" if ces >= 4 else "neg"
        event: dict[str, object] = {
            "event_id": f"ces-{t.ticket_id}",
            "type": "survey.response",
            "customer_id": t.customer_id,
            "ts": at.astimezone(cal.tz).isoformat(timespec="seconds"),
            "channel": rng.choices(_ANSWER_CHANNELS, weights=_ANSWER_CHANNEL_WEIGHTS)[0],
            "survey": "ces_service",
            "ces": ces,
            "ticket_id": t.ticket_id,
            "touchpoint": "service_ticket",
        }
        if rng.random() < (0.8 if tone == "neg" else 0.5):
            event["comment"] = _COMMENT_LIST[rng.choice(codes[tone])][3]
        out.append(event)
    return out


def comment_tones() -> Sequence[tuple[str, str, str, str]]:
    """Every template: (area, tone, topic, text) — for tests and the labelled feedback set."""
    return list(_COMMENT_LIST)
