"""QR codes for the clerk's counter: inline SVG (no request, no script), dark on white so
any phone screen scans.

Making one costs a few ms (most of it segno choosing the best of eight masks), several
times a whole page. So a pickup's QR is made once, when the order becomes ready, and kept
with the pickup (services.pickup), and a return's when the return is made
(services.returns); the page only adds its title, in the page's language, which a screen
reader says.
"""

from __future__ import annotations

from functools import lru_cache
from xml.sax.saxutils import escape

import segno
from markupsafe import Markup


def handover_url(base_url: str, order_id: int, code: str) -> str:
    """The clerk console's handover for this order; it does nothing without a clerk session."""
    return f"{base_url}/clerk/orders/{order_id}/handover?code={code}"


def counter_url(base_url: str, return_id: int, code: str) -> str:
    """The clerk console's page for this return; it does nothing without a clerk session."""
    return f"{base_url}/clerk/returns/{return_id}?code={code}"


def image(url: str) -> str:
    """The QR of `url` as an `<svg>` element with no title."""
    qr = segno.make(url, error="m", micro=False)
    svg: str = qr.svg_inline(
        scale=1, dark="#000", light="#fff", omitsize=True, svgclass="qr", lineclass=None
    )
    return svg


def titled(svg: str, title: str) -> Markup:
    """`image`'s SVG with its `<title>` (as segno itself writes one)."""
    head, sep, rest = svg.partition(">")
    return Markup(f"{head}{sep}<title>{escape(title)}</title>{rest}")  # noqa: S704


@lru_cache(maxsize=1024)
def svg(url: str, title: str) -> Markup:
    """The QR of `url` with its title, made here (for a QR not kept anywhere)."""
    return titled(image(url), title)


def kept_or_made(kept_svg: str, kept_url: str, url: str, title: str) -> Markup:
    """The QR of `url`: the one kept, unless it was made for another URL (the base URL
    changed since) or none was kept (made before QR codes were kept)."""
    if kept_url == url and kept_svg.startswith("<svg "):
        return titled(kept_svg, title)
    return svg(url, title)
