"""`audiotools manifest ROOT OUT.jsonl[.gz]`: scan a tree of audio files into a manifest."""
from __future__ import annotations

import argparse

NAME = "manifest"
HELP = ("Scan ROOT for audio files and write one JSON line per usable file; rejected files are "
        "reported with the reason (also saved beside OUT as .rejected.tsv).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="folder scanned recursively (hidden files and .json "
                                     "sidecars are skipped)")
    parser.add_argument("out", help="manifest to write, .jsonl or .jsonl.gz")
    parser.add_argument("--workers", type=int, default=8, help="scanning threads (default 8)")
    parser.add_argument("--amplitude", action="store_true",
                        help="also store each file's peak and rms (linear, 0..1)")
    parser.add_argument("--min-frames", type=int, default=16,
                        help="files with fewer frames are rejected (default 16)")
    parser.add_argument("--relative", action="store_true",
                        help="store paths relative to OUT's folder (portable manifests)")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT (and its .rejected.tsv) if it exists")


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import (
        other_manifest,
        rejection_report_path,
        scan_tree,
        write_manifest,
        write_rejections,
    )
    from ..environment import resolve_path
    from ..errors import ConfigError
    if args.min_frames < 1:
        raise ConfigError(f"--min-frames={args.min_frames}: a usable file has at least 1 frame.")
    root, out = resolve_path(args.root), resolve_path(args.out)
    if not out.name.endswith((".jsonl", ".jsonl.gz")):
        raise ConfigError(f"{out}: a manifest is written as .jsonl or .jsonl.gz; give OUT one "
                          "of those names.")
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; choose another OUT or pass --force to replace it.")
    report, other = rejection_report_path(out), other_manifest(out)
    if report.exists() and other.exists() and not args.force:
        raise ConfigError(f"{report} is the rejection report of {other}, which shares it; "
                          "choose another OUT name or pass --force to replace the report.")
    entries, rejections = scan_tree(root, args.workers, args.amplitude, args.min_frames,
                                    exclude=(out, report))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_rejections(rejections, report)
    for rejection in rejections:
        print(f"rejected {rejection.path}: {rejection.reason}")
    if not entries:
        raise ConfigError(f"{root}: no usable audio file ({len(rejections)} rejected, reasons in "
                          f"{report}); give a folder of wav/flac/ogg/mp3 files.")
    write_manifest(entries, out, relative=args.relative, exclusive=not args.force)
    hours = sum(e["duration"] for e in entries) / 3600
    print(f"{len(entries)} files ({hours:.2f} h) → {out}; {len(rejections)} rejected → {report}")
    return 0
