
import numpy as np
import pytest
from PIL import Image

from comfyui_remote.engine import results
from comfyui_remote.providers.base import RejectedInput

OUTS = [
    {"n": 0, "kind": "image", "filename": "poster_1.png", "node": "9"},
    {"n": 1, "kind": "image", "filename": "thumb.jpg", "node": "12:5"},
    {"n": 2, "kind": "text", "filename": "caption.txt", "field": "caption", "text": "hi"},
    {"n": 3, "kind": "image", "filename": "mask.png", "node": "9"},
]


@pytest.mark.parametrize("select,expect", [("", [0, 1, 3]), ("9", [0, 3]), ("12:5", [1]), ("*.png", [0, 3]),
                                           ("poster*", [0]), ("12:5, poster*", [0, 1])])
def test_select(select, expect):
    assert [o["n"] for o in results.select_outputs(OUTS, select)] == expect


def test_no_match_lists_what_the_result_contains():
    with pytest.raises(RejectedInput) as e:
        results.select_outputs(OUTS, "77")
    msg = str(e.value)
    assert "matches nothing" in msg and "poster_1.png" in msg and "node 12:5" in msg and "caption" in msg


def test_load_images_batches_exact_values(tmp_path):
    paths = []
    for i, color in enumerate([(1, 2, 3), (250, 128, 0)]):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (5, 4), color).save(p)
        paths.append({"n": i, "kind": "image", "filename": p.name, "path": str(p)})
    image, mask = results.load_images(paths)
    assert image.shape == (2, 4, 5, 3) and mask.shape == (2, 4, 5)
    assert np.array_equal((image[1, 0, 0] * 255).astype(np.uint8), [250, 128, 0])


def test_missing_file_says_recover(tmp_path):
    with pytest.raises(RejectedInput, match="RemoteRecover"):
        results.load_images([{"n": 0, "kind": "image", "filename": "x.png", "path": str(tmp_path / "x.png")}])
