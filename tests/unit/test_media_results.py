"""Results of every kind: select, previews, animated images, video/audio decoding (engine, no ComfyUI)."""
import numpy as np
import pytest

from comfyui_remote.engine import audio, results, video
from comfyui_remote.providers.base import RejectedInput
from tests import media_samples as ms


def saved(tmp_path, sample, n, **extra):
    p = tmp_path / f"{n}_{sample.name}"
    p.write_bytes(sample.data)
    return {"n": n, "kind": extra.pop("kind", sample.kind), "filename": sample.name, "path": str(p),
            "mime": sample.mime, **extra}


def test_an_animated_webp_is_a_batch_of_all_its_frames(tmp_path):
    s = ms.animated_webp(4)
    image, mask = results.load_images([saved(tmp_path, s, 0)])
    assert image.shape == (4, s.height, s.width, 3) and mask.shape == (4, s.height, s.width)
    assert np.array_equal(image, s.frames.astype(np.float32) / np.float32(255))


def test_an_animated_png_too(tmp_path):
    s = ms.animated_png(3)
    image, _ = results.load_images([saved(tmp_path, s, 0)])
    assert np.array_equal(image, s.frames.astype(np.float32) / np.float32(255))


def test_images_take_outputs_and_previews_only_when_there_is_none():
    outs = [{"n": 0, "kind": "image", "filename": "p.png", "node": "7", "preview": 1},
            {"n": 1, "kind": "video", "filename": "v.mp4", "node": "9"},
            {"n": 2, "kind": "image", "filename": "o.png", "node": "5"}]
    assert [o["n"] for o in results.select_outputs(outs, "")] == [2]
    assert [o["n"] for o in results.select_outputs(outs[:2], "")] == [0]
    assert [o["n"] for o in results.select_outputs(outs, "7")] == [0]  # a preview asked for by node id


@pytest.mark.parametrize("want,node", [("image", "RemoteFetchImage"), ("audio", "RemoteFetchAudio"),
                                       ("text", "RemoteFetchText")])
def test_a_result_without_the_kind_says_what_it_has_and_which_node(want, node):
    outs = [{"n": 0, "kind": "video", "filename": "clip.mp4", "node": "9"}]
    with pytest.raises(RejectedInput) as e:
        results.select_outputs(outs, "", want)
    assert "1 video: use RemoteFetchVideo" in str(e.value) and "clip.mp4" in str(e.value)


def test_select_is_the_same_for_every_kind():
    outs = [{"n": 0, "kind": "video", "filename": "a.mp4", "node": "3"},
            {"n": 1, "kind": "video", "filename": "b.webm", "node": "4"},
            {"n": 2, "kind": "text", "text": "hi", "node": "4"},
            {"n": 3, "kind": "audio", "filename": "s.flac", "field": "voice"}]
    assert [o["n"] for o in results.select_outputs(outs, "4", "video")] == [1]
    assert [o["n"] for o in results.select_outputs(outs, "*.webm, 3", "video")] == [0, 1]
    assert [o["n"] for o in results.select_outputs(outs, "voice", "audio")] == [3]
    assert [o["n"] for o in results.select_outputs(outs, "", "any")] == [0, 1, 3]
    assert results.load_texts(results.select_outputs(outs, "4", "text")) == ["hi"]


@pytest.mark.parametrize("sample", [ms.mp4(), ms.webm(), ms.webm(codec="libvpx")], ids=["h264", "vp9", "vp8"])
def test_video_frames_are_exactly_the_decoded_rgb24_over_255(tmp_path, sample):
    p = tmp_path / sample.name
    p.write_bytes(sample.data)
    info = video.probe(p)
    assert (info.width, info.height, info.frame_count, info.fps) == (sample.width, sample.height,
                                                                     sample.frame_count, sample.fps)
    frames = video.decode_frames(p, info)
    reference = ms.decode_video_rgb(sample.data)
    assert np.array_equal(frames, reference.astype(np.float32) / np.float32(255))
    assert np.abs(reference.astype(int) - sample.frames.astype(int)).mean() < 4  # within codec tolerance


def test_cap_skip_and_every_nth_mean_what_videohelpersuite_means(tmp_path):
    s = ms.mp4(n=8)
    p = tmp_path / s.name
    p.write_bytes(s.data)
    info = video.probe(p)
    every = ms.decode_video_rgb(s.data).astype(np.float32) / np.float32(255)
    got = video.decode_frames(p, info, cap=2, skip=1, nth=3)
    assert np.array_equal(got, every[[1, 4]])
    assert len(video.decode_frames(p, info, skip=1, nth=3)) == 3  # frames 1, 4, 7
    with pytest.raises(RejectedInput, match="skip_first_frames"):
        video.decode_frames(p, info, skip=8)


def test_frames_that_would_not_fit_are_refused_before_decoding(tmp_path, monkeypatch):
    s = ms.mp4(n=8)
    p = tmp_path / s.name
    p.write_bytes(s.data)
    info = video.probe(p)
    decoded = []
    monkeypatch.setattr(video, "_open", lambda src: decoded.append(src))
    one = s.width * s.height * 3 * 4
    with pytest.raises(RejectedInput) as e:
        video.decode_frames(p, info, limit=one * 3)
    assert e.value.field == "frame_load_cap" and "at most 3" in str(e.value) and not decoded


def test_the_limit_comes_from_the_env_var(monkeypatch):
    monkeypatch.setenv(video.LIMIT_ENV, "2")
    assert video.frame_limit_bytes() == 2 * 1024 * 1024


def test_a_video_with_sound_gives_its_track_and_one_without_a_silent_one(tmp_path):
    loud, quiet = ms.mp4(sound=True), ms.mp4()
    for s in (loud, quiet):
        (tmp_path / s.name).write_bytes(s.data)
    info = video.probe(tmp_path / loud.name)
    wave, rate = video.sound(tmp_path / loud.name, info)
    ref, ref_rate = ms.decode_audio(loud.data)
    assert rate == ref_rate == 44100 and np.array_equal(wave, ref)
    info = video.probe(tmp_path / quiet.name)
    wave, rate = video.sound(tmp_path / quiet.name, info)
    assert wave.shape == (1, round(quiet.duration_s * rate)) and not wave.any()
    part, rate = video.sound(tmp_path / quiet.name, info, skip=2, frames=4)
    assert part.shape == (1, round(4 / quiet.fps * rate))


@pytest.mark.parametrize("sample", [ms.flac(), ms.wav()], ids=["flac", "wav"])
def test_lossless_audio_comes_back_exactly_at_its_own_rate_and_channels(tmp_path, sample):
    p = tmp_path / sample.name
    p.write_bytes(sample.data)
    wave, rate = audio.decode(p)
    assert rate == sample.sample_rate and wave.dtype == np.float32
    assert np.array_equal(wave, sample.samples)


def test_mp3_decodes_at_its_rate_within_codec_tolerance(tmp_path):
    s = ms.mp3()
    wave, rate = audio.decode(s.data)
    assert rate == s.sample_rate and wave.shape[0] == s.channels and wave.shape[1] >= s.sample_count


def test_flac_up_is_lossless_for_16_bit_sound_and_24_bit_close_for_any():
    s = ms.flac()
    data = audio.encode_flac(s.samples[None], s.sample_rate)
    wave, rate = audio.decode(data)
    assert rate == s.sample_rate and np.array_equal(wave, s.samples)
    noise = np.random.default_rng(1).uniform(-1, 1, (1, 3, 999)).astype(np.float32)
    wave, _ = audio.decode(audio.encode_flac(noise, 8000))
    assert wave.shape == (3, 999) and np.abs(wave - noise[0]).max() <= 2 ** -23
    with pytest.raises(RejectedInput, match="one sound per target"):
        audio.encode_flac(np.zeros((2, 1, 10), np.float32), 8000)


def test_a_result_is_summed_up_by_kind():
    outs = [{"kind": "image"}, {"kind": "video"}, {"kind": "image"}, {"kind": "text", "text": "x"}]
    assert results.tally(outs) == "2 images, 1 video, 1 text"
    assert results.tally([]) == "no outputs"
