"""The demo bank's organisation: head office, a branch per Hebei city, its sub-branches and their teams.

Apart because the tree is drawn first, from its own stream, and everything after it (customers' home
branches and ID address codes, the staff of each unit) hangs off it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnibank.demo.sampling import S_ORGS, stream

BANK_NAME = "衡水银行"

# Branch cities (B001, B002, ...) with the districts / counties their sub-branches are named after and the
# GB/T 2260 administrative-division code used as the address code of resident ID numbers.
# fmt: off
CITIES: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    ("衡水", 0.30, (("桃城", "131102"), ("冀州", "131103"), ("枣强", "131121"), ("武邑", "131122"),
                    ("安平", "131125"), ("故城", "131126"), ("景县", "131127"), ("深州", "131182"))),
    ("石家庄", 0.14, (("长安", "130102"), ("桥西", "130104"), ("新华", "130105"), ("裕华", "130108"),
                      ("藁城", "130109"), ("鹿泉", "130110"), ("正定", "130123"), ("辛集", "130181"))),
    ("保定", 0.10, (("竞秀", "130602"), ("莲池", "130606"), ("满城", "130607"), ("清苑", "130608"),
                    ("徐水", "130609"), ("涿州", "130681"), ("定州", "130682"), ("高碑店", "130684"))),
    ("沧州", 0.08, (("新华", "130902"), ("运河", "130903"), ("泊头", "130981"), ("任丘", "130982"),
                    ("黄骅", "130983"), ("河间", "130984"))),
    ("邢台", 0.08, (("襄都", "130502"), ("信都", "130503"), ("任泽", "130505"), ("南宫", "130581"),
                    ("沙河", "130582"))),
    ("邯郸", 0.08, (("邯山", "130402"), ("丛台", "130403"), ("复兴", "130404"), ("峰峰", "130406"),
                    ("武安", "130481"))),
    ("廊坊", 0.06, (("安次", "131002"), ("广阳", "131003"), ("霸州", "131081"), ("三河", "131082"))),
    ("唐山", 0.07, (("路南", "130202"), ("路北", "130203"), ("古冶", "130204"), ("开平", "130205"),
                    ("丰润", "130208"), ("遵化", "130281"), ("迁安", "130283"))),
    ("秦皇岛", 0.04, (("海港", "130302"), ("山海关", "130303"), ("北戴河", "130304"), ("抚宁", "130306"))),
    ("张家口", 0.05, (("桥东", "130702"), ("桥西", "130703"), ("宣化", "130705"), ("万全", "130708"),
                      ("崇礼", "130709"))),
)
# fmt: on

# (name, share of relationship staff who are wealth managers)
TEAM_KINDS: tuple[tuple[str, float], ...] = (
    ("财富管理团队", 0.75),
    ("个人金融团队", 0.15),
    ("银发客户服务团队", 0.25),
    ("社区金融团队", 0.10),
    ("零售信贷团队", 0.05),
)


@dataclass
class Org:
    org_id: str
    parent_id: str
    name: str
    level: str
    city: int  # index into CITIES, -1 for HQ
    parent: int  # index of the parent org, -1 for HQ
    region: str = ""  # GB/T 2260 code of the district a sub-branch serves
    team_kind: int = -1


@dataclass
class OrgTree:
    orgs: list[Org]
    branches: list[int]  # org indices of branches, by city
    subbranches: list[list[int]]  # per city, org indices of its sub-branches
    teams: dict[int, list[int]]  # sub-branch index -> team indices


def build_orgs(seed: int) -> OrgTree:
    rng = stream(seed, S_ORGS)
    orgs = [Org("HQ", "", f"{BANK_NAME}总行", "hq", -1, -1)]
    branches: list[int] = []
    subbranches: list[list[int]] = []
    teams: dict[int, list[int]] = {}
    for ci, (city, _, districts) in enumerate(CITIES):
        b = len(orgs)
        branches.append(b)
        orgs.append(Org(f"B{ci + 1:03d}", "HQ", f"{city}分行", "branch", ci, 0))
        n_sub = int(rng.integers(2, 5))
        chosen = np.sort(rng.choice(len(districts), size=min(n_sub, len(districts)), replace=False))
        subs: list[int] = []
        for si, di in enumerate(chosen.tolist(), start=1):
            district, code = districts[di]
            s = len(orgs)
            subs.append(s)
            sub_id = f"S{ci + 1:02d}{si:02d}"
            orgs.append(Org(sub_id, orgs[b].org_id, f"{district}支行", "subbranch", ci, b, region=code))
            n_team = int(rng.integers(1, 4))
            kinds = [0, *sorted((rng.permutation(len(TEAM_KINDS) - 1) + 1)[: n_team - 1].tolist())]
            team_ids: list[int] = []
            for ti, kind in enumerate(kinds, start=1):
                team_ids.append(len(orgs))
                orgs.append(
                    Org(
                        f"T{ci + 1:02d}{si:02d}{ti:02d}",
                        sub_id,
                        TEAM_KINDS[kind][0],
                        "team",
                        ci,
                        s,
                        region=code,
                        team_kind=kind,
                    )
                )
            teams[s] = team_ids
        subbranches.append(subs)
    return OrgTree(orgs, branches, subbranches, teams)
