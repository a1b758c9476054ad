"""Bayer packing, normalisation and Bayer-safe geometry, checked against the mosaic domain."""
import numpy as np
import pytest
import torch

from basicsr_adl.raw import bayer
from basicsr_adl.raw.bayer import (BAYER_PATTERNS, UnsupportedCFAError, augment_and_crop, augment_packed, mosaic_op,
                                   normalize_levels,
                                   pack, packed_crop, packed_hflip, packed_rot90, packed_transpose, packed_vflip,
                                   pattern_after, red_offset, unpack)

SHAPES = [(8, 12), (9, 13), (10, 7)]  # even, odd x odd, mixed


def colour_map(pattern: str, shape):
    """Letter of every mosaic site ('R', 'G', 'B') for a pattern."""
    grid = np.array(list(pattern)).reshape(2, 2)
    return np.tile(grid, (shape[0] // 2 + 1, shape[1] // 2 + 1))[:shape[0], :shape[1]]


def green_row_map(pattern: str, shape):
    """For each site, 'G1' if it is green on a row that holds red, 'G2' if green on a blue row."""
    colours = colour_map(pattern, shape)
    out = colours.astype('<U2').copy()
    for row in range(shape[0]):
        has_red = 'R' in colours[row]
        out[row][colours[row] == 'G'] = 'G1' if has_red else 'G2'
    return out


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
@pytest.mark.parametrize('shape', SHAPES)
def test_pack_puts_each_colour_in_its_canonical_channel(pattern, shape):
    labels = green_row_map(pattern, shape)
    packed = pack(labels, pattern)
    assert packed.shape == bayer.packed_shape(shape, pattern)
    for channel, name in enumerate(('R', 'G1', 'G2', 'B')):
        assert np.all(packed[channel] == name), (pattern, shape, channel)


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
@pytest.mark.parametrize('shape', SHAPES)
def test_unpack_restores_every_packed_pixel(pattern, shape):
    rng = np.random.default_rng(0)
    mosaic = rng.integers(0, 65535, size=shape, dtype=np.uint16)
    packed = pack(mosaic, pattern)
    restored = unpack(packed, pattern, mosaic_shape=shape, fill=0)
    oy, ox = red_offset(pattern)
    h, w = packed.shape[1:]
    covered = (slice(oy, oy + 2 * h), slice(ox, ox + 2 * w))
    np.testing.assert_array_equal(restored[covered], mosaic[covered])
    assert restored.dtype == mosaic.dtype
    # Only the border rows/columns outside the quads are lost, at most one per side.
    assert shape[0] - 2 * h <= 2 and shape[1] - 2 * w <= 2
    np.testing.assert_array_equal(pack(restored, pattern), packed)


def test_even_rggb_round_trip_is_exact_and_torch_matches_numpy():
    rng = np.random.default_rng(1)
    mosaic = rng.integers(0, 4096, size=(2, 6, 8), dtype=np.int64)  # leading batch dim
    packed = pack(mosaic, 'RGGB')
    np.testing.assert_array_equal(unpack(packed, 'RGGB'), mosaic)
    packed_t = pack(torch.from_numpy(mosaic), 'RGGB')
    assert isinstance(packed_t, torch.Tensor)
    np.testing.assert_array_equal(packed_t.numpy(), packed)
    np.testing.assert_array_equal(unpack(packed_t, 'RGGB').numpy(), mosaic)


@pytest.mark.parametrize('bad', ['XTRANS', 'RGBW', 'RGB', 'CYGM'])
def test_non_bayer_patterns_are_rejected_with_a_clear_error(bad):
    with pytest.raises(UnsupportedCFAError, match='unsupported CFA.*Bayer'):
        pack(np.zeros((4, 4)), bad)


def test_xtrans_pattern_array_is_rejected():
    with pytest.raises(UnsupportedCFAError, match='X-Trans'):
        bayer.normalize_pattern(np.zeros((6, 6), dtype=int), source='cam.raf')


def test_normalisation_per_channel_and_keep_negative():
    packed = np.array([100, 200, 300, 400], dtype=np.uint16).reshape(4, 1, 1) * np.ones((4, 2, 2), np.uint16)
    black, white = [120, 100, 100, 80], [1120, 1100, 1100, 1080]
    clipped = normalize_levels(packed, black, white)
    kept = normalize_levels(packed, black, white, keep_negative=True)
    expected = (np.array([100, 200, 300, 400]) - np.array(black)) / 1000.0
    np.testing.assert_allclose(kept[:, 0, 0], expected, rtol=1e-6)
    assert kept[0, 0, 0] < 0 and clipped[0, 0, 0] == 0
    np.testing.assert_allclose(clipped[1:, 0, 0], expected[1:], rtol=1e-6)
    assert clipped.dtype == np.float32
    with pytest.raises(ValueError, match='white level'):
        normalize_levels(packed, 500, 400)
    back = bayer.denormalize_levels(kept, black, white)
    np.testing.assert_array_equal(back, packed)


# -- geometry: packed ops == mosaic ops, for every pattern ---------------------------------------------------
def _overlap_equal(small: np.ndarray, large: np.ndarray) -> bool:
    """True if ``small`` equals a window of ``large`` (packed arrays over the same physical pixels)."""
    hs, ws = small.shape[-2:]
    hl, wl = large.shape[-2:]
    for dy in range(hl - hs + 1):
        for dx in range(wl - ws + 1):
            if np.array_equal(large[..., dy:dy + hs, dx:dx + ws], small):
                return True
    return False


MOSAIC_OPS = [('hflip', 1, packed_hflip), ('vflip', 1, packed_vflip), ('transpose', 1, packed_transpose),
              ('rot90', 1, lambda p: packed_rot90(p, 1)), ('rot90', 2, lambda p: packed_rot90(p, 2)),
              ('rot90', 3, lambda p: packed_rot90(p, 3))]


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('op,k,packed_fn', MOSAIC_OPS, ids=[f'{o}{k}' for o, k, _ in MOSAIC_OPS])
def test_packed_geometry_equals_mosaic_geometry(pattern, shape, op, k, packed_fn):
    """op_packed(pack(mosaic)) == pack(op(mosaic), new pattern), on the quads both cover.

    Unique pixel ids make "same pixel in the same channel" exact. The two may differ by border quads that
    only the reference covers (packing drops borders that the pattern offset leaves), so the packed result
    must equal one window of the reference, all channels at the same offset.
    """
    ids = np.arange(shape[0] * shape[1]).reshape(shape)
    moved = mosaic_op(ids, op, k)
    new_pattern = pattern_after(pattern, op, shape, k)
    reference = pack(moved, new_pattern)
    candidate = np.ascontiguousarray(packed_fn(pack(ids, pattern)))
    assert _overlap_equal(candidate, reference), (pattern, shape, op, k)
    assert reference.shape[-1] - candidate.shape[-1] <= 2 and reference.shape[-2] - candidate.shape[-2] <= 2
    # colour meaning: channel c holds only sites that are colour c in the moved mosaic
    labels = green_row_map(new_pattern, moved.shape).reshape(-1)
    position = np.empty(ids.size, dtype=int)
    position[moved.reshape(-1)] = np.arange(ids.size)
    for channel, name in enumerate(('R', 'G1', 'G2', 'B')):
        assert set(labels[position[candidate[channel].reshape(-1)]]) == {name}
    # torch gives the same
    np.testing.assert_array_equal(packed_fn(torch.from_numpy(pack(ids, pattern))).numpy(), candidate)


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_naive_plane_flips_fail_the_mosaic_check(pattern):
    """Guard that the test above can fail: flipping the planes, or transposing without the G1/G2 swap."""
    ids = np.arange(8 * 12).reshape(8, 12)
    packed = pack(ids, pattern)
    reference = pack(mosaic_op(ids, 'hflip'), pattern_after(pattern, 'hflip', ids.shape))
    assert not _overlap_equal(np.ascontiguousarray(np.flip(packed, -1)), reference)
    reference = pack(mosaic_op(ids, 'transpose'), pattern_after(pattern, 'transpose', ids.shape))
    assert not _overlap_equal(np.ascontiguousarray(np.swapaxes(packed, -1, -2)), reference)


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_packed_crop_equals_mosaic_crop(pattern):
    rng = np.random.default_rng(2)
    mosaic = rng.integers(0, 1000, size=(21, 30))
    packed = pack(mosaic, pattern)
    oy, ox = red_offset(pattern)
    top, left, height, width = 2, 3, 4, 5
    crop = packed_crop(packed, top, left, height, width)
    mosaic_crop = mosaic[oy + 2 * top:oy + 2 * (top + height), ox + 2 * left:ox + 2 * (left + width)]
    np.testing.assert_array_equal(crop, pack(mosaic_crop, 'RGGB'))
    with pytest.raises(ValueError, match='outside'):
        packed_crop(packed, 8, 0, 4, 4)


def test_augment_and_crop_applies_the_same_ops_to_every_array_numpy_and_torch():
    rng = np.random.default_rng(3)
    a = rng.random((4, 7, 7)).astype(np.float32)
    b = a * 2
    out_a, out_b = augment_and_crop([a, b], (6, 6), hflip=True, vflip=True, transpose=True)
    assert out_a.shape == (4, 6, 6)
    np.testing.assert_allclose(out_b, out_a * 2)
    np.testing.assert_array_equal(out_a, packed_transpose(packed_vflip(packed_hflip(a)))[:, :6, :6])
    assert out_a.flags['C_CONTIGUOUS']
    (out_t, ) = augment_and_crop([torch.from_numpy(a)], (6, 6), hflip=True, vflip=True, transpose=True)
    np.testing.assert_array_equal(out_t.numpy(), out_a)
    with pytest.raises(ValueError, match='spare packed pixel'):
        augment_and_crop([a], (7, 7), hflip=True)
    (same, ) = augment_packed([a])
    np.testing.assert_array_equal(same, a)
