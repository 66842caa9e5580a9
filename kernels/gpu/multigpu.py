"""Multi-GPU validation with real NCCL (the multi-GPU issue): one process per GPU.

  python3 kernels/gpu/multigpu.py --out $OUT [--backend nccl|gloo] [--world 2] [--trials 200]

Cases (each a protocol variant of Interleave's models, written to $OUT/evidence.json and $OUT/traces.jsonl in the
format of kernels/evidence/, so `interleave gpu-report --evidence DIR` reads them):
  pp-async-p2p:fixed / b4-deferred-send-wait-static   isend/irecv of a {hidden, residual} dict between ranks 0
      and 1; B4 overwrites the static output buffer before waiting the send, while rank 1 posts its receive late
  eplb-async-rebalance:margin-at-safe-bound / pr-margin-late-signal   the TP step-max barrier over gloo signals
      with an injected signal delay: every rank must start the transfer at the same tick; one below the safe
      margin the predicted split occurs (a rank starts a tick late: the exchange would hang, caught by a timeout)
  overlap-linear:fixed / comm-skips-compute-wait   chunked row-parallel linear with a real NCCL all-reduce on a
      comm stream, plus the overlap timing at the PR's sizes (hidden 8192, n 16384..65536)

`--backend gloo` runs everything that does not need GPUs on CPU processes (the barrier case), the dry run that
a machine without several GPUs allows. NVLink multicast stays off (NCCL_NVLS_ENABLE=0).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def log(events: list, rank: int, actor: str, action: str, **params) -> None:
    events.append({"time": round(time.perf_counter(), 6), "rank": rank, "actor": actor, "action": action, "params": params})


# ---- pp-async-p2p --------------------------------------------------------------------------------------------


def pp_trial(rank: int, variant: str, late_ms: float, events: list) -> str:
    dev = torch.device("cuda", rank)
    n = 1 << 22
    if rank == 0:
        static = torch.empty(n, device=dev)
        pending = []
        for mb in range(2):
            out = static if variant == "b4-deferred-send-wait-static" else torch.empty(n, device=dev)
            out.fill_(float(mb + 1))
            log(events, 0, "main", "launch", mb=mb)
            if variant == "fixed" and pending:
                for w in pending:
                    w.wait()
                pending = []
            pending.append(dist.isend(out, 1))
            log(events, 0, "main", "isend", mb=mb)
        for w in pending:
            w.wait()
        torch.cuda.synchronize(dev)
        return "ok"
    got = []
    for mb in range(2):
        time.sleep(late_ms / 1000)  # rank 1 posts its receive late: rank 0's send stays pending meanwhile
        buf = torch.empty(n, device=dev)
        dist.irecv(buf, 0).wait()
        log(events, 1, "main", "irecv", mb=mb)
        got.append(buf)
    torch.cuda.synchronize(dev)
    return "ok" if all(bool(torch.all(g == float(i + 1))) for i, g in enumerate(got)) else "wrong"


# ---- eplb-async-rebalance: the step-max barrier ------------------------------------------------------------------


def barrier_trial(rank: int, world: int, margin: int, delay: int, rng_seed: int, events: list, replay: bool, dev: torch.device) -> str:
    """Ticks are forward passes in lockstep (an all-reduce each). Rank r's plan is ready at tick s_r; its signal
    reaches the others `delay` ticks after the last post; each rank checks at the start of a tick whether the
    step has reached begin_step = max(s) + margin and starts the transfer at the first tick it has."""
    g = torch.Generator().manual_seed(rng_seed)
    ready = [int(torch.randint(0, 3, (1,), generator=g)) for _ in range(world)]
    # Replay: the counterexample's schedule (rank 0's signals arrive D ticks late, the others' at once);
    # otherwise random delays within the bound.
    learn_delay = [(delay if r == 0 else 0) if replay else int(torch.randint(0, delay + 1, (1,), generator=g)) for r in range(world)]
    s_max = max(ready)
    learned_at = s_max + 1 + learn_delay[rank]  # D counted from the tick after the last post
    begin = None
    started = None
    tick_tensor = torch.zeros(1, device=dev)  # NCCL reduces device tensors only
    for tick in range(s_max + margin + delay + 6):
        dist.all_reduce(tick_tensor)  # the forward pass: every rank in the same tick
        if begin is None and tick >= learned_at:
            begin = s_max + margin
            log(events, rank, "forward", "learn_begin", tick=tick, begin=begin)
        if begin is not None and started is None and tick >= begin:
            started = tick
            log(events, rank, "forward", "start_transfer", tick=tick)
    starts = [torch.zeros(1, device=dev) for _ in range(world)]
    dist.all_gather(starts, torch.tensor([float(started if started is not None else -1)], device=dev))
    values = {int(x.item()) for x in starts}
    return "ok" if len(values) == 1 else "split"


# ---- overlap-linear with a real NCCL all-reduce ------------------------------------------------------------------


def overlap_trial(rank: int, world: int, variant: str, n: int, hidden: int, events: list) -> tuple[str, float]:
    dev = torch.device("cuda", rank)
    torch.manual_seed(1234)
    x = torch.randn(n, hidden, device=dev)
    w = torch.randn(hidden, hidden, device=dev) / hidden**0.5
    shard = hidden // world
    xs, ws = x[:, rank * shard : (rank + 1) * shard], w[rank * shard : (rank + 1) * shard]
    ref = x @ w
    C, K = torch.cuda.Stream(dev), torch.cuda.Stream(dev)
    chunk = 5120 if n < 16384 else n // 3
    out = torch.empty(n, hidden, device=dev)
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    done = []
    for start in range(0, n, chunk):
        end = min(n, start + chunk)
        with torch.cuda.stream(C):
            if variant == "comm-skips-compute-wait":
                torch.cuda._sleep(2_000_000)
            torch.mm(xs[start:end], ws, out=out[start:end])
        ev = torch.cuda.Event()
        ev.record(C)
        if variant != "comm-skips-compute-wait":
            K.wait_event(ev)
        with torch.cuda.stream(K):
            dist.all_reduce(out[start:end])
        d = torch.cuda.Event()
        d.record(K)
        done.append(d)
        log(events, rank, "main", "all_reduce", chunk=len(done) - 1)
    for d in done:
        C.wait_event(d)
    torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    ok = torch.allclose(out, ref, rtol=1e-2, atol=1e-2)
    return ("ok" if ok else "wrong"), seconds


def worker(rank: int, world: int, args, port: int, queue) -> None:
    backend = args.backend
    if backend == "nccl":
        torch.cuda.set_device(rank)  # before the group, so NCCL binds this rank's GPU
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=30))
    results: dict = {}
    events: list = []
    dev = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")

    def sample(case: str) -> list:
        """The event list of a case's first trial, each event tagged with the case (gpu-report groups by it)."""
        evs: list = []
        events.append((case, evs))
        return evs

    # Barrier: safe margin (D + 1) and one below, delay D = 2.
    for variant, margin in (("margin-at-safe-bound", 3), ("pr-margin-late-signal", 2)):
        outcomes: dict[str, int] = {}
        for t in range(args.trials):
            evs = sample(f"eplb-async-rebalance:{variant}") if t == 0 else []
            o = barrier_trial(rank, world, margin, 2, t, evs, replay=(margin == 2 or t % 2 == 0), dev=dev)
            outcomes[o] = outcomes.get(o, 0) + 1
        results[("eplb-async-rebalance", variant)] = outcomes
    if backend == "nccl":
        for variant in ("fixed", "b4-deferred-send-wait-static"):
            outcomes = {}
            for t in range(min(args.trials, 100)):
                evs = sample(f"pp-async-p2p:{variant}") if t == 0 else []
                o = pp_trial(rank, variant, 5.0, evs) if world >= 2 else "ok"
                outcomes[o] = outcomes.get(o, 0) + 1
            results[("pp-async-p2p", variant)] = outcomes
        for variant in ("fixed", "comm-skips-compute-wait"):
            outcomes = {}
            for t in range(min(args.trials, 50)):
                evs = sample(f"overlap-linear:{variant}") if t == 0 else []
                o, _ = overlap_trial(rank, world, variant, 9000, 2048, evs)
                outcomes[o] = outcomes.get(o, 0) + 1
            results[("overlap-linear", variant)] = outcomes
        timing = []
        for n in (16384, 32768, 65536):
            for chunked in (True, False):
                ts = []
                for _ in range(5):
                    _, s = overlap_trial(rank, world, "fixed", n, 8192, []) if chunked else _unchunked(rank, world, n, 8192)
                    ts.append(s)
                timing.append({"n": n, "chunked": chunked, "median_s": sorted(ts)[len(ts) // 2]})
        results[("timing", "overlap")] = timing
    events = [dict(e, case=case) for case, evs in events for e in evs]
    queue.put((rank, {f"{k[0]}:{k[1]}": v for k, v in results.items()}, events))
    dist.destroy_process_group()


def _unchunked(rank: int, world: int, n: int, hidden: int) -> tuple[str, float]:
    dev = torch.device("cuda", rank)
    x = torch.randn(n, hidden // world, device=dev)
    w = torch.randn(hidden // world, hidden, device=dev)
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    y = x @ w
    dist.all_reduce(y)
    torch.cuda.synchronize(dev)
    return "ok", time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--backend", default="nccl", choices=["nccl", "gloo"])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    if args.backend == "nccl" and torch.cuda.device_count() < args.world:
        raise SystemExit(f"needs {args.world} GPUs, found {torch.cuda.device_count()}: run with --backend gloo for the CPU dry run")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=worker, args=(r, args.world, args, port, queue)) for r in range(args.world)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    got.sort(key=lambda x: x[0])
    rows = []
    for key in got[0][1]:
        if key.startswith("timing:"):
            continue
        protocol, variant = key.split(":", 1)
        # A trial fails when any rank saw it fail.
        trials = sum(got[0][1][key].values())
        failures = max(trials - r[1][key].get("ok", 0) for r in got)
        buggy = variant not in ("fixed", "margin-at-safe-bound")
        rows.append({"protocol": protocol, "variant": variant, "buggy": buggy, "trials": trials, "failures": failures,
                     "modes": {"replay" if buggy else "none": {"trials": trials, "failures": failures, "outcomes": got[0][1][key]}},
                     "note": f"{args.world} processes, backend {args.backend}"})
    os.makedirs(args.out, exist_ok=True)
    meta = {"backend": args.backend, "world": args.world, "torch": torch.__version__,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []}
    timing = got[0][1].get("timing:overlap")
    with open(os.path.join(args.out, "evidence.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "timing": timing}, f, indent=1)
    with open(os.path.join(args.out, "traces.jsonl"), "w") as f:
        for r, _, evs in got:
            for e in evs:
                f.write(json.dumps(e) + "\n")
    for r in rows:
        print(f"{r['protocol']}:{r['variant']:40s} trials={r['trials']:5d} failures={r['failures']:5d}")
    # Overlap timing: chunked with the all-reduce overlapped against one matmul then one all-reduce (rank 0).
    for n in sorted({t["n"] for t in timing or []}):
        c = next(t["median_s"] for t in timing if t["n"] == n and t["chunked"])
        u = next(t["median_s"] for t in timing if t["n"] == n and not t["chunked"])
        print(f"overlap timing n={n}: chunked {c * 1e3:.2f} ms, unchunked {u * 1e3:.2f} ms, chunked/unchunked {c / u:.3f}")


if __name__ == "__main__":
    main()
