"""The leaderboard's record cache (``--cache``): a rebuild from it is the same site, an edited
record is read again, a cache someone else could have written is never loaded, a corrupt one is
ignored, and the cache never lands in the published site. Also the vectorised step functions
of the convergence curves against a direct evaluation."""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings

import numpy as np
import pytest

from bilevel_bench.cli import main
from bilevel_bench.leaderboard.build import build_site
from bilevel_bench.leaderboard.cache import MAGIC, RecordCache
from bilevel_bench.leaderboard.collect import cache_key, collect, official_instances
from bilevel_bench.leaderboard.curves import on_grid, quantile_bands
from bilevel_bench.leaderboard.synthetic import synthetic_record, write_synthetic
from bilevel_bench.results import write_record


def _stored(path):
    """What a cache segment holds: MAGIC, an HMAC-SHA256, then the pickle."""
    blob = path.read_bytes()
    assert blob.startswith(MAGIC)
    return pickle.loads(blob[len(MAGIC) + 32:])


def _pages(site):
    """Every page and table of a site, without the build-time footer line."""
    return {p.relative_to(site).as_posix(): re.sub(r"Built [^<]*", "", p.read_text())
            for p in sorted(site.rglob("*")) if p.suffix in (".html", ".csv", ".json")}


@pytest.fixture()
def records(tmp_path):
    root = tmp_path / "records"
    write_synthetic(root, problems=2, solvers=3, seeds=2)
    return root


def test_a_rebuild_from_the_cache_is_the_same_site(records, tmp_path):
    cache = tmp_path / "cache"
    plain = build_site([records], tmp_path / "plain", n_boot=50).parent
    first = build_site([records], tmp_path / "first", n_boot=50, cache=cache).parent
    store = RecordCache(cache, cache_key(official_instances()))
    assert len(store.loaded) == len(list(records.rglob("*.json")))  # one entry per file
    second = build_site([records], tmp_path / "second", n_boot=50, cache=cache).parent
    assert _pages(plain) == _pages(first) == _pages(second)
    assert not [p for p in second.rglob("*") if "pickle" in p.name]


def test_an_edited_record_is_read_again(records, tmp_path):
    cache = tmp_path / "cache"
    before = collect([records], cache=cache)
    path = sorted(records.rglob("*.json"))[0]
    record = json.loads(path.read_text())
    record["solver"]["hyperparameters"] = {"lr": 123.0}
    path.write_text(json.dumps(record))
    after = collect([records], cache=cache)
    row = after.frame.set_index("run_id").loc[record["run_id"]]
    assert json.loads(row["hyperparameters"]) == {"lr": 123.0}
    assert json.loads(before.frame.set_index("run_id").loc[record["run_id"],
                                                           "hyperparameters"]) != {"lr": 123.0}


def test_a_cache_others_could_write_or_a_corrupt_one_is_ignored(records, tmp_path):
    cache = tmp_path / "cache"
    collect([records], cache=cache)
    [stored] = cache.glob("records-*.pickle")
    assert stored.stat().st_mode & 0o777 == 0o600
    signed = stored.read_bytes()
    key = _stored(stored)["key"]
    assert len(RecordCache(cache, key).loaded) == len(list(records.rglob("*.json")))
    os.chmod(stored, 0o666)  # a signed segment that others may write: never loaded
    assert RecordCache(cache, key).loaded == {}
    os.chmod(stored, 0o600)
    # a planted pickle, private and well-formed but not signed by this builder: never
    # unpickled (its __reduce__ would create a file)
    marker = tmp_path / "unpickled"
    planted = {"key": key, "entries": {"x" * 64: _Plant(str(marker))}}
    stored.write_bytes(MAGIC + b"\0" * 32 + pickle.dumps(planted))
    assert RecordCache(cache, key).loaded == {} and not marker.exists()
    stored.write_bytes(pickle.dumps(planted))  # the old, unsigned format
    assert RecordCache(cache, key).loaded == {} and not marker.exists()
    stored.write_bytes(signed)
    assert RecordCache(cache, "another fingerprint").loaded == {}
    # a symbolic link to a signed segment elsewhere is not followed
    elsewhere = tmp_path / "elsewhere.pickle"
    elsewhere.write_bytes(signed)
    os.chmod(elsewhere, 0o600)
    stored.unlink()
    stored.symlink_to(elsewhere)
    assert RecordCache(cache, key).loaded == {}
    stored.unlink()
    stored.write_bytes(b"\x80\x05 truncated")
    assert RecordCache(cache, key).loaded == {}
    again = collect([records], cache=cache)  # and replaced
    assert len(again.frame) == len(list(records.rglob("*.json")))
    assert len(RecordCache(cache, key).loaded) == len(again.frame)
    assert not stored.exists() and len(list(cache.glob("records-*.pickle"))) == 1


class _Plant:
    """A pickle payload that runs code when loaded: it creates a marker file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_new_records_add_a_segment_and_removed_ones_compact_it(records, tmp_path):
    cache = tmp_path / "cache"
    key = cache_key(official_instances())
    collect([records], cache=cache)
    total = len(list(records.rglob("*.json")))
    write_synthetic(records / "new", problems=1, solvers=1, seeds=2, first_seed=10)
    collect([records], cache=cache)
    sizes = sorted(len(_stored(p)["entries"]) for p in cache.glob("records-*.pickle"))
    assert sizes == [2, total]  # only the new entries were written
    collect([records], cache=cache)  # nothing new: nothing written
    assert len(list(cache.glob("records-*.pickle"))) == 2
    files = sorted(records.glob("*.json"))
    for path in files[:len(files) // 2]:  # half the entries go unused: compacted
        path.unlink()
    collect([records], cache=cache)
    [segment] = cache.glob("records-*.pickle")
    assert len(_stored(segment)["entries"]) == total + 2 - len(files) // 2
    assert len(RecordCache(cache, key).loaded) == total + 2 - len(files) // 2


def test_skipped_and_duplicate_files_are_reported_from_the_cache_too(records, tmp_path):
    cache = tmp_path / "cache"
    (records / "broken.json").write_text("{not json")
    first = sorted(records.rglob("problem-00*.json"))[0]
    (records / "copy").mkdir()
    (records / "copy" / first.name).write_bytes(first.read_bytes())
    (records / "other").mkdir()
    write_record(records / "other", synthetic_record("problem-00", "solver-00", 99))
    plain = collect([records])
    cold, warm = collect([records], cache=cache), collect([records], cache=cache)
    for got in (cold, warm):
        assert got.skipped == plain.skipped
        assert list(got.frame["run_id"]) == list(plain.frame["run_id"])
    reasons = dict(plain.skipped)
    assert "unreadable JSON" in reasons["records/broken.json"]
    assert reasons[f"records/copy/{first.name}"].startswith("duplicate of run id")


def test_the_cache_is_a_private_folder_outside_the_site(records, tmp_path, capsys):
    site = tmp_path / "site"
    code = main(["leaderboard", str(records), "-o", str(site), "--bootstrap", "10",
                 "--cache", str(site / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "overlaps the site" in err and len(err.splitlines()) == 1
    for overlapping in (records, records / "cache"):  # an input folder, or a folder inside one
        code = main(["leaderboard", str(records), "-o", str(site), "--bootstrap", "10",
                     "--cache", str(overlapping)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "overlaps the run records" in err and len(err.splitlines()) == 1
    assert main(["leaderboard", str(records), "-o", str(site), "--bootstrap", "10",
                 "--cache", str(tmp_path / "cache")]) == 0
    assert len(list((tmp_path / "cache").glob("records-*.pickle"))) == 1
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)  # like /tmp: anyone could plant a cache there
    for bad, why in ((shared, "not yours alone"), (next(records.glob("*.json")),
                                                    "not a folder")):
        code = main(["leaderboard", str(records), "-o", str(site), "--bootstrap", "10",
                     "--cache", str(bad)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and why in err and len(err.splitlines()) == 1, err


def test_step_functions_on_a_grid_match_a_direct_evaluation():
    rng = np.random.default_rng(0)
    traces = [(np.sort(rng.uniform(0.1, 10, n)), rng.normal(size=n)) for n in (1, 5, 30)]
    traces.insert(1, (np.array([]), np.array([])))  # an empty trace: NaN everywhere
    traces.append((np.array([1.0, 2.0, 2.0, 3.0]), np.array([10.0, 20.0, 21.0, 30.0])))
    grid = np.array([0.05, 1.0, 1.5, 2.0, 2.5, 3.0, 100.0])
    got = on_grid(traces, grid)
    for row, (x, y) in zip(got, traces, strict=True):
        for value, g in zip(row, grid, strict=True):
            before = [v for t, v in zip(x, y, strict=True) if t <= g]
            assert (value == before[-1]) if before else np.isnan(value)
    assert np.isnan(got[-1][0]) and list(got[-1][1:]) == [10.0, 10.0, 21.0, 21.0, 30.0, 30.0]


def test_quantile_bands_match_numpy_per_group():
    rng = np.random.default_rng(1)

    def trace(n):
        return np.sort(rng.uniform(0.01, 5, n)), rng.lognormal(-20, 5, n)

    groups = [[trace(n) for n in (3, 8, 12, 1)], [], [trace(20)], [trace(4), trace(6)]]
    grids = [np.geomspace(0.01, 5, 40), np.array([1.0]), np.geomspace(0.1, 2, 7),
             np.geomspace(0.02, 4, 40)]
    for floor in (None, 1e-12):
        got = quantile_bands(groups, grids, floor=floor)
        for (lo, med, hi), group, grid in zip(got, groups, grids, strict=True):
            assert lo.shape == med.shape == hi.shape == grid.shape
            if not group:
                assert np.isnan(med).all()
                continue
            values = np.array([[([v for t, v in zip(x, y, strict=True) if t <= g] or
                                 [np.nan])[-1] for g in grid] for x, y in group])
            if floor is not None:
                values = np.where(np.isfinite(values), np.maximum(values, floor), values)
            with warnings.catch_warnings():  # all-NaN columns (before every first checkpoint)
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
            np.testing.assert_allclose(np.stack([lo, med, hi]), expected, rtol=1e-12)
        assert (got[0][1][np.isfinite(got[0][1])] >= (floor or 0)).all()
