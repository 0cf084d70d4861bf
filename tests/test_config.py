"""Typed config: YAML + overrides, unknown keys named, bad values rejected."""

import pytest

from mvd_edge.core.config import ConfigError, TrainConfig, load_train_config, to_dict


def test_defaults_are_the_embedded_synthetic_cpu_run():
    cfg = load_train_config()
    assert cfg == TrainConfig()
    assert cfg.data.dataset == "synthetic" and cfg.model.backbone == "tiny"


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 0.01\n  milestones: [3, 4]\nmodel:\n  backbone: resnet18\n")
    cfg = load_train_config(p, ["optim.lr=0.5", "data.p_ids=4", "model.bottleneck_dims=[8, 8, 8]"])
    assert cfg.optim.lr == 0.5 and cfg.optim.milestones == [3, 4]
    assert cfg.model.backbone == "resnet18" and cfg.data.p_ids == 4
    assert cfg.model.bottleneck_dims == [8, 8, 8]
    assert to_dict(cfg)["optim"]["lr"] == 0.5


@pytest.mark.parametrize("text, key", [
    ("optim:\n  lrr: 0.1\n", "optim.lrr"),
    ("epochs: 3\n", "epochs"),
    ("data:\n  extra: {a: 1}\n", "data.extra"),
])
def test_unknown_keys_in_yaml_name_the_key(tmp_path, text, key):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_train_config(p)


def test_unknown_override_and_bad_types_are_errors():
    with pytest.raises(ConfigError, match=r"loss\.vsdd"):
        load_train_config(None, ["loss.vsdd=1"])
    with pytest.raises(ConfigError, match=r"optim\.epochs"):
        load_train_config(None, ["optim.epochs=many"])
    with pytest.raises(ConfigError, match=r"data\.use_val"):
        load_train_config(None, ["data.use_val=3"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_train_config(None, ["optim.lr"])


def test_choice_and_range_checks():
    with pytest.raises(ConfigError, match=r"model\.backbone"):
        load_train_config(None, ["model.backbone=vgg"])
    with pytest.raises(ConfigError, match=r"data\.channel_prob"):
        load_train_config(None, ["data.channel_prob=1.5"])
    with pytest.raises(ConfigError, match=r"data\.p_ids"):
        load_train_config(None, ["data.p_ids=1"])
    with pytest.raises(ConfigError, match=r"synth\.render"):
        load_train_config(None, ["synth.render=video"])
    with pytest.raises(ConfigError, match=r"synth\.scene_people"):
        load_train_config(None, ["synth.render=scenes", "synth.scene_people=0"])
    with pytest.raises(ConfigError, match="not found"):
        load_train_config("/nonexistent/cfg.yaml")
    for bad, key in (("loss.vcd_pairs=pairs", r"loss\.vcd_pairs"), ("loss.vsd_on=none", r"loss\.vsd_on"),
                     ("loss.kl_form=wrong", r"loss\.kl_form"), ("loss.temperature=0", r"loss\.temperature"),
                     ("loss.ramp=1.5", r"loss\.ramp"), ("loss.vcd=-1", r"loss\.vcd")):
        with pytest.raises(ConfigError, match=key):
            load_train_config(None, [bad])


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_train_config(path, ["data.root=/data"])


def test_every_python_folder_is_a_package_that_setuptools_finds():
    """One tree: every folder of mvd_edge/ holding Python files is a package found by packages.find."""
    from pathlib import Path

    import tomllib
    from setuptools import find_packages

    root = Path(__file__).parent.parent
    find = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(root), include=find["include"]))
    folders = {".".join(d.relative_to(root).parts) for d in (root / "mvd_edge").rglob("*")
               if d.is_dir() and any(d.glob("*.py"))} | {"mvd_edge"}
    assert folders <= found, f"folders without __init__.py (not installed): {sorted(folders - found)}"
    assert not any((root / old).exists() for old in ("train", "kernels", "calib")), "code outside mvd_edge/"


def test_default_recipe_is_the_full_method():
    # docs/ablation: every term on, VCD/VML at 0.1 on both pairs, ramped in over half of training
    cfg = load_train_config(None, [])
    assert min(cfg.loss.vsd, cfg.loss.vcd, cfg.loss.vml) > 0 and cfg.loss.kl_form == "correct"
    assert (cfg.loss.vcd, cfg.loss.vml, cfg.loss.vcd_pairs, cfg.loss.ramp) == (0.1, 0.1, "both", 0.5)


def test_yaml_syntax_errors_and_odd_files_are_config_errors_naming_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line 3"):
        load_train_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_train_config(listing)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="bin.yaml"):
        load_train_config(binary)


def test_resume_keeps_the_runs_settings_and_refuses_contradicting_ones(tmp_path):
    from mvd_edge.core.config import explicit_keys, resume_config

    stored = to_dict(load_train_config(None, ["optim.lr=0.001", "synth.n_ids=50", "optim.epochs=4"]))
    # resumed without repeating the original options: the run's own settings come back
    cfg = resume_config(load_train_config(None, ["optim.epochs=8"]), stored, explicit_keys(None, ["optim.epochs=8"]))
    assert cfg.optim.lr == 0.001 and cfg.synth.n_ids == 50 and cfg.optim.epochs == 8  # epochs may grow
    # a setting given now that contradicts the run names the key
    with pytest.raises(ConfigError, match=r"--resume: optim.lr is 0.002 here but 0.001"):
        resume_config(load_train_config(None, ["optim.lr=0.002"]), stored, explicit_keys(None, ["optim.lr=0.002"]))
    # keys set in a YAML file count as given
    y = tmp_path / "c.yaml"
    y.write_text("synth:\n  n_ids: 60\n")
    with pytest.raises(ConfigError, match="synth.n_ids"):
        resume_config(load_train_config(y), stored, explicit_keys(y, []))
    # where things are and how long the run goes may change
    moved = resume_config(load_train_config(None, ["out=elsewhere", "device=cpu"]), stored,
                          explicit_keys(None, ["out=elsewhere", "device=cpu"]))
    assert moved.out == "elsewhere" and moved.device == "cpu" and moved.optim.lr == 0.001


def test_zero_batches_per_epoch_is_refused():
    with pytest.raises(ConfigError, match="data.batches_per_epoch must be >= 1"):
        load_train_config(None, ["data.batches_per_epoch=0"])


_UNKNOWN_ASSOCIATION = ("unknown config key 'association.treshold' (valid keys under 'association.': early_margin, "
                        "early_threshold, fast_hysteresis, fast_margin, fast_pairing, fast_threshold, hysteresis, "
                        "margin, max_gap, reid_memory, reid_memory_faiss_above, reid_threshold, report_coast, "
                        "stickiness, threshold)")


@pytest.mark.parametrize("sets, message", [
    (["device.x=1"], "override 'device.x': 'device' is not a section"),
    (["association.treshold=1"], _UNKNOWN_ASSOCIATION),
    (["foo.bar=1"], "unknown config key 'foo' (valid keys under '<top>': association, bank, crop, detector, device, "
                    "outputs, site, sources, track)"),
    (["association.threshold=2"], "association.threshold must be a finite number in [-1, 1], got 2.0"),
    (["association=1"], "association: expected a mapping, got int"),
])
def test_matcher_and_train_configs_name_the_key_alike(tmp_path, sets, message):
    """The matcher config is loaded by the training config's machinery: ``--set`` and
    ``MatcherConfig.updated`` give the same one-line error, word for word."""
    from mvd_edge.core.yamlsafe import parse_yaml
    from mvd_edge.match.config import MatcherConfig, load_matcher_config

    with pytest.raises(ConfigError) as exc:
        load_matcher_config(None, sets)
    assert str(exc.value) == message
    key, raw = sets[0].split("=")
    with pytest.raises(ConfigError) as exc:
        MatcherConfig().updated({key: parse_yaml(raw)})
    assert str(exc.value) == message


def test_config_files_and_sets_name_the_key_alike(tmp_path):
    from mvd_edge.match.config import load_matcher_config

    y = tmp_path / "c.yaml"
    for text, message in [("association: {treshold: 1}\n", "unknown config key 'association.treshold'"),
                          ("foo: {bar: 1}\n", "unknown config key 'foo'"),
                          ("device: {x: 1}\n", "device: expected a string, got {'x': 1}"),
                          ("association: null\n", "association: expected a mapping, got NoneType")]:
        y.write_text(text)
        with pytest.raises(ConfigError) as exc:
            load_matcher_config(y)
        assert str(exc.value) == message
    for sets, message in [(["device.x=1"], "override 'device.x': 'device' is not a section"),
                          (["optim.lr=-1"], "optim.lr must be > 0, got -1.0"),
                          (["optim.lrr=1"], "unknown config key 'optim.lrr' (valid keys under 'optim.': amp, epochs, "
                                            "gamma, grad_clip, lr, milestones, schedule, warmup_epochs, "
                                            "warmup_factor, weight_decay)")]:
        with pytest.raises(ConfigError) as exc:
            load_train_config(None, sets)
        assert str(exc.value) == message
    y.write_text("association: {threshold: 0.6}\n")
    cfg = load_matcher_config(y, ["bank.last_n=5", "association.margin=0.1"])
    assert cfg.origin == {"association.threshold": f"file {y}", "bank.last_n": "--set", "association.margin": "--set"}
