"""The example scripts of examples/README.md end with the figures it promises (the rigid
registration one is tests/test_training.py's main-job test)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    sys.path.insert(0, str(ROOT / "examples"))
    spec = importlib.util.spec_from_file_location(f"{name}_example", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figures(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"(-?[0-9.]+(?:e[+-]?[0-9]+)?) (?:rad|m)\b", line)]


def test_pga_pose_keeps_a_motor_and_reaches_the_kabsch_optimum(tmp_path, capsys):
    assert script("pga_pose").main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "certificate: the update M <- M exp(B), B a bivector, keeps M a normalised Motor: proven" in out
    motor = [ln for ln in out if ln.startswith("fitted motor after training")][0]
    assert float(motor.rsplit("=", 1)[1]) < 1e-12
    rotation, translation = figures([ln for ln in out if ln.startswith("fitted vs Kabsch optimum")][0])
    assert rotation < 1e-6 and translation < 1e-6


def test_signed_volume_flips_sign_under_reflections_and_not_under_rotations(capsys):
    """The equivariance figure on 1,000 random rotations and 1,000 random reflections, for the
    model as initialised (it is a property of the architecture; the training run is the script's
    own, about a minute and a half of compilation the first time)."""
    assert script("signed_volume").main(["--steps", "0", "--transforms", "1000", "--test", "1000"]) == 0
    out = capsys.readouterr().out
    rot, ref = (float(v) for v in re.findall(r"for (?:rotations|reflections) ([0-9.e+-]+)", out))
    assert rot <= 1e-9 and ref <= 1e-9
    assert re.search(r"test MSE [0-9.e+-]+", out)


def test_signed_volume_mlp_has_the_models_parameter_count():
    widths = script("signed_volume").mlp_widths(128)
    a, b = widths
    assert 9 * a + a + a * b + b + b + 1 == 128


def test_cgenn_volume_is_equivariant_and_learns(capsys):
    """O3CGMLP at the paper's 96 channels: its certificate, a short training run that lowers the
    loss, and the equivariance figure on 200 random rotations and reflections (the full run is the
    script's own: 1,000 steps on 65,536 samples)."""
    assert script("cgenn_volume").main(["--train", "2048", "--test", "1024", "--steps", "30",
                                        "--transforms", "200"]) == 0
    out = capsys.readouterr().out
    assert "certificate: 5 of 5 grade and unit claims proven, among them volume : Pseudoscalar[m^3]: proven" in out
    assert ("certificate: volume is O(3)-equivariant: f(g . x) = g . f(x): it changes sign under reflections and is "
            "invariant under the rest: proven") in out
    first, last = (float(v) for v in re.search(r"training loss ([0-9.e+-]+) -> ([0-9.e+-]+)", out).groups())
    assert last < first
    rot, ref = (float(v) for v in re.findall(r"for (?:rotations|reflections) ([0-9.e+-]+)", out))
    assert rot <= 1e-9 and ref <= 1e-9


def test_pair_energy_forces_match_differences_and_turn_with_the_atoms(capsys):
    """The forces minus the energy's input gradient: against central differences and under 100
    random rotations, reflections and translations."""
    assert script("pair_energy").main(["--samples", "512"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    values = dict(kv.split("=") for kv in last.split())
    assert float(values["force_fd_err"]) < 1e-6
    assert float(values["force_equivariance_err"]) < 1e-9
    assert float(values["fit_rmse"]) < 1e-3
