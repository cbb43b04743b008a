"""The planner's noise filter: first-order Butterworth of paper Eq. 9-10 (lowpass.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqwm_agent.core.lowpass import LowPassFilter, butterworth1, filter_sequence, frequency_response


def analogue_gain(f: np.ndarray, fc: float) -> np.ndarray:
    """|H(f)| = f_c / sqrt(f^2 + f_c^2) (Eq. 9)."""
    return fc / np.sqrt(f ** 2 + fc ** 2)


def measured_gain(freq_hz: float, fc: float, fs: float, n: int = 4000) -> float:
    """Gain of `filter_sequence` on a sinusoid, measured after the start transient."""
    t = np.arange(n) / fs
    x = torch.tensor(np.sin(2 * np.pi * freq_hz * t), dtype=torch.float64)
    y = filter_sequence(x[:, None], butterworth1(fc, fs), dim=0)[:, 0].numpy()
    tail = slice(n // 2, n)
    return float(np.sqrt(np.mean(y[tail] ** 2)) / np.sqrt(np.mean(x.numpy()[tail] ** 2)))


@pytest.mark.parametrize('fc, fs', [(2.0, 10.0), (1.0, 50.0), (0.5, 10.0)])
def test_gain_at_cutoff_is_one_over_sqrt2(fc, fs):
    coeffs = butterworth1(fc, fs)
    assert frequency_response(coeffs, fc, fs) == pytest.approx(1 / math.sqrt(2), abs=1e-9)
    assert measured_gain(fc, fc, fs) == pytest.approx(1 / math.sqrt(2), abs=0.01)


def test_response_matches_the_analogue_filter_well_below_nyquist():
    fc, fs = 1.0, 50.0
    f = np.linspace(0.05, 3.0, 30)                       # well below Nyquist (25 Hz)
    digital = frequency_response(butterworth1(fc, fs), f, fs)
    np.testing.assert_allclose(digital, analogue_gain(f, fc), rtol=0.02)
    for freq in (0.2, 1.0, 2.5):
        assert measured_gain(freq, fc, fs) == pytest.approx(analogue_gain(np.array(freq), fc), rel=0.03)


def test_dc_passes_and_high_frequencies_are_attenuated():
    coeffs = butterworth1(2.0, 10.0)
    assert frequency_response(coeffs, 0.0, 10.0) == pytest.approx(1.0)
    assert frequency_response(coeffs, 5.0, 10.0) == pytest.approx(0.0, abs=1e-9)   # zero at Nyquist
    gains = frequency_response(coeffs, np.linspace(0, 5, 50), 10.0)
    assert np.all(np.diff(gains) <= 1e-12)


def test_filter_sequence_is_batched_and_keeps_the_first_sample():
    x = torch.randn(6, 4, 3)
    y = filter_sequence(x, butterworth1(2.0, 10.0), dim=0)
    torch.testing.assert_close(y[0], x[0])
    y_single = filter_sequence(x[:, 1, 2], butterworth1(2.0, 10.0), dim=0)
    torch.testing.assert_close(y[:, 1, 2], y_single)


def test_filter_is_linear_so_a_matrix_of_impulse_responses_applies_it():
    """The planner filters all its noise sequences with one matmul by this matrix."""
    coeffs = butterworth1(2.0, 10.0)
    F = filter_sequence(torch.eye(5, dtype=torch.float64), coeffs, dim=0)
    x = torch.randn(5, 40, dtype=torch.float64)
    torch.testing.assert_close(F @ x, filter_sequence(x, coeffs, dim=0))


def test_stream_filter_equals_sequence_filter():
    coeffs_args = (1.5, 10.0)
    x = np.random.default_rng(0).normal(size=(40, 3))
    f = LowPassFilter(*coeffs_args, channels=3)
    stream = np.stack([f(v) for v in x])
    seq = filter_sequence(torch.tensor(x), butterworth1(*coeffs_args), dim=0).numpy()
    np.testing.assert_allclose(stream, seq, atol=1e-12)


@pytest.mark.parametrize('fc, fs', [(0.0, 10.0), (5.0, 10.0), (1.0, 0.0)])
def test_invalid_cutoff_is_refused(fc, fs):
    with pytest.raises(ValueError):
        butterworth1(fc, fs)
