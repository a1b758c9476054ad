"""Per-source accept/reject counts over stage 2, and the source x epoch accept-rate heatmap (paper Fig. 4).

An "epoch" here is one of ``num_epochs`` equal slices of stage 2's iterations, so the heatmap has the same
shape whatever the dataset lengths.
"""
import csv
import hashlib
import json
import os
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import torch

HEATMAP_PNG, HEATMAP_CSV = 'adl_accept_heatmap.png', 'adl_accept_rates.csv'  # in the experiment folder


class AcceptLog:
    def __init__(self, domains: Sequence[str], adapt_iters: int, num_epochs: int = 10) -> None:
        if not domains:
            raise ValueError('AcceptLog needs at least one source domain')
        self.domains = list(domains)
        self.adapt_iters = max(int(adapt_iters), 1)
        self.num_epochs = max(1, min(int(num_epochs), self.adapt_iters))
        self.accepted = torch.zeros(len(self.domains), self.num_epochs, dtype=torch.long)
        self.total = torch.zeros(len(self.domains), self.num_epochs, dtype=torch.long)

    def epoch_of(self, adapt_step: int) -> int:
        return min(max(adapt_step, 0) * self.num_epochs // self.adapt_iters, self.num_epochs - 1)

    def record(self, domain: str, accepted: bool, adapt_step: int) -> None:
        d, e = self.domains.index(domain), self.epoch_of(adapt_step)
        self.total[d, e] += 1
        self.accepted[d, e] += int(bool(accepted))

    def counts(self) -> Dict[str, Tuple[int, int]]:
        """domain -> (accepted, rejected) over all of stage 2 so far."""
        acc, tot = self.accepted.sum(1), self.total.sum(1)
        return {d: (int(acc[i]), int(tot[i] - acc[i])) for i, d in enumerate(self.domains)}

    def rates(self) -> torch.Tensor:
        """Accept rate per (domain, epoch); NaN where no step was taken."""
        rates = self.accepted.double() / self.total.double().clamp(min=1)
        rates[self.total == 0] = float('nan')
        return rates

    def write(self, folder: str, title: str) -> Tuple[str, str]:
        """The heatmap and the CSV into ``folder``; returns their paths."""
        png, csv_path = os.path.join(folder, HEATMAP_PNG), os.path.join(folder, HEATMAP_CSV)
        self.write_csv(csv_path)
        self.write_png(png, title=title)
        return png, csv_path

    def summary(self) -> str:
        return ', '.join(f'{d}: {a} accepted / {r} rejected' for d, (a, r) in self.counts().items())

    def write_csv(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['source', 'epoch', 'accepted', 'total', 'accept_rate'])
            rates = self.rates()
            for i, d in enumerate(self.domains):
                for e in range(self.num_epochs):
                    rate = '' if int(self.total[i, e]) == 0 else f'{float(rates[i, e]):.4f}'
                    writer.writerow([d, e, int(self.accepted[i, e]), int(self.total[i, e]), rate])

    def write_png(self, path: str, title: str = 'ADL accept rate per source and epoch') -> None:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        rates = self.rates().numpy()
        fig, ax = plt.subplots(figsize=(1.0 + 0.55 * self.num_epochs, 1.2 + 0.45 * len(self.domains)))
        im = ax.imshow(rates, vmin=0.0, vmax=1.0, cmap='viridis', aspect='auto')
        ax.set_xticks(range(self.num_epochs))
        ax.set_yticks(range(len(self.domains)))
        ax.set_yticklabels(self.domains)
        ax.set_xlabel('stage-2 epoch')
        ax.set_title(title, fontsize=9)
        for i in range(len(self.domains)):
            for e in range(self.num_epochs):
                if int(self.total[i, e]):
                    ax.text(e, i, f'{rates[i, e]:.2f}', ha='center', va='center', fontsize=6,
                            color='white' if rates[i, e] < 0.5 else 'black')
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def state_dict(self) -> Dict[str, Any]:
        return {'domains': list(self.domains), 'accepted': self.accepted.clone(), 'total': self.total.clone()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if list(state['domains']) != self.domains:
            raise ValueError(f"saved source domains {state['domains']} differ from the configured {self.domains}")
        self.accepted.copy_(state['accepted'])
        self.total.copy_(state['total'])


def write_rank_decisions(path: str, rank: int, decisions: List[Tuple], params: Iterable[torch.Tensor]) -> str:
    """One rank's gate decisions and a SHA-256 of its weights (float64 bytes), so DDP ranks can be compared."""
    weights = torch.cat([p.detach().reshape(-1).double().cpu() for p in params])
    with open(path, 'w') as f:
        json.dump({'rank': rank, 'decisions': decisions,
                   'weights_sha256': hashlib.sha256(weights.numpy().tobytes()).hexdigest()}, f)
    return path
