"""Run by tests/test_distributed.py in 2 ranks: for every step of one LinkPredTrainer epoch, the gradient DDP
averaged over the ranks must equal the gradient of one process on the ranks' concatenated batch, from the same
weights, and the epoch loss fit reports must be the mean over the epoch's pairs.  Argument: the batch size.  Exit 0
when all agree, 1 (with what differs) otherwise."""
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from dist_common import NODES, small_link_split

from gnnkit.distributed import init as dist_init
from gnnkit.linkpred.train import LinkPredConfig, LinkPredTrainer

ctx = dist_init("cpu")
train, val, test = small_link_split()
n = NODES
cfg = LinkPredConfig(model="sage", decoder="dot", hidden=16, out_channels=8, dropout=0.0, epochs=1,
                     batch_size=int(sys.argv[1]), seed=0)
trainer = LinkPredTrainer(train, val, test, cfg, ctx=ctx)
rec = {"pairs": [], "msg": [], "weights": [], "grads": []}
enc_net, dec_net = trainer.enc_net, trainer.dec_net
params = list(trainer.enc.parameters()) + list(trainer.dec.parameters())


def enc(x, msg):
    rec["msg"].append(msg.clone())
    rec["weights"].append([p.detach().clone() for p in params])
    return enc_net(x, msg)


def dec(z, pairs):
    rec["pairs"].append(pairs.clone())
    return dec_net(z, pairs)


trainer.enc_net, trainer.dec_net = enc, dec
step = trainer.opt.step


def recording_step(*a, **k):
    rec["grads"].append([p.grad.clone() for p in params])
    return step(*a, **k)


trainer.opt.step = recording_step
reported = ctx.all_reduce_mean(trainer.train_epoch())  # the epoch's loss as fit logs it
every = [None] * ctx.world_size
dist.all_gather_object(every, rec)
bad, summed, pairs = [], 0.0, 0
if ctx.rank == 0:
    for b in range(len(rec["grads"])):
        pos = torch.cat([r["pairs"][2 * b] for r in every], 1)
        neg = torch.cat([r["pairs"][2 * b + 1] for r in every], 1)
        with torch.no_grad():
            for p, w in zip(params, rec["weights"][b]):
                p.copy_(w)
        for p in params:
            p.grad = None
        z = trainer.enc(trainer.x, rec["msg"][b])
        ps, ns = trainer.dec(z, pos), trainer.dec(z, neg)
        loss = F.binary_cross_entropy_with_logits(ps, torch.ones_like(ps)) + \
            F.binary_cross_entropy_with_logits(ns, torch.zeros_like(ns))
        loss.backward()
        summed, pairs = summed + float(loss) * pos.size(1), pairs + pos.size(1)
        want = torch.cat([p.grad.flatten() for p in params])
        got = torch.cat([x.flatten() for x in rec["grads"][b]])
        err = float((got - want).norm() / want.norm())
        if err > 1e-5:
            bad.append(f"step {b}: shares {[r['pairs'][2 * b].size(1) for r in every]}, relative error {err:.2e}")
    if abs(reported - summed / pairs) > 1e-5 * abs(summed / pairs):
        bad.append(f"reported epoch loss {reported:.6f}, the whole batches' mean {summed / pairs:.6f}")
    print(f"{len(rec['grads'])} steps", *bad, sep="\n")
dist.destroy_process_group()
sys.exit(1 if bad else 0)
