"""Config keys, validation, overrides and the preset files."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from freqtail.errors import ConfigError
from freqtail.train.config import (
    RUNTIME_KEYS,
    config_differences,
    config_from_dict,
    config_keys,
    config_to_yaml,
    load_config,
    parse_override,
    yaml_load,
)
from freqtail.train.presets import preset_configs, preset_yaml
from freqtail.train.schedules import learning_rate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_preset_file_parses_validates_and_matches_its_recipe():
    files = sorted(CONFIGS.glob("*.yaml"))
    presets = preset_configs()
    assert sorted(p.stem for p in files) == sorted(presets)
    assert len([p for p in files if p.name.startswith("t1-")]) == 24
    assert len([p for p in files if p.name.startswith("t3-")]) == 4
    assert len([p for p in files if p.name.startswith("t4-")]) == 16
    assert len([p for p in files if p.name.startswith("fig3-")]) == 6
    for path in files:
        config = load_config(path)  # validates every key
        comment, values = presets[path.stem]
        assert path.read_text() == preset_yaml(comment, values), (
            f"{path.name} is stale; rewrite with write_presets"
        )
        for key, value in values.items():
            assert getattr(config, key) == value, (path.name, key)


def test_presets_carry_the_papers_hyper_parameters():
    load = lambda stem: load_config(CONFIGS / f"{stem}.yaml")  # noqa: E731
    pgd_at = load("t1-cifar10-resnet18-pgd-at")
    assert (pgd_at.lr, pgd_at.weight_decay, pgd_at.epochs, pgd_at.milestones, pgd_at.batch_size) == (
        0.1,
        5e-4,
        110,
        [100, 105],
        128,
    )
    assert (pgd_at.eps_value, pgd_at.step_size_value, pgd_at.attack_steps) == (8 / 255, 2 / 255, 10)
    assert pgd_at.bass is None and load("t1-cifar10-resnet18-pgd-at-bass").bass == "dataset"
    assert load("t1-cifar100-wrn-34-10-trades").beta_value == 6.0
    mart = load("t1-cifar10-wrn-34-10-mart")
    assert (mart.beta_value, mart.lr, mart.weight_decay, mart.epochs, mart.milestones) == (
        5.0,
        0.01,
        3.5e-3,
        120,
        [75, 90, 100],
    )
    rin = load("t3-restricted-imagenet-resnet50-trades-bass")
    assert (rin.eps_value, rin.step_size_value, rin.model, rin.bass) == (
        4 / 255,
        1 / 255,
        "resnet50",
        "dataset",
    )
    augmix = load("t4-cifar100-densenet-bc-augmix-bass")
    assert augmix.uses_bass_branch and augmix.bass is None
    assert (augmix.jsd_lambda, augmix.augmix_width, augmix.augmix_depth, augmix.augmix_severity) == (
        12.0,
        3,
        0,
        3,
    )
    assert (augmix.schedule, augmix.lr, augmix.epochs, augmix.nesterov) == ("cosine", 0.1, 200, True)
    assert not load("t4-cifar100-densenet-bc-augmix").uses_bass_branch
    assert load("t3-restricted-imagenet-resnet50-pgd-at").augmentation == "flip-jitter-lighting"
    assert [load(f"fig3-cifar10-resnet18-gamma{g}").gamma for g in ("0", "0.25", "0.5", "0.75", "1")] == [
        0.0,
        0.25,
        0.5,
        0.75,
        1.0,
    ]


def test_presets_state_padding_and_selection_as_the_authors_code_does():
    expected_padding = {"pgd-at": "reflect", "trades": "reflect", "mart": "zeros"}
    for stem in preset_configs():
        config = load_config(CONFIGS / f"{stem}.yaml")
        header = (CONFIGS / f"{stem}.yaml").read_text().split("\ndataset:")[0]
        assert config.selection == "test" and "chosen on test images" in header, stem
        if stem.startswith("t1-"):
            objective = stem.split("-resnet18-")[-1].split("-wrn-34-10-")[-1].removesuffix("-bass")
            assert config.pad_mode == expected_padding[objective], stem
            source = "MART's code" if objective == "mart" else "Bag-of-Tricks utils.py"
            assert f"Padding: {config.pad_mode} (" in header and source in header, stem
        elif stem.startswith("t3-"):
            assert config.augmentation == "flip-jitter-lighting" and "no padding" in header, stem
        else:
            assert config.augmentation == "crop-flip" and config.pad_mode == "zeros", stem
            assert "Padding: zeros (" in header, stem


def test_data_choices_repeat_the_data_modules():
    from freqtail.data.augment import PAD_MODES, PRESETS
    from freqtail.train.config import AUGMENTATIONS
    from freqtail.train.config import PAD_MODES as CONFIG_PAD_MODES

    assert AUGMENTATIONS == PRESETS and CONFIG_PAD_MODES == PAD_MODES


def test_unknown_keys_are_errors_with_close_matches(tmp_path):
    with pytest.raises(ConfigError, match="Unknown config key 'epoch' .*'epochs'"):
        load_config(overrides=["epoch=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: cifar10\nweight_decy: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"'weight_decy' in the config file .*bad\.yaml; did you mean 'weight_decay'"
    ):
        load_config(bad)
    with pytest.raises(ConfigError, match="list-keys"):
        config_from_dict({"zzzz": 1})


def test_adversarial_training_needs_an_attack_step():
    """0 steps would train on the random start alone under an adversarial label; ERM ignores the key."""
    for objective in ("pgd-at", "trades", "mart"):
        with pytest.raises(ConfigError, match=f"The {objective} objective needs attack_steps >= 1"):
            load_config(overrides=[f"objective={objective}", "attack_steps=0"])
    assert load_config(overrides=["objective=erm", "attack_steps=0"]).attack_steps == 0
    assert load_config(overrides=["objective=pgd-at", "attack_steps=1"]).attack_steps == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=ten", "'epochs' must be an integer"),
        ("epochs=0", "'epochs' must be a positive integer"),
        ("lr=-1", "'lr' must be positive"),
        ("eps=8", "0..255 scale; use 8/255"),
        ("objective=pgd", "one of erm, pgd-at, trades, mart, augmix, augmix-bass"),
        ("bass=fourier", "'bass' must be one of dataset, augment or null"),
        ("model=resnet19", "Unknown model 'resnet19'; valid names are: densenet-bc"),
        ("dataset=cifar11", "Unknown dataset 'cifar11'; choose one of embedded, cifar10"),
        ("model_options={depth: 3}", "has no option 'depth'; its options are: width"),
        ("gamma=0.5", "gamma is the probability of bass='augment'"),
        ("milestones=[10, -1]", "list of non-negative integers"),
        ("augmix_severity=11", "1..10"),
        ("amp=fp8", "'amp' must be one of none, bf16, fp16"),
        ("nesterov=yes please", "must be true or false"),
        ("pad_mode=mirror", "'pad_mode' must be one of zeros, reflect"),
        ("augmentation=autoaugment", "'augmentation' must be one of crop-flip, resized-crop-flip"),
        ("selection=train", "'selection' must be one of test, val"),
        ("selection=val", "selection: val needs val_subset: N"),
        ("val_subset=100", "set selection: val or val_subset: null"),
        ("pretrained=true", "needs a timm:NAME or torchvision:NAME model; small-cnn is freqtail's own"),
        ("model_options={pretrained: true}", "with the config key pretrained (--set pretrained=true)"),
        ("channels_last=1", "'channels_last' must be true or false"),
        ("compile=fast", "'compile' must be true or false"),
        ("eps=\uff18/255", "with ASCII digits"),
        ("step_size=-0.0", "The step_size must be >= 0"),
        ("seed=9223372036854775808", "'seed' must be an integer from 0 to 9223372036854775807"),
        ("seed=1e19", "'seed' must be an integer from 0 to 9223372036854775807"),
        ("normalize={mean: [0.5, 0.5], std: [0.5, 0.5]}", "2 values per statistic (mean [0.5, 0.5]) but the"),
        (
            "normalize={mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0]}",
            "normalize': normalisation std must be positive",
        ),
        ("normalize=cifar11", "Unknown normalisation 'cifar11'"),
    ],
)
def test_bad_values_give_one_sentence(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert message in str(info.value)
    assert str(info.value).count("\n") == 0


def test_combination_rules():
    with pytest.raises(ConfigError, match="bass_branch applies to the augmix objective"):
        load_config(overrides={"objective": "pgd-at", "bass_branch": True})
    config = load_config(overrides={"objective": "augmix-bass"})
    assert config.bass_branch and config.objective_name == "augmix" and config.uses_bass_branch
    assert load_config(overrides={"bass": "augment", "gamma": 0.5}).gamma == 0.5
    assert load_config(overrides=["bass=none"]).bass is None
    assert load_config(overrides={"objective": "trades"}).beta_value == 6.0
    assert load_config(overrides={"objective": "mart"}).beta_value == 5.0
    assert load_config(overrides={"objective": "mart", "beta": 2.5}).beta_value == 2.5
    with pytest.raises(ConfigError, match="BaSS branch .* use it with bass: null, not bass: dataset"):
        load_config(overrides={"objective": "augmix-bass", "bass": "dataset"})
    with pytest.raises(ConfigError, match="pad_mode reflect applies to the crop-flip preset, but "):
        load_config(overrides={"dataset": "restricted-imagenet", "pad_mode": "reflect"})
    assert load_config(overrides={"dataset": "cifar10", "pad_mode": "reflect"}).pad_mode == "reflect"
    both = {"dataset": "restricted-imagenet", "augmentation": "crop-flip", "pad_mode": "reflect"}
    assert load_config(overrides=both).pad_mode == "reflect"
    with pytest.raises(ConfigError, match="uses flip-jitter-lighting"):
        load_config(overrides={"augmentation": "flip-jitter-lighting", "pad_mode": "reflect"})
    val = load_config(overrides={"selection": "val", "val_subset": 500})
    assert (val.selection, val.val_subset) == ("val", 500)


def test_overrides_are_read_as_yaml():
    assert parse_override("milestones=[100, 105]") == ("milestones", [100, 105])
    assert parse_override("bass=null") == ("bass", None)
    assert parse_override("lr=0.05") == ("lr", 0.05)
    assert parse_override("eps=8/255") == ("eps", "8/255")
    assert parse_override("model-options={width: 16}") == ("model_options", {"width": 16})
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("lr")
    config = load_config(overrides=["eps=4/255", "step_size=0.5/255"])
    assert config.eps_value == pytest.approx(4 / 255) and config.step_size_value == pytest.approx(0.5 / 255)


def test_yaml_round_trip_and_differences(tmp_path):
    config = load_config(
        overrides={"objective": "trades", "milestones": [3, 5], "model_options": {"width": 8}}
    )
    path = tmp_path / "c.yaml"
    path.write_text(config_to_yaml(config))
    again = load_config(path)
    assert again == config
    assert list(config.to_dict()) == config_keys()
    runtime = {
        "num_workers": 3,
        "progress": False,
        "device": "cpu",
        "channels_last": True,
        "compile": True,
        "log": "tensorboard",
    }
    assert config_differences(config, config.replace(**runtime)) == []
    assert set(RUNTIME_KEYS) == set(runtime)
    library = config.replace(pretrained=True, model="timm:resnet18", model_options={})
    assert config_differences(config, library) == ["model", "model_options", "pretrained"]
    assert config_differences(config, config.replace(lr=0.2, eps="8/255")) == [
        "lr"
    ]  # same eps, other spelling
    assert config_differences(config, config.replace(eps=0.5 / 255)) == ["eps"]


def test_schedules_by_hand():
    common = dict(lr=0.1, steps_per_epoch=10, total_steps=1100)
    piecewise = [
        learning_rate(s, schedule="piecewise", milestones=[100, 105], **common) for s in (0, 999, 1000, 1050)
    ]
    assert piecewise == pytest.approx([0.1, 0.1, 0.01, 0.001])
    cosine = [learning_rate(s, schedule="cosine", **common) for s in (0, 550, 1100)]
    assert cosine == pytest.approx([0.1, 0.05, 0.0])
    warm = learning_rate(4, schedule="constant", warmup_epochs=1, **common)
    assert warm == pytest.approx(0.1 * 5 / 10)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 1e-3),
        ("5e-4", 5e-4),
        ("1e9", 1e9),
        ("1.5E+2", 150.0),
        ("-1e-4", -1e-4),
        ("+2e1", 20.0),
        ("0.05", 0.05),
        ("8/255", "8/255"),
        ("[1e-3, 2]", [1e-3, 2]),
        ("1e", "1e"),
        ("1e-3x", "1e-3x"),
    ],
)
def test_numbers_in_exponent_form_are_numbers(text, value):
    loaded = yaml_load(text)
    assert loaded == value and type(loaded) is type(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{width:16}", {"width": 16}),
        ("{width: 16}", {"width": 16}),
        ("{width:16,norm:group}", {"width": 16, "norm": "group"}),
        ("{width:16, norm: group}", {"width": 16, "norm": "group"}),
        ("{eps:8/255, lr:1e-3}", {"eps": "8/255", "lr": 1e-3}),
        ("{url: http://x.org/a:b}", {"url": "http://x.org/a:b"}),
        ("{url:http://x.org}", {"url": "http://x.org"}),
        ("{http://x.org}", {"http://x.org": None}),  # a lone URL stays a key
        ('{"a:1"}', {"a:1": None}),  # quoted: taken as written
        ("{mean:[0.5, 0.5, 0.5], std:[0.25, 0.25, 0.25]}", {"mean": [0.5] * 3, "std": [0.25] * 3}),
        ("/data/a:b", "/data/a:b"),
    ],
)
def test_flow_mappings_with_and_without_a_space(text, value):
    assert yaml_load(text) == value


def test_numbers_and_flow_mappings_in_files_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 5e-4\nepochs: 1e2\nmodel_options: {width:8}\neps: 8/255\n")
    config = load_config(path)
    assert (config.lr, config.weight_decay, config.epochs) == (1e-3, 5e-4, 100)
    assert type(config.epochs) is int and config.model_options == {"width": 8}
    assert config.eps_value == pytest.approx(8 / 255)
    config = load_config(
        overrides=["lr=1e-3", "weight_decay=5e-4", "epochs=1e9", "milestones=[1e2, 105]", "lr_min=1.5E-5"]
    )
    assert (config.lr, config.weight_decay, config.epochs, config.lr_min) == (1e-3, 5e-4, 10**9, 1.5e-5)
    assert config.milestones == [100, 105] and type(config.epochs) is int
    assert load_config(overrides=["model_options={width:16}"]).model_options == {"width": 16}
    assert load_config(overrides=["model_options={width: 16}"]).model_options == {"width": 16}
    again = tmp_path / "again.yaml"
    again.write_text(config_to_yaml(config))
    assert load_config(again) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=1.5", "Config key 'epochs' must be an integer, not 1.5."),
        ("epochs=1e400", "Config key 'epochs' must be an integer, not inf."),
        ("lr=-1e-4", "Config key 'lr' must be positive, not -0.0001."),
        ("seed=2.5", "Config key 'seed' must be an integer, not 2.5."),
    ],
)
def test_numbers_that_do_not_fit_their_key_are_one_sentence(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "model_options: " + "[" * 5000 + "]" * 5000,  # beyond the parser's recursion limit
        "a:\n" + "".join(" " * depth + "b:\n" for depth in range(1, 3000)),  # block style, as deep
        "model_options: " + "[" * 40 + "]" * 40,  # parses, but deeper than any config goes
        "model_options: &loop {x: *loop}\n",  # an alias that contains itself
    ],
    ids=["flow", "block", "40-levels", "self-alias"],
)
def test_yaml_nested_too_deep_is_one_sentence(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"is not valid YAML \(it nests lists or mappings deeper than 32"):
        load_config(path)
    assert yaml_load("a: " + "[" * 31 + "]" * 31) == {
        "a": functools.reduce(lambda inner, _: [inner], range(30), [])
    }
