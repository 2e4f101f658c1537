"""CLI: python -m synthetic --out DIR [--tracks-per-genre N] [--seconds S] [--seed K] [--layout library ...]."""
from __future__ import annotations

import argparse
import sys
import time

from config.settings import SyntheticConfig
from synthetic.generator import LIBRARY_FORMATS, generate, generate_library, is_complete, is_library_complete


def main(argv: list[str] | None = None) -> None:
    d = SyntheticConfig()
    parser = argparse.ArgumentParser(prog="python -m synthetic",
                                     description="Write a deterministic synthetic GTZAN-shaped collection, or the "
                                                 "same tracks laid out as a music library.")
    parser.add_argument("--out", required=True, help="output root")
    parser.add_argument("--layout", choices=("gtzan", "library"), default="gtzan",
                        help="gtzan: <out>/<genre>/<genre>.NNNNN.wav; library: <out>/<genre>/<Genre> Artist K/Album J/"
                             "NN Title.<format> (default: %(default)s)")
    for name, kind in (("tracks_per_genre", int), ("seconds", float), ("seed", int), ("sample_rate", int)):
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(d, name))
    library = parser.add_argument_group("library layout")
    library.add_argument("--tracks-per-album", type=int, default=10, help="(default: %(default)s)")
    library.add_argument("--albums-per-artist", type=int, default=2, help="(default: %(default)s)")
    library.add_argument("--format", choices=sorted(LIBRARY_FORMATS), default="wav", help="(default: %(default)s)")
    library.add_argument("--channels", type=int, choices=(1, 2), default=1, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.tracks_per_album, args.albums_per_artist) < 1:
        parser.error("--tracks-per-album and --albums-per-artist must be at least 1")
    started = time.time()

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"\r  synthetic tracks: {done}/{total}", end="", file=sys.stderr, flush=True)

    settings = (args.out, args.tracks_per_genre, args.seconds, args.seed, args.sample_rate)
    shape = dict(tracks_per_album=args.tracks_per_album, albums_per_artist=args.albums_per_artist,
                 audio_format=args.format, channels=args.channels) if args.layout == "library" else {}
    complete, write = (is_library_complete, generate_library) if shape else (is_complete, generate)
    if complete(*settings, **shape):
        print(f"{args.out} already holds this set, complete (its MANIFEST.json matches); nothing to do.",
              file=sys.stderr)
        return
    paths = write(*settings, **shape, progress=progress)
    print(f"\nWrote {len(paths)} tracks to {args.out} in {time.time() - started:.1f} s.", file=sys.stderr)


if __name__ == "__main__":
    main()
