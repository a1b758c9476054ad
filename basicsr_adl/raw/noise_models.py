"""Per-sensor physics-based RAW noise (the ELD model) with published calibrations.

The noise formation model is the one of Wei et al., "A Physics-based Noise Formation Model for Extreme
Low-light Raw Denoising", CVPR 2020 (ELD), in digital numbers (DN) after black-level subtraction:

    D = K * Poisson(S / K)            shot noise; K = system gain (DN per electron), grows with ISO
      + N_read                        read noise: Tukey-lambda(lambda, sigma_TL) or Gaussian(sigma)
      + N_row                         one Gaussian offset per mosaic row (banding), sigma_R
      then rounded to integer DN      quantisation (step 1 DN)

ELD found that the noise scales are log-linear in K: log(sigma) = slope * log(K) + bias + N(0, residual).
We sample K from the ISO, then each sigma from its fit (with the fit residual as random spread).

Calibration sources (constants only; the code here is our own):

- ``CanonEOS5D4``: parameters released with ELD (Wei et al., CVPR 2020; "Profile-1" of the Canon EOS 5D
  Mark IV: K in [0.218, 3.0], row/Tukey/Gaussian scale fits; black 2048, white 16383). The Tukey shape is
  the mean (0.093) of the 18 released shape samples.
- ``SonyA7S2`` (high-ISO segment), ``NikonD850``, ``IMX686`` (a smartphone sensor) and ``HuaweiPhone``
  (labelled only "Huawei" in the source): ELD-model calibrations published with the code of Feng et al.,
  PMN (ACM MM 2022) / LRD (Learnability Enhancement for Low-light Raw Denoising); ranges are given there as
  log K. The Sony fit also gives K(ISO) = 0.0009546 * ISO - 0.00193.

Where a source gives the K range but no ISO link, **[choice]** we pick an ISO range and map ISO to K
log-linearly between the range ends (K proportional to ISO when the ratios match, as analogue gain is);
see ``SensorNoiseProfile.iso_range``. Outside the range the same line is extrapolated.

Plain NumPy, no BasicSR import.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class LogLinearFit:
    """log(scale) = slope * log(K) + bias, with Gaussian residual ``spread`` (natural logs)."""
    slope: float
    bias: float
    spread: float

    def sample(self, log_k: float, rng: np.random.Generator, random_spread: bool = True) -> float:
        mean = self.slope * log_k + self.bias
        return float(np.exp(mean + (rng.normal(0.0, self.spread) if random_spread else 0.0)))


@dataclass(frozen=True)
class SensorNoiseProfile:
    """Noise calibration of one sensor (DN after black subtraction, at the sensor's bit depth)."""
    name: str
    source: str
    black: int
    white: int
    iso_range: Tuple[float, float]
    log_k_range: Tuple[float, float]           # natural log of K at iso_range ends
    read_scale: LogLinearFit                   # Tukey-lambda scale, or Gaussian sigma if tukey_lambda is None
    row_scale: LogLinearFit
    tukey_lambda: Optional[float] = None
    k_linear: Optional[Tuple[float, float]] = None   # published K = a * ISO + b, when the source gives one
    notes: str = ''

    def system_gain(self, iso: float) -> float:
        """K (DN per electron) at ``iso``."""
        if iso is None or not np.isfinite(iso) or iso <= 0:
            raise ValueError(f'noise model of sensor {self.name!r} needs a positive ISO, got {iso!r}')
        if self.k_linear is not None:
            slope, offset = self.k_linear
            return float(max(slope * iso + offset, 1e-6))
        lo_iso, hi_iso = self.iso_range
        lo_k, hi_k = self.log_k_range
        t = (np.log(iso) - np.log(lo_iso)) / (np.log(hi_iso) - np.log(lo_iso))
        return float(np.exp(lo_k + t * (hi_k - lo_k)))

    @property
    def range_dn(self) -> int:
        return self.white - self.black


@dataclass
class NoiseParams:
    """One draw of the noise parameters for one image."""
    sensor: str
    iso: float
    system_gain: float
    read_scale: float
    row_scale: float
    tukey_lambda: Optional[float]
    extra: Dict[str, float] = field(default_factory=dict)


# -- calibrations ------------------------------------------------------------------------------------------
_ELD = 'Wei et al., ELD, CVPR 2020 (released camera parameters)'
_PMN = 'Feng et al., PMN (ACM MM 2022) / LRD code release, ELD-model calibration'

SENSOR_PROFILES: Dict[str, SensorNoiseProfile] = {
    'SonyA7S2': SensorNoiseProfile(
        name='SonyA7S2', source=_PMN + ' ("SonyA7S2_highISO", ISO 2000+)', black=512, white=16383,
        iso_range=(2000.0, 12800.0), log_k_range=(0.64567, 2.51606),
        read_scale=LogLinearFit(0.74901, -0.12348, 0.00638), row_scale=LogLinearFit(0.62945, -1.51040, 0.02609),
        tukey_lambda=-0.025, k_linear=(0.0009546, -0.00193)),
    'NikonD850': SensorNoiseProfile(
        name='NikonD850', source=_PMN + ' ("NikonD850")', black=512, white=16383,
        iso_range=(1600.0, 5760.0), log_k_range=(1.2, 2.4828),
        read_scale=LogLinearFit(0.906, -0.6754, 0.035165), row_scale=LogLinearFit(0.8322, -2.3326, 0.301333),
        tukey_lambda=-0.26, notes='ISO range [choice]'),
    'CanonEOS5D4': SensorNoiseProfile(
        name='CanonEOS5D4', source=_ELD + ' (CanonEOS5D4 "Profile-1")', black=2048, white=16383,
        iso_range=(400.0, 5500.0), log_k_range=(float(np.log(0.2181895)), float(np.log(3.0))),
        read_scale=LogLinearFit(0.6558756, 1.0926868, 0.2860472),
        row_scale=LogLinearFit(0.4712798, -0.8078959, 0.2436176),
        tukey_lambda=0.093, notes='ISO range [choice]; Tukey shape = mean of released samples'),
    'IMX686': SensorNoiseProfile(
        name='IMX686', source=_PMN + ' ("IMX686", ISO 640-6400)', black=64, white=1023,
        iso_range=(640.0, 6400.0), log_k_range=(-0.19118, 2.16820),
        read_scale=LogLinearFit(0.85187, 0.07991, 0.02921), row_scale=LogLinearFit(0.87611, -2.11455, 0.03274),
        tukey_lambda=0.102),
    'HuaweiPhone': SensorNoiseProfile(
        name='HuaweiPhone', source=_PMN + ' ("Huawei", gain 40-50; Gaussian read-noise fit)', black=256, white=4095,
        iso_range=(2500.0, 5600.0), log_k_range=(2.41104, 3.22505),
        read_scale=LogLinearFit(0.91148, 0.23734, 0.00214), row_scale=LogLinearFit(0.92085, -2.81694, 0.01856),
        tukey_lambda=None, notes='ISO range and black level 256 [choice]; source gives 12-bit white 4095'),
}

NOISE_MODEL_SENSORS: List[str] = list(SENSOR_PROFILES)

# Default sensor order (index = position) when a dataset has no ``sensors`` option: the calibrated sensors
# first (so their indices never move), then cameras of the supported real datasets (SIDD phones; ELD Canons).
SENSOR_NAMES: List[str] = NOISE_MODEL_SENSORS + ['GP', 'IP', 'S6', 'N6', 'G4', 'CanonEOS70D', 'CanonEOS700D']


def get_profile(name: str) -> SensorNoiseProfile:
    if name not in SENSOR_PROFILES:
        raise KeyError(f'no noise model for sensor {name!r}; calibrated sensors: {", ".join(SENSOR_PROFILES)}')
    return SENSOR_PROFILES[name]


def sample_iso(profile: SensorNoiseProfile, rng: np.random.Generator) -> float:
    """Log-uniform ISO within the sensor's range (rounded to an integer ISO)."""
    lo, hi = np.log(profile.iso_range[0]), np.log(profile.iso_range[1])
    return float(np.round(np.exp(rng.uniform(lo, hi))))


def sample_noise_params(profile: SensorNoiseProfile, iso: Optional[float], rng: np.random.Generator,
                        random_spread: bool = True) -> NoiseParams:
    """Draw K and the noise scales for one image at ``iso`` (raises if ISO is missing)."""
    if iso is None:
        raise ValueError(f'noise model of sensor {profile.name!r} needs an ISO: give the clean image an "iso" in its '
                         'metadata, or let the dataset sample one (iso_range / iso_from_metadata: false)')
    gain = profile.system_gain(float(iso))
    log_k = np.log(gain)
    return NoiseParams(sensor=profile.name, iso=float(iso), system_gain=gain,
                       read_scale=profile.read_scale.sample(log_k, rng, random_spread),
                       row_scale=profile.row_scale.sample(log_k, rng, random_spread),
                       tukey_lambda=profile.tukey_lambda)


def tukey_lambda_noise(shape, lam: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Tukey-lambda samples by inverse transform: Q(u) = (u^lam - (1-u)^lam) / lam (logistic at lam=0)."""
    u = rng.uniform(1e-7, 1 - 1e-7, size=shape)
    if abs(lam) < 1e-6:
        q = np.log(u / (1 - u))
    else:
        q = (u ** lam - (1 - u) ** lam) / lam
    return scale * q


def add_noise_dn(signal_dn: np.ndarray, params: NoiseParams, rng: np.random.Generator,
                 quantize: bool = True) -> np.ndarray:
    """Noisy DN (black-subtracted, float64) for a clean packed (4, h, w) signal in DN.

    Row noise is drawn per *mosaic* row: packed channels R and G1 share even rows, G2 and B odd rows.
    """
    signal_dn = np.asarray(signal_dn, dtype=np.float64)
    if signal_dn.ndim != 3 or signal_dn.shape[0] != 4:
        raise ValueError(f'add_noise_dn expects packed (4, h, w), got {signal_dn.shape}')
    gain = params.system_gain
    noisy = rng.poisson(np.clip(signal_dn, 0, None) / gain) * gain
    if params.tukey_lambda is None:
        noisy = noisy + rng.normal(0.0, params.read_scale, size=signal_dn.shape)
    else:
        noisy = noisy + tukey_lambda_noise(signal_dn.shape, params.tukey_lambda, params.read_scale, rng)
    height = signal_dn.shape[1]
    rows = rng.normal(0.0, params.row_scale, size=(2, height))
    noisy[0:2] += rows[0][None, :, None]
    noisy[2:4] += rows[1][None, :, None]
    if quantize:
        noisy = np.round(noisy)
    return noisy


def synthesize_noisy(clean: np.ndarray, profile: SensorNoiseProfile, iso: Optional[float],
                     rng: np.random.Generator, ratio: float = 1.0, keep_negative: bool = True,
                     random_spread: bool = True) -> Tuple[np.ndarray, NoiseParams]:
    """Noisy version of a normalised clean packed image ([0, 1], 4 x h x w), normalised the same way.

    ``ratio`` > 1 simulates a dark exposure brightened by ``ratio`` (SID-style): the signal is divided by
    the ratio before the noise and the result multiplied back.
    """
    params = sample_noise_params(profile, iso, rng, random_spread)
    signal = np.asarray(clean, dtype=np.float64) * profile.range_dn / ratio
    noisy = add_noise_dn(signal, params, rng)
    noisy = np.clip(noisy, -profile.black, profile.range_dn)  # what the ADC can represent
    out = noisy * ratio / profile.range_dn
    if not keep_negative:
        out = np.clip(out, 0, None)
    return out.astype(np.float32), params


def synthesize_noisy_uint16(clean_dn: np.ndarray, profile: SensorNoiseProfile, iso: float,
                            rng: np.random.Generator) -> Tuple[np.ndarray, NoiseParams]:
    """Noisy stored values (uint16, black level included) from clean stored values (uint16)."""
    params = sample_noise_params(profile, iso, rng)
    signal = clean_dn.astype(np.float64) - profile.black
    noisy = add_noise_dn(signal, params, rng) + profile.black
    return np.clip(noisy, 0, profile.white).astype(np.uint16), params
