"""Track-level split protocols: every segment of a track, and every track of a group (``split.group_by``), lands
in one split, or neighbouring pieces of one recording would inflate test accuracy. ``stratified`` and ``hash`` cut by
salted hash (stratified by quota below STABLE_FROM_GROUPS groups a genre); the list protocols follow the
artist-filtered GTZAN lists of Kereliuk, Sturm and Larsen (2015). docs/ingestion.md, "Splits", describes each.
Preflight imports it (check_files) before TensorFlow loads: TFX's fileio is imported where the lists are read."""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import os
from collections import Counter, defaultdict
from typing import Callable, Iterable, Mapping, Optional, Sequence

from audio import groups
from config.settings import HASH_PROTOCOLS, SPLIT_PROTOCOLS, SPLITS, SplitConfig

TRAIN, EVAL, TEST = SPLITS
# Groups from which a genre's stratified split is by hash (stable) instead of by quota (exact).
STABLE_FROM_GROUPS = 30
LIST_FILES: dict[str, str] = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
NOT_IN_LISTS = "not in split lists"
IN_TEST_LIST = "in the test list (held out by lists-trainval)"


@dataclasses.dataclass(frozen=True)
class Track:
    """What the split protocols need to know of a file."""

    track_id: str
    genre: str
    group: str = ""  # audio/groups.py's key; "" = the track alone
    listed_as: str = ""  # discovery.AudioFile.list_key; "" = the track id

    @property
    def group_key(self) -> str:
        return self.group or self.track_id

    @property
    def list_key(self) -> str:
        """``genre/stem``, as the list files name a clip (``blues/blues.00029``)."""
        return self.listed_as or self.track_id


@dataclasses.dataclass
class SplitPlan:
    """track_id -> split for tracks that are ingested, track_id -> reason for the others."""

    assigned: dict[str, str] = dataclasses.field(default_factory=dict)
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)


def validate(split: SplitConfig) -> None:
    """Fail early, with the fix, on a configuration no protocol can run with."""
    if split.protocol not in SPLIT_PROTOCOLS:
        raise ValueError(f"Unknown split protocol {split.protocol!r}; choose one of {', '.join(SPLIT_PROTOCOLS)}.")
    ratios = tuple(split.ratios)
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"split.ratios must be three non-negative train/eval/test fractions summing to 1, "
                         f"not {ratios}.")
    if split.protocol not in HASH_PROTOCOLS and not split.split_dir:
        raise ValueError(f"Split protocol {split.protocol!r} reads the fault-filtered list files: set "
                         f"split.split_dir (--split-dir) to the folder holding {', '.join(LIST_FILES.values())}.")
    groups.validate(split.group_by)
    if not 0 <= split.max_bad_fraction <= 1:
        raise ValueError(f"split.max_bad_fraction must be in [0, 1], not {split.max_bad_fraction}.")


def hash_fraction(salt: str, track_id: str) -> float:
    """A stable, uniform position in [0, 1) for a track."""
    digest = hashlib.sha256(f"{salt}\x00{track_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def by_ratios(fraction: float, ratios: Sequence[float]) -> str:
    """The split whose cumulative-ratio interval holds ``fraction`` (past a sum rounded below 1: the last one)."""
    i = bisect.bisect_right(list(itertools.accumulate(ratios)), fraction)
    return SPLITS[i] if i < len(ratios) else SPLITS[max(j for j, ratio in enumerate(ratios) if ratio > 0)]


def quotas(n: int, ratios: Sequence[float], cover: bool = False) -> list[int]:
    """Split n items by ratios, rounding by largest remainder (ties: earlier split first); ``cover``: then one item
    moved from the largest to each empty split that has a ratio."""
    total = sum(ratios)
    if n == 0 or total <= 0:
        return [n] + [0] * (len(ratios) - 1)
    exact = [n * r / total for r in ratios]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:n - sum(counts)]:
        counts[i] += 1
    for i, ratio in enumerate(ratios):
        if cover and ratio > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def by_quota(track_ids: Iterable[str], names: Sequence[str], ratios: Sequence[float], salt: str,
             cover: bool = False, hashed_as: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Order tracks by salted hash and hand them out in ``quotas`` (``cover``: every split with a ratio gets one
    when there are enough); ``hashed_as``: the name hashed for a track, when not its id."""
    named = hashed_as or {}
    ordered = sorted(track_ids, key=lambda t: (hash_fraction(salt, named.get(t, t)), t))
    result: dict[str, str] = {}
    start = 0
    for name, count in zip(names, quotas(len(ordered), ratios, cover)):
        result.update((t, name) for t in ordered[start:start + count])
        start += count
    return result


def read_split_lists(split_dir: str) -> dict[str, str]:
    """``genre/stem`` -> list name ("train", "valid", "test") from the fault-filtered files."""
    from tfx.dsl.io import fileio

    membership: dict[str, str] = {}
    for name, file in LIST_FILES.items():
        path = os.path.join(split_dir, file)
        if not fileio.exists(path):
            raise FileNotFoundError(f"Split list {path} is missing. split.split_dir must hold "
                                    f"{', '.join(LIST_FILES.values())} (lines like blues/blues.00029.wav).")
        with fileio.open(path, "r") as f:
            text = f.read()
        if isinstance(text, bytes):
            text = text.decode()
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            genre, slash, filename = entry.rpartition("/")
            if not slash or not genre:
                raise ValueError(f"{path}:{number}: expected an entry like blues/blues.00029.wav, got {entry!r}.")
            key = f"{genre.rsplit('/', 1)[-1]}/{filename.rsplit('.', 1)[0]}"
            if membership.get(key, name) != name:
                raise ValueError(f"{key} is listed in both {LIST_FILES[membership[key]]} and {LIST_FILES[name]} "
                                 f"under {split_dir}; a track can be in one list only.")
            membership[key] = name
    return membership


def _group_splits(tracks: Sequence[Track], protocol: str, salt: str, ratios: Sequence[float]) -> dict[str, str]:
    """Group key -> split for the hash and stratified protocols (docs/ingestion.md, "Splits")."""
    genres_of: dict[str, set[str]] = defaultdict(set)
    for t in tracks:
        genres_of[t.group_key].add(t.genre)
    if protocol == "hash":
        return {g: by_ratios(hash_fraction(salt, g), ratios) for g in genres_of}
    groups_in: dict[str, list[str]] = defaultdict(list)
    for group, genres in genres_of.items():
        for genre in genres:
            groups_in[genre].append(group)
    by_hash = {g for g, genres in genres_of.items() if len(genres) > 1}
    result: dict[str, str] = {}
    for genre, members in groups_in.items():
        if len(members) >= STABLE_FROM_GROUPS:
            by_hash.update(members)
        else:
            result.update(by_quota([g for g in members if g not in by_hash], SPLITS, ratios, salt, cover=True))
    result.update((g, by_ratios(hash_fraction(salt, g), ratios)) for g in by_hash)
    return result


def assign(tracks: Sequence[Track], split: SplitConfig) -> SplitPlan:
    """Apply ``split.protocol`` to ``tracks``."""
    validate(split)
    plan = SplitPlan()
    salt, ratios = split.salt, tuple(split.ratios)
    if split.protocol in HASH_PROTOCOLS:
        of_group = _group_splits(tracks, split.protocol, salt, ratios)
        plan.assigned.update((t.track_id, of_group[t.group_key]) for t in tracks)
        return plan

    lists = read_split_lists(split.split_dir)
    plan.excluded.update((t.track_id, NOT_IN_LISTS) for t in tracks if t.list_key not in lists)
    listed = [(t, lists[t.list_key]) for t in tracks if t.list_key in lists]
    # The list protocols hash a clip's stem (blues.00029), as the lists name it: the same slices whatever the ids.
    stem = {t.track_id: t.list_key.rpartition("/")[2] for t in tracks}

    if split.protocol == "fault-filtered":
        for t, name in listed:
            plan.assigned[t.track_id] = {"train": TRAIN, "valid": EVAL, "test": TEST}[name]
    elif split.protocol == "fault-filtered-final":
        for t, name in listed:
            held_out = hash_fraction(salt, stem[t.track_id]) < ratios[1]
            plan.assigned[t.track_id] = TEST if name == "test" else EVAL if held_out else TRAIN
    else:  # lists-trainval
        per_genre: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for t, name in listed:
            if name == "test":
                plan.excluded[t.track_id] = IN_TEST_LIST
            else:
                per_genre[t.genre][name].append(t.track_id)
        for genre, by_list in per_genre.items():
            if set(by_list) == {"train", "valid"}:
                plan.assigned.update((t, TRAIN) for t in by_list["train"])
                plan.assigned.update(by_quota(by_list["valid"], (EVAL, TEST), ratios[1:], salt, hashed_as=stem))
            else:
                plan.assigned.update(by_quota([t for ids in by_list.values() for t in ids], SPLITS, ratios, salt,
                                              hashed_as=stem))
    return plan


def gaps(tracks: Sequence[Track], assigned: Mapping[str, str], split: SplitConfig) -> dict[str, list[str]]:
    """Genre -> the splits with a ratio it has no track in, of those the protocol promises it: all (stratified);
    under hash, which promises a genre no share, the splits no genre has a track in, and all for a genre of one
    group (never both learnt and held out)."""
    needed = [s for s, ratio in zip(SPLITS, split.ratios) if ratio > 0]
    got: dict[str, set[str]] = defaultdict(set)
    keys: dict[str, set[str]] = defaultdict(set)
    for t in tracks:
        got[t.genre].add(assigned[t.track_id])
        keys[t.genre].add(t.group_key)
    anywhere = set().union(*got.values())
    per_genre = split.protocol != "hash"
    missing = {g: [s for s in needed if s not in (got[g] if per_genre or len(keys[g]) < 2 else anywhere)]
               for g in got}
    return {g: m for g, m in missing.items() if m}


def _fills(tracks: Sequence[Track], split: SplitConfig) -> bool:
    return bool(tracks) and not gaps(tracks, assign(tracks, split).assigned, split)


def _listed(names: Sequence[str], most: int = 4) -> str:
    shown = [*names[:most], *([f"{len(names) - most} more"] if len(names) > most else [])]
    return ", ".join(shown[:-1]) + " and " * (len(shown) > 1) + "".join(shown[-1:])


def diagnosis(tracks: Sequence[Track], missing: Mapping[str, Sequence[str]], split: SplitConfig,
              regrouped: Callable[[str], Optional[Sequence[Track]]]) -> tuple[str, str]:
    """Why these genres miss splits (``missing``, as :func:`gaps`), and the fixes that would work, each tried by
    the assignment itself: (cause, fix). ``regrouped(group_by)``: the tracks grouped another way, or None."""
    needed = sum(ratio > 0 for ratio in split.ratios)
    need = min(2, needed) if split.protocol == "hash" else needed
    grouped = split.protocol in HASH_PROTOCOLS
    unit, units = groups.UNIT[split.group_by], grouped and split.group_by != groups.TRACK
    of_genre: dict[str, list[Track]] = defaultdict(list)
    genres_of: dict[str, set[str]] = defaultdict(set)
    for t in tracks:
        of_genre[t.genre].append(t)
        genres_of[t.group_key].add(t.genre)
    keys = {g: {t.group_key for t in of_genre[g]} for g in missing}
    kinds: dict[str, list[str]] = {"tracks": [], "groups": [], "shared": [], "drawn": []}
    for g in sorted(missing):
        kinds["tracks" if len(of_genre[g]) < need else "groups" if grouped and len(keys[g]) < need else "shared"
              if grouped and any(len(genres_of[k]) > 1 for k in keys[g]) else "drawn"].append(g)
    size = Counter(t.group_key for t in tracks)
    shared = sorted((k for k, g in genres_of.items() if len(g) > 1 and g & set(kinds["shared"])),
                    key=lambda k: (-size[k], k))[:3]
    reach = "train and a held-out split" if split.protocol == "hash" else f"all {needed} splits"
    why = {"tracks": f"too few tracks to reach {reach}",
           "groups": f"too few {unit}s to reach {reach}, each {unit} staying in one split",
           "shared": f"too few {unit}s of their own: one that spans several genres is placed by hash, in one "
                     "split for all of them; the largest: " + ", ".join(
                         f"{k} ({len(genres_of[k])} genres, {size[k]} tracks)" for k in shared),
           "drawn": f"no track in {_listed(sorted({s for g in kinds['drawn'] for s in missing[g]}))}: the "
                    f"{split.protocol} {'draw' if grouped else 'lists'} put none there"}
    counted = {g: f"{g} ({len(of_genre[g])} track{'s' * (len(of_genre[g]) != 1)}"
                  + (f" in {len(keys[g])} {unit}{'s' * (len(keys[g]) != 1)})" if units else ")") for g in missing}
    cause = "; ".join(f"genre{'s' * (len(named) > 1)} {_listed([counted[g] for g in named])} "
                      f"{'have' if len(named) > 1 else 'has'} {why[kind]}" for kind, named in kinds.items() if named)
    fixes = [f"run with `--group-by {by}`" + (f" (tracks of one {unit} may then be on both sides of the split)"
                                              if by == groups.TRACK else "")
             for by in (groups.ALBUM, groups.ARTIST, groups.TRACK) if grouped and by != split.group_by
             and _fills(regrouped(by) or [], dataclasses.replace(split, group_by=by))]
    if split.protocol != "stratified" and _fills(tracks, dataclasses.replace(split, protocol="stratified")):
        fixes.append("run with `--split stratified`")
    kept, failing = sorted(set(of_genre) - set(missing)), sorted(missing)
    if len(kept) >= 2 and _fills([t for t in tracks if t.genre in kept], split):
        fixes.append(f"leave {_listed(failing)} out with `--genres {','.join(kept)}` (under genre folders, with "
                     f"{_listed([f'{g}/' for g in failing])} moved out of the data root)")
    fixes.append(f"add tracks to {_listed(failing) or 'every genre'}" + f" from {unit}s of their own" * units)
    if kinds["shared"] or kinds["drawn"] and grouped:
        fixes.append("choose other --split-ratios (the hash cut moves with them)")
    return cause, ", or ".join(fixes) + "."


def check_splittable(tracks: Sequence[Track], split: SplitConfig, where: str,
                     regrouped: Callable[[str], Optional[Sequence[Track]]]) -> None:
    """groups.TooFewGroups, with the cause and the fixes that work (:func:`diagnosis`), when the hash or quota
    protocol would leave a genre out of a split it promises (:func:`gaps`)."""
    missing = gaps(tracks, assign(tracks, split).assigned, split) if split.protocol in HASH_PROTOCOLS else {}
    if missing:
        cause, fix = diagnosis(tracks, missing, split, regrouped)
        promise = ("give every split tracks and every genre two groups" if split.protocol == "hash" else
                   f"give every genre a track in {_listed([s for s, r in zip(SPLITS, split.ratios) if r > 0])}")
        raise groups.TooFewGroups(f"Split protocol {split.protocol} with --group-by {split.group_by} cannot "
                                  f"{promise}: {cause}.", where=where, fix=fix)


def check_files(files: Sequence, grouping: groups.Grouping, split: SplitConfig, where: str) -> None:
    """:func:`check_splittable` for discovered files (discovery.AudioFile) grouped by ``grouping``; the fixes try
    the other folder groupings, which read no file."""
    def tracks(keys: Mapping[str, str]) -> list[Track]:
        return [Track(f.track_id, f.genre, keys[f.track_id]) for f in files]

    check_splittable(tracks(grouping.keys), split, where, lambda by: tracks(groups.group_keys(files, by).keys))
