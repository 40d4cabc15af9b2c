"""The catalogue: loaded from YAML, every problem named with the file and the benefit, nothing stored when
anything is wrong; lots received once; activation needs what the customer is shown."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from omnibank.benefits import catalogue
from omnibank.benefits.models import BENEFIT_TYPES, Benefit, BenefitStock, InventoryLot, Supplier
from omnibank.benefits.stock import stock_report
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused
from tests.benefits.helpers import EXAMPLE, NOW, STEPS, TZ, load, small_catalogue
from tests.conftest import write


def test_the_example_catalogue_loads_with_what_the_campaigns_name(cli) -> None:
    r = cli("benefits", "load", str(EXAMPLE))
    assert r.exit_code == 0, r.stderr
    assert "stored 7 benefits and 2 suppliers" in r.stdout
    with unit_of_work() as session:
        benefits = {b.id: b for b in catalogue.list_benefits(session)}
    # the ids the example campaigns grant
    assert {"luckin_voucher", "installment_discount", "blind_box", "instant_discount_10"} <= set(benefits)
    assert {"video_membership_9yuan", "jd_ecard_50", "bonus_points_1000"} <= set(benefits)
    assert {b.type for b in benefits.values()} == set(BENEFIT_TYPES)
    luckin = benefits["luckin_voucher"]
    assert str(luckin.face_value) == "26.00"
    assert {t: str(v) for t, v in luckin.face_value_by_tier.items()} == {"gold": "26.00", "platinum": "29.00"}
    assert luckin.supplier_id == "luckin" and luckin.available == 200_000
    assert str(benefits["installment_discount"].discount_rate) == "0.7500"
    assert benefits["installment_discount"].available is None  # unlimited: the bank's own
    assert all(b.usage_instructions and b.redemption_steps for b in benefits.values())

    listed = cli("benefits", "list")
    assert listed.exit_code == 0 and "7 benefits" in listed.stdout
    shown = cli("benefits", "show", "luckin_voucher")
    assert "瑞幸咖啡饮品券" in shown.stdout and "1. 在手机银行" in shown.stdout


def test_loading_again_changes_nothing_and_lots_are_received_once(cli, tmp_path) -> None:
    path = small_catalogue(tmp_path, stock=5)
    assert "received 2 new lots (105 items)" in cli("benefits", "load", str(path)).stdout
    assert "received 0 new lots (0 items)" in cli("benefits", "load", str(path)).stdout
    with unit_of_work() as session:
        assert session.get(BenefitStock, "voucher").available == 5  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).select_from(InventoryLot)) == 2


BAD = f"""
suppliers:
  - {{id: acme, name: 供应商}}
  - {{id: acme, name: again}}
benefits:
  - id: float_money
    type: voucher
    name: x
    face_value: 26.5
    cost: "1.00"
    usage_instructions: u
    redemption_steps: {STEPS}
  - id: no_instructions
    type: voucher
    name: x
    face_value: "1.00"
    cost: "1.00"
  - id: bad_type
    type: coupon
    name: x
    face_value: "1.00"
    cost: "1.00"
    status: inactive
  - id: bad_rate
    type: installment_discount
    name: x
    face_value: "0"
    cost: "0"
    discount_rate: "1.5"
    status: inactive
  - id: three_decimals
    type: voucher
    name: x
    face_value: "1.005"
    cost: "1.00"
    face_value_by_tier: {{diamond: "2.00"}}
    status: inactive
  - id: points_without_points
    type: points
    name: x
    face_value: "0"
    cost: "0"
    status: inactive
  - id: float_money
    type: voucher
    name: dup
    face_value: "1.00"
    cost: "1.00"
    status: inactive
  - type: voucher
    name: no id
    face_value: "1.00"
    cost: "1.00"
    status: inactive
"""


def test_every_problem_is_named_with_the_file_and_the_benefit_and_nothing_is_stored(cli, tmp_path) -> None:
    path = write(tmp_path / "bad.yaml", BAD)
    r = cli("benefits", "load", str(path))
    assert r.exit_code == 1
    err = " ".join(r.stderr.split())
    for expected in [
        "benefit 'float_money': face_value: write 26.5 as a quoted string",
        "benefit 'no_instructions': an active benefit needs usage_instructions and redemption_steps",
        "benefit 'bad_type': type: Input should be 'voucher'",
        "benefit 'bad_rate': discount_rate: Input should be less than or equal to 1",
        "benefit 'three_decimals': face_value: Decimal input should have no more than 2 decimal places",
        "benefit 'three_decimals': face_value_by_tier.diamond: Input should be 'classic', 'gold' or",
        "benefit 'points_without_points': a points benefit needs points",
        "benefit #8: id: Field required",
        "supplier 'acme' is defined twice",
        "benefit 'float_money' is defined twice",
    ]:
        assert expected in err, expected
    assert str(path) in err
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Benefit)) == 0
        assert session.scalar(select(func.count()).select_from(Supplier)) == 0


def test_an_unknown_supplier_or_a_changed_lot_refuses_the_whole_file(env, tmp_path) -> None:
    load(small_catalogue(tmp_path))
    changed = small_catalogue(tmp_path, stock=9, name="changed.yaml")
    text = changed.read_text(encoding="utf-8").replace(
        'supplier: acme\n    face_value: "39.00"', 'supplier: nobody\n    face_value: "39.00"'
    )
    changed.write_text(text, encoding="utf-8")
    with pytest.raises(InputRefused) as exc:
        load(changed)
    message = exc.value.message
    assert "benefit 'gift': supplier: unknown supplier 'nobody'" in message
    assert "benefit 'voucher': lot 'LOT-1' was received before as 3 of voucher" in message
    with unit_of_work() as session:
        assert session.get(BenefitStock, "voucher").available == 3  # type: ignore[union-attr]
        assert session.get(Benefit, "gift").supplier_id == "acme"  # type: ignore[union-attr]


def test_a_benefit_without_instructions_cannot_be_activated(cli, tmp_path) -> None:
    path = write(
        tmp_path / "draft.yaml",
        "benefits:\n"
        '  - {id: draft, type: voucher, name: 草稿, face_value: "5.00", cost: "1.00", status: inactive}\n',
    )
    assert cli("benefits", "load", str(path)).exit_code == 0
    r = cli("benefits", "activate", "draft")
    assert r.exit_code == 1
    assert "cannot be activated: it has no usage instructions or redemption steps" in r.stderr
    with unit_of_work() as session:
        assert session.get(Benefit, "draft").status == "inactive"  # type: ignore[union-attr]
        with pytest.raises(AppError):
            catalogue.set_benefit_status(session, "draft", "active", actor="t", now=NOW)


def test_a_lot_received_by_hand_adds_stock_once(cli, tmp_path) -> None:
    load(small_catalogue(tmp_path, stock=2))
    args = ("benefits", "receive", "voucher", "--quantity", "10", "--unit-cost", "14.50", "--ref", "PO-7")
    assert "received lot PO-7: 10 of voucher" in cli(*args).stdout
    assert "received before; nothing changed" in cli(*args).stdout
    r = cli("benefits", "receive", "voucher", "--quantity", "11", "--unit-cost", "14.50", "--ref", "PO-7")
    assert r.exit_code == 1 and "received before as 10" in r.stderr
    r = cli("benefits", "receive", "discount", "--quantity", "1", "--unit-cost", "1", "--ref", "PO-8")
    assert r.exit_code == 1 and "unlimited stock" in r.stderr
    stock = cli("benefits", "stock")
    assert "12" in stock.stdout
    with unit_of_work() as session:
        s = session.get(BenefitStock, "voucher")
        assert s is not None and (s.available, s.received) == (12, 12)
        assert [
            line.average_unit_cost_fen for line in stock_report(session) if line.benefit_id == "voucher"
        ] == [
            1458  # (2 × 15.00 + 10 × 14.50) / 12 = 14.583 → 14.58
        ]
    _ = TZ
