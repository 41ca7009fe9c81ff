"""From a trained checkpoint to the crossbar simulator.

A checkpoint written by ``explorer train`` (:func:`explorer.training.save_checkpoint`)
records its method and the hardware it was trained for (``hardware``: the
:class:`~explorer.crossbar.CrossbarConfig` values and the device's curve), the plain
network with its effective weights (``state_dict``, loadable by
:func:`explorer.models.load_pretrained`), the full training network (``train_state``:
latent weights and quantizer parameters) and what the simulator needs (``quant``):

* ``codebooks`` – per layer, the L weight values of ``gq``/``uq``/``rq``: deployed with
  the ``generalized`` mapping and that codebook (:func:`explorer.mapping.map_weights`
  with ``codebook=``), each value written by write-verify;
* ``ranges`` – per layer, the learned ``dac_range`` / ``adc_range`` of ``rq``: they
  replace the calibrated DAC/ADC ranges.

:func:`crossbar_config_from_checkpoint` rebuilds the configuration,
:func:`to_crossbar_from_checkpoint` the analog network with both applied, and
:func:`load_trained` the training-time network (eval mode) that reproduces the
recorded ``test_accuracy`` exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from explorer.crossbar import CrossbarConfig, CrossbarModel, calibrate, to_crossbar
from explorer.device import DeviceModel
from explorer.errors import CheckpointMismatchError, InputError
from explorer.mapping import map_weights
from explorer.models import build_model, load_state_checked, read_checkpoint
from explorer.qlayers import CODEBOOK_METHODS, prepare_model

Checkpoint = dict[str, Any]


# ----------------------------------------------------------------------------- hardware
def device_spec(device: DeviceModel) -> dict[str, Any]:
    """Plain data (JSON-ready) that rebuilds ``device`` with :func:`device_from_spec`."""
    spec: dict[str, Any] = {"source": device.source, "preset": device.preset,
                            "g_min": float(device.g_min), "g_max": float(device.g_max),
                            "levels": int(device.levels),
                            "nonlinearity": float(device.nonlinearity),
                            "nonlinearity_ltd": float(device.nonlinearity_ltd),
                            "c2c_sigma": float(device.c2c_sigma)}
    if device.source == "table":
        spec["table"] = [float(g) for g in np.asarray(device.table)]
    elif device.source == "points":
        spec["points_pulses"] = [float(p) for p in np.asarray(device.points_pulses)]
        spec["points_g"] = [float(g) for g in np.asarray(device.points_g)]
    return spec


def device_from_spec(spec: dict[str, Any]) -> DeviceModel:
    """The :class:`DeviceModel` a :func:`device_spec` describes."""
    common = {"nonlinearity_ltd": spec.get("nonlinearity_ltd", 0.0),
              "c2c_sigma": spec.get("c2c_sigma", 0.0), "preset": spec.get("preset", "")}
    source = spec.get("source", "model")
    if source == "table":
        return DeviceModel.from_table(spec["table"], **common)
    if source == "points":
        dev = DeviceModel.from_points(spec["points_pulses"], spec["points_g"],
                                      levels=int(spec["levels"]), **common)
        dev.param.update(g_min=spec["g_min"], g_max=spec["g_max"])
        return dev
    return DeviceModel(g_min=spec["g_min"], g_max=spec["g_max"], levels=int(spec["levels"]),
                       nonlinearity=spec["nonlinearity"], **common)


def hardware_spec(cfg: CrossbarConfig) -> dict[str, Any]:
    """Plain data (JSON-ready) of a crossbar configuration, device included."""
    out = {name: getattr(cfg, name) for name in cfg.param if name not in ("name", "device")}
    out["device"] = device_spec(cfg.device)
    return out


def config_from_spec(spec: dict[str, Any], **overrides: Any) -> CrossbarConfig:
    """The :class:`CrossbarConfig` of a :func:`hardware_spec` (with ``overrides``)."""
    values = {k: v for k, v in spec.items() if k != "device"}
    known = set(CrossbarConfig.param) - {"name", "device"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointMismatchError(f"hardware: unknown crossbar settings {unknown}")
    values.update(overrides)
    device = values.pop("device", None) or device_from_spec(spec["device"])
    cfg = CrossbarConfig(device=device, **values)
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------- checkpoints
def _as_checkpoint(ckpt: Checkpoint | str | Path) -> Checkpoint:
    return ckpt if isinstance(ckpt, dict) else read_checkpoint(ckpt)


def crossbar_config_from_checkpoint(ckpt: Checkpoint | str | Path,
                                    **overrides: Any) -> CrossbarConfig:
    """The crossbar a checkpoint was trained for; codebook methods (``gq``, ``uq``,
    ``rq``) get the ``generalized`` mapping. ``overrides``: CrossbarConfig values to
    change (e.g. ``prog_sigma=0.1``, ``device=DeviceModel(...)``)."""
    ckpt = _as_checkpoint(ckpt)
    spec = ckpt.get("hardware")
    if spec is None:  # float checkpoints from before methods existed: default hardware
        return CrossbarConfig(**overrides)
    if ckpt.get("method") in CODEBOOK_METHODS:
        overrides = {"mapping": "generalized", **overrides}
    return config_from_spec(spec, **overrides)


def plain_model(ckpt: Checkpoint | str | Path) -> nn.Module:
    """The ordinary network with the checkpoint's effective weights, eval mode."""
    ckpt = _as_checkpoint(ckpt)
    arch = ckpt.get("architecture")
    if arch is None:
        raise InputError("model: the checkpoint does not say its architecture")
    model = build_model(arch)
    load_state_checked(model, ckpt["state_dict"])
    return model.eval()


def load_trained(ckpt: Checkpoint | str | Path) -> nn.Module:
    """The network as trained (quantizers included), eval mode: deterministic, and its
    accuracy on the test split is the checkpoint's ``test_accuracy``."""
    ckpt = _as_checkpoint(ckpt)
    method = ckpt.get("method", "float")
    if method == "float" or "train_state" not in ckpt:
        return plain_model(ckpt)
    model = prepare_model(build_model(ckpt["architecture"]), method,
                          config_from_spec(ckpt["hardware"]))
    load_state_checked(model, ckpt["train_state"], source="checkpoint (train_state)")
    return model.eval()


def to_crossbar_from_checkpoint(ckpt: Checkpoint | str | Path, calibration: Tensor | None,
                                cfg: CrossbarConfig | None = None, trial: int = 0,
                                learned_ranges: bool = True) -> CrossbarModel:
    """The checkpoint's network on its crossbar (or on ``cfg``), learned settings applied.

    Layers with a codebook are mapped with ``generalized`` and that codebook when the
    configuration's mapping is ``generalized``; with ``learned_ranges`` the learned DAC/ADC
    ranges replace the calibrated ones (for layers and converters that learned them).
    """
    ckpt = _as_checkpoint(ckpt)
    cfg = crossbar_config_from_checkpoint(ckpt) if cfg is None else cfg
    analog = to_crossbar(plain_model(ckpt), cfg, calibration=calibration, trial=trial)
    quant = ckpt.get("quant", {})
    books = quant.get("codebooks", {}) if cfg.mapping == "generalized" else {}
    layers = dict(analog.analog_layers())
    if books:
        for name, codebook in books.items():
            layer = layers[name]
            layer.mapping = map_weights(layer.mapping.w, cfg.device, method="generalized",
                                        scheme=cfg.scheme, scale=cfg.scale, codebook=codebook)
        if calibration is not None:
            calibrate(analog, calibration)
    if learned_ranges:
        for name, ranges in quant.get("ranges", {}).items():
            layer = layers[name]
            if ranges.get("dac_range") is not None and cfg.dac_bits is not None:
                layer.dac_range.fill_(float(ranges["dac_range"]))
            if ranges.get("adc_range") is not None and cfg.adc_bits is not None:
                layer.adc_range.fill_(float(ranges["adc_range"]))
    analog.reprogram(trial)  # installs the (re)mapped cells and drops cached tiles
    return analog


__all__ = ["config_from_spec", "crossbar_config_from_checkpoint", "device_from_spec",
           "device_spec", "hardware_spec", "load_trained", "plain_model",
           "to_crossbar_from_checkpoint"]
