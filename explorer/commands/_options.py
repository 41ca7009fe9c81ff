"""Command-line options shared by ``explorer evaluate``, ``train``, ``sweep`` and ``map``:
the device and the crossbar (the :class:`~explorer.crossbar.CrossbarConfig` values).

Every option defaults to None ("not given"), so a command can tell what the user typed:
:func:`config_from_args` fills the documented defaults (the ``CrossbarConfig``
parameter defaults) – or, given ``base`` (the settings a checkpoint was trained for),
keeps the base's values and changes only the options typed.

The default device differs between commands on purpose, as their help texts document:
``explorer map`` reports the mapping error on a measured-like device (the AlOx/HfO2
preset), while ``evaluate``, ``train`` and ``sweep`` start from a linear 16-level device
so that the crossbar options can be studied alone. :func:`device_from_args` takes that
default as a parameter.
"""

from __future__ import annotations

import argparse
from typing import Any

from explorer.errors import InputError

DEFAULT_LEVELS = 16
"""Levels of the default (linear) device of ``evaluate``, ``train`` and ``sweep``."""
IDEAL = "ideal"
"""What ``--dac-bits ideal`` / ``--adc-bits ideal`` parse to (None, i.e. ideal, in the
configuration); kept apart from None, which means the option was not given."""
CROSSBAR_OPTIONS = ("mapping", "scheme", "scale", "tile_rows", "tile_cols", "dac_bits",
                    "adc_bits", "adc_range", "adc_percentile", "adc_fixed_range", "bit_serial",
                    "prog_sigma", "read_sigma", "stuck_at_gmin", "stuck_at_gmax", "seed")
"""CrossbarConfig parameters set by an option of the same name (``--tile-rows`` …)."""
DEVICE_OPTIONS = ("preset", "device_csv", "levels", "nonlinearity", "g_min", "g_max")
"""Device options (``--g-min``/``--g-max`` exist in ``explorer map`` only)."""


def bits_or_ideal(text: str) -> int | str:
    """argparse type: an integer number of bits, or ``ideal``/``none`` (:data:`IDEAL`)."""
    if text.strip().lower() in ("ideal", "none"):
        return IDEAL
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of bits (1 … 16) or 'ideal'") from None


def _default(name: str) -> Any:
    from explorer.crossbar import CrossbarConfig

    return CrossbarConfig.param[name].default


def _bits(value: int | None) -> str:
    return "ideal" if value is None else str(value)


def add_crossbar_arguments(parser: argparse.ArgumentParser) -> None:
    """The device and crossbar options (all default to None = not given; the help texts
    show the defaults :func:`config_from_args` fills in)."""
    from explorer.mapping import METHODS, SCALES, SCHEMES
    from explorer.tiles import ADC_RANGES

    dev = parser.add_argument_group("device")
    dev.add_argument("--preset", default=None,
                     help="device preset (Ag:a-Si, TaOx/HfOx, AlOx/HfO2, EpiRAM, ideal)")
    dev.add_argument("--device-csv", default=None, metavar="PATH",
                     help="measured conductances (CSV with a 'conductance' column, Siemens)")
    dev.add_argument("--levels", type=int, default=None,
                     help=f"programmable levels, 2 … 1024 (default: preset's or "
                          f"{DEFAULT_LEVELS})")
    dev.add_argument("--nonlinearity", type=float, default=None,
                     help="potentiation nonlinearity NL (default: preset's or 0, linear)")
    xb = parser.add_argument_group("crossbar")
    xb.add_argument("--mapping", default=None, choices=METHODS,
                    help=f"weight to level method (default {_default('mapping')})")
    xb.add_argument("--scheme", default=None, choices=SCHEMES,
                    help=f"cell scheme (default {_default('scheme')})")
    xb.add_argument("--scale", default=None, choices=SCALES,
                    help=f"weight scale (default {_default('scale')})")
    xb.add_argument("--tile-rows", type=int, default=None,
                    help=f"word lines read at once ({_default('tile_rows')})")
    xb.add_argument("--tile-cols", type=int, default=None,
                    help=f"bit lines per tile ({_default('tile_cols')})")
    xb.add_argument("--dac-bits", type=bits_or_ideal, default=None,
                    help=f"input DAC bits 1 … 16 or 'ideal' (default "
                         f"{_bits(_default('dac_bits'))})")
    xb.add_argument("--adc-bits", type=bits_or_ideal, default=None,
                    help=f"ADC bits 1 … 16 or 'ideal' (default {_bits(_default('adc_bits'))})")
    xb.add_argument("--adc-range", default=None, choices=ADC_RANGES,
                    help=f"ADC range calibration (default {_default('adc_range')})")
    xb.add_argument("--adc-percentile", type=float, default=None,
                    help=f"percentile for --adc-range percentile (default "
                         f"{_default('adc_percentile'):g})")
    xb.add_argument("--adc-fixed-range", type=float, default=None,
                    help=f"fraction of full scale for --adc-range fixed (default "
                         f"{_default('adc_fixed_range'):g})")
    xb.add_argument("--bit-serial", action=argparse.BooleanOptionalAction, default=None,
                    help="bit-serial inputs (default off)")
    xb.add_argument("--prog-sigma", type=float, default=None,
                    help=f"programming variation σ, relative (default "
                         f"{_default('prog_sigma'):g})")
    xb.add_argument("--read-sigma", type=float, default=None,
                    help=f"read noise σ, relative, per forward pass (default "
                         f"{_default('read_sigma'):g})")
    xb.add_argument("--stuck-at-gmin", type=float, default=None,
                    help=f"fraction stuck at Gmin (default {_default('stuck_at_gmin'):g})")
    xb.add_argument("--stuck-at-gmax", type=float, default=None,
                    help=f"fraction stuck at Gmax (default {_default('stuck_at_gmax'):g})")
    xb.add_argument("--seed", type=int, default=None,
                    help=f"seed of the random draws (default {_default('seed')})")


def typed_options(args: argparse.Namespace) -> list[str]:
    """The device and crossbar options given on the command line, as flags (``--adc-bits``)."""
    return [f"--{name.replace('_', '-')}" for name in (*DEVICE_OPTIONS, *CROSSBAR_OPTIONS)
            if getattr(args, name, None) is not None]


def seed_from_args(args: argparse.Namespace) -> int:
    """``--seed``, or its default."""
    return _default("seed") if args.seed is None else args.seed


def device_from_args(args: argparse.Namespace, default_preset: str | None = None,
                     base: Any = None) -> Any:
    """The DeviceModel the device options describe.

    ``--device-csv`` alone defines the device; ``--preset`` gives a preset with the typed
    ``--levels``/``--nonlinearity`` (``--g-min``/``--g-max``) on top. With no preset or
    table: ``base`` (e.g. a checkpoint's device) with the typed values changed, else the
    preset ``default_preset`` (``explorer map``: AlOx/HfO2), else a linear device of
    :data:`DEFAULT_LEVELS` levels (``evaluate``, ``train``, ``sweep``).
    """
    from explorer.device import DeviceModel

    typed = {name: getattr(args, name, None) for name in DEVICE_OPTIONS}
    if typed["device_csv"] is not None:
        given = [f"--{name.replace('_', '-')}" for name, value in typed.items()
                 if value is not None and name != "device_csv"]
        if given:
            raise InputError(f"--device-csv: the measured table defines the levels and the "
                             f"curve; do not combine it with {', '.join(given)}")
        return DeviceModel.from_csv(typed["device_csv"])
    overrides = {name: typed[name] for name in ("nonlinearity", "g_min", "g_max")
                 if typed[name] is not None}
    levels = typed["levels"]
    if typed["preset"] is not None:
        return DeviceModel.from_preset(typed["preset"], levels=levels, **overrides)
    if base is not None:
        if levels is not None:
            overrides["levels"] = levels
        if not overrides:
            return base
        values = {k: v for k, v in base.param.values().items() if k != "name"}
        return DeviceModel(**{**values, **overrides})
    if default_preset is not None:
        return DeviceModel.from_preset(default_preset, levels=levels, **overrides)
    return DeviceModel(levels=DEFAULT_LEVELS if levels is None else levels, **overrides)


def config_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """The CrossbarConfig the options describe (Param's errors name the parameter).

    Options not given take the documented defaults, or with ``base`` (a CrossbarConfig,
    e.g. the one a checkpoint was trained for) the base's values and device.
    """
    from explorer.crossbar import CrossbarConfig

    values: dict[str, Any] = {}
    if base is not None:
        values = {k: v for k, v in base.param.values().items() if k not in ("name", "device")}
    for name in CROSSBAR_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = None if name in ("dac_bits", "adc_bits") and value == IDEAL \
                else value
    device = device_from_args(args, base=None if base is None else base.device)
    cfg = CrossbarConfig(device=device, **values)
    cfg.validate()
    return cfg
