"""Self-contained HTML galleries (contact sheets): thumbnails inlined as data URIs, optional boxes."""
from __future__ import annotations

import base64
import dataclasses
import html
import io
from pathlib import Path
from typing import Sequence

from PIL import ImageDraw

from index.atomic import atomic_write_text
from retrieval.images.decode import ImageLoadError, decode_sized, read_bytes

THUMB = 192


@dataclasses.dataclass(frozen=True)
class Tile:
    path: str
    caption: str
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in image pixels


def thumbnail_uri(path: str | Path, size: int = THUMB, box: Sequence[float] | None = None) -> str | None:
    """A JPEG thumbnail of ``path`` as a data URI (``box`` drawn in red), or None if unreadable."""
    try:
        img, full_width, _ = decode_sized(read_bytes(path), draft_size=size, reduce=True)
    except ImageLoadError:
        return None
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    if box is not None:
        x0, y0, x1, y1 = (v * img.width / full_width for v in box)  # box in full-size pixels; JPEG draft decodes smaller
        ImageDraw.Draw(img).rectangle([x0, y0, x1, y1], outline=(255, 0, 0), width=3)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tile(tile: Tile, size: int) -> str:
    uri = thumbnail_uri(tile.path, size, tile.box)
    img = f'<img src="{uri}" alt="">' if uri else '<div class="missing">unreadable</div>'
    return (f'<figure title="{html.escape(tile.path)}">{img}<figcaption>{html.escape(tile.caption)}'
            f'<br><small>{html.escape(Path(tile.path).name)}</small></figcaption></figure>')


def write_gallery(out: str | Path, title: str, rows: Sequence[tuple[str, Sequence[Tile]]],
                  size: int = THUMB) -> Path:
    """Write rows of tiles (each row with a heading) as one self-contained HTML file, atomically."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
             "body{font-family:sans-serif;margin:1em}section{margin-bottom:1.5em}"
             "figure{display:inline-block;margin:4px;width:%dpx;vertical-align:top;text-align:center}"
             "img{max-width:100%%}figcaption{font-size:12px;word-break:break-all}"
             ".missing{height:%dpx;background:#eee}</style></head><body><h1>%s</h1>"
             % (size, size // 2, html.escape(title))]
    for heading, tiles in rows:
        parts.append(f"<section><h2>{html.escape(heading)}</h2>")
        parts.extend(_tile(t, size) for t in tiles)
        parts.append("</section>")
    parts.append("</body></html>")
    out = Path(out)
    atomic_write_text(out, "\n".join(parts))
    return out
