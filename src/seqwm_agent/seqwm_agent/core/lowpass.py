"""First-order Butterworth low-pass filter by bilinear transform (paper App. A.2, Eq. 9-10).

One implementation serves two uses:
  * the planner filters its sampled action *noise* along the horizon (`filter_sequence`), so
    candidate action sequences carry no high-frequency jitter;
  * the command chain filters the stream of velocity commands sent to the robot (`LowPassFilter`).

Analogue prototype  H(s) = w_c / (s + w_c),  w_c = 2 pi f_c  (Eq. 9).
Bilinear transform with pre-warping, K = tan(pi f_c / f_s):

    y[t] = b (x[t] + x[t-1]) + a y[t-1],   b = K / (1 + K),   a = (1 - K) / (1 + K).

The paper prints Eq. 10 as  y[t] = (1-beta)/2 (x[t]+x[t-1]) - beta y[t-1]  with beta = a. Its
feed-forward term equals ours ((1-beta)/2 = b), but with "-beta" the DC gain would be
(1-beta)/(1+beta) != 1 and the filter would not be low-pass; "+beta" is the bilinear transform of
Eq. 9 and is what we implement. Pre-warping makes the discrete gain at f_c exactly 1/sqrt(2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LowPassCoefficients:
    """y[t] = b (x[t] + x[t-1]) + a y[t-1]."""

    b: float
    a: float


def butterworth1(cutoff_hz: float, sample_hz: float) -> LowPassCoefficients:
    """Coefficients of the first-order Butterworth low-pass for cutoff f_c at sample rate f_s."""
    if not (sample_hz > 0 and math.isfinite(sample_hz)):
        raise ValueError(f'sample rate must be positive and finite, got {sample_hz}')
    if not (0 < cutoff_hz < sample_hz / 2):
        raise ValueError(f'cutoff {cutoff_hz} Hz must lie in (0, Nyquist = {sample_hz / 2} Hz)')
    k = math.tan(math.pi * cutoff_hz / sample_hz)
    return LowPassCoefficients(b=k / (1 + k), a=(1 - k) / (1 + k))


def frequency_response(coeffs: LowPassCoefficients, freq_hz: np.ndarray | float,
                       sample_hz: float) -> np.ndarray:
    """|H(e^{j w})| of the discrete filter at the given frequencies (for tests and plots)."""
    w = 2 * np.pi * np.asarray(freq_hz, dtype=np.float64) / sample_hz
    zinv = np.exp(-1j * w)
    return np.abs(coeffs.b * (1 + zinv) / (1 - coeffs.a * zinv))


def filter_sequence(x: torch.Tensor, coeffs: LowPassCoefficients, dim: int = 0) -> torch.Tensor:
    """Filter `x` along `dim` (time), batched over every other dimension.

    The filter starts in steady state at x[0] (x[-1] = y[-1] = x[0]), so the first element passes
    unchanged: for planner noise that keeps the executed first action fully explored while later
    steps are smoothed relative to it. The horizon is short (H ~ 3-16), so the loop over time is
    cheap; everything else is one batched op per step.
    """
    x = x.movedim(dim, 0)
    out = torch.empty_like(x)
    out[0] = x[0]
    for t in range(1, x.shape[0]):
        out[t] = coeffs.b * (x[t] + x[t - 1]) + coeffs.a * out[t - 1]
    return out.movedim(0, dim)


class LowPassFilter:
    """Stateful per-channel filter for a stream of samples (e.g. velocity commands at f_s)."""

    def __init__(self, cutoff_hz: float, sample_hz: float, channels: int) -> None:
        self.coeffs = butterworth1(cutoff_hz, sample_hz)
        self.channels = channels
        self._x_prev: np.ndarray | None = None
        self._y_prev: np.ndarray | None = None

    def reset(self, value: np.ndarray | None = None) -> None:
        """Forget the history; with `value`, start in steady state at it (e.g. zeros after a stop)."""
        if value is None:
            self._x_prev = self._y_prev = None
        else:
            v = np.asarray(value, dtype=np.float64).reshape(self.channels)
            self._x_prev, self._y_prev = v.copy(), v.copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(self.channels)
        if self._x_prev is None:
            self.reset(x)
        y = self.coeffs.b * (x + self._x_prev) + self.coeffs.a * self._y_prev
        self._x_prev, self._y_prev = x, y
        return y.copy()
