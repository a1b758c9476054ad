"""Run ``basicsr_adl.cli.main`` (what ``basicsr_adl/train.py`` runs) and dump each rank's final weights.

Used by the DDP test under ``torchrun``: BasicSR saves weights from rank 0 only, so to prove the replicas
agree every rank writes its own copy to ``rank<R>_weights.pth`` in the working directory.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import basicsr_adl.plugin  # noqa: E402,F401  (before basicsr)
import basicsr.train as basicsr_train  # noqa: E402
from basicsr_adl.cli import main  # noqa: E402

built = []
_build_model = basicsr_train.build_model


def _capturing_build_model(opt):
    model = _build_model(opt)
    built.append(model)
    return model


basicsr_train.build_model = _capturing_build_model

if __name__ == '__main__':
    main(is_train=True)
    model = built[0]
    bare = model.get_bare_model(model.net_g)
    torch.save({k: v.detach().cpu() for k, v in bare.state_dict().items()},
               f"rank{os.environ.get('RANK', '0')}_weights.pth")
