"""CLI: python -m synthetic --out DIR [--tracks-per-genre N] [--seconds S] [--seed K]."""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.config import SyntheticConfig
from synthetic.generator import generate, is_complete


def main(argv: list[str] | None = None) -> None:
    d = SyntheticConfig()
    parser = argparse.ArgumentParser(prog="python -m synthetic",
                                     description="Write a deterministic synthetic GTZAN-shaped collection.")
    parser.add_argument("--out", required=True, help="output root; <out>/<genre>/<genre>.NNNNN.wav")
    parser.add_argument("--tracks-per-genre", type=int, default=d.tracks_per_genre)
    parser.add_argument("--seconds", type=float, default=d.seconds)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--sample-rate", type=int, default=d.sample_rate)
    args = parser.parse_args(argv)
    started = time.time()

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"\r  synthetic tracks: {done}/{total}", end="", file=sys.stderr, flush=True)

    settings = (args.tracks_per_genre, args.seconds, args.seed, args.sample_rate)
    if is_complete(args.out, *settings):
        print(f"{args.out} already holds this set, complete (its MANIFEST.json matches); nothing to do.",
              file=sys.stderr)
        return
    paths = generate(args.out, *settings, progress=progress)
    print(f"\nWrote {len(paths)} tracks to {args.out} in {time.time() - started:.1f} s.", file=sys.stderr)


if __name__ == "__main__":
    main()
