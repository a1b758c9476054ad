"""Physics noise models (statistics, per-sensor calibrations) and the unprocess/preview pipeline."""
import numpy as np
import pytest

from basicsr_adl.raw import noise_models as nm
from basicsr_adl.raw.bayer import normalize_levels
from basicsr_adl.raw.preview import packed_to_srgb
from basicsr_adl.raw.unprocess import (UnprocessParams, camera_to_srgb_matrix, inverse_tone_curve, linear_to_srgb,
                                       srgb_to_linear, tone_curve, unprocess)


def test_at_least_five_sensors_with_distinct_calibrations_and_sources():
    profiles = list(nm.SENSOR_PROFILES.values())
    assert len(profiles) >= 5
    assert len({p.iso_range for p in profiles}) == len(profiles)
    assert len({(p.read_scale, p.row_scale) for p in profiles}) == len(profiles)
    assert all(p.source and ('ELD' in p.source or 'PMN' in p.source) for p in profiles)
    assert nm.SENSOR_NAMES[:len(profiles)] == nm.NOISE_MODEL_SENSORS


@pytest.mark.parametrize('name', list(nm.SENSOR_PROFILES))
def test_system_gain_grows_with_iso_and_spans_the_calibrated_range(name):
    profile = nm.get_profile(name)
    lo, hi = profile.iso_range
    gains = [profile.system_gain(iso) for iso in np.geomspace(lo, hi, 5)]
    assert all(b > a for a, b in zip(gains, gains[1:]))
    np.testing.assert_allclose(np.log([gains[0], gains[-1]]), profile.log_k_range, atol=0.1)


def test_sony_uses_the_published_linear_gain():
    assert nm.get_profile('SonyA7S2').system_gain(3200) == pytest.approx(0.0009546 * 3200 - 0.00193)


def test_missing_or_bad_iso_is_an_error_naming_the_sensor():
    profile = nm.get_profile('IMX686')
    with pytest.raises(ValueError, match="IMX686.*needs an ISO"):
        nm.sample_noise_params(profile, None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="IMX686.*positive ISO"):
        profile.system_gain(0)
    with pytest.raises(KeyError, match='no noise model for sensor'):
        nm.get_profile('Pixel9')


def test_noise_variance_matches_shot_read_row_and_quantisation():
    """Var(D) = K*S + sigma_read^2 + sigma_row^2 + 1/12 for a flat signal (Gaussian read noise sensor)."""
    profile = nm.get_profile('HuaweiPhone')
    rng = np.random.default_rng(0)
    params = nm.sample_noise_params(profile, 4000, rng, random_spread=False)
    variances = []
    for level in (200.0, 1600.0):
        signal = np.full((4, 256, 256), level)
        noisy = nm.add_noise_dn(signal, params, rng)
        assert np.all(noisy == np.round(noisy))  # quantised to whole DN
        assert noisy.mean() == pytest.approx(level, rel=0.01)
        expected = params.system_gain * level + params.read_scale ** 2 + params.row_scale ** 2 + 1 / 12
        assert noisy.var() == pytest.approx(expected, rel=0.06)
        variances.append(noisy.var())
    # the signal-dependent part grows by K per DN of signal
    assert (variances[1] - variances[0]) / 1400.0 == pytest.approx(params.system_gain, rel=0.1)


def test_row_noise_is_shared_along_mosaic_rows():
    params = nm.NoiseParams(sensor='x', iso=100, system_gain=1.0, read_scale=0.0, row_scale=5.0, tukey_lambda=None)
    noisy = nm.add_noise_dn(np.zeros((4, 6, 8)), params, np.random.default_rng(1), quantize=False)
    np.testing.assert_array_equal(noisy[0], noisy[1])      # R and G1 sit on the same (even) mosaic rows
    np.testing.assert_array_equal(noisy[2], noisy[3])      # G2 and B on the odd rows
    assert np.all(noisy[0] == noisy[0][:, :1])             # constant along each row
    assert not np.allclose(noisy[0], noisy[2])


def test_tukey_lambda_zero_is_logistic():
    samples = nm.tukey_lambda_noise((200000, ), 0.0, 2.0, np.random.default_rng(2))
    assert samples.var() == pytest.approx(np.pi ** 2 / 3 * 4.0, rel=0.03)


def test_higher_iso_gives_noisier_images_and_sensors_differ():
    clean = np.full((4, 64, 64), 0.2, dtype=np.float32)
    stds = {}
    for name in nm.NOISE_MODEL_SENSORS:
        profile = nm.get_profile(name)
        lo_iso, hi_iso = profile.iso_range
        low, _ = nm.synthesize_noisy(clean, profile, lo_iso, np.random.default_rng(3))
        high, _ = nm.synthesize_noisy(clean, profile, hi_iso, np.random.default_rng(3))
        assert (high - clean).std() > 1.3 * (low - clean).std(), name
        stds[name] = round(float((high - clean).std()), 4)
    assert len(set(stds.values())) == len(stds)


def test_uint16_synthesis_keeps_black_level_and_range():
    profile = nm.get_profile('IMX686')
    clean = np.full((4, 16, 16), profile.black + 300, dtype=np.uint16)
    noisy, params = nm.synthesize_noisy_uint16(clean, profile, 6400, np.random.default_rng(4))
    assert noisy.dtype == np.uint16 and noisy.max() <= profile.white
    assert abs(float(noisy.mean()) - (profile.black + 300)) < 5
    assert params.iso == 6400


# -- unprocess / preview ---------------------------------------------------------------------------------------
def test_tone_curve_and_gamma_inverses():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(inverse_tone_curve(tone_curve(x)), x, atol=1e-6)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-6)


def test_camera_matrix_keeps_white():
    ccm = camera_to_srgb_matrix(np.array([6446, -366, -864, -4436, 12204, 2513, -952, 2496, 6348]).reshape(3, 3) / 1e4)
    np.testing.assert_allclose(ccm @ np.ones(3), np.ones(3), atol=1e-9)
    assert not np.allclose(ccm, np.eye(3))
    np.testing.assert_array_equal(camera_to_srgb_matrix(np.zeros((3, 3))), np.eye(3))


@pytest.mark.parametrize('pattern', ['RGGB', 'BGGR', 'GRBG', 'GBRG'])
def test_preview_of_unprocessed_photo_recovers_the_photo(pattern):
    import cv2
    import skimage.data
    photo = cv2.GaussianBlur(skimage.data.astronaut()[100:228, 150:278], (0, 0), 2.0)
    ccm = camera_to_srgb_matrix(np.array([5838, -1430, -246, -3497, 11477, 2297, -748, 1885, 5778]).reshape(3, 3))
    params = UnprocessParams(camera_to_srgb=ccm, wb_gains=np.array([2.1, 1.0, 1.7]), black=512, white=16383,
                             pattern=pattern)
    packed = unprocess(photo, params)
    assert packed.dtype == np.uint16 and packed.shape[0] == 4
    norm = normalize_levels(packed, 512, 16383)
    meta = params.as_meta()
    preview = packed_to_srgb(norm, wb=meta['wb'], ccm=np.array(meta['ccm']), full_resolution=False)
    oy, ox = (0, 0) if pattern == 'RGGB' else {'BGGR': (1, 1), 'GRBG': (0, 1), 'GBRG': (1, 0)}[pattern]
    target = photo[oy::2, ox::2][:preview.shape[0], :preview.shape[1]].astype(np.float64) / 255
    psnr = 10 * np.log10(1.0 / np.mean((preview - target) ** 2))
    assert psnr > 30, psnr
    # without white balance the colours are clearly off: the check above can fail
    wrong = packed_to_srgb(norm, wb=None, ccm=np.array(meta['ccm']), full_resolution=False)
    assert 10 * np.log10(1.0 / np.mean((wrong - target) ** 2)) < psnr - 5
    full = packed_to_srgb(norm, wb=meta['wb'], ccm=np.array(meta['ccm']))
    assert full.shape == (2 * preview.shape[0], 2 * preview.shape[1], 3)
