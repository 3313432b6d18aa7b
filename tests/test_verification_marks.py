"""The site marks a result verified only when `verify` checked exactly that record file."""

from __future__ import annotations

import hashlib
import json

from bilevel_bench.leaderboard.collect import verification_of, verifications


def test_verified_only_for_the_file_verify_checked(tmp_path):
    record = tmp_path / "r.json"
    record.write_text('{"run_id": "abc"}')
    digest = hashlib.sha256(record.read_bytes()).hexdigest()
    (tmp_path / "verification.json").write_text(json.dumps({"records": {
        "abc": {"verdict": "verified", "sha256": digest},
        "bad": {"verdict": "failed", "sha256": digest}}}))
    found = verifications(tmp_path)
    assert verification_of(found["abc"], digest) == "verified"
    assert verification_of(found["bad"], digest) == "failed"
    assert verification_of(None, digest) == "self-reported"
    record.write_text('{"run_id": "abc", "forged": true}')  # edited after verification
    edited = hashlib.sha256(record.read_bytes()).hexdigest()
    assert verification_of(found["abc"], edited) == "self-reported"
    (tmp_path / "verification.json").write_text("{not json")
    assert verifications(tmp_path) == {}
