"""RAW data layer: Bayer packing, camera-file reading, RAW LMDB, noise models, unprocessing, previews.

Plain NumPy/PyTorch cores (no BasicSR import), so they can be used and tested on their own; the BasicSR
datasets in ``basicsr_adl/data/`` are thin adapters around them. See ``docs/raw_data.md``.
"""
