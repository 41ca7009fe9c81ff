"""The settings options of ``explorer evaluate``, ``train``, ``sweep`` and ``map``.

Generated from the settings declarations (:mod:`explorer.settings.options`): this module
only adapts them to the commands. Every option defaults to None ("not given"), so a
command can tell what the user typed: :func:`config_from_args` fills the declared
defaults – or, given ``base`` (the settings a checkpoint was trained for), keeps the
base's values and changes only the options typed.

``explorer map`` starts from a measured-like device (the AlOx/HfO2 preset) when no
device option is given, as its help says; the other commands from the declared default
device (a linear 16-level cell), so that the crossbar options can be studied alone.
"""

from __future__ import annotations

import argparse
from typing import Any

from explorer.settings.options import (  # noqa: F401  (re-exported for the commands)
    NONE,
    add_settings_arguments,
    settings_from_args,
    typed_options,
)
from explorer.settings.options import device_from_args as _device_from_args

DEFAULT_LEVELS = 16
"""Levels of the declared default device (DeviceModel's default)."""
IDEAL = NONE
"""What ``--dac-bits ideal`` / ``--adc-bits ideal`` parse to."""


def add_crossbar_arguments(parser: argparse.ArgumentParser, config_file: bool = True) -> None:
    """The device and crossbar options (and ``--config FILE``), without the workload's."""
    add_settings_arguments(parser, workload=False, config_file=config_file)


def seed_from_args(args: argparse.Namespace) -> int:
    """``--seed``, or its declared default."""
    from explorer.settings import NoiseSettings

    return NoiseSettings.param["seed"].default if args.seed is None else args.seed


def device_from_args(args: argparse.Namespace, default_preset: str | None = None,
                     base: Any = None) -> Any:
    """The DeviceModel the device options describe (see
    :func:`explorer.settings.options.device_from_args`)."""
    return _device_from_args(args, base=base, default_preset=default_preset)


def config_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """The CrossbarConfig the options (and ``--config FILE``) describe, on top of ``base``
    (a CrossbarConfig, e.g. a checkpoint's) or the declared defaults."""
    from explorer.settings import Settings

    start = None if base is None else Settings(crossbar=base)
    return settings_from_args(args, base=start).crossbar
