"""Run by tests/test_distributed.py in 2 ranks: ``gnnkit.ogb.runner.run`` of a small preset for 4 epochs
(dropout 0.5), rank 0 copying the output folder after epoch 2 ("full"), or the copy resumed ("resume").
Arguments: dataset, synthetic data root, output folder, mode.  Rank 0 prints the epochs this process trained,
then the run's per-epoch losses, as JSON lines."""
import json
import os
import shutil
import sys
from pathlib import Path

from gnnkit.ogb import OGBConfig
from gnnkit.ogb.runner import run

dataset, root, out, mode = sys.argv[1:5]
common = dict(runs=1, epochs=4, hidden=16, dropout=0.5, layers=("gnnkit",), root=root)
cfg = {"ogbl-ddi": lambda: OGBConfig("ogbl-ddi", "sage", batch_size=64, extra={"eval_every": 1}, **common),
       "ogbg-molhiv": lambda: OGBConfig("ogbg-molhiv", "gin", num_layers=2, batch_size=16, **common),
       "ogbn-arxiv": lambda: OGBConfig("ogbn-arxiv", "sage", batch_size=32, extra={"fanout": [5, 5, 5]},
                                       **common)}[dataset]()
main = int(os.environ.get("RANK", "0")) == 0


trained = []


def copy_at_2(lib, r, epoch):
    trained.append(epoch)
    if epoch == 2 and mode == "full":
        shutil.copytree(out, out + "_at2")


run(cfg, out, resume=mode == "resume", progress=False, on_epoch=copy_at_2)
if main:
    log = json.loads(Path(out, "log.json").read_text())
    print(json.dumps(trained))
    print(json.dumps([e["loss"] for e in log["runs"]["gnnkit"][0]["epochs"]]))
