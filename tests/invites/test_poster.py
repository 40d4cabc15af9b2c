"""Posters: the QR code decodes to exactly the share link, Chinese text is drawn with a font that has the
glyphs, the command counts a share, and bad targets and fonts are refused with clear messages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from omnibank.errors import ConfigError
from omnibank.invites import poster
from tests.invites.share_helpers import RM_A, issue_codes


@pytest.fixture
def font() -> Path:
    return poster.find_font(None)


def _decoded(png: bytes) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_the_qr_code_decodes_to_the_link(font: Path) -> None:
    url = "https://bank.example/s/Ab3_-xYz90"
    png = poster.render(
        url, title="专属权益，邀您领取", subtitle="瑞幸咖啡饮品券", code="AB3K7X9", font_path=font
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (poster.WIDTH, poster.HEIGHT)
    assert _decoded(png) == [url]


def test_the_font_draws_chinese(font: Path) -> None:
    assert poster.has_cjk(font)
    blank = poster.render(
        "https://bank.example/s/Ab3_-xYz90", title="", subtitle="", code=None, font_path=font
    )
    titled = poster.render("https://bank.example/s/Ab3_-xYz90", title="邀您办卡", subtitle="", code=None,
                           font_path=font)  # fmt: skip
    top = (0, 0, poster.WIDTH, 200)
    assert (
        Image.open(io.BytesIO(blank)).crop(top).getextrema()
        != Image.open(io.BytesIO(titled)).crop(top).getextrema()
    )


def test_a_font_without_chinese_is_refused(tmp_path: Path) -> None:
    latin = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not latin.exists():
        pytest.skip("no DejaVu Sans here")
    assert not poster.has_cjk(latin)
    with pytest.raises(ConfigError, match="OMNIBANK_POSTER_FONT: .* has no Chinese glyphs"):
        poster.find_font(latin)
    with pytest.raises(ConfigError, match="is not a file"):
        poster.find_font(tmp_path / "none.ttf")


def test_no_font_found_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poster, "_fontconfig_candidates", list)
    poster.find_font.cache_clear()
    try:
        with pytest.raises(ConfigError, match="fonts-noto-cjk.*OMNIBANK_POSTER_FONT"):
            poster.find_font(None)
    finally:
        poster.find_font.cache_clear()


@pytest.fixture
def small_bank(env, cli, tmp_path: Path) -> None:
    from tests.api.bank import STAFF
    from tests.factories import ORGS

    (tmp_path / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp_path / "staff.csv").write_text(STAFF, encoding="utf-8")
    for kind in ("orgs", "staff"):
        assert cli("load", kind, str(tmp_path / f"{kind}.csv")).exit_code == 0
    issue_codes(env.settings)


def test_the_poster_command_writes_the_link_and_counts_a_share(small_bank: None, cli, tmp_path: Path) -> None:
    link = cli("share", "link", "--staff", RM_A, "--target", "scene:car_loan").last_line
    out = tmp_path / "poster.png"
    r = cli("share", "poster", "--staff", RM_A, "--target", "scene:car_loan", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert _decoded(out.read_bytes()) == [link]
    stats = cli("share", "stats", "--format", "json")
    assert '"shares":2' in stats.stdout and f'"staff_id":"{RM_A}"' in stats.stdout


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("car_loan", "is not KIND:ID"),
        ("coupon:x", "'coupon' is not a target kind"),
        ("scene:a b", "not a target id"),
    ],
)
def test_bad_targets_are_refused_by_the_command(small_bank: None, cli, tmp_path: Path, target: str,
                                                says: str) -> None:  # fmt: skip
    r = cli("share", "poster", "--staff", RM_A, "--target", target, "--out", str(tmp_path / "p.png"))
    assert r.exit_code == 1 and says in r.stderr and not (tmp_path / "p.png").exists()
