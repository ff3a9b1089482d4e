"""Tests for simgen.rain (ITU-R P.838-3) against itur 0.4.0 and the spec's reference table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simgen import rain
from simgen.errors import RainModelError, SimgenError


@pytest.fixture(scope="module")
def itu838():
    """itur's P.838 module, pinned to version 3 (P.838-3) for the duration of the tests."""
    pytest.importorskip("itur")
    from itur.models import itu838

    previous = itu838.get_version()
    itu838.change_version(3)
    assert itu838.get_version() == 3
    yield itu838
    itu838.change_version(previous)


def _points() -> list[tuple[float, float, float, float]]:
    """(freq GHz, rain mm/h, elevation deg, tilt deg): the spec's frequencies plus random ones."""
    rng = np.random.default_rng(838)
    pts = [
        (f, r, el, tau)
        for f in (3.5, 28.0, 60.0)
        for r, el, tau in ((10.0, 0.0, 0.0), (50.0, 30.0, 45.0), (90.0, 90.0, 90.0))
    ]
    for _ in range(60):
        f = float(10 ** rng.uniform(0.0, 2.0))  # 1..100 GHz, log-uniform
        r = float(rng.uniform(0.0, 150.0))
        el = float(rng.uniform(0.0, 90.0))
        tau = float(rng.choice([0.0, 45.0, 90.0, rng.uniform(0.0, 90.0)]))
        pts.append((f, r, el, tau))
    pts += [(1.0, 150.0, 0.0, 0.0), (100.0, 150.0, 0.0, 90.0), (60.0, 0.0, 10.0, 0.0)]
    return pts


POINTS = _points()


def test_matches_itur(itu838):
    assert len(POINTS) >= 50
    f, r, el, tau = (np.array(c) for c in zip(*POINTS, strict=True))
    # itur's vectorization excludes the elevation argument (np.vectorize(excluded=[1])) and
    # stacks (k, alpha) per point, so its array results are mis-shaped: call it per point.
    ref = np.array(
        [
            [*itu838.rain_specific_attenuation_coefficients(fi, eli, taui)]
            + [itu838.rain_specific_attenuation(ri, fi, eli, taui).value]
            for fi, ri, eli, taui in POINTS
        ],
        dtype=float,
    )
    k, alpha = rain.coefficients(f, np.deg2rad(el), tau)
    gamma = rain.specific_attenuation(f, r, np.deg2rad(el), tau)
    np.testing.assert_allclose(k, ref[:, 0], rtol=1e-6, atol=0)
    np.testing.assert_allclose(alpha, ref[:, 1], rtol=1e-6, atol=0)
    np.testing.assert_allclose(gamma, ref[:, 2], rtol=1e-6, atol=0)


# (freq GHz, tilt deg, k, alpha, gamma at 10/50/90 mm/h), horizontal path, as printed in
# the spec section 8; compared within half a unit of the last printed digit.
REFERENCE = [
    (3.5, 0.0, "0.00012", "1.41891", ("0.0030", "0.0297", "0.0685")),
    (3.5, 90.0, "0.00023", "1.13866", None),
    (28.0, 0.0, "0.20509", "0.96788", ("1.905", "9.044", "15.97")),
    (28.0, 90.0, "0.19645", "0.92767", ("1.663", "7.402", "12.77")),
    (60.0, 0.0, "0.86061", "0.76563", ("5.017", "17.20", "26.98")),
    (60.0, 90.0, "0.85152", "0.74856", ("4.773", "15.92", "24.72")),
]


def _assert_rounded(value: float, printed: str) -> None:
    decimals = len(printed.split(".")[1])
    assert abs(value - float(printed)) <= 0.5 * 10.0**-decimals + 1e-12, (value, printed)


@pytest.mark.parametrize(("freq", "tilt", "k_ref", "alpha_ref", "gammas"), REFERENCE)
def test_reference_table(freq, tilt, k_ref, alpha_ref, gammas):
    k, alpha = rain.coefficients(freq, 0.0, tilt)
    _assert_rounded(float(k), k_ref)
    _assert_rounded(float(alpha), alpha_ref)
    if gammas is not None:
        gamma = rain.specific_attenuation(freq, [10.0, 50.0, 90.0], 0.0, tilt)
        for value, printed in zip(gamma, gammas, strict=True):
            _assert_rounded(float(value), printed)


def test_broadcasting_matches_pointwise():
    f = np.array([3.5, 28.0, 60.0])[:, None, None]
    r = np.array([0.0, 25.0])[None, :, None]
    el = np.deg2rad([0.0, 45.0, 90.0, 10.0])
    gamma = rain.specific_attenuation(f, r, el, 45.0)
    assert gamma.shape == (3, 2, 4)
    assert gamma.dtype == np.float64
    for idx in np.ndindex(gamma.shape):
        i, j, m = idx
        assert gamma[idx] == rain.specific_attenuation(f[i, 0, 0], r[0, j, 0], el[m], 45.0)
    k, alpha = rain.coefficients(28.0, el, [[0.0], [90.0]])
    assert k.shape == alpha.shape == (2, 4)


def test_circular_polarization_is_elevation_independent_mean():
    k, _ = rain.coefficients(28.0, np.deg2rad([0.0, 30.0, 90.0]), 45.0)
    k_h, _ = rain.coefficients(28.0, 0.0, 0.0)
    k_v, _ = rain.coefficients(28.0, 0.0, 90.0)
    np.testing.assert_allclose(k, (k_h + k_v) / 2, rtol=1e-14)


def test_zero_rain_is_exactly_lossless():
    gamma = rain.specific_attenuation([3.5, 28.0, 60.0, 1000.0], 0.0, 0.3, 17.0)
    assert np.all(gamma == 0.0)
    assert np.all(rain.amplitude_factor(gamma, [0.0, 1.0, 1e3, 1e6]) == 1.0)
    assert rain.amplitude_factor(0.0, 123.0) == 1.0


def test_amplitude_factor():
    # 2 dB/km over 500 m = 1 dB power loss = 10**(-1/20) in amplitude.
    np.testing.assert_allclose(rain.amplitude_factor(2.0, 500.0), 10 ** (-1 / 20), rtol=1e-15)
    a = rain.amplitude_factor(np.array([[1.0], [10.0]]), np.array([100.0, 2000.0, 0.0]))
    assert a.shape == (2, 3)
    np.testing.assert_allclose(20 * np.log10(a), -np.array([[0.1, 2.0, 0.0], [1.0, 20.0, 0.0]]))


@pytest.mark.parametrize(
    ("polarization", "tilt"), [("H", 0.0), ("V", 90.0), ("v", 90.0), (45, 45.0), (12.5, 12.5)]
)
def test_polarization_tilt(polarization, tilt):
    assert rain.polarization_tilt(polarization) == tilt


@pytest.mark.parametrize("bad", ["X", "circular", "", -1.0, 90.5, float("nan"), True])
def test_polarization_tilt_invalid(bad):
    with pytest.raises(RainModelError, match="polarization"):
        rain.polarization_tilt(bad)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.99, 10.0, 0.0, 0.0), r"frequency 0\.99 GHz.*\[1, 1000\]"),
        ((1000.5, 10.0, 0.0, 0.0), r"frequency 1000\.5 GHz"),
        ((float("nan"), 10.0, 0.0, 0.0), r"frequency nan"),
        ((28.0, -0.1, 0.0, 0.0), r"rain rate -0\.1 mm/h.*\[0, 200\]"),
        ((28.0, 200.5, 0.0, 0.0), r"rain rate 200\.5 mm/h"),
        ((28.0, [10.0, float("nan")], 0.0, 0.0), r"rain rate nan"),
        ((28.0, 10.0, 1.6, 0.0), r"elevation 1\.6 rad"),
        ((28.0, 10.0, -1.6, 0.0), r"elevation -1\.6 rad"),
        ((28.0, 10.0, float("nan"), 0.0), r"elevation nan"),
        ((28.0, 10.0, 0.0, float("nan")), r"polarization tilt nan"),
        ((28.0, 10.0, 0.0, float("inf")), r"polarization tilt inf"),
        (("abc", 10.0, 0.0, 0.0), r"frequency 'abc' is not a number"),
    ],
)
def test_specific_attenuation_invalid(args, match):
    with pytest.raises(RainModelError, match=match):
        rain.specific_attenuation(*args)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1.0, 100.0), r"specific attenuation -1\.0"),
        ((float("nan"), 100.0), r"specific attenuation nan"),
        ((1.0, -5.0), r"path length -5\.0 m"),
        ((1.0, float("inf")), r"path length inf m"),
    ],
)
def test_amplitude_factor_invalid(args, match):
    with pytest.raises(RainModelError, match=match):
        rain.amplitude_factor(*args)


def test_valid_edges_and_error_type():
    assert np.isfinite(rain.specific_attenuation([1.0, 1000.0], 200.0, np.pi / 2, 90.0)).all()
    assert np.isfinite(rain.specific_attenuation(28.0, 200.0, -np.pi / 2, 0.0))
    assert issubclass(RainModelError, SimgenError)


def test_itur_not_imported_by_simgen():
    code = "import sys, simgen.rain; print(sorted({'itur', 'astropy'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
