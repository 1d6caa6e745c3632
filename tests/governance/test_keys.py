"""Static keys: kept only as digests, compared in constant time, masked in messages."""

from __future__ import annotations

from easel.governance.keys import StaticKeys, mask


def test_keys_are_kept_only_as_digests() -> None:
    keys = StaticKeys(["sk-one-secret", "sk-two-secret"])
    assert keys.enabled
    assert keys.check("sk-two-secret")
    assert not keys.check("sk-three")
    assert "sk-one-secret" not in repr(vars(keys))
    assert not StaticKeys([]).enabled


def test_mask() -> None:
    assert mask("sk-abcdefghwxyz") == "sk-abc***wxyz"
    assert mask("short") == "*****"
