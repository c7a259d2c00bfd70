"""Codec evaluation: reconstruction quality, bitrate and speed of any codec on a folder of
audio, measured the same way for every codec (nothing is trained).

```bash
python benchmarks/codec_eval.py CODEC FOLDER [--segment-seconds S] [--limit N] [--quiet-db D] \
    [--device cpu|cuda] [--sat-model-config M.json] [--threads N] [--json OUT.json]
```

Method
- CODEC: anything `audiotools.load` reads (an exported .safetensors, SIG or //sig/SIG,
  `//recipe/autoencoder/NAME`, a stable-audio-tools checkpoint with --sat-model-config, an
  AudioCraft EnCodec package: `compression_state_dict.bin` or its folder),
  loaded as `audiotools reconstruct` loads it; the description printed is the frozen codec's
  (`FrozenCodec.describe`: source, weights identity, rates, latents, codebooks).
- Audio: every file under FOLDER with an audio extension (`audiotools.data.shards.
  AUDIO_EXTENSIONS`), hidden files and sidecar .json skipped, in path order; the first N with
  --limit. Each file is read converted to the codec's sample rate and channel count
  (`audio_read`), and the metrics compare the reconstruction with that converted file: a codec
  is not charged for resampling.
- Items: the whole file, or with --segment-seconds S its consecutive S-second segments (a file
  shorter than S is one segment; a shorter tail is dropped). Every item goes through
  `AutoencoderPipeline.reconstruct` in `audiotools reconstruct`'s overlapping windows (10 s),
  so a long file costs bounded memory; a discrete codec's latents are its quantized codes.
  An item quieter than --quiet-db (default -60 dBFS RMS) is left out and counted: the
  spectral figures divide by the reference's energy, so the near-silent tail of a file read
  117 where the file's other items read 4, and digital silence 65,069.
- Metrics (`audiotools.metrics.audio`, as the autoencoder solver's evaluate stage): SI-SNR in
  dB (higher is better), mel distance and multi-resolution STFT distance (lower is better),
  and the frame-rate buzz the codec adds (the reconstruction's comb of lines at multiples of
  half its frame rate in the upper band over the input's own; about 1 is none), per item. A
  file's row is the mean of its items; the mean row the mean over files (each file weighs
  the same).
- Tokens (a discrete codec): per codebook over every item, the perplexity (exp of the
  entropy of its codes: the cardinality when all are used equally) and the repeat rate (the
  share of frames whose code is the previous frame's). A language model over the tokens
  learns what recurs: codes that change every frame at near-full perplexity leave it
  nothing to predict (docs/solvers/autoencoder.md measures two tokenizers so).
- Latents (a continuous codec): the lag-1 autocorrelation of its raw latents over every item,
  each channel standardised over all their frames, averaged over channels: about 0 when a
  latent changes from frame to frame like noise, near 1 when it holds still over a held note.
  A diffusion model over latents that are white in time has nothing to learn beyond their
  variance (docs/solvers/diffusion.md measures two codecs so).
- Bitrate: a discrete codec's tokens, frame rate x sum over codebooks of log2(cardinality), in
  kb/s (no entropy coding). A continuous codec has none ("continuous"): its latents are
  latent_dim x frame rate floats per second, printed with their ratio to the audio's samples
  per second.
- Real-time factor (RTF): wall seconds of encode + decode (the reconstruct call, copies to and
  from the device included) over seconds of audio; < 1 is faster than real time. Timed after one
  warm-up reconstruction (the first item's first window), the device synchronised before each
  clock start; the mean row's RTF is total compute over total audio. The thread count, CPU model
  (and whether it has avx512_bf16) and torch version are printed with it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from audiotools.commands import reconstruct as reconstruct_command
from audiotools.commands.arguments import check_finite, finite_float
from audiotools.data.audio import audio_read
from audiotools.data.manifest import candidate_files
from audiotools.data.shards import AUDIO_EXTENSIONS
from audiotools.errors import AudiotoolsError, ConfigError
from audiotools.inference.autoencoder import AutoencoderPipeline
from audiotools.io.atomic import file_in_the_way
from audiotools.io.loading import load_pipeline
from audiotools.metrics.audio import frame_buzz, mel_distance, si_snr, stft_distance
from audiotools.models.codec import FrozenCodec, is_discrete

AUDIO_SUFFIXES = frozenset(f".{extension}" for extension in AUDIO_EXTENSIONS)
METRICS = ("si_snr", "mel_distance", "stft_distance", "frame_buzz")


@dataclass
class FileResult:
    """One file's figures: metric means over its items, and the compute its items took."""

    path: str
    seconds: float          # audio evaluated (its items), at the codec's rate
    items: int
    quiet: int              # items left out, quieter than --quiet-db
    si_snr: float
    mel_distance: float
    stft_distance: float
    frame_buzz: float
    compute_seconds: float  # encode + decode wall time of its items

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.seconds if self.seconds else math.nan

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "rtf": self.rtf}


def reconstruct_chunk_seconds() -> float:
    """`audiotools reconstruct`'s default window, read from its parser so both stay alike."""
    parser = argparse.ArgumentParser()
    reconstruct_command.add_arguments(parser)
    return float(parser.get_default("chunk_seconds"))


def audio_files(folder: Path, limit: int | None) -> list[Path]:
    """The audio files under `folder` as the data code lists them (sidecars skipped)."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder; give a folder of audio files.")
    files = candidate_files(folder, suffixes=AUDIO_SUFFIXES)
    if not files:
        raise ConfigError(f"{folder}: no audio files (looked for "
                          f"{', '.join(sorted(AUDIO_SUFFIXES))}, sidecar .json skipped).")
    return files[:limit]


def items_of(audio: torch.Tensor, sample_rate: int, segment_seconds: float | None,
             ) -> list[torch.Tensor]:
    """The whole clip (channels, samples), or its consecutive full segments."""
    if segment_seconds is None:
        return [audio]
    length = max(1, round(segment_seconds * sample_rate))
    count = max(1, audio.shape[-1] // length)
    return [audio[:, index * length:(index + 1) * length] for index in range(count)]


def measure(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
            hop_length: int) -> dict[str, float]:
    """The reconstruction metrics of one item (channels, samples)."""
    estimate, reference = estimate[None], reference[None]
    return {"si_snr": float(si_snr(estimate, reference)[0]),
            "mel_distance": float(mel_distance(estimate, reference, sample_rate)[0]),
            "stft_distance": float(stft_distance(estimate, reference)[0]),
            "frame_buzz": float(frame_buzz(estimate, reference, sample_rate, hop_length)[0])}


def token_statistics(tokens: list[torch.Tensor], cardinality: int) -> list[dict[str, float]]:
    """Per codebook of items' tokens (codebooks, frames): perplexity and repeat rate."""
    codebooks = torch.cat(tokens, dim=-1)
    repeats = torch.cat([item[:, 1:] == item[:, :-1] for item in tokens], dim=-1)
    per_codebook = []
    for codes, repeated in zip(codebooks, repeats, strict=True):
        share = torch.bincount(codes, minlength=cardinality).double() / codes.numel()
        entropy = -(share[share > 0] * share[share > 0].log()).sum()
        per_codebook.append({"perplexity": float(entropy.exp()),
                            "repeat_rate": float(repeated.double().mean())
                            if repeated.numel() else math.nan})
    return per_codebook


def latent_statistics(latents: list[torch.Tensor]) -> dict[str, float]:
    """Of items' continuous latents (latent_dim, frames): the mean over channels of their
    lag-1 autocorrelation, each channel standardised over every frame of every item."""
    every = torch.cat(latents, dim=-1).double()
    mean = every.mean(dim=-1, keepdim=True)
    std = every.std(dim=-1, correction=0, keepdim=True).clamp_min(1e-12)
    standard = [(item.double() - mean) / std for item in latents]
    now = torch.cat([item[:, :-1] for item in standard], dim=-1)
    after = torch.cat([item[:, 1:] for item in standard], dim=-1)
    correlation = float((now * after).mean()) if now.numel() else math.nan
    return {"lag1_autocorrelation": correlation}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_reconstruct(pipeline: AutoencoderPipeline, audio: torch.Tensor,
                      chunk_seconds: float) -> tuple[torch.Tensor, float]:
    """(reconstruction at the codec's format, wall seconds of encode + decode)."""
    _synchronize(pipeline.device)
    start = time.perf_counter()
    output, _ = pipeline.reconstruct(audio, pipeline.sample_rate, chunk_seconds,
                                     keep_format=False)
    return output, time.perf_counter() - start


def loud(item: torch.Tensor, quiet_db: float) -> bool:
    """An item whose RMS is at least `quiet_db` dBFS (the metrics mean something there)."""
    rms = float(item.double().square().mean().sqrt())
    return rms > 0 and 20 * math.log10(rms) >= quiet_db


def evaluate_file(pipeline: AutoencoderPipeline, path: Path, name: str,
                  segment_seconds: float | None, chunk_seconds: float,
                  warm_up: bool, codec: FrozenCodec, quiet_db: float = -60.0,
                  ) -> tuple[FileResult, list[torch.Tensor]]:
    """Metrics and compute of one file's items at or above `quiet_db` (all quiet: NaN
    figures, left out of the mean), and those items' tokens (codebooks, frames) when the
    codec is discrete, else their raw latents (latent_dim, frames); `warm_up` first
    reconstructs its first window."""
    rate = pipeline.sample_rate
    try:
        audio, _ = audio_read(path, sample_rate=rate, channels=pipeline.channels)
    except ConfigError as error:  # a channel count the codec's cannot be made from
        raise ConfigError(f"{path}: {error}") from None
    if audio.shape[-1] == 0:
        raise ConfigError(f"{path}: holds no samples; remove it from the folder.")
    check_finite(audio, path)
    every = items_of(audio, rate, segment_seconds)
    items = [item for item in every if loud(item, quiet_db)]
    quiet = len(every) - len(items)
    if not items:
        nan = dict.fromkeys(METRICS, math.nan)
        return FileResult(name, 0.0, 0, quiet, compute_seconds=0.0, **nan), []
    if warm_up:
        timed_reconstruct(pipeline, items[0][:, :round(chunk_seconds * rate)], chunk_seconds)
    figures, compute = [], 0.0
    for item in items:
        output, seconds = timed_reconstruct(pipeline, item, chunk_seconds)
        compute += seconds
        figures.append(measure(output.to(pipeline.device), item.to(pipeline.device), rate,
                               pipeline.model.hop_length))
    means = {key: statistics.fmean(figure[key] for figure in figures) for key in METRICS}
    evaluated = sum(item.shape[-1] for item in items) / rate
    encode = codec.encode_to_tokens if is_discrete(codec) else codec.encode_raw
    encoded = [encode(item[None].to(pipeline.device), chunk_seconds)[0].cpu() for item in items]
    return FileResult(name, evaluated, len(items), quiet, compute_seconds=compute,
                      **means), encoded


def bitrate(codec: FrozenCodec) -> dict[str, Any]:
    """Token bitrate of a discrete codec; latent size (no bitrate) of a continuous one."""
    if is_discrete(codec):
        bits = codec.num_codebooks * math.log2(codec.cardinality)
        return {"kind": "discrete", "kbps": codec.frame_rate * bits / 1000,
                "frame_rate": codec.frame_rate, "num_codebooks": codec.num_codebooks,
                "cardinality": codec.cardinality, "bits_per_frame": bits}
    floats = codec.latent_dim * codec.frame_rate
    samples = codec.sample_rate * codec.channels
    return {"kind": "continuous", "kbps": "continuous", "latent_dim": codec.latent_dim,
            "frame_rate": codec.frame_rate, "floats_per_second": floats,
            "audio_samples_per_second": samples, "ratio_to_audio": floats / samples}


def cpu_model() -> tuple[str, bool | None]:
    """(CPU model name, whether it has avx512_bf16) from /proc/cpuinfo; unknown elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown (no /proc/cpuinfo)", None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name") or fields.get("Model") or "unknown"
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return name, "avx512_bf16" in flags


def machine(device: torch.device) -> dict[str, Any]:
    name, bf16 = cpu_model()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu": name, "avx512_bf16": bf16, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": str(device), "gpu": gpu}


def describe(pipeline: AutoencoderPipeline, codec: FrozenCodec) -> dict[str, Any]:
    return {**codec.describe(), "family": pipeline.export.family,
            "bottleneck": pipeline.export.model.get("bottleneck", {}).get("type", "unknown"),
            "parameters": sum(p.numel() for p in pipeline.model.parameters())}


def mean_row(results: list[FileResult]) -> dict[str, Any]:
    """The mean over the files with an item loud enough (each weighs the same)."""
    measured = [result for result in results if result.items]
    if not measured:
        raise ConfigError("every item is quieter than --quiet-db: nothing to measure (lower "
                          "--quiet-db, or give audio that is not silent).")
    seconds = sum(result.seconds for result in measured)
    compute = sum(result.compute_seconds for result in measured)
    return {"files": len(measured), "seconds": seconds,
            "items": sum(result.items for result in measured),
            "quiet": sum(result.quiet for result in results),
            **{key: statistics.fmean(getattr(result, key) for result in measured)
               for key in METRICS},
            "compute_seconds": compute, "rtf": compute / seconds}


def _check(args: argparse.Namespace) -> None:
    for flag, value in (("--segment-seconds", args.segment_seconds), ("--limit", args.limit),
                        ("--threads", args.threads)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag}={value} must be > 0.")
    if args.json is not None:  # the table is printed before; its JSON must not be lost then
        blocking = file_in_the_way(args.json)
        if args.json.is_dir():
            raise ConfigError(f"--json {args.json} is a folder; give a file name.")
        if blocking is not None:
            raise ConfigError(f"--json {args.json}: cannot write it, {blocking} is a file.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: torch {torch.__version__} sees no CUDA "
                          "device here; use --device cpu.")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the script prints, as one JSON-ready dict."""
    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    files = audio_files(args.folder, args.limit)
    options = {"sat_model_config": args.sat_model_config} if args.sat_model_config else {}
    pipeline = load_pipeline(args.codec, args.device, family="autoencoder", **options)
    codec = FrozenCodec(pipeline.model, str(args.codec))
    chunk_seconds = reconstruct_chunk_seconds()
    results, encoded = [], []
    for path in files:
        result, file_encoded = evaluate_file(
            pipeline, path, os.path.relpath(path, args.folder.resolve()), args.segment_seconds,
            chunk_seconds, warm_up=not any(done.items for done in results), codec=codec,
            quiet_db=args.quiet_db)
        results.append(result)
        encoded += file_encoded
    mean = mean_row(results)  # first: it refuses a folder with nothing loud enough
    discrete = is_discrete(codec)
    return {"codec": describe(pipeline, codec), "bitrate": bitrate(codec),
            "tokens": token_statistics(encoded, codec.cardinality) if discrete else None,
            "latents": None if discrete else latent_statistics(encoded),
            "machine": machine(pipeline.device),
            "settings": {"folder": str(args.folder), "segment_seconds": args.segment_seconds,
                         "chunk_seconds": chunk_seconds, "limit": args.limit,
                         "quiet_db": args.quiet_db},
            "files": [result.row() for result in results], "mean": mean}


def _bitrate_line(rate: dict[str, Any]) -> str:
    if rate["kind"] == "discrete":
        return (f"{rate['kbps']:.3f} kb/s = {rate['frame_rate']:g} frames/s x "
                f"{rate['num_codebooks']} codebooks x log2({rate['cardinality']}) "
                f"({rate['bits_per_frame']:.2f} bits a frame)")
    return (f"continuous: latents {rate['latent_dim']} x {rate['frame_rate']:g} Hz = "
            f"{rate['floats_per_second']:g} floats/s, {rate['ratio_to_audio']:.4g} x the audio's "
            f"{rate['audio_samples_per_second']} samples/s "
            f"({1 / rate['ratio_to_audio']:.3g}x fewer values)")


def report(result: dict[str, Any]) -> str:
    """The human-readable table of `evaluate`'s result."""
    codec, run, settings = result["codec"], result["machine"], result["settings"]
    codebooks = (f", {codec['num_codebooks']} codebooks x {codec['cardinality']}"
                 if codec["num_codebooks"] else "")
    bf16 = {True: "yes", False: "no", None: "unknown"}[run["avx512_bf16"]]
    items = ("whole files" if settings["segment_seconds"] is None
             else f"segments of {settings['segment_seconds']:g} s")
    lines = [
        f"codec     {codec['source']} ({codec['family']}, bottleneck {codec['bottleneck']}, "
        f"{codec['parameters']:,} parameters, identity {codec['identity'][:12]})",
        f"          {codec['sample_rate']} Hz, {codec['channels']} channel(s), "
        f"{codec['frame_rate']:g} frames/s, latent_dim {codec['latent_dim']}{codebooks}",
        f"bitrate   {_bitrate_line(result['bitrate'])}",
        f"machine   {run['cpu']} (avx512_bf16: {bf16}), {run['gpu'] or 'no GPU used'}; "
        f"torch {run['torch']}, device {run['device']}, {run['threads']} thread(s)",
        f"audio     {result['mean']['files']} file(s) from {settings['folder']}, {items}, "
        f"reconstructed in windows of {settings['chunk_seconds']:g} s",
        "",
    ]
    mean = {**result["mean"], "path": f"mean ({result['mean']['files']} files)"}
    rows = [*result["files"], mean]
    width = max(len("file"), *(len(row["path"]) for row in rows))
    lines.append(f"{'file':<{width}}  {'seconds':>8}  {'items':>5}  {'SI-SNR dB':>9}  "
                 f"{'mel':>7}  {'STFT':>7}  {'buzz':>6}  {'RTF':>8}")
    for row in rows:
        lines.append(f"{row['path']:<{width}}  {row['seconds']:>8.2f}  {row['items']:>5}  "
                     f"{row['si_snr']:>9.2f}  {row['mel_distance']:>7.4f}  "
                     f"{row['stft_distance']:>7.4f}  {row['frame_buzz']:>6.2f}  "
                     f"{row['rtf']:>8.4f}")
    if result["mean"]["quiet"]:
        lines += ["", f"{result['mean']['quiet']} item(s) quieter than {settings['quiet_db']:g} "
                  "dBFS left out (a row of nan: every item of the file)"]
    if result["tokens"]:
        lines += ["", f"{'codebook':<10}  {'perplexity':>10}  {'repeat rate':>11}"]
        lines += [f"q{index:<9}  {entry['perplexity']:>10.1f}  {entry['repeat_rate']:>11.3f}"
                  for index, entry in enumerate(result["tokens"])]
    if result["latents"]:
        lines += ["", "latents   lag-1 autocorrelation "
                  f"{result['latents']['lag1_autocorrelation']:.3f} (mean over channels; "
                  "0: white from frame to frame, 1: held still)"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codec", help="exported .safetensors, SIG or //sig/SIG, "
                                      "//recipe/autoencoder/NAME, or a stable-audio-tools "
                                      "checkpoint (with --sat-model-config)")
    parser.add_argument("folder", type=Path, help="folder of audio files (any rate and "
                                                  "channel count; searched recursively)")
    parser.add_argument("--segment-seconds", type=finite_float,
                        help="evaluate consecutive segments of this length (default: whole "
                             "files, in `audiotools reconstruct`'s windows)")
    parser.add_argument("--limit", type=int, help="only the first N files (in path order)")
    parser.add_argument("--quiet-db", type=finite_float, default=-60.0,
                        help="leave out items quieter than this RMS in dBFS (default -60): "
                             "relative figures of near-silence mean nothing")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--sat-model-config", type=Path,
                        help="the stable-audio-tools model config JSON of a SAT checkpoint "
                             "(unless the checkpoint embeds it)")
    parser.add_argument("--threads", type=int,
                        help=f"torch CPU threads (default torch's: {torch.get_num_threads()})")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    return parser


def _json_ready(value: Any) -> Any:
    """`value` with NaN and infinities as null: strict JSON readers (jq, JSON.parse) refuse
    the bare NaN Python writes (a file shorter than a frame has no repeat rate)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = evaluate(args)
    except AudiotoolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_ready(result), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
