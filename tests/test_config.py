import pytest

from mealrec.config import TrainConfig, build_dataclass, resolve_run_config
from mealrec.data import dataset_spec
from mealrec.models import get_model_class, model_names
from mealrec.utils import MealRecError


def test_unknown_key_is_an_error_listing_valid_keys():
    with pytest.raises(MealRecError, match=r"f\.yaml: unknown key 'lrate'.*valid keys: .*lr"):
        build_dataclass(TrainConfig, {"lrate": 0.1}, "f.yaml")


def test_wrong_type_is_an_error():
    with pytest.raises(MealRecError, match=r"key 'epochs' must be of type int, got '10'"):
        build_dataclass(TrainConfig, {"epochs": "10"}, "f.yaml")
    with pytest.raises(MealRecError, match="must be of type int"):
        build_dataclass(TrainConfig, {"epochs": True}, "f.yaml")
    assert build_dataclass(TrainConfig, {"lr": 1}, "f.yaml").lr == 1.0  # ints are fine for floats


def test_precedence_and_user_file(tmp_path):
    cls = get_model_class("sasrec")
    spec = dataset_spec("synthetic-tiny")
    user = tmp_path / "u.yaml"
    user.write_text("train:\n  lr: 0.01\nmodel:\n  hidden_dropout: 0.2\n")
    run = resolve_run_config(
        "sasrec", "synthetic-tiny", cls,
        dataset_overrides={"train": spec.train, "model_overrides": spec.model_overrides},
        user_file=user, train_overrides={"epochs": 3, "seed": None},
    )
    assert run.train.eval_batch_size == 256  # from the dataset file
    assert run.train.lr == 0.01 and run.model_config.hidden_dropout == 0.2  # user file
    assert run.train.epochs == 3 and run.train.seed == 2020  # flags; None leaves the default
    assert run.model_config.hidden_size == 64  # model file / paper


def test_user_file_errors(tmp_path):
    cls = get_model_class("sasrec")
    bad = tmp_path / "b.yaml"
    bad.write_text("training:\n  lr: 0.1\n")
    with pytest.raises(MealRecError, match="unknown top-level key 'training'"):
        resolve_run_config("sasrec", "synthetic-tiny", cls, user_file=bad)
    bad.write_text("model:\n  hidden: 32\n")
    with pytest.raises(MealRecError, match=r"b\.yaml \[model\]: unknown key 'hidden'"):
        resolve_run_config("sasrec", "synthetic-tiny", cls, user_file=bad)
    bad.write_text("train: [1, 2\n")
    with pytest.raises(MealRecError, match="not valid YAML"):
        resolve_run_config("sasrec", "synthetic-tiny", cls, user_file=bad)


def test_unknown_model_lists_valid_names():
    with pytest.raises(MealRecError, match="unknown model 'sasrek'; valid names: .*sasrec"):
        get_model_class("sasrek")
    assert "sasrec" in model_names()


def test_every_shipped_config_file_is_valid():
    from mealrec.config import CONFIG_ROOT, load_yaml, replace_checked
    from mealrec.data import _source_params, dataset_names

    for name in dataset_names():
        spec = dataset_spec(name)
        _source_params(name, spec)
        build_dataclass(TrainConfig, spec.train, name)
    for path in (CONFIG_ROOT / "models").glob("*.yaml"):
        cls = get_model_class(path.stem)
        replace_checked(cls.Config(), load_yaml(path), str(path))
