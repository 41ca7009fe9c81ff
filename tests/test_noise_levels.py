"""Measured per-level statistics (DESIGN.md §3): σ(G) per level from a CSV drives the
programming error; validation names the row and column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel
from explorer.device_csv import parse_device_csv
from explorer.errors import InputError
from explorer.nonideal import NonIdealities, make_generator

STD_CSV = b"conductance_uS,conductance_std_uS\n1.0,0.05\n4.0,0.2\n2.0,0.1\n8.0,0.4\n"


def test_std_column_gives_one_sigma_per_level_in_level_order():
    dev = DeviceModel.from_csv(STD_CSV)
    np.testing.assert_allclose(dev.conductances(), [1e-6, 2e-6, 4e-6, 8e-6])
    np.testing.assert_allclose(dev.level_std, [0.05e-6, 0.1e-6, 0.2e-6, 0.4e-6])


def test_repeated_measurements_grouped_by_level():
    rng = np.random.default_rng(0)
    rows, expected_mean, expected_std = ["level,conductance"], [], []
    for level, mean in enumerate([1e-6, 3e-6, 6e-6]):
        values = mean + 0.1 * mean * rng.standard_normal(7)
        rows += [f"{level},{float(v)!r}" for v in values]
        expected_mean.append(np.mean(values))
        expected_std.append(np.std(values, ddof=1))
    dev = DeviceModel.from_csv("\n".join(rows).encode())
    np.testing.assert_allclose(dev.conductances(), expected_mean, rtol=1e-12)
    np.testing.assert_allclose(dev.level_std, expected_std, rtol=1e-12)


@pytest.mark.parametrize(("text", "message"), [
    (b"conductance,conductance_std\n1e-6,1e-8\n2e-6,-1e-8\n",
     r"row 3, column 'conductance_std': '-1e-8' must be >= 0"),
    (b"conductance,conductance_std\n1e-6,1e-8\n2e-6,\n",
     r"row 3, column 'conductance_std': empty cell"),
    (b"conductance,conductance_std\n1e-6,1e-8\n1e-6,2e-8\n3e-6,1e-8\n",
     r"rows 2 and 3, column 'conductance': two levels with the same conductance"),
    (b"level,conductance\n0,1e-6\n0,1.1e-6\n1,2e-6\n",
     r"row 4, column 'level': level 1 has 1 measurement"),
    (b"level,conductance\n0,1e-6\n0.5,1.1e-6\n",
     r"row 3, column 'level': 0.5 is not an integer level label"),
    (b"level,conductance,conductance_std\n0,1e-6,0\n",
     r"per-level statistics come from one column"),
])
def test_bad_statistics_name_the_row_and_column(text, message):
    with pytest.raises(InputError, match=message):
        parse_device_csv(text)


def test_a_sigma_table_with_fewer_rows_than_levels_is_refused():
    with pytest.raises(InputError, match=r"level_std: 3 value\(s\) for 16 levels"):
        DeviceModel(levels=16, level_std=np.full(3, 1e-8))
    dev = DeviceModel(levels=4, level_std=np.full(4, 1e-8))
    with pytest.raises(InputError, match=r"level_std: 4 value\(s\) for 8 levels"):
        dev.levels = 8
    assert dev.levels == 4  # the change is undone


def test_measured_sigma_drives_the_programming_error():
    """A cell programmed to level k spreads with that level's measured σ (Monte Carlo)."""
    dev = DeviceModel.from_csv(STD_CSV)
    ni = NonIdealities(prog_model="measured")
    for level, sigma in enumerate(dev.level_std):
        target = torch.full((20_000,), float(dev.conductances()[level]), dtype=torch.float64)
        out = ni.program(target, dev, make_generator(level))
        assert float(out.std()) == pytest.approx(sigma, rel=0.03)
        assert float(out.mean()) == pytest.approx(float(target[0]), abs=4 * sigma / 141)


def test_measured_model_needs_measured_statistics(cli, capsys, tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with pytest.raises(InputError, match="prog_model: 'measured' needs a device"):
        to_crossbar(model, CrossbarConfig(prog_model="measured", dac_bits=None))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"conductance,conductance_std\n1e-6,1e-8\n2e-6,-1e-8\n")
    code, _out, err = cli(capsys, "evaluate", "--limit", "20", "--device-csv", str(bad))
    assert code == 2 and "row 3, column 'conductance_std'" in err
    assert len(err.strip().splitlines()) == 1


def test_settings_file_keeps_the_measured_sigma():
    from explorer.settings import Settings

    settings = Settings()
    settings.crossbar.device = DeviceModel.from_csv(STD_CSV)
    again = Settings.from_dict(settings.to_dict())
    np.testing.assert_array_equal(again.crossbar.device.level_std,
                                  settings.crossbar.device.level_std)
