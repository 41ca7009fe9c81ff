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
recorded ``test_accuracy`` exactly. :class:`CheckpointBuilder` does what
:func:`to_crossbar_from_checkpoint` does for any network and configuration, as the
``analog_builder`` of :func:`explorer.evaluate.evaluate`: ``explorer evaluate`` and
``explorer sweep`` build a checkpoint's crossbar with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from explorer.crossbar import CrossbarConfig, CrossbarModel, to_crossbar
from explorer.device import DeviceModel
from explorer.errors import CheckpointMismatchError, InputError
from explorer.models import analog_layers, build_model, load_state_checked, read_checkpoint
from explorer.qlayers import CODEBOOK_METHODS, prepare_model
from explorer.settings import Settings, WorkloadSettings, device_from_dict, device_to_dict

Checkpoint = dict[str, Any]


# ----------------------------------------------------------------------------- hardware
def device_spec(device: DeviceModel) -> dict[str, Any]:
    """Plain data (JSON-ready) that rebuilds ``device`` with :func:`device_from_spec` (the
    settings file's ``device`` section)."""
    return device_to_dict(device)


def device_from_spec(spec: dict[str, Any]) -> DeviceModel:
    """The :class:`DeviceModel` a :func:`device_spec` describes."""
    return device_from_dict(spec)


def hardware_spec(cfg: CrossbarConfig) -> dict[str, Any]:
    """A checkpoint's hardware record: the settings file's form (versioned) of the crossbar,
    device included, without the workload."""
    record = Settings(crossbar=cfg).to_dict()
    record.pop(WorkloadSettings.section)
    return record


def config_from_spec(spec: dict[str, Any], **overrides: Any) -> CrossbarConfig:
    """The :class:`CrossbarConfig` of a :func:`hardware_spec` (with ``overrides``); older
    flat records are migrated. Bad records raise :class:`CheckpointMismatchError`."""
    try:
        cfg = Settings.from_dict(spec).crossbar
    except InputError as exc:
        raise CheckpointMismatchError(
            f"model: the checkpoint's hardware record is malformed ({exc})") from None
    if overrides:
        values = {k: v for k, v in cfg.param.values().items() if k != "name"}
        cfg = CrossbarConfig(**{**values, **overrides})
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
    if not isinstance(spec, dict) or not isinstance(spec.get("device"), dict):
        raise CheckpointMismatchError(
            "model: the checkpoint's hardware record is malformed (expected the crossbar "
            "settings with a 'device' record, as `explorer train` writes them)")
    missing = [key for key in ("source", "levels", "g_min", "g_max") if key not in spec["device"]]
    if missing:
        raise CheckpointMismatchError(
            f"model: the checkpoint's hardware record is malformed (missing {missing[0]!r})")
    try:
        return config_from_spec(spec, **overrides)
    except CheckpointMismatchError:
        raise
    except (ValueError, TypeError, KeyError) as exc:  # Param bounds, wrong types, missing keys
        detail = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else \
            str(exc).splitlines()[0]
        raise CheckpointMismatchError(
            f"model: the checkpoint's hardware record is malformed ({detail})") from None


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
    builder = CheckpointBuilder.from_checkpoint(ckpt, learned_ranges=learned_ranges)
    return builder(plain_model(ckpt), cfg, calibration, trial=trial)


def _quant_record(ckpt: Checkpoint) -> tuple[dict[str, Tensor], dict[str, dict[str, float]]]:
    """The checkpoint's codebooks and learned ranges, checked (CheckpointMismatchError)."""
    quant = ckpt.get("quant") or {}
    if not isinstance(quant, dict):
        raise CheckpointMismatchError("model: the checkpoint's quant record is malformed "
                                      "(expected codebooks and ranges by layer)")
    books, ranges = quant.get("codebooks") or {}, quant.get("ranges") or {}
    if not isinstance(books, dict) or not isinstance(ranges, dict):
        raise CheckpointMismatchError("model: the checkpoint's quant record is malformed "
                                      "(codebooks and ranges must be keyed by layer name)")
    out_books = {}
    for name, book in books.items():
        try:
            values = torch.as_tensor(book, dtype=torch.float32).flatten()
        except (TypeError, ValueError, RuntimeError):
            values = torch.empty(0)
        if values.numel() < 1 or not torch.isfinite(values).all():
            raise CheckpointMismatchError(
                f"model: the checkpoint's codebook of layer {name!r} is not a list of finite "
                "weight values")
        out_books[str(name)] = values
    out_ranges: dict[str, dict[str, float]] = {}
    for name, entry in ranges.items():
        if not isinstance(entry, dict):
            raise CheckpointMismatchError(
                f"model: the checkpoint's learned ranges of layer {name!r} are malformed")
        kept = {}
        for key in ("dac_range", "adc_range"):
            value = entry.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not np.isfinite(value) or value <= 0:
                raise CheckpointMismatchError(
                    f"model: the checkpoint's learned {key} of layer {name!r} must be a "
                    f"positive number, got {value!r}")
            kept[key] = float(value)
        out_ranges[str(name)] = kept
    return out_books, out_ranges


@dataclass(frozen=True, eq=False)
class CheckpointBuilder:
    """Builds the crossbar of a network with a checkpoint's learned settings: per-layer
    ``codebooks`` (deployed with the ``generalized`` mapping when the configuration's
    mapping is ``generalized``) and learned DAC/ADC ``ranges`` (replacing the calibrated
    ones where that converter is not ideal, when ``learned_ranges``).

    Plain data (picklable, so Dask workers can take it); called as
    ``builder(model, cfg, calibration)`` like :func:`explorer.crossbar.to_crossbar`, it
    is the ``analog_builder`` of :func:`explorer.evaluate.evaluate`.
    """

    method: str = "float"
    codebooks: dict[str, Tensor] = field(default_factory=dict)
    ranges: dict[str, dict[str, float]] = field(default_factory=dict)
    learned_ranges: bool = True

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint | str | Path,
                        learned_ranges: bool = True) -> CheckpointBuilder:
        """The learned settings of a checkpoint (none for a float one); a malformed
        ``quant`` record raises :class:`CheckpointMismatchError`."""
        ckpt = _as_checkpoint(ckpt)
        books, ranges = _quant_record(ckpt)
        return cls(method=str(ckpt.get("method", "float")), codebooks=books, ranges=ranges,
                   learned_ranges=learned_ranges)

    def fingerprint(self) -> str:
        """sha256 (hex) of the learned settings: equal settings, equal fingerprints."""
        h = hashlib.sha256(json.dumps({"method": self.method, "ranges": self.ranges,
                                       "learned_ranges": self.learned_ranges},
                                      sort_keys=True).encode())
        for name in sorted(self.codebooks):
            h.update(name.encode())
            h.update(self.codebooks[name].numpy().tobytes())
        return h.hexdigest()

    def applied(self, cfg: CrossbarConfig) -> dict[str, int]:
        """How many layers get a codebook and how many a learned range on ``cfg``."""
        books = len(self.codebooks) if cfg.mapping == "generalized" else 0
        ranges = 0
        if self.learned_ranges:
            ranges = sum(1 for entry in self.ranges.values()
                         if ("dac_range" in entry and cfg.dac_bits is not None)
                         or ("adc_range" in entry and cfg.adc_bits is not None))
        return {"codebooks": books, "learned_ranges": ranges}

    def check(self, model: nn.Module) -> None:
        """Raise :class:`CheckpointMismatchError` unless every layer the learned settings
        name is an analog layer of ``model``."""
        unknown = sorted((set(self.codebooks) | set(self.ranges))
                         - {name for name, _ in analog_layers(model)})
        if unknown:
            raise CheckpointMismatchError(
                f"model: the checkpoint's learned settings name layers the network does not "
                f"have: {unknown[:3]}")

    def __call__(self, model: nn.Module, cfg: CrossbarConfig, calibration: Tensor | None,
                 trial: int = 0) -> CrossbarModel:
        """``to_crossbar(model, cfg, calibration, trial)`` with the learned settings applied:
        the codebooks written by the ``generalized`` mapping, the learned ranges replacing
        the calibrated ones."""
        self.check(model)
        analog = to_crossbar(model, cfg, calibration=calibration, trial=trial,
                             codebooks=self.codebooks)
        layers = dict(analog.analog_layers())
        if self.learned_ranges:
            for name, entry in self.ranges.items():
                layer = layers[name]
                if "dac_range" in entry and cfg.dac_bits is not None:
                    layer.dac_range.fill_(entry["dac_range"])
                if "adc_range" in entry and cfg.adc_bits is not None:
                    layer.adc_range.fill_(entry["adc_range"])
        analog.reprogram(trial)  # drops tiles cached with the calibrated ranges
        return analog


def checkpoint_settings(ckpt: Checkpoint | str | Path) -> CheckpointBuilder | None:
    """The learned settings of a checkpoint written by ``explorer train`` for a crossbar
    (one with a ``hardware`` record), else None (a float or bare checkpoint)."""
    ckpt = _as_checkpoint(ckpt)
    if ckpt.get("hardware") is None:
        return None
    return CheckpointBuilder.from_checkpoint(ckpt)


__all__ = ["CheckpointBuilder", "checkpoint_settings", "config_from_spec",
           "crossbar_config_from_checkpoint", "device_from_spec", "device_spec",
           "hardware_spec", "load_trained", "plain_model", "to_crossbar_from_checkpoint"]
