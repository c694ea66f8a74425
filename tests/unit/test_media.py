import io

import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine import media
from comfyui_remote.providers.base import RejectedInput


def _png(arr, mode):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_every_8bit_value_round_trips_through_float_and_savesimage_truncation():
    v = np.arange(256, dtype=np.uint8)
    f = media.from_uint8(v)
    assert f.dtype == np.float32
    # ComfyUI's SaveImage: clip(255. * x).astype(uint8) (truncation)
    assert np.array_equal(np.clip(255.0 * f, 0, 255).astype(np.uint8), v)
    assert np.array_equal(media.to_uint8(f), v)


def test_decode_png_gives_exact_v_over_255_and_mask_one_minus_alpha():
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    d = media.decode_image(_png(rgba, "RGBA"))
    assert (d.width, d.height) == (7, 5)
    assert np.array_equal(d.rgb, rgba[..., :3].astype(np.float32) / np.float32(255))
    assert np.allclose(d.mask, 1.0 - rgba[..., 3] / 255.0, atol=1e-7)


def test_decode_without_alpha_gives_zero_mask():
    rgb = np.full((3, 4, 3), 200, np.uint8)
    d = media.decode_image(_png(rgb, "RGB"))
    assert d.mask.shape == (3, 4) and not d.mask.any()


def test_encode_round_trips_pixels_and_mask_like_loadimage():
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    image = media.from_uint8(u8)[None]
    mask = (1.0 - alpha.astype(np.float32) / 255.0)[None]  # what LoadImage makes of alpha
    enc = media.encode_image(image, mask)
    back = np.asarray(Image.open(io.BytesIO(enc.data)))
    assert back.shape == (6, 9, 4)
    assert np.array_equal(back[..., :3], u8) and np.array_equal(back[..., 3], alpha)
    assert (enc.width, enc.height) == (9, 6)


def test_pixel_hash_ignores_encoder_but_not_pixels():
    img = np.zeros((1, 4, 4, 3), np.float32)
    a = media.encode_image(img)
    b = media.encode_image(img.copy())
    img2 = img.copy()
    img2[0, 0, 0, 0] = 1.0
    assert a.sha256 == b.sha256 != media.encode_image(img2).sha256


def test_batch_of_two_is_an_error_naming_the_batch_size():
    with pytest.raises(RejectedInput, match="batch of 2"):
        media.encode_image(np.zeros((2, 4, 4, 3), np.float32), target="10.image")


def test_mask_size_mismatch_is_an_error_naming_both_sizes():
    with pytest.raises(RejectedInput, match="64x64.*4x4"):
        media.encode_image(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 64, 64), np.float32))


def test_stack_of_different_sizes_names_the_sizes():
    a = media.decode_image(_png(np.zeros((4, 4, 3), np.uint8), "RGB"))
    b = media.decode_image(_png(np.zeros((8, 4, 3), np.uint8), "RGB"))
    with pytest.raises(RejectedInput, match="a.png 4x4, b.png 4x8"):
        media.stack_images([a, b], ["a.png", "b.png"])


def test_corrupt_file_is_a_clear_error():
    with pytest.raises(RejectedInput, match="not a readable image"):
        media.decode_image(b"not an image", name="x.png")


def test_importing_the_pack_leaves_pillows_pixel_limit_alone():
    from PIL import Image as PILImage

    import comfyui_remote.engine.media  # noqa: F401

    assert PILImage.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)  # Pillow's default


def test_thumbnails_are_made_once_per_file_version(tmp_path):
    from PIL import Image as PILImage

    from comfyui_remote.engine import media as m

    path = tmp_path / "big.jpg"
    PILImage.new("RGB", (2048, 1536), (10, 20, 30)).save(path, quality=90)
    first = m.thumbnail(str(path), 256)
    hits = m._thumbnail.cache_info().hits
    assert m.thumbnail(str(path), 256) == first and m._thumbnail.cache_info().hits == hits + 1
    with PILImage.open(__import__("io").BytesIO(first)) as t:
        assert max(t.size) == 256
    PILImage.new("RGB", (64, 48), (200, 0, 0)).save(path)  # a new version of the file is a new thumbnail
    with PILImage.open(__import__("io").BytesIO(m.thumbnail(str(path), 256))) as t:
        assert t.size == (64, 48)
