"""What ingestion's summary means for the rest of the run: warnings (the run goes on), and two gates that raise a
UserError naming the report: too many quarantined files, or a split without tracks (training would end with an
empty evaluation after all the compute). The executor runs them after writing the report."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from audio.groups import TRACK
from components.audio_example_gen import splits
from components.audio_example_gen.ingest import INGESTED, QUARANTINED
from components.audio_example_gen.quarantine import FILES_FILE, QUARANTINE_FILE, SUMMARY_FILE, read_records
from config.errors import UserError
from config.settings import SPLITS, SplitConfig

SHOWN_FILES = 10  # files named in a message; files.jsonl and quarantine.jsonl list all


class TooManyBadFiles(UserError):
    """More than split.max_bad_fraction of the files were quarantined."""


class EmptySplits(UserError):
    """A split has no tracks after ingestion."""


def _some(items: Sequence[str], total: int, limit: int = SHOWN_FILES) -> str:
    """The first ``limit`` of ``items`` (summary.json's capped list) and how many of ``total`` are left."""
    shown = list(items[:limit])
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return ", ".join(shown) + more


def warnings(summary: dict[str, Any], genres: Sequence[str], max_segments: int) -> list[str]:
    """One sentence per thing the user should know although the run goes on."""
    found = []
    missing = [g for g in genres if summary["genres"][g]["train"]["tracks"] == 0]
    if missing:
        found.append(f"The train split has no track of {', '.join(missing)}: the model cannot learn "
                     f"{'this genre' if len(missing) == 1 else 'these genres'}. Add tracks, or leave "
                     f"{'it' if len(missing) == 1 else 'them'} out of the label set (--genres).")
    cut = summary["cut_tracks"]
    if cut:
        found.append(f"Tracks longer than audio.max_segments_per_track = {max_segments} segments, cut to that many "
                     f"spread over the track (--max-segments-per-track): "
                     f"{_some([c['path'] for c in cut], summary['cut_tracks_count'])}.")
    if summary.get("group_fallbacks"):
        found.append(f"{summary['group_fallbacks']} files have no {summary['group_by'].removeprefix('tag-')} tag "
                     f"(or unreadable tags) and were grouped by folder instead (--group-by {summary['group_by']}).")
    if summary.get("group_placeholders"):
        found.append(f"{summary['group_placeholders']} tracks are each a group of their own: their "
                     f"{summary['group_by'].removeprefix('tag-')} is a placeholder name such as Unknown Album, which "
                     "ties no tracks together.")
    if summary["truncated"]:
        found.append(f"Files that end before their header says (truncated; the audio up to the cut was "
                     f"ingested): {_some(summary['truncated'], summary['truncated_count'])}.")
    return found


def check_bad_fraction(summary: dict[str, Any], max_bad_fraction: float, report_uri: str) -> None:
    """Raise TooManyBadFiles, naming the first files, when too large a share was quarantined."""
    if summary["bad_fraction"] <= max_bad_fraction:
        return
    bad = summary["files"][QUARANTINED]
    considered = summary["files"][INGESTED] + bad
    raise TooManyBadFiles(
        f"{bad} of {considered} audio files ({summary['bad_fraction']:.1%}) were quarantined, more than "
        f"split.max_bad_fraction = {max_bad_fraction:.1%}: "
        + _some([f"{b['path']} ({b['reason']})" for b in summary["quarantined"]], bad) + ".",
        where=f"AudioExampleGen; every file and reason in {os.path.join(report_uri, QUARANTINE_FILE)}",
        fix="fix or remove these files, or raise --max-bad-fraction.")


def check_splits(summary: dict[str, Any], ratios: Sequence[float], protocol: str, report_uri: str) -> None:
    """Raise EmptySplits when train, eval or test ended up without tracks, with the cause read from the ingested
    tracks (files.jsonl in ``report_uri``) as the check before decoding names it (splits.diagnosis)."""
    tracks = {s: summary["splits"][s]["tracks"] for s in SPLITS}
    empty = [s for s in SPLITS if tracks[s] == 0]
    if not empty:
        return
    counts = ", ".join(f"{s} {n}" for s, n in tracks.items())
    split = SplitConfig(protocol=protocol, ratios=tuple(ratios), split_dir=summary.get("split_dir"),
                        group_by=summary.get("group_by", TRACK), salt=summary.get("split_salt", SplitConfig.salt))
    unshared = [s for s, ratio in zip(SPLITS, ratios) if s in empty and ratio <= 0]
    if unshared:
        cause, fix = (f"the ratios give {' and '.join(unshared)} no share",
                      "give every split a share above 0 (--split-ratios TRAIN,EVAL,TEST), or another --split protocol.")
    else:
        ingested = [r for r in read_records(os.path.join(report_uri, FILES_FILE)) if r["status"] == INGESTED]
        found = [splits.Track(r["track_id"], r["genre"], r.get("group", "")) for r in ingested]
        alone = [dataclasses.replace(t, group="") for t in found]
        cause, fix = splits.diagnosis(found, {g: empty for g in {t.genre for t in found}}, split,
                                      lambda by: alone if by == TRACK else None)
    raise EmptySplits(
        f"After ingestion the {' and '.join(empty)} split{'s have' if len(empty) > 1 else ' has'} no tracks "
        f"(tracks per split: {counts}; {summary['files'][INGESTED]} files ingested, split protocol {protocol}, "
        f"ratios {'/'.join(f'{r:g}' for r in ratios)}), so training or evaluation cannot run"
        + (f": {cause}." if cause else "."),
        where=f"AudioExampleGen; counts in {os.path.join(report_uri, SUMMARY_FILE)}", fix=fix)
