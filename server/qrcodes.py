"""QR codes of join links, drawn here with segno (README, "Dependency notes").

A projector's lobby shows the join link as a QR code so a class joins by pointing phones at the wall. The code is
made on the server from the link alone: no third-party service hears of a classroom's PIN, and the page needs no
script of its own to draw it.
"""

from __future__ import annotations

import io

import segno


def join_qr_svg(url: str) -> bytes:
    """An SVG QR code of `url`: error correction M (a smudged or distant projector still scans), a quiet zone of
    four modules as the standard asks, dark on white so phones read it in a dim room, scaling with its box."""
    code = segno.make_qr(url, error="m")
    out = io.BytesIO()
    code.save(out, kind="svg", border=4, dark="#000", light="#fff", xmldecl=False, svgclass="qr", omitsize=True)
    return out.getvalue()
