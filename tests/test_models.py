"""Network architectures and checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from explorer.errors import CheckpointMismatchError, InputError
from explorer.models import MODELS, analog_layers, build_model, load_pretrained, read_checkpoint


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_give_logits_for_their_input_shape(name):
    model = build_model(name).eval()
    logits = model(torch.rand(3, *MODELS[name].input_shape))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()


def test_lenet5_has_the_classic_layer_sizes():
    layers = dict(analog_layers(build_model("lenet5")))
    shapes = {name: tuple(m.weight.shape) for name, m in layers.items()}
    assert shapes == {"conv1": (6, 1, 5, 5), "conv2": (16, 6, 5, 5), "fc1": (120, 400),
                      "fc2": (84, 120), "fc3": (10, 84)}


def test_resnet20_has_twenty_weight_layers():
    assert len(analog_layers(build_model("resnet20"))) == 20  # 19 conv + 1 fc


def test_unknown_architecture_names_the_choices():
    with pytest.raises(InputError, match=r"model: unknown architecture 'alexnet'.*lenet5"):
        build_model("alexnet")


def test_checkpoint_of_another_model_names_the_mismatch(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"architecture": "lenet5", "state_dict": build_model("resnet20").state_dict()},
               path)
    with pytest.raises(CheckpointMismatchError, match=r"does not fit LeNet5.*missing: conv1"):
        load_pretrained(str(path))


def test_checkpoint_with_wrong_shapes_names_the_tensor(tmp_path):
    state = build_model("lenet5").state_dict()
    state["fc3.weight"] = torch.zeros(5, 84)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=r"fc3.weight \(5, 84\) vs \(10, 84\)"):
        load_pretrained(f"lenet5:{path}")


def test_truncated_checkpoint_is_reported_not_raised_deep(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(build_model("lenet5").state_dict(), path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointMismatchError, match="not a readable torch checkpoint"):
        read_checkpoint(path)


def test_checkpoint_round_trips_exactly(tmp_path):
    model = build_model("lenet5").eval()
    path = tmp_path / "ok.pt"
    torch.save({"architecture": "lenet5", "state_dict": model.state_dict()}, path)
    loaded = load_pretrained(str(path))
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
