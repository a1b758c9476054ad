#!/usr/bin/env python
"""RAW I/O benchmark: random packed-patch reads from RAW LMDB vs rawpy decoding vs per-image .npy.

Builds a small temporary set (``--images`` mosaics of ``--mosaic-size``), stored three ways:
  1. camera files decoded with rawpy each time (uncompressed DNGs written here, the cheapest case for rawpy;
     ``--camera-file`` adds a real camera file, e.g. a compressed DNG),
  2. one packed ``.npy`` per image (np.load, then crop),
  3. a RAW LMDB (``RawLMDBReader.read_crop``: only the patch is copied out of the memory map).
Then times random ``--patch`` x ``--patch`` packed-patch reads for each and prints ratios from this one run,
plus LMDB bytes vs raw array bytes. Last, it compares one DataLoader worker (RawPairedLMDBDataset producing a
batch) with one training step of the embedded demo net (ModulatedUNet as configured for the embedded ADL
demo, else a small UNet-like conv net) on that batch.

    python scripts/benchmarks/bench_raw_io.py
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def _timed(fn, min_time: float, min_reps: int = 3):
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_time:
        fn()
        reps += 1
    return reps / (time.perf_counter() - start)


def _disk_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def _demo_net():
    import torch
    try:
        import basicsr_adl.plugin  # noqa: F401  (registers the archs)
        from basicsr.utils.registry import ARCH_REGISTRY
        from basicsr_adl.adl.recipes import embedded_network
        from basicsr_adl.raw.noise_models import NOISE_MODEL_SENSORS
        opt = dict(embedded_network(NOISE_MODEL_SENSORS))
        net = ARCH_REGISTRY.get(opt.pop('type'))(**opt)
        return net, f'ModulatedUNet {opt}', True
    except Exception as err:  # the ADL net is another engineer's module: fall back to a local stand-in
        layers = [torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 64, 3, 2, 1),
                  torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.LeakyReLU(0.2),
                  torch.nn.ConvTranspose2d(64, 32, 2, 2), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 4, 3, padding=1)]
        return torch.nn.Sequential(*layers), f'small UNet-like conv net (ModulatedUNet unavailable: {err})', False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--mosaic-size', type=int, nargs=2, default=(1024, 1536), metavar=('H', 'W'))
    parser.add_argument('--patch', type=int, default=256, help='packed patch size for the read benchmark')
    parser.add_argument('--seconds', type=float, default=2.0, help='minimum time per measurement')
    parser.add_argument('--camera-file', help='also time rawpy on this real camera file')
    parser.add_argument('--batch', type=int, default=4, help='batch for the loader-vs-step comparison (demo: 4)')
    parser.add_argument('--gt-size', type=int, default=48, help='patch for the loader-vs-step comparison (demo: 48)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    import rawpy
    import torch

    from basicsr_adl.raw.bayer import pack
    from basicsr_adl.raw.dng import write_minimal_dng
    from basicsr_adl.raw.io import read_camera_raw
    from basicsr_adl.raw.lmdb_store import RawLMDBReader, RawLMDBWriter

    rng = np.random.default_rng(args.seed)
    work = tempfile.mkdtemp(prefix='bench_raw_io_')
    try:
        height, width = args.mosaic_size
        dng_paths, npy_paths, raw_bytes = [], [], 0
        lmdb_path = os.path.join(work, 'bench.lmdb')
        with RawLMDBWriter(lmdb_path) as writer:
            for i in range(args.images):
                mosaic = rng.integers(512, 16383, size=(height, width), dtype=np.uint16)
                dng_paths.append(write_minimal_dng(os.path.join(work, f'img_{i}.dng'), mosaic, 'RGGB', 512, 16383))
                packed = pack(mosaic, 'RGGB')
                npy_paths.append(os.path.join(work, f'img_{i}.npy'))
                np.save(npy_paths[-1], packed)
                writer.put(f'img_{i}', packed, {'pattern': 'RGGB', 'black': 512, 'white': 16383, 'iso': 1600,
                                                'sensor': 'SonyA7S2'})
                raw_bytes += packed.nbytes
        reader = RawLMDBReader(lmdb_path)
        packed_h, packed_w = height // 2, width // 2
        size = args.patch

        def origin():
            return int(rng.integers(0, packed_h - size + 1)), int(rng.integers(0, packed_w - size + 1))

        def read_lmdb():
            top, left = origin()
            reader.read_crop(f'img_{rng.integers(args.images)}', top, left, size, size)

        def read_npy():
            top, left = origin()
            arr = np.load(npy_paths[rng.integers(args.images)])
            arr[:, top:top + size, left:left + size].copy()

        def read_rawpy(path=None):
            capture = read_camera_raw(path or dng_paths[rng.integers(args.images)])
            packed = capture.packed()
            top = int(rng.integers(0, packed.shape[1] - size + 1))
            left = int(rng.integers(0, packed.shape[2] - size + 1))
            packed[:, top:top + size, left:left + size].copy()

        rates = {'lmdb': _timed(read_lmdb, args.seconds), 'npy': _timed(read_npy, args.seconds),
                 'rawpy (uncompressed DNG)': _timed(read_rawpy, args.seconds)}
        if args.camera_file:
            rates[f'rawpy ({os.path.basename(args.camera_file)})'] = _timed(lambda: read_rawpy(args.camera_file),
                                                                           args.seconds)
        lmdb_disk = _disk_bytes(lmdb_path)
        dng_bytes = sum(os.path.getsize(p) for p in dng_paths)
        print(f'rawpy {rawpy.__version__} / LibRaw {rawpy.libraw_version}; torch threads {torch.get_num_threads()}; '
              f'{args.images} images, mosaic {height}x{width}, random {size}x{size} packed patches')
        for name, rate in rates.items():
            print(f'  {name:<28s} {rate:10.1f} patches/s')
        print(f'  ratio LMDB / rawpy (uncompressed DNG): {rates["lmdb"] / rates["rawpy (uncompressed DNG)"]:.1f}x')
        if args.camera_file:
            name = f'rawpy ({os.path.basename(args.camera_file)})'
            print(f'  ratio LMDB / {name}: {rates["lmdb"] / rates[name]:.1f}x')
        print(f'  ratio LMDB / per-image .npy: {rates["lmdb"] / rates["npy"]:.1f}x')
        print(f'  bytes: LMDB on disk {lmdb_disk / 2**20:.1f} MiB, raw arrays {raw_bytes / 2**20:.1f} MiB '
              f'(ratio {lmdb_disk / raw_bytes:.3f}); DNG files {dng_bytes / 2**20:.1f} MiB')

        # -- one loader worker vs one training step -------------------------------------------------------
        import basicsr_adl.plugin  # noqa: F401
        from basicsr.utils.registry import DATASET_REGISTRY
        from torch.utils.data import default_collate
        gt_lmdb = os.path.join(work, 'bench_gt.lmdb')
        shutil.copytree(lmdb_path, gt_lmdb)
        dataset = DATASET_REGISTRY.get('RawPairedLMDBDataset')({
            'name': 'bench', 'phase': 'train', 'dataroot_lq': lmdb_path, 'dataroot_gt': gt_lmdb,
            'gt_size': args.gt_size, 'use_hflip': True, 'use_rot': True})

        def load_batch():
            return default_collate([dataset[int(rng.integers(len(dataset)))] for _ in range(args.batch)])

        batch = load_batch()
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a DataLoader worker runs single-threaded
        loader_rate = _timed(load_batch, args.seconds)
        torch.set_num_threads(torch_threads)
        net, net_name, modulated = _demo_net()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def train_step():
            if modulated:
                out = net(batch['lq'], sensor=batch['sensor'], iso=batch['iso'])
            else:
                out = net(batch['lq'])
            loss = torch.nn.functional.l1_loss(out, batch['gt'])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        train_step()
        step_rate = _timed(train_step, args.seconds)
        print(f'loader vs step: batch {args.batch} x 4x{args.gt_size}x{args.gt_size}; net: {net_name}')
        print(f'  one loader worker (1 thread): {loader_rate:8.1f} batches/s')
        print(f'  training step ({torch_threads} threads): {step_rate:8.1f} steps/s')
        print(f'  ratio worker / step: {loader_rate / step_rate:.1f}x')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
