"""Small pictures that a measurement stores with a run (as PNG artifacts): pure computation, bytes
out, no file I/O. The site shows them; nothing reads numbers back from them."""

from __future__ import annotations

import io

import torch
from PIL import Image

# Panels are enlarged by an integer factor (nearest neighbour, no smoothing: every pixel stays a
# visible square) until they are at least this tall; 28 px MNIST digits become 112 px.
MIN_PANEL_PX = 96
GAP_PX = 4  # white columns between panels


def panel_scale(height: int) -> int:
    """The integer enlargement that makes a ``height``-pixel image at least :data:`MIN_PANEL_PX` tall."""
    return max(1, -(-MIN_PANEL_PX // max(1, height)))


def image_strip_png(panels: torch.Tensor) -> bytes:
    """One PNG of ``panels`` side by side, left to right.

    ``panels``: float images ``[P, C, H, W]`` in [0, 1] pixel space, ``C`` 1 (grey) or 3 (RGB);
    values outside [0, 1] are clipped. Each panel is enlarged by :func:`panel_scale` (nearest
    neighbour) and separated from the next by :data:`GAP_PX` white columns, so the PNG is
    ``H*s`` pixels tall and ``P*W*s + (P-1)*GAP_PX`` wide. The encoding is deterministic (the same
    tensor gives the same bytes). Raises ValueError for no panels or another channel count."""
    if panels.dim() != 4 or panels.shape[0] == 0:
        raise ValueError(f"image_strip_png needs panels [P, C, H, W] with P >= 1, got shape {list(panels.shape)}")
    channels = panels.shape[1]
    if channels not in (1, 3):
        raise ValueError(f"image_strip_png draws 1- or 3-channel images, got {channels} channels")
    s = panel_scale(panels.shape[2])
    pixels = (panels.detach().float().cpu().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
    gap = torch.full((channels, pixels.shape[2], GAP_PX), 255, dtype=torch.uint8)
    columns: list[torch.Tensor] = []
    for k, panel in enumerate(pixels):
        if k:
            columns.append(gap)
        columns.append(panel)
    strip = torch.cat(columns, dim=2).permute(1, 2, 0).numpy()  # [H, W, C] for Pillow
    image = Image.fromarray(strip[:, :, 0] if channels == 1 else strip)  # uint8: grey "L" or "RGB"
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=9)  # Pillow writes no time stamp: same pixels, same bytes
    return out.getvalue()
