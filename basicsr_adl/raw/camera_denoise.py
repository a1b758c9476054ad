"""Camera file -> net input -> camera mosaic: the RAW-in, RAW-out steps around a denoising net.

* ``net_input``: the file's mosaic packed to (4, h, w) in canonical R, G1, G2, B order and normalised by its
  black/white levels **without clipping** (values under black stay negative, highlights above 1), so an
  identity net gives the same mosaic back (within rounding, under 1 DN).
* ``mosaic_from_output``: the inverse, in the file's own pattern and size; the border rows/columns packing
  could not cover (odd sizes, a pattern not starting with red) keep the file's own values.
* ``dng_metadata``: what the written DNG keeps of the source (see ``basicsr_adl.raw.dng``).
* ``write_outputs``: ``<stem>.dng`` and an sRGB ``<stem>.png`` developed from that DNG by LibRaw (full frame,
  camera white balance, the file's orientation), each written under a temporary name and renamed.

Plain NumPy, no BasicSR import.
"""
import os
from typing import Optional, Tuple

import numpy as np

from basicsr_adl.raw.bayer import denormalize_levels, normalize_levels, red_offset, unpack
from basicsr_adl.raw.dng import DngMetadata, temp_sibling, write_dng
from basicsr_adl.raw.io import RawCapture
from basicsr_adl.raw.unprocess import SRGB_TO_XYZ

D65_WHITE_XYZ = np.array([0.95047, 1.0, 1.08883])


def net_input(capture: RawCapture) -> np.ndarray:
    """(4, h, w) float32: packed, (x - black) / (white - black), nothing clipped."""
    return normalize_levels(capture.packed(), capture.black, capture.white, keep_negative=True, clip_high=False)


def mosaic_from_output(capture: RawCapture, packed: np.ndarray) -> np.ndarray:
    """uint16 mosaic of the capture's shape from a normalised packed (4, h, w) output (rounded, clipped to
    0..65535); pixels outside the packed area are the capture's own."""
    packed = np.asarray(packed)
    if packed.ndim == 4:
        packed = packed[0]
    counts = denormalize_levels(packed, capture.black, capture.white, dtype=np.uint16)
    oy, ox = red_offset(capture.pattern)
    h, w = counts.shape[-2:]
    mosaic = capture.mosaic.astype(np.uint16, copy=True)
    full = unpack(counts, capture.pattern, mosaic_shape=mosaic.shape)
    mosaic[oy:oy + 2 * h, ox:ox + 2 * w] = full[oy:oy + 2 * h, ox:ox + 2 * w]
    return mosaic


def xyz_to_camera(capture: RawCapture) -> Optional[np.ndarray]:
    """The capture's XYZ -> camera matrix: the file's own, else from a sidecar ``ccm`` (camera -> linear sRGB),
    else None (the caller decides; ``dng_metadata`` then takes camera RGB as linear sRGB)."""
    if capture.xyz_to_cam is not None:
        return np.asarray(capture.xyz_to_cam, dtype=np.float64)
    if capture.ccm is not None:
        srgb_to_camera = np.linalg.inv(np.asarray(capture.ccm, dtype=np.float64))
        return srgb_to_camera @ np.linalg.inv(SRGB_TO_XYZ)
    return None


def colour_source(capture: RawCapture) -> str:
    """Where the output DNG's colour profile comes from, for the log; '' when the file gives none."""
    if any(tag == 50721 for tag, *_ in capture.exif.dng_tags):
        return "the source DNG's profile (copied)"
    if capture.xyz_to_cam is not None or capture.ccm is not None:
        return "the file's colour matrix"
    return ''


def dng_metadata(capture: RawCapture) -> DngMetadata:
    """The DNG tags for a denoised ``capture``: CFA, levels, colour, orientation, make/model and EXIF."""
    matrix = xyz_to_camera(capture)
    if matrix is None:
        matrix = np.linalg.inv(SRGB_TO_XYZ)
    matrix = matrix / (matrix @ D65_WHITE_XYZ).max()  # DNG: the D65 white maps to a maximum of 1
    neutral = None
    if capture.wb is not None:
        gains = np.asarray(capture.wb, dtype=np.float64)[[0, 1, 3]]
        if np.all(gains > 0):
            neutral = (gains[1] / gains).tolist()
    exif = capture.exif
    return DngMetadata(pattern=capture.pattern, black=list(capture.black), white=float(max(capture.white)),
                       xyz_to_camera=matrix.tolist(), as_shot_neutral=neutral, orientation=capture.orientation,
                       make=exif.make, model=exif.model, exposure_time=capture.exposure, f_number=exif.f_number,
                       iso=capture.iso, datetime_original=exif.datetime_original,
                       unique_model=exif.unique_camera_model, copied_tags=list(exif.dng_tags))


def develop_preview(dng_path: str, png_path: str) -> str:
    """An 8-bit sRGB PNG of the whole DNG, developed by LibRaw (camera white balance, AHD, orientation)."""
    import cv2
    import rawpy
    with rawpy.imread(dng_path) as raw:
        rgb = raw.postprocess(use_camera_wb=True, output_bps=8, output_color=rawpy.ColorSpace.sRGB)
    temp = temp_sibling(png_path)
    try:
        if not cv2.imwrite(temp, np.ascontiguousarray(rgb[..., ::-1])):
            raise OSError(f'could not write {png_path}')
        os.replace(temp, png_path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return png_path


def write_outputs(capture: RawCapture, packed_output: np.ndarray, out_dir: str, stem: str) -> Tuple[str, str]:
    """Write ``out_dir/<stem>.dng`` (the output mosaic with the capture's metadata) and its ``<stem>.png``
    preview; if the preview fails, the DNG is removed again, so a file has both outputs or none."""
    dng_path = os.path.join(out_dir, f'{stem}.dng')
    png_path = os.path.join(out_dir, f'{stem}.png')
    write_dng(dng_path, mosaic_from_output(capture, packed_output), dng_metadata(capture))
    try:
        develop_preview(dng_path, png_path)
    except BaseException:
        os.remove(dng_path)
        raise
    return dng_path, png_path

