"""Learning to Adapt Noise (LAN, Kim et al., CVPR 2024): plain-PyTorch core, no BasicSR import.

``losses`` (ZS-N2N, Nbr2Nbr), ``adapter`` (the input-offset adapter), ``baselines`` (full / first-layer /
last-layer fine-tuning) and ``lean_backward`` (input-gradient-only path for frozen nets), ``meta`` (a first-order-MAML starting point for
fine-tuning, the paper's meta-learning baseline).
"""
from basicsr_adl.lan.adapter import AdaptConfig, AdaptResult, adapt_offset, frozen, make_even
from basicsr_adl.lan.baselines import SCOPES, adapt_weights
from basicsr_adl.lan.lean_backward import make_lean
from basicsr_adl.lan.losses import LOSS_NAMES, nbr2nbr_loss, self_supervised_loss, zsn2n_loss

MODES = ('offset',) + SCOPES + ('meta',)  # meta: full fine-tuning from meta-trained weights (lan.meta)

__all__ = ['AdaptConfig', 'AdaptResult', 'adapt_offset', 'frozen', 'make_even', 'SCOPES', 'adapt_weights',
           'make_lean', 'LOSS_NAMES', 'nbr2nbr_loss', 'self_supervised_loss', 'zsn2n_loss', 'MODES']
