"""Run by tests/test_distributed.py in 2 ranks: one epoch of ``gnnkit ogb``'s graph trainer on synthetic molhiv with
a batch size that does not divide a rank's share; rank 0 prints as JSON whether every training graph was handed over
by some rank's training loader (graphs compared by content), how many graphs the ranks got in all, the number of
training graphs and each rank's batch sizes."""
import json
import sys
from collections import Counter

import torch

from gnnkit.distributed import init
from gnnkit.ogb import OGBConfig
from gnnkit.ogb.tasks import make_task


def key(g) -> tuple:
    return (g.num_nodes, tuple(g.x.flatten().tolist()), tuple(g.edge_index.flatten().tolist()))


root, batch_size = sys.argv[1], int(sys.argv[2])
ctx = init("cpu")
cfg = OGBConfig("ogbg-molhiv", "gin", runs=1, epochs=1, hidden=8, num_layers=2, batch_size=batch_size, root=root,
                layers=("gnnkit",))
trainer = make_task(cfg).trainer("gnnkit", 0, None, ctx)
train = trainer.train_loader.dataset
seen, sizes = [], []
for batch in trainer.train_loader:  # the loader the epoch iterates (the sampler's epoch 0)
    sizes.append(batch.num_graphs)
    seen += [key(g) for g in batch.to_data_list()]
everyone = ctx.all_gather_object((seen, sizes))
if ctx.rank == 0:
    got = Counter(k for s, _ in everyone for k in s)
    want = Counter(key(g) for g in train)
    print(json.dumps({"every_graph": not (want - got), "handed": sum(got.values()), "train": len(train),
                      "sizes": [z for _, z in everyone]}))
torch.distributed.destroy_process_group()
