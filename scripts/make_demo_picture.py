"""Draws the demo's bundled picture, sandbox/assets/lakeside.png: a lake at sunset with mountains,
pines and their reflection (320×200, numpy + Pillow, fixed seed — nothing downloaded). Run it
again only to change the picture: `python scripts/make_demo_picture.py`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

W, H = 320, 200
HORIZON = 118
OUT = Path(__file__).resolve().parents[1] / "sandbox" / "assets" / "lakeside.png"


def lerp(a, b, t):
    return a + (b - a) * t[..., None]


def ridge(x: np.ndarray, base: float, amp: float, freqs, phase: float) -> np.ndarray:
    y = np.full_like(x, base, dtype=np.float64)
    for i, f in enumerate(freqs):
        y += amp / (i + 1) * np.sin(x * f + phase * (i + 1.7))
    return y


def main() -> None:
    rng = np.random.default_rng(20251203)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    # sky: deep blue at the top to warm orange at the horizon
    t = np.clip(yy / HORIZON, 0, 1) ** 1.6
    img = lerp(np.array([28, 40, 92.]), np.array([250, 150, 90.]), t)
    # sun with a glow
    sx, sy = 214, 58
    d = np.hypot(xx - sx, yy - sy)
    img = lerp(img, np.array([255, 220, 160.]), np.exp(-(d / 38) ** 2) * 0.8)
    img[d < 15] = [255, 244, 214]
    # far mountains (hazy violet) and near hills (dark green)
    x = np.arange(W, dtype=np.float64)
    far = ridge(x, 84, 14, (0.021, 0.047, 0.11), 0.3)
    near = ridge(x, 104, 8, (0.015, 0.06, 0.19), 2.1)
    for top, colour, haze in ((far, [104, 86, 132.], 0.35), (near, [34, 62, 48.], 0.0)):
        mask = (yy >= top[None, :]) & (yy < HORIZON)
        shade = 1 - 0.25 * np.clip((yy - top[None, :]) / 30, 0, 1)
        body = np.array(colour) * shade[..., None]
        body = lerp(body, np.array([250, 170, 120.]), np.full(yy.shape, haze))
        img[mask] = body[mask]
    # pines on the left shore
    for cx, h in ((22, 46), (38, 60), (55, 40), (70, 52), (290, 44), (305, 58)):
        half = h * 0.28
        tri = (yy <= HORIZON) & (yy >= HORIZON - h) & (np.abs(xx - cx) <= half * (yy - (HORIZON - h)) / h)
        img[tri] = [18, 38, 28]
    # the lake: the scene above mirrored, darkened, rippled
    for y in range(HORIZON, H):
        src = 2 * HORIZON - y - 1
        shift = int(round(2.5 * np.sin(y * 0.9) * (y - HORIZON) / (H - HORIZON)))
        row = np.roll(img[max(src, 0)], shift, axis=0)
        depth = (y - HORIZON) / (H - HORIZON)
        img[y] = lerp(row * 0.78, np.array([20, 34, 60.]), np.full(W, 0.25 + 0.45 * depth))
    img[HORIZON:HORIZON + 1] *= 0.85
    # a little grain, then a soft lens
    img += rng.normal(0, 3.0, img.shape)
    pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pic.save(OUT, optimize=True)
    print(f"{OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
