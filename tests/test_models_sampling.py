"""The ready models' mini-batch side, as PyG's ``BasicGNN``: per-layer trimming of ``NeighborLoader`` batches
(``num_sampled_nodes_per_hop`` / ``num_sampled_edges_per_hop``), ``batch_size``, and layer-wise ``inference``.

``NeighborLoader`` needs pyg-lib or torch-sparse to sample (neither installs here), so the batches are built by a
full-neighbourhood sampler written below that lays nodes and edges out hop by hop as ``NeighborLoader`` does."""
import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch_geometric.data import Data

import gnnkit.nn as gnn


def sample(edge_index, seeds, hops):
    """Every in-neighbour, ``hops`` hops out from ``seeds``: (n_id, local edge_index, nodes per hop, edges per hop),
    nodes ordered seeds first then hop by hop, the edges into hop h's nodes in block h (NeighborLoader's layout)."""
    src, dst = edge_index.tolist()
    into = {}
    for u, v in zip(src, dst):
        into.setdefault(v, []).append(u)
    n_id = list(seeds)
    pos = {v: i for i, v in enumerate(n_id)}
    nodes, edges, local, frontier = [len(n_id)], [], [], list(seeds)
    for _ in range(hops):
        new, count = [], 0
        for v in frontier:
            for u in into.get(v, []):
                if u not in pos:
                    pos[u] = len(n_id)
                    n_id.append(u)
                    new.append(u)
                local.append((pos[u], pos[v]))
                count += 1
        nodes.append(len(new))
        edges.append(count)
        frontier = new
    return torch.tensor(n_id), torch.tensor(local, dtype=torch.long).t().reshape(2, -1), nodes, edges


def graph(n=60, e=300, f=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.randint(0, n, (2, e), generator=g)


@pytest.mark.parametrize("kind", ["GCN", "GraphSAGE"])
def test_trimmed_forward_matches_pyg_and_the_untrimmed_seeds(kind):
    x, ei = graph()
    torch.manual_seed(0)
    ours = getattr(gnn, kind)(6, 16, 3, 4).eval()
    theirs = getattr(pyg_nn, kind)(6, 16, 3, 4).eval()
    theirs.load_state_dict(ours.state_dict())
    n_id, local, nodes, edges = sample(ei, [3, 7, 11, 20], 3)
    xb, size = x[n_id], 4
    trimmed = ours(xb, local, num_sampled_nodes_per_hop=nodes, num_sampled_edges_per_hop=edges)
    ref = theirs(xb, local, num_sampled_nodes_per_hop=nodes, num_sampled_edges_per_hop=edges)
    assert trimmed.shape == ref.shape and trimmed.size(0) < xb.size(0)  # the rows no later layer reads are gone
    torch.testing.assert_close(trimmed, ref)
    if kind == "GraphSAGE":  # mean aggregation reads only in-edges, all of which are kept: seeds as untrimmed
        torch.testing.assert_close(trimmed[:size], ours(xb, local)[:size])


def test_trimmed_forward_trims_edge_weights_as_pyg():
    x, ei = graph(seed=1)
    w = torch.rand(ei.size(1))
    torch.manual_seed(0)
    ours, theirs = gnn.GCN(6, 8, 2, 3).eval(), pyg_nn.GCN(6, 8, 2, 3).eval()
    theirs.load_state_dict(ours.state_dict())
    n_id, local, nodes, edges = sample(ei, [0, 1, 2], 2)
    # the sampled edges' weights, in the sampler's order
    lookup = {}
    for k, (u, v) in enumerate(ei.t().tolist()):
        lookup.setdefault((u, v), []).append(k)
    ids = n_id.tolist()
    wb = torch.stack([w[lookup[(ids[a], ids[b])][0]] for a, b in local.t().tolist()])
    kw = dict(num_sampled_nodes_per_hop=nodes, num_sampled_edges_per_hop=edges)
    torch.testing.assert_close(ours(x[n_id], local, wb, **kw), theirs(x[n_id], local, wb, **kw))


def test_batch_size_is_pygs_name_for_num_graphs():
    x, ei = graph()
    batch = torch.arange(60) // 20
    model = gnn.GIN(6, 8, 2, 3, readout="sum", norm="batch").eval()
    torch.testing.assert_close(model(x, ei, batch=batch, batch_size=3), model(x, ei, batch=batch, num_graphs=3))
    with pytest.raises(ValueError, match="batch_size=3 .* num_graphs=4 disagree"):
        model(x, ei, batch=batch, batch_size=3, num_graphs=4)


def test_trimming_refuses_what_it_cannot_serve_by_name():
    x, ei = graph()
    n_id, local, nodes, edges = sample(ei, [0, 1], 2)
    xb = x[n_id]
    with pytest.raises(ValueError, match="num_sampled_nodes_per_hop needs num_sampled_edges_per_hop"):
        gnn.GraphSAGE(6, 8, 2, 3)(xb, local, num_sampled_nodes_per_hop=nodes)
    with pytest.raises(ValueError, match="hold 2 / 1 hops for 2 layers"):
        gnn.GraphSAGE(6, 8, 2, 3)(xb, local, num_sampled_nodes_per_hop=nodes[:2], num_sampled_edges_per_hop=edges[:1])
    with pytest.raises(ValueError, match="jk='cat'"):
        gnn.GraphSAGE(6, 8, 2, 3, jk="cat")(xb, local, num_sampled_nodes_per_hop=nodes,
                                             num_sampled_edges_per_hop=edges)
    with pytest.raises(ValueError, match="readout"):
        gnn.GIN(6, 8, 2, 3, readout="sum")(xb, local, num_sampled_nodes_per_hop=nodes,
                                           num_sampled_edges_per_hop=edges)
    import numpy as np
    sage = gnn.GraphSAGE(6, 8, 2, 3).eval()
    kw = dict(num_sampled_nodes_per_hop=nodes, num_sampled_edges_per_hop=edges)
    torch.testing.assert_close(sage(xb, local, num_sampled_nodes_per_hop=[np.int64(v) for v in nodes],
                                    num_sampled_edges_per_hop=edges), sage(xb, local, **kw))  # numpy counts too
    with pytest.raises(ValueError, match=r"num_sampled_nodes_per_hop needs num_sampled_edges_per_hop too \(a "
                                         r"NeighborLoader batch holds both: batch.num_sampled_edges\)"):
        sage(xb, local, num_sampled_nodes_per_hop=nodes)
    with pytest.raises(ValueError, match="must be a list of counts per hop"):
        gnn.GraphSAGE(6, 8, 2, 3)(xb, local, num_sampled_nodes_per_hop=[1.5, 2, 3], num_sampled_edges_per_hop=edges)


class OneHopLoader:
    """A one-hop, full-neighbourhood stand-in for ``NeighborLoader(data, num_neighbors=[-1], batch_size=...)``."""

    def __init__(self, data, batch_size, shuffle=False, skip_last=False):
        self.data, self.batch_size, self.shuffle, self.skip_last = data, batch_size, shuffle, skip_last

    def _chunks(self):
        order = torch.randperm(self.data.num_nodes, generator=torch.Generator().manual_seed(1)) if self.shuffle \
            else torch.arange(self.data.num_nodes)
        chunks = list(order.split(self.batch_size))
        return chunks[:-1] if self.skip_last else chunks

    def __len__(self):
        return len(self._chunks())

    def __iter__(self):
        for seeds in self._chunks():
            n_id, local, _, _ = sample(self.data.edge_index, seeds.tolist(), 1)
            yield Data(n_id=n_id, edge_index=local, batch_size=len(seeds))


@pytest.mark.parametrize("make", [
    lambda: gnn.GraphSAGE(6, 16, 3, 4),
    lambda: gnn.GraphSAGE(6, 16, 3, 4, aggr="max", norm="batch", residual=True),
    lambda: gnn.GIN(6, 16, 2, 4, jk="last"),
    lambda: gnn.GAT(6, 16, 2, 4, heads=2),
], ids=["sage", "sage-max-norm-residual", "gin-jk-last", "gat"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_layerwise_inference_equals_the_full_graph_forward(make, shuffle):
    x, ei = graph(n=80, e=400)
    torch.manual_seed(0)
    model = make().eval()
    if model.norms:  # non-trivial running statistics
        for norm in model.norms:
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    loader = OneHopLoader(Data(x=x, edge_index=ei), batch_size=17, shuffle=shuffle)
    torch.testing.assert_close(model.inference(loader), model(x, ei), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.inference(loader, cache=True, progress_bar=True), model(x, ei),
                               atol=1e-5, rtol=1e-5)


def test_layerwise_inference_refuses_by_name():
    x, ei = graph()
    data = Data(x=x, edge_index=ei)
    with pytest.raises(RuntimeError, match=r"model.eval\(\) first"):
        gnn.GraphSAGE(6, 8, 2, 3).inference(OneHopLoader(data, 10))
    with pytest.raises(ValueError, match="readout"):
        gnn.GIN(6, 8, 2, 3, readout="sum").eval().inference(OneHopLoader(data, 10))
    with pytest.raises(ValueError, match="edge_dim"):
        gnn.GAT(6, 8, 2, 3, heads=2, edge_dim=2).eval().inference(OneHopLoader(data, 10))
    with pytest.raises(ValueError, match="nodes were in no batch's seeds"):
        gnn.GraphSAGE(6, 8, 2, 3).eval().inference(OneHopLoader(data, 7, skip_last=True))


@pytest.mark.parametrize("kind", ["GCN", "GraphSAGE"])
def test_out_channels_defaults_to_hidden_as_pyg(kind):
    """PyG's models take out_channels=None as the hidden width; gnnkit's refused it (review, ninth round)."""
    x, ei = graph()
    torch.manual_seed(0)
    ours = getattr(gnn, kind)(6, 16, 2).eval()
    theirs = getattr(pyg_nn, kind)(6, 16, 2).eval()
    theirs.load_state_dict(ours.state_dict())
    assert ours.out_channels == 16
    torch.testing.assert_close(ours(x, ei), theirs(x, ei))
    assert gnn.GIN(6, 16, 2, None, jk="cat")(x, ei).shape == (60, 16)


def test_mini_batch_arguments_are_named_when_wrong():
    x, ei = graph()
    model = gnn.GraphSAGE(6, 8, 2, 3).eval()
    with pytest.raises(ValueError, match=r"inference_per_layer: layer must be an int in \[0, 2\)"):
        model.inference_per_layer(5, x, ei, 3)
    with pytest.raises(ValueError, match="inference_per_layer: batch_size must be an int >= 1"):
        model.inference_per_layer(0, x, ei, -1)
    with pytest.raises(ValueError, match="GraphSAGE: batch_size must be an int >= 1"):
        model(x, ei, batch_size="a")
