"""Share posters (M4): a PNG (750 × 1334, a phone screen) with a title, a QR code of the staff member's
share link and their invite code under it. No personal data: no staff name, no phone.

Chinese text needs a font with CJK glyphs: ``OMNIBANK_POSTER_FONT``, else the one fontconfig offers for
Chinese (``fc-match``/``fc-list``), checked to draw 中 as a glyph, not as a missing-glyph box (fontconfig
answers *some* font to any question). The QR code's modules are at least 8 pixels wide at error correction
level M: it scans from a screen or a print.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from omnibank.errors import ConfigError

WIDTH, HEIGHT = 750, 1334
QR_SIZE = 500  # pixels, quiet zone included
BACKGROUND = (178, 34, 34)  # 中国红
CARD = (255, 255, 255)
TEXT_LIGHT = (255, 246, 230)
TEXT_DARK = (51, 51, 51)
ACCENT = (178, 34, 34)
NO_FONT = ("no font with Chinese glyphs found for posters: install one (apt-get install fonts-noto-cjk) "
           "or set OMNIBANK_POSTER_FONT to a .ttf/.ttc/.otf file")  # fmt: skip
_PROBE = "中"
_MISSING = "\U000f0000"  # a private-use code point no font draws: its box is the missing glyph


def has_cjk(font_path: Path) -> bool:
    """Whether the font draws 中 with a glyph of its own (not the missing-glyph box)."""
    try:
        font = ImageFont.truetype(str(font_path), 48)
    except OSError:
        return False
    probe, missing = font.getmask(_PROBE), font.getmask(_MISSING)
    return probe.getbbox() is not None and (probe.size != missing.size or bytes(probe) != bytes(missing))


def _fontconfig_candidates() -> list[Path]:
    if shutil.which("fc-match") is None:
        return []
    found: list[Path] = []
    for cmd in (["fc-match", "-f", "%{file}", "sans-serif:lang=zh-cn"],
                ["fc-match", "-f", "%{file}", ":lang=zh"], ["fc-list", ":lang=zh", "file"]):  # fmt: skip
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = [ln.strip().rstrip(":").strip() for ln in result.stdout.splitlines() if ln.strip()]
        if cmd[0] == "fc-list":  # in no order: sans before serif, regular before bold
            lines.sort(key=lambda p: ("Serif" in p, "Bold" in p, p))
        found += [Path(p) for p in lines]
    return found


@lru_cache(maxsize=8)
def find_font(configured: Path | None) -> Path:
    """The poster font: ``configured`` (which must draw Chinese), else one fontconfig finds."""
    if configured is not None:
        path = configured.expanduser()
        if not path.is_file():
            raise ConfigError(f"OMNIBANK_POSTER_FONT: {path} is not a file")
        if not has_cjk(path):
            raise ConfigError(f"OMNIBANK_POSTER_FONT: {path} has no Chinese glyphs (try Noto Sans CJK)")
        return path
    for candidate in _fontconfig_candidates():
        if candidate.is_file() and has_cjk(candidate):
            return candidate
    raise ConfigError(NO_FONT)


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font_path: Path, size: int, width: int
) -> ImageFont.FreeTypeFont:
    """The font at ``size``, smaller until ``text`` fits ``width`` pixels (not below 20)."""
    while True:
        font = ImageFont.truetype(str(font_path), size)
        if size <= 20 or draw.textlength(text, font=font) <= width:
            return font
        size -= 2


def _centred(draw: ImageDraw.ImageDraw, y: int, text: str, font: ImageFont.FreeTypeFont,
             fill: tuple[int, int, int]) -> None:  # fmt: skip
    draw.text((WIDTH // 2, y), text, font=font, fill=fill, anchor="mt")


def qr_image(url: str, size: int = QR_SIZE) -> Image.Image:
    """The QR code of ``url`` (level M, a 4-module quiet zone), ``size`` pixels or a little less."""
    qr = segno.make(url, error="m", micro=False)
    modules = qr.symbol_size(border=4)[0]
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=max(1, size // modules), border=4)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def render(url: str, *, title: str, subtitle: str, code: str | None, font_path: Path) -> bytes:
    """The poster as PNG bytes: ``title`` and ``subtitle`` on top, the QR code of ``url`` on a white card,
    the invite code under it (``code`` None: none printed) and a line telling how to scan."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    _centred(draw, 110, title, _fit(draw, title, font_path, 64, WIDTH - 80), TEXT_LIGHT)
    if subtitle:
        _centred(draw, 210, subtitle, _fit(draw, subtitle, font_path, 34, WIDTH - 100), TEXT_LIGHT)
    card_top = 330
    qr = qr_image(url)
    card_bottom = card_top + 40 + qr.height + (200 if code else 130)
    draw.rounded_rectangle((55, card_top, WIDTH - 55, card_bottom), radius=28, fill=CARD)
    image.paste(qr, ((WIDTH - qr.width) // 2, card_top + 40))
    y = card_top + 40 + qr.height + 30
    if code:
        _centred(draw, y, f"邀请码 {code}", ImageFont.truetype(str(font_path), 44), ACCENT)
        y += 70
    _centred(draw, y, "长按识别二维码", ImageFont.truetype(str(font_path), 30), TEXT_DARK)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
