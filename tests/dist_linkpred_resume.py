"""Run by tests/test_distributed.py in 2 ranks: ``gnnkit.linkpred.fit`` with a checkpoint written every epoch,
4 epochs with decoder dropout; rank 0 copies the checkpoint after epoch 2 ("full"), or the copy is resumed
("resume": the checkpoint path given is that copy), or rank 1's clock runs fast ("skew").  Arguments: checkpoint
path, mode.  Rank 0 prints the epochs this process trained, then the run's per-epoch losses, as JSON lines."""
import json
import os
import shutil
import sys

from dist_common import small_link_split

from gnnkit.linkpred.train import LinkPredConfig, fit

path, mode = sys.argv[1:3]
train, val, test = small_link_split()
cfg = LinkPredConfig(model="sage", decoder="mlp", hidden=16, out_channels=8, dropout=0.5, epochs=4, batch_size=9,
                     eval_every=1, seed=0)


trained = []


def copy_at_2(result):
    trained.append(len(result.history))
    if len(result.history) == 2 and mode == "full":
        shutil.copy(path, path + "_at2")
        shutil.copy(path + ".sha256", path + "_at2.sha256")


every_s = 0
if mode == "skew":  # rank 1's clock runs a million times fast: it alone would want to save after every epoch
    import gnnkit.linkpred.train as lt
    every_s, real = 100.0, lt.time.perf_counter
    if os.environ.get("RANK") == "1":
        lt.time = type("FastClock", (), {"perf_counter": staticmethod(lambda: real() * 1e6)})
res = fit(train, val, test, cfg, progress=False, on_epoch=copy_at_2, checkpoint=path, resume=mode == "resume",
          checkpoint_every_s=every_s)
if int(os.environ.get("RANK", "0")) == 0:
    print(json.dumps(trained))
    print(json.dumps([row["loss"] for row in res.history]))
