"""Run by tests/test_distributed.py in 2 ranks: one LinkPredTrainer epoch with an MLP decoder and dropout 0.5
over batches the ranks share unequally (5 pairs: 3 and 2).  Every dropout mask is recorded with the module that
drew it; rank 0 exits 0 when the encoder's whole-graph masks are equal on both ranks at every step and the
decoder's per-pair masks differ, 1 (saying which) otherwise."""
import sys

import torch
import torch.distributed as dist
from dist_common import NODES, small_link_split

import gnnkit.nn.dropout as gd
from gnnkit.distributed import init as dist_init
from gnnkit.linkpred.train import LinkPredConfig, LinkPredTrainer

ctx = dist_init("cpu")
train, val, test = small_link_split()
n = NODES
cfg = LinkPredConfig(model="sage", decoder="mlp", hidden=16, out_channels=8, dropout=0.5, epochs=1, batch_size=5,
                     seed=0)
trainer = LinkPredTrainer(train, val, test, cfg, ctx=ctx)
masks = []
keep = gd._keep_mask


def recording(shape, numel, threshold, device):
    m = keep(shape, numel, threshold, device)
    masks.append(("encoder" if shape[0] == n else "decoder", m.clone()))
    return m


gd._keep_mask = recording
trainer.train_epoch()
every = [None] * ctx.world_size
dist.all_gather_object(every, masks)
bad = []
if ctx.rank == 0:
    enc = [[m for kind, m in r if kind == "encoder"] for r in every]
    dec = [[m for kind, m in r if kind == "decoder"] for r in every]
    if not enc[0] or len(enc[0]) != len(enc[1]) or not all(torch.equal(a, b) for a, b in zip(*enc)):
        bad.append(f"encoder masks differ across ranks at {sum(not torch.equal(a, b) for a, b in zip(*enc))} "
                   f"of {len(enc[0])} draws")
    same = sum(a.shape == b.shape and torch.equal(a, b) for a, b in zip(*dec))
    if not dec[0] or same:
        bad.append(f"{same} of {len(dec[0])} decoder masks are equal on both ranks")
    print(*bad, sep="\n")
dist.destroy_process_group()
sys.exit(1 if bad else 0)
