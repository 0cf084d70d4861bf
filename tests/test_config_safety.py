"""Issue 34, class 6: every YAML mvd-edge reads goes through one strict loader (mvd_edge.core.yamlsafe):
no anchors/aliases (the alias bomb), no duplicate keys at any depth, no oversized files."""

from __future__ import annotations

import pytest

from mvd_edge.core.config import ConfigError, apply_overrides, load_train_config
from mvd_edge.core.errors import UsageError
from mvd_edge.core.yamlsafe import MAX_YAML_BYTES, load_yaml
from mvd_edge.match.sources import load_cameras

# 9 levels of 9 aliases: 9**9 (387 million) strings once expanded; a few hundred bytes on disk
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi"))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_alias_bomb_in_a_cameras_file_is_refused_naming_file_and_line(tmp_path):
    cams = tmp_path / "site.yaml"
    cams.write_text("cameras:\n  door: cam0\n" + "".join("  " + line + "\n" for line in BOMB.splitlines()))
    with pytest.raises(UsageError) as exc:
        load_cameras(cams)
    msg = _one_line(exc)
    assert "site.yaml: line 3" in msg and "anchor" in msg


def test_alias_bomb_in_a_training_config_is_a_config_error(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("optim:\n  lr: 0.001\n" + BOMB)
    with pytest.raises(ConfigError) as exc:
        load_train_config(cfg)
    assert "train.yaml: line 3" in _one_line(exc)


def test_a_lone_alias_is_refused_too(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("optim:\n  lr: 0.001\neval:\n  trials: *n\n")
    with pytest.raises(UsageError, match=r"x.yaml: line 4: YAML alias"):
        load_yaml(f)


def test_duplicate_camera_name_is_refused_not_dropped(tmp_path):
    cams = tmp_path / "site.yaml"
    cams.write_text("cameras:\n  door: cam0\n  hall: cam1\n  door: cam2\n")
    with pytest.raises(UsageError) as exc:
        load_cameras(cams)
    msg = _one_line(exc)
    assert "site.yaml: line 4: duplicate key 'door' (first given on line 2)" in msg


def test_duplicate_section_and_nested_key_in_a_training_config(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("optim:\n  lr: 0.001\n  epochs: 3\nloss:\n  vsd: 1.0\noptim:\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"train.yaml: line 6: duplicate key 'optim' \(first given on line 1\)"):
        load_train_config(cfg)
    cfg.write_text("optim:\n  lr: 0.001\n  epochs: 3\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"line 4: duplicate key 'lr'"):
        load_train_config(cfg)


def test_oversized_yaml_is_refused_before_parsing(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("# " + "x" * MAX_YAML_BYTES + "\noptim:\n  lr: [\n")  # a syntax error it never reaches
    with pytest.raises(ConfigError, match=r"big.yaml: \d+ bytes is too large"):
        load_train_config(f)
    with pytest.raises(UsageError, match="too large"):
        load_cameras(f)


def test_overrides_are_parsed_by_the_same_loader():
    with pytest.raises(ConfigError, match="alias"):
        apply_overrides({}, ["optim.milestones=[*a, *a]"])
    assert apply_overrides({}, ["optim.lr=0.01"]) == {"optim": {"lr": 0.01}}
