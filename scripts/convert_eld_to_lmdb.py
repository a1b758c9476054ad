#!/usr/bin/env python
"""Convert the ELD layout (Wei et al., CVPR 2020) into noisy/clean RAW LMDBs.

Layout: <root>/<camera>/scene-<n>/IMG_<id:04d>.<CR2|NEF|ARW>. Inputs are --noisy-ids (default the
benchmark's 4,9,14 (ratio 100) and 5,10,15 (ratio 200)); each uses the nearest of --gt-ids (1,6,11,16).
ISO and exposure come from the files, or from an optional metadata.json in a scene folder
({"files": {"IMG_0004.CR2": {"iso": 800, "exposure": 0.01}}}); the stored ratio is
(GT exposure x GT ISO) / (input exposure x input ISO).
"""
import argparse
import sys

from basicsr_adl.raw.converters import ELD_GT_IDS, ELD_NOISY_IDS, add_eld_ratios, eld_pairs
from basicsr_adl.raw.script_utils import add_output_args, run


def _ints(text: str):
    out = []
    for part in text.split(','):
        if '-' in part:
            lo, hi = part.split('-')
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='ELD folder (holding one folder per camera)')
    parser.add_argument('--camera', required=True, help='camera folder, e.g. SonyA7S2, NikonD850, CanonEOS70D')
    parser.add_argument('--scenes', type=_ints, help='scene numbers, e.g. 1-10 (default: all)')
    parser.add_argument('--noisy-ids', type=_ints, default=list(ELD_NOISY_IDS))
    parser.add_argument('--gt-ids', type=_ints, default=list(ELD_GT_IDS))
    parser.add_argument('--sensor', help='sensor name stored (default: the camera folder name)')
    add_output_args(parser)
    args = parser.parse_args(argv)

    def list_pairs():
        pairs = eld_pairs(args.root, args.camera, args.scenes, args.noisy_ids, args.gt_ids, args.sensor)
        add_eld_ratios(pairs)
        return pairs

    return run(list_pairs, args, require_iso=True)


if __name__ == '__main__':
    sys.exit(main())
