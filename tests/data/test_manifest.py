from __future__ import annotations

import argparse
import gzip
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotools import cli
from audiotools.commands import manifest as manifest_command
from audiotools.data.audio import audio_write
from audiotools.data.manifest import read_manifest, scan_tree, write_manifest
from audiotools.errors import ConfigError

from .conftest import tone


@pytest.fixture
def messy_tree(tmp_path, write_tone):
    """A tree with every kind of good and bad input; returns (root, good names, bad names)."""
    root = tmp_path / "root"
    good = {
        "u8.wav": dict(subtype="PCM_U8", sample_rate=8000),
        "pcm24.wav": dict(subtype="PCM_24", sample_rate=96000),
        "float.wav": dict(subtype="FLOAT", sample_rate=22050),
        "six.wav": dict(channels=6, sample_rate=48000),
        "nested/deep/stereo.flac": dict(channels=2, sample_rate=44100),
        "odd_rate.wav": dict(sample_rate=11025),
    }
    for name, kwargs in good.items():
        write_tone(f"root/{name}", 0.5, **kwargs)
    for suffix in (".ogg", ".mp3"):
        audio_write(root / f"coded{suffix}", torch.from_numpy(tone(0.5, 32000, 2).T), 32000)
        good[f"coded{suffix}"] = {}
    (root / "empty.wav").write_bytes(b"")
    full = (root / "float.wav").read_bytes()
    (root / "truncated_header.wav").write_bytes(full[:20])
    (root / "random.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "notes.txt").write_text("not audio at all\n")
    nan = tone(0.5, 16000)
    nan[100] = np.nan
    sf.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = tone(0.5, 16000)
    inf[-1] = np.inf
    sf.write(root / "inf.flac.wav", inf, 16000, subtype="DOUBLE")
    sf.write(root / "tiny.wav", tone(3 / 16000, 16000), 16000)
    (root / ".hidden.wav").write_bytes(b"")
    bad = {"empty.wav": "empty file", "truncated_header.wav": "not readable as audio",
           "random.wav": "not readable as audio", "notes.txt": "not readable as audio",
           "nan.wav": "non-finite samples (NaN/inf) at 0.006 s",
           "inf.flac.wav": "non-finite samples (NaN/inf) at 0.500 s",
           "tiny.wav": "too short: 3 frames"}
    return root, good, bad


def test_scan_accepts_every_readable_format_and_reports_the_rest(messy_tree):
    root, good, bad = messy_tree
    entries, rejections = scan_tree(root, workers=4)
    by_name = {e["path"].removeprefix(f"{root}/"): e for e in entries}
    assert sorted(by_name) == sorted(good)
    assert by_name["six.wav"]["channels"] == 6
    assert by_name["pcm24.wav"]["sample_rate"] == 96000
    assert by_name["u8.wav"]["duration"] == pytest.approx(0.5)
    assert by_name["coded.mp3"]["duration"] == pytest.approx(0.5, abs=0.05)
    reasons = {r.path.removeprefix(f"{root}/"): r.reason for r in rejections}
    assert sorted(reasons) == sorted(bad)
    for name, reason in bad.items():
        assert reason in reasons[name], (name, reasons[name])


def test_amplitude_and_sidecar_metadata(tmp_path, write_tone):
    write_tone("r/a.wav", 1.0, 16000)
    (tmp_path / "r" / "a.json").write_text(json.dumps({"genre": "jazz", "bpm": 120}))
    write_tone("r/b.flac", 1.0, 16000)
    (tmp_path / "r" / "b.flac.json").write_text(json.dumps({"description": "a tone"}))
    write_tone("r/c.wav", 1.0, 16000)
    (tmp_path / "r" / "c.json").write_text("{not json")
    entries, rejections = scan_tree(tmp_path / "r", amplitude=True)
    assert [e["meta"] for e in entries] == [{"genre": "jazz", "bpm": 120},
                                            {"description": "a tone"}]
    assert entries[0]["peak"] == pytest.approx(0.5, abs=1e-3)
    assert entries[0]["rms"] == pytest.approx(0.5 / np.sqrt(2), abs=1e-3)
    assert len(rejections) == 1 and "sidecar c.json is not valid JSON" in rejections[0].reason


def _run_manifest(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    manifest_command.add_arguments(parser)
    return manifest_command.run(parser.parse_args(list(argv)))


def test_command_writes_manifest_and_rejection_report(messy_tree, tmp_path, capsys):
    root, good, bad = messy_tree
    out = tmp_path / "out" / "all.jsonl.gz"
    assert cli.main(["manifest", str(root), str(out), "--workers", "2", "--relative"]) == 0
    with gzip.open(out, "rt") as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == len(good)
    assert all(not line["path"].startswith("/") for line in lines)  # relative to out/
    assert {e["path"] for e in read_manifest(out)} == {str(root / n) for n in good}
    report = (tmp_path / "out" / "all.rejected.tsv").read_text().splitlines()
    assert report[0] == "path\treason" and len(report) == 1 + len(bad)
    printed = capsys.readouterr().out
    assert f"rejected {root}/random.wav: not readable as audio" in printed
    assert f"{len(good)} files" in printed


def test_command_keeps_an_existing_out_unless_forced(messy_tree, tmp_path):
    root, good, _ = messy_tree
    out, victim = tmp_path / "m.jsonl", tmp_path / "take.wav"
    out.write_text("mine\n")
    victim.write_bytes(b"RIFF....WAVE")
    with pytest.raises(ConfigError, match=r"m.jsonl exists; choose another OUT or pass --force"):
        _run_manifest(str(root), str(out), "--workers", "1")
    with pytest.raises(ConfigError, match=r"take.wav: a manifest is written as .jsonl or"):
        _run_manifest(str(root), str(victim), "--workers", "1", "--force")
    assert out.read_text() == "mine\n" and victim.read_bytes() == b"RIFF....WAVE"
    assert cli.main(["manifest", str(root), str(out), "--workers", "1", "--force"]) == 0
    assert len(read_manifest(out)) == len(good)


def test_the_other_manifest_of_a_name_keeps_its_rejection_report(messy_tree, tmp_path):
    """`m.jsonl` and `m.jsonl.gz` share `m.rejected.tsv`: the second is refused unless
    forced, so the first one's report is not replaced in silence."""
    root, _, bad = messy_tree
    _run_manifest(str(root), str(tmp_path / "m.jsonl"), "--workers", "1")
    report = tmp_path / "m.rejected.tsv"
    kept = report.read_text()
    with pytest.raises(ConfigError, match=r"m.rejected.tsv is the rejection report of "
                                          r".*m.jsonl, which shares it"):
        _run_manifest(str(root / "nested"), str(tmp_path / "m.jsonl.gz"), "--workers", "1")
    assert report.read_text() == kept and len(kept.splitlines()) == 1 + len(bad)
    _run_manifest(str(root / "nested"), str(tmp_path / "m.jsonl.gz"), "--force")
    assert report.read_text() == "path\treason\n"


def test_links_are_followed_once_and_a_broken_one_is_named(tmp_path, write_tone):
    root = tmp_path / "root"
    write_tone("root/a.wav", 0.5)
    write_tone("root/sub/b.wav", 0.5)
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # a loop
    (root / "again").symlink_to(root / "sub", target_is_directory=True)  # a second way in
    (root / "link.wav").symlink_to(root / "a.wav")
    (root / "broken.wav").symlink_to(root / "gone.wav")
    entries, rejections = scan_tree(root, workers=1)
    assert [e["path"] for e in entries] == [str(root / "a.wav"), str(root / "sub" / "b.wav")]
    assert [(r.path, r.reason) for r in rejections] == [
        (str(root / "broken.wav"), f"a broken link (to {root / 'gone.wav'})")]


def test_an_out_under_a_file_names_the_file_in_the_way(messy_tree, tmp_path, capsys):
    root, _, _ = messy_tree
    (tmp_path / "notes").write_text("mine")
    assert cli.main(["manifest", str(root), str(tmp_path / "notes" / "m.jsonl")]) == 2
    assert (f"error: {tmp_path / 'notes'}: a file stands where a folder is needed for the "
            "output") in capsys.readouterr().err


def test_root_without_usable_audio_is_a_clear_error(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x.wav").write_bytes(b"RIFF")
    with pytest.raises(ConfigError, match=r"no usable audio file \(1 rejected"):
        _run_manifest(str(tmp_path / "r"), str(tmp_path / "m.jsonl"))
    assert (tmp_path / "m.rejected.tsv").exists() and not (tmp_path / "m.jsonl").exists()
    with pytest.raises(ConfigError, match="not a directory"):
        _run_manifest(str(tmp_path / "missing"), str(tmp_path / "m.jsonl"))


def test_read_manifest_names_file_and_line_of_bad_entries(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest([{"path": "/a.wav", "duration": 1.0, "sample_rate": 8000, "channels": 1}],
                   path)
    assert read_manifest(path)[0]["path"] == "/a.wav"
    path.write_text(path.read_text() + '{"path": "b.wav"}\n')
    with pytest.raises(ConfigError, match=r"m.jsonl:2: missing duration, sample_rate"):
        read_manifest(path)
    path.write_text("{oops\n")
    with pytest.raises(ConfigError, match=r"m.jsonl:1: not valid JSON"):
        read_manifest(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match=r"manifest .* is a folder"):
        read_manifest(tmp_path)
    path.write_text('{"path": "a.wav", "duration": "2.0", "sample_rate": 8000, "channels": 0}\n')
    with pytest.raises(ConfigError, match=r"m.jsonl:1: duration='2.0', channels=0; path is a "
                                          r"string, duration a positive number"):
        read_manifest(path)  # a hand-written line: a TypeError at the first batch before
    path.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match=r"m.jsonl:1: not a JSON object"):
        read_manifest(path)
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\xff\xfe")
    with pytest.raises(ConfigError, match=r"a.wav is not a manifest \(JSON lines of text"):
        read_manifest(audio)
    fake = tmp_path / "x.jsonl.gz"
    fake.write_text("plain")
    with pytest.raises(ConfigError, match=r"x.jsonl.gz is not a manifest"):
        read_manifest(fake)


def test_a_cut_short_flac_is_said_to_be_cut_short(tmp_path, write_tone):
    """Its reason read "decoding failed after 0 frames" though half of it decodes."""
    from audiotools.data.manifest import scan_file

    path = write_tone("cut.flac", 1.0, 16000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rejection = scan_file(path)
    assert rejection.reason.startswith("decoding failed in its first block: cut short or "
                                       "damaged")


def test_a_file_whose_name_leaves_no_room_for_a_sidecar_is_scanned(tmp_path, write_tone):
    name = "n" * 250 + ".wav"  # 254 bytes: `<name>.json` would be too long to exist
    write_tone(f"r/{name}", 0.5, 16000)
    entries, rejections = scan_tree(tmp_path / "r")
    assert [e["path"].rsplit("/", 1)[1] for e in entries] == [name] and not rejections
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [name]  # no temporary left


def test_a_manifest_written_meanwhile_by_another_run_is_kept(tmp_path, write_tone):
    write_tone("r/a.wav", 0.5, 16000)
    entries, _ = scan_tree(tmp_path / "r")
    (tmp_path / "m.jsonl").write_text("theirs\n")
    with pytest.raises(ConfigError, match=r"m.jsonl exists \(written while this ran\)"):
        write_manifest(entries, tmp_path / "m.jsonl", exclusive=True)
    assert (tmp_path / "m.jsonl").read_text() == "theirs\n"
    write_manifest(entries, tmp_path / "m.jsonl")  # --force
    assert read_manifest(tmp_path / "m.jsonl")[0]["path"] == entries[0]["path"]
