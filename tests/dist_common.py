"""Shared by the tests/dist_*.py scripts (run by tests/test_distributed.py under several processes): a small
seeded undirected graph's transductive link split."""
import torch
from torch_geometric.data import Data

from gnnkit.linkpred.split import TransductiveLinkSplit

NODES = 60


def small_link_split():
    """(train, val, test) of a 60-node graph with 300 random edges stored both ways; the same on every rank."""
    g = torch.Generator().manual_seed(1)
    ei = torch.randint(0, NODES, (2, 300), generator=g)
    data = Data(x=torch.randn(NODES, 8, generator=g), edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=NODES)
    return TransductiveLinkSplit(seed=0, add_negative_train_samples=False)(data)
