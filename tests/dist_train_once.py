"""Run by tests/test_distributed.py, in one process and in 3 ranks: gnnkit.train.train_once on a small seeded
graph whose 17 training nodes the ranks share 6/6/5; rank 0 (or the one process) saves the trained weights to
the path given as the argument."""
import sys

import torch
from torch_geometric.data import Data

import gnnkit.nn
from gnnkit.train import NodeClassifier, TrainConfig, train_once

g = torch.Generator().manual_seed(3)
n = 50
ei = torch.randint(0, n, (2, 200), generator=g)
mask = torch.zeros(3, n, dtype=torch.bool)
mask[torch.arange(n) % 3, torch.arange(n)] = True  # train (17 nodes), val, test
data = Data(x=torch.randn(n, 6, generator=g), edge_index=torch.cat([ei, ei.flip(0)], 1),
            y=torch.randint(0, 3, (n,), generator=g), train_mask=mask[0], val_mask=mask[1], test_mask=mask[2])
torch.manual_seed(0)
model = NodeClassifier("gcn", gnnkit.nn, 6, 8, 3, dropout=0.0)
train_once(model, data, TrainConfig(epochs=4, dropout=0.0))
if int(__import__("os").environ.get("RANK", "0")) == 0:
    torch.save(model.state_dict(), sys.argv[1])
