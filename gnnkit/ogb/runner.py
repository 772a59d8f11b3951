"""The OGB benchmark loop: runs x libraries x epochs, OGB's selection rule, logs, checkpoints, resume.

For each run (seed ``seed + r``) every library in ``cfg.layers`` trains the same model from the same
initial weights (those of the gnnkit build under that seed, so a ``--layers pyg`` run repeats the PyG
column of a ``--layers gnnkit,pyg`` one); after every epoch the official metric is computed on valid
and test, and the reported test score is the one at the best validation epoch (OGB's rule; ties keep
the earlier epoch).  The mean ± std over runs is reported per library with the median training-epoch
time and the peak memory of a training epoch.

Files in ``out`` (all written atomically, whole or not at all):

- ``log.json``: the protocol and the dataset's files (folder, names and sizes), then per library and run
  every epoch's loss, scores and time; rewritten after every epoch;
- ``checkpoint.pt``: the run in progress (weights, optimizer, every random stream, best so far);
- ``results.json``: the summary, once every run has finished.

``resume=True`` continues from them: finished runs are kept, the run in progress restarts after its last
completed epoch and ends where an uninterrupted run would have ended (under ``torchrun``: when it resumes
with as many processes; the checkpoint keeps every rank's random streams).  It needs the same protocol and the
same dataset files (another ``--root`` holding the same files is fine; other files are refused).

Under ``torchrun`` (several processes, :mod:`gnnkit.distributed`) every rank trains its share of the data
in ``DistributedDataParallel``; rank 0 alone reads and writes the files; a resumed run may use another
number of processes.
"""
from __future__ import annotations

import io
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from gnnkit._atomic import (
    IntegrityError,
    load_torch_verified,
    read_json_verified,
    read_verified,
    save_torch_verified,
    write_json_verified,
    write_leftover,
)
from gnnkit.distributed import rank_streams, restore_rank_streams, rng_state, set_rng_state

from .tasks import LEADERBOARD, OGBConfig, make_task


class ResumeError(ValueError):
    """``out`` holds a run that cannot be resumed with this configuration (or must not be overwritten)."""


def _load_checkpoint(path: Path) -> Dict[str, Any]:
    try:
        return load_torch_verified(path)
    except IntegrityError as e:
        raise ResumeError(f"{e}; or delete it to restart the run in progress from its first epoch") from None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mean_std(xs: List[float]) -> Dict[str, float]:
    """Mean and unbiased standard deviation (OGB's Logger); one run has none (NaN, ``null`` in the JSON), as
    OGB's ``torch.std`` of one value gives."""
    return {"mean": statistics.mean(xs) if xs else math.nan,
            "std": statistics.stdev(xs) if len(xs) > 1 else math.nan}


def spread(m: Dict[str, Any], runs: int) -> str:
    """``± std`` for a table, ``(1 run)`` where one run has no spread (a JSON's ``null``, or 0.0 from before)."""
    sd = m.get("std")
    if runs < 2 or sd is None or not math.isfinite(sd):
        return "(1 run)" if runs < 2 else "± n/a"
    return f"± {sd:.4f}"


def summarize(log: Dict[str, Any], runs: Optional[int] = None,
              layers: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Per library: test (and valid) at the best validation epoch, mean ± std over finished runs; median
    training-epoch seconds (the epoch whose memory was measured left out when there are others) and peak
    memory (MiB) of a training epoch, medians over runs.  ``runs``/``layers``: only the first ``runs`` runs
    of these libraries (a run resumed with fewer ``--runs`` or other ``--layers`` keeps the others in its
    log, but reports what it was asked for)."""
    out: Dict[str, Any] = {}
    for lib, lib_runs in log["runs"].items():
        if layers is not None and lib not in layers:
            continue
        done = [r for r in lib_runs[:runs] if r.get("complete")]
        if not done:  # a library with no finished run has nothing to report yet
            continue
        peaks = [r["peak_mb"] for r in done if r.get("peak_mb") is not None]  # None where not measurable
        out[lib] = {"runs": len(done), "test": _mean_std([r["test_at_best"] for r in done]),
                    "valid": _mean_std([r["best_valid"] for r in done]),
                    "epoch_s": statistics.median(r["epoch_s_median"] for r in done),
                    "peak_mb": statistics.median(peaks) if peaks else math.nan}
    return out


def run(cfg: OGBConfig, out: str, resume: bool = False, progress: bool = True,
        on_epoch: Optional[Callable[[str, int, int], None]] = None) -> Dict[str, Any]:
    """Run the benchmark of ``cfg``; write ``out``/log.json, checkpoint.pt and results.json; return the
    results (``results.json``'s content).  ``on_epoch(lib, run, epoch)`` is called after every saved epoch."""
    from tqdm.auto import tqdm

    from gnnkit.distributed import comm_failure, init as dist_init, is_comm_error
    from gnnkit.profile import PeakMemory

    ctx = dist_init(cfg.device)
    out_dir = Path(out)
    log_path, ckpt_path, res_path = out_dir / "log.json", out_dir / "checkpoint.pt", out_dir / "results.json"
    device = ctx.device(cfg.device)
    protocol = json.loads(json.dumps(cfg.protocol()))
    state, error = None, None
    if ctx.is_main:  # rank 0 reads what is on disk and hands it to the others (no shared file system needed)
        try:
            state = _read_state(out_dir, protocol, resume)
            data = _data_of(cfg)
            _check_same_data(state[0], data)
            if data is not None:
                state[0]["data"] = data
        except ResumeError as e:
            error = str(e)
    state, error = ctx.broadcast_object((state, error))
    if error is not None:
        raise ResumeError(error)
    log, ckpt = state
    log["config"] = {"runs": cfg.runs, "layers": list(cfg.layers), "device": cfg.device,
                     "world_size": ctx.world_size, "torch": torch.__version__, "threads": torch.get_num_threads()}
    for lib in cfg.layers:
        log["runs"].setdefault(lib, [])

    # rank 0 first: a dataset's first load writes its processed files; a load that fails there (no dataset,
    # bad files) stops every rank with rank 0's error, not the others with a failed collective
    task, failure = None, None
    if ctx.is_main:
        try:
            task = make_task(cfg)
        except (ValueError, FileNotFoundError, IndexError) as e:
            failure = e
    message = ctx.broadcast_object(None if failure is None else str(failure))
    if failure is not None:
        raise failure
    if message is not None:
        raise ValueError(message)
    if task is None:
        task = make_task(cfg)
    log["metric"] = task.metric
    memory = PeakMemory(device)
    progress = progress and ctx.is_main
    trained = False  # whether this call ran an epoch (and so wrote the log)

    for r in range(cfg.runs):
        seed = cfg.seed + r
        init = None
        order = list(cfg.layers)
        if ckpt is not None and ckpt["run"] == r and ckpt["lib"] in order:
            # the interrupted library first, whatever the order of --layers now: its checkpoint holds the
            # epochs it had finished (each library's run is seeded alone, so the order changes no number)
            order.insert(0, order.pop(order.index(ckpt["lib"])))
        for lib in order:
            runs = log["runs"][lib]
            if r < len(runs) and runs[r].get("complete"):
                continue
            if init is None:  # gnnkit's build's seeded initial weights, whichever libraries run (the same on
                # every rank, and in a --layers pyg run as in a --layers gnnkit,pyg one)
                init = task.trainer("gnnkit", seed).initial_state()
            trainer = task.trainer(lib, seed, init, ctx)
            torch.manual_seed(seed)  # the same dropout stream for every library
            record = {"run": r, "seed": seed, "epochs": [], "complete": False, "best_epoch": 0,
                      "best_valid": -math.inf, "test_at_best": math.nan, "peak_mb": None}
            if ckpt is not None and ckpt["lib"] == lib and ckpt["run"] == r:
                trainer.load_state_dict(ckpt["trainer"])
                set_rng_state(ckpt["rng"], device)
                # as many processes as saved it: every rank's own streams (the run continues exactly)
                restore_rank_streams(ckpt.get("ranks"), ctx, trainer.generators(), device)
                record = ckpt["record"]
            ckpt = None
            if r < len(runs):
                runs[r] = record
            else:
                runs.append(record)
            start = len(record["epochs"])
            bar = tqdm(range(start + 1, cfg.epochs + 1), disable=not progress, unit="epoch",
                       desc=f"{cfg.dataset} {cfg.model} [{lib}] run {r + 1}/{cfg.runs}", initial=start,
                       total=cfg.epochs)
            for epoch in bar:
                trained = True
                measure = record["peak_mb"] is None
                peak: Dict[str, float] = {}
                _sync(device)
                t0 = time.perf_counter()
                try:
                    if measure:
                        with memory.measure(peak):
                            loss = trainer.train_epoch(progress)
                    else:
                        loss = trainer.train_epoch(progress)
                    _sync(device)
                    dt = time.perf_counter() - t0
                    if measure and "peak_bytes" in peak and not math.isnan(peak["peak_bytes"]):
                        record["peak_mb"] = peak["peak_bytes"] / 2 ** 20
                    t1 = time.perf_counter()
                    # the dataset's schedule (OGB's ddi example: every 5th epoch), and always the last epoch
                    every = int(cfg.extra.get("eval_every", 1))
                    scores = trainer.evaluate() if epoch % every == 0 or epoch == cfg.epochs else None
                except RuntimeError as e:  # DDP's gradient all-reduce inside backward, with a rank gone
                    if ctx.enabled and is_comm_error(e):
                        raise comm_failure(e, f"epoch {epoch} of {lib} run {r + 1}") from e
                    raise
                row = {"epoch": epoch, "loss": loss, "valid": scores and scores["valid"],
                       "test": scores and scores["test"], "train_s": dt, "eval_s": time.perf_counter() - t1}
                record["epochs"].append(row)
                if scores is not None and scores["valid"] > record["best_valid"]:
                    record.update(best_epoch=epoch, best_valid=scores["valid"], test_at_best=scores["test"])
                row["memory_measured"] = measure  # glibc's allocator is slowed down while measuring memory
                timed = [e["train_s"] for e in record["epochs"] if not e.get("memory_measured")]
                record["epoch_s_median"] = statistics.median(timed or [e["train_s"] for e in record["epochs"]])
                record["complete"] = epoch == cfg.epochs
                if scores is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", valid=f"{scores['valid']:.4f}", test=f"{scores['test']:.4f}")
                streams = rank_streams(ctx, trainer.generators(), device)  # every rank (a collective)
                if ctx.is_main:  # checkpoint first, log second: a log never claims an epoch its checkpoint lacks
                    save_torch_verified({"lib": lib, "run": r, "trainer": trainer.state_dict(),  # + .sha256
                                         "rng": rng_state(device), "ranks": streams, "record": record}, ckpt_path)
                    write_json_verified(log, log_path)
                    if on_epoch is not None:
                        on_epoch(lib, r, epoch)
            bar.close()
            del trainer
    results = {"dataset": cfg.dataset, "model": cfg.model, "metric": log["metric"], "protocol": protocol,
               "config": log["config"], "summary": summarize(log, cfg.runs, cfg.layers),
               "leaderboard": LEADERBOARD.get((cfg.dataset, cfg.model))}
    if ctx.is_main:
        if not trained:  # resumed with nothing left to train (killed while the last epoch's log was written): the
            write_json_verified(log, log_path)  # log must still end where the checkpoint does
        write_json_verified(results, res_path)
    ctx.barrier()
    return results


def _data_of(cfg: OGBConfig) -> Optional[Dict[str, Any]]:
    """The dataset's folder and files (names, sizes); None where it is not found (make_task then says so)."""
    from gnnkit.data import DatasetNotFoundError, dataset_fingerprint
    try:
        return dataset_fingerprint(cfg.dataset, cfg.root)
    except (DatasetNotFoundError, ValueError, OSError):
        return None


def _check_same_data(log: Dict[str, Any], data: Optional[Dict[str, Any]]) -> None:
    """A resumed run must train on the files it started with (``--root`` may differ, the data may not)."""
    saved = log.get("data")
    if not isinstance(saved, dict) or data is None or saved.get("files") == data["files"]:
        return
    old, new = saved.get("files") or {}, data["files"]
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    raise ResumeError(f"--resume: the dataset in {data['folder']} is not the one this run started with "
                      f"({saved.get('folder')}): files {diff[:5]}{' ...' if len(diff) > 5 else ''} differ (name or "
                      f"size); fix: --root pointing at the run's data, or another --out")


def _read_state(out_dir: Path, protocol: Dict[str, Any], resume: bool) -> Any:
    """``(log, checkpoint or None)`` to start from: fresh, or the saved run when resuming it."""
    log_path, ckpt_path = out_dir / "log.json", out_dir / "checkpoint.pt"
    if log_path.exists():
        if not resume:
            raise ResumeError(f"{out_dir} already holds a run (log.json); fix: --resume to continue it, or "
                              "another --out")
        try:
            log = read_json_verified(log_path)
        except IntegrityError as e:
            raise ResumeError(f"--resume: {e}") from None
        if not isinstance(log, dict) or not isinstance(log.get("runs"), dict):
            raise ResumeError(f"--resume: {log_path} is not a gnnkit ogb log (no 'runs'); fix: another --out")
        if log.get("protocol") != protocol:
            diff = {k: (log.get("protocol", {}).get(k), v) for k, v in protocol.items()
                    if log.get("protocol", {}).get(k) != v}
            raise ResumeError(f"--resume: {out_dir} was run with another protocol (saved, now): {diff}; fix: the "
                              "same settings, or another --out")
        return log, (_load_checkpoint(ckpt_path) if ckpt_path.exists() else None)
    cut = False  # the first save was cut: checkpoint first, log second (or only the checkpoint's side file)
    if ckpt_path.exists():
        try:  # tensors and plain containers only: a checkpoint of another tool is not unpickled
            first = torch.load(io.BytesIO(read_verified(ckpt_path)), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - damaged, unverified or not loadable as weights: not this runner's
            first = None
        if not _is_ogb_checkpoint(first):  # another command's run (a VQ run's checkpoint.pt): never overwritten
            raise ResumeError(f"{out_dir}: holds a checkpoint.pt but no gnnkit ogb log.json (another command's "
                              "run?); fix: another --out")
        done = len(first["record"]["epochs"])
        if first["run"] != 0 or done > 1:
            raise ResumeError(f"{out_dir}: holds gnnkit ogb's checkpoint.pt (run {first['run'] + 1}, {done} epochs of "
                              f"{first['lib']}) but no log.json, which keeps the finished runs' scores (removed?); "
                              "fix: restore log.json, or delete checkpoint.pt to start the run over, or another --out")
        cut = True
    # a new run writes log.json, checkpoint.pt and results.json (with .sha256 side files; hidden temp files while
    # writing): a folder holding anything else (a split, samples, a results.json of its own) is not ours; what an
    # interrupted first save leaves (the checkpoint and its side file, or the side file alone) is taken again
    others = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")) if out_dir.is_dir() else []
    leftovers = [n for n in others if n == ckpt_path.name or write_leftover(n, ckpt_path.name)
                 or write_leftover(n, log_path.name)]
    others = [n for n in others if n not in leftovers]
    cut = cut or bool(leftovers)
    if others:
        raise ResumeError(f"{out_dir}: holds {others[:5]}{' ...' if len(others) > 5 else ''} but no gnnkit ogb "
                          "log.json: a new run would write its files among them (and replace a results.json); "
                          "fix: a new or empty --out")
    if cut:  # the files a first save left are replaced by the new run's
        print(f"note: {out_dir}: the run's first save was interrupted (no log.json; {', '.join(leftovers)}); "
              "starting the run again", file=sys.stderr)
    elif resume:  # say so: a mistyped --out would otherwise redo the whole run silently (as gnnkit linkpred says it)
        print(f"note: no run in {out_dir} (no log.json); starting a new run", file=sys.stderr)
    return {"protocol": protocol, "runs": {}}, None


def _is_ogb_checkpoint(state: Any) -> bool:
    """``state`` is what ``run`` saves as ``checkpoint.pt``."""
    return (isinstance(state, dict) and {"lib", "run", "trainer", "record"} <= set(state)
            and isinstance(state["record"], dict) and isinstance(state["record"].get("epochs"), list)
            and isinstance(state["run"], int))


def official_differences(res: Dict[str, Any]) -> List[str]:
    """The settings in which a result's protocol leaves OGB's (the leaderboard's): ``runs`` (fewer than 10 for
    some library), every protocol key but ``seed`` (OGB's runs use seeds 0-9, any start is as good); for a
    multi-process ogbg / ogbn mini-batch run the batch compared is the step's total, processes x ``--batch-size``
    (each process takes ``--batch-size``)."""
    official = OGBConfig(dataset=res["dataset"], model=res["model"])
    ref = json.loads(json.dumps(official.protocol()))
    p = res["protocol"]
    diff = [k for k in ref if k not in ("seed", "extra") and p.get(k) != ref[k]]
    p_extra, ref_extra = p.get("extra") or {}, ref["extra"]
    diff += [k for k in sorted(set(ref_extra) | set(p_extra)) if p_extra.get(k) != ref_extra.get(k)]
    diff = [k.replace("_", "-") for k in diff]
    if any(s.get("runs", 0) < official.runs for s in res.get("summary", {}).values()):
        diff.insert(0, "runs")
    world = int(res.get("config", {}).get("world_size", 1))
    if world > 1 and p.get("batch_size", 0) > 0 and not res["dataset"].startswith("ogbl"):
        # graphs / seed nodes per step are per process: compare the step's total with OGB's batch
        diff = [k for k in diff if k != "batch-size"]
        if world * p["batch_size"] != ref["batch_size"]:
            diff.append(f"batch size ({world} processes x {p['batch_size']}, OGB {ref['batch_size']})")
    return diff


def format_table(res: Dict[str, Any]) -> str:
    """The side-by-side table printed at the end of ``gnnkit ogb``."""
    p, c = res["protocol"], res["config"]
    lines = [f"{res['dataset']} {res['model']}: test {res['metric']} at the best validation epoch; "
             f"{p['epochs']} epochs, device {c['device']}, {c['threads']} threads",
             f"{'layers':<10}{'runs':>6}{'test':>20}{'valid':>20}{'epoch (s)':>12}{'peak (MiB)':>12}"]
    for lib, s in res["summary"].items():
        t, v = s["test"], s["valid"]
        lines.append(f"{lib:<10}{s['runs']:>6}{t['mean']:>12.4f} {spread(t, s['runs']):<8}{v['mean']:>12.4f} "
                     f"{spread(v, s['runs']):<8}{s['epoch_s']:>12.3f}{s['peak_mb']:>12.1f}")
    if res.get("leaderboard"):
        m, sd = res["leaderboard"]
        off = official_differences(res)
        note = f"   (OGB's protocol; this run differs in {', '.join(off)})" if off else ""
        lines.append(f"{'OGB board':<10}{10:>6}{m:>12.4f} ± {sd:<6.4f}{note}")
    g, q = res["summary"].get("gnnkit"), res["summary"].get("pyg")
    if g and q and g["epoch_s"] > 0:
        mem = f"{g['peak_mb'] / q['peak_mb']:.2f}" if q["peak_mb"] and q["peak_mb"] > 0 else "n/a"
        lines.append(f"gnnkit epoch speed-up over PyG: {q['epoch_s'] / g['epoch_s']:.2f}x; peak memory "
                     f"gnnkit/PyG: {mem}")
    return "\n".join(lines)
