"""The counter's QR: the SVG kept without a title gets the page's title as segno writes it."""

from __future__ import annotations

import segno

from portal.domain import qr

URL = "https://portal.example.com/clerk/orders/481516/handover?code=K7P2QX"


def test_a_kept_qr_with_its_title_is_the_qr_segno_makes_with_that_title() -> None:
    title = "Kod QR <kodu> odbioru & co"
    made = segno.make(URL, error="m", micro=False).svg_inline(
        scale=1,
        dark="#000",
        light="#fff",
        omitsize=True,
        svgclass="qr",
        lineclass=None,
        title=title,
    )
    assert qr.titled(qr.image(URL), title) == made
    assert "<title>Kod QR &lt;kodu&gt; odbioru &amp; co</title>" in made
