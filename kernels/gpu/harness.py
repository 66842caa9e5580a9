"""GPU validation harness: runs the fixed and buggy variants of Interleave's protocols with real CUDA streams,
events, the caching allocator and Python threads on one GPU, and records what happened.

Each case is one protocol variant. A buggy variant is run with the checker's counterexample schedule replayed:
the steps the counterexample puts late are delayed (``torch.cuda._sleep`` on a stream, ``time.sleep`` in a
thread), so the interleaving the checker found is the one the hardware runs. A fixed variant is run with no
injected delay and with random delays at every delay point, to show that no timing breaks it.

Single-GPU emulation, stated plainly: a "rank" is a CUDA stream or a CPU thread of this one process (or a
gloo process on this machine for the collective cases); NCCL point-to-point traffic is emulated by copies on a
communication stream; an NCCL handle's ``wait()`` is ``current_stream.wait_stream(comm)`` (it orders the
stream and does not block the CPU), a gloo handle's ``wait()`` blocks the CPU thread. Real NCCL between GPUs
is the multi-GPU issue's job.

Usage (on the device machine):  python3 kernels/gpu/harness.py --out $OUT [--trials 1000] [--cases a,b]
Writes $OUT/evidence.json (one row per case), $OUT/traces.jsonl (sample traces), $OUT/outputs.json (float32
outputs for the ONNX oracle), and with --sanitizer the CSAN report of one run per case.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import torch

# Deterministic float32: no TF32 in matmuls, so outputs can be compared with the CPU oracle at 1e-5.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

DEV = "cuda"
N_ELEMS = 1 << 22  # 16 MiB of float32: large enough that a copy is still running when a racing op lands
CYCLES_PER_MS = 1_900_000  # torch.cuda._sleep counts GPU cycles (~1.9 GHz on an H100 under load)


def mulberry32(seed: int) -> Callable[[], float]:
    """The same generator as kernels/random.ts, so the TypeScript oracle regenerates identical inputs."""
    s = seed & 0xFFFFFFFF

    def imul(a: int, b: int) -> int:
        return (a * b) & 0xFFFFFFFF

    def nxt() -> float:
        nonlocal s
        s = (s + 0x6D2B79F5) & 0xFFFFFFFF
        t = s
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return nxt


def random_tensor(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
    nxt = mulberry32(seed)
    n = 1
    for d in shape:
        n *= d
    data = [(nxt() * 2 - 1) * scale for _ in range(n)]
    return torch.tensor(data, dtype=torch.float32).reshape(shape)


@dataclass
class Trial:
    """One run of a case: its delay policy, and the events it records in `interleave validate`'s format."""

    case: str
    mode: str  # "replay" (the counterexample's delays), "random" (random delays everywhere), "none"
    rng: random.Random
    events: list = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def log(self, rank: int, actor: str, action: str, **params) -> None:
        with self.lock:
            self.events.append(
                {"time": round(time.perf_counter() - self.t0, 6), "rank": rank, "actor": actor, "action": action, "params": params}
            )

    def delay_ms(self, point: str, replay_ms: float) -> float:
        """How long to delay at a named point: the replayed schedule's delay, a random one, or none."""
        if self.mode == "replay":
            return replay_ms
        if self.mode == "random":
            return self.rng.choice([0.0, 0.0, 0.05, 0.2, 1.0, 3.0])
        return 0.0

    def gpu_delay(self, stream: torch.cuda.Stream, point: str, replay_ms: float = 0.0) -> None:
        ms = self.delay_ms(point, replay_ms)
        if ms > 0:
            with torch.cuda.stream(stream):
                torch.cuda._sleep(int(ms * CYCLES_PER_MS))

    def cpu_delay(self, point: str, replay_ms: float = 0.0) -> None:
        ms = self.delay_ms(point, replay_ms)
        if ms > 0:
            time.sleep(ms / 1000)


@dataclass
class Case:
    protocol: str
    variant: str
    buggy: bool
    run: Callable[[Trial], str]  # returns "ok", "wrong", "hang" or "exception: ..."
    trials: int | None = None  # per-case cap (slow cases: hangs caught by timeouts)
    note: str = ""


CASES: dict[str, Case] = {}


def case(protocol: str, variant: str, buggy: bool, trials: int | None = None, note: str = ""):
    def register(fn: Callable[[Trial], str]) -> Callable[[Trial], str]:
        CASES[f"{protocol}:{variant}"] = Case(protocol, variant, buggy, fn, trials, note)
        return fn

    return register


# ---- gpu-semantics: the caching allocator ------------------------------------------------------------------


def side_copy_of_freed(t: Trial, record: str | None) -> str:
    """A side stream copies x while the default stream frees x and allocates (and fills) a new tensor."""
    default = torch.cuda.current_stream()
    side = torch.cuda.Stream()
    out = torch.empty(N_ELEMS, device=DEV)
    x = torch.full((N_ELEMS,), 1.0, device=DEV)
    t.log(0, "main", "alloc", buf="x", stream="default")
    side.wait_stream(default)
    t.gpu_delay(side, "side copy", replay_ms=2.0)
    with torch.cuda.stream(side):
        out.copy_(x)
    t.log(0, "main", "launch", stream="side", op="copy", reads="x", writes="out")
    if record == "side":
        x.record_stream(side)
    elif record == "default":
        x.record_stream(default)
    if record:
        t.log(0, "main", "record_stream", buf="x", stream=record)
    del x
    t.log(0, "main", "free", buf="x")
    y = torch.empty(N_ELEMS, device=DEV)
    y.fill_(-1.0)
    t.log(0, "main", "alloc", buf="y", stream="default")
    torch.cuda.synchronize()
    return "ok" if bool(torch.all(out == 1.0)) else "wrong"


case("gpu-semantics", "free-without-record-stream", True)(lambda t: side_copy_of_freed(t, None))
case("gpu-semantics", "free-with-record-stream", False)(lambda t: side_copy_of_freed(t, "side"))
case("gpu-semantics", "record-stream-on-allocation-stream", True)(lambda t: side_copy_of_freed(t, "default"))


# ---- gpu-semantics: events ------------------------------------------------------------------------------------


def matmul_then_side_copy(t: Trial, wait: str) -> str:
    """C computes r = a @ b; S copies r out. wait: "event" (S waits C's event), "none", or "unrecorded"."""
    n = 2048
    a = torch.randn(n, n, device=DEV)
    b = torch.randn(n, n, device=DEV)
    ref = a @ b
    torch.cuda.synchronize()
    compute = torch.cuda.Stream()
    side = torch.cuda.Stream()
    r = torch.zeros(n, n, device=DEV)
    out = torch.empty(n, n, device=DEV)
    done = torch.cuda.Event()
    compute.wait_stream(torch.cuda.current_stream())
    side.wait_stream(torch.cuda.current_stream())

    def producer() -> None:
        t.gpu_delay(compute, "matmul", replay_ms=2.0)
        with torch.cuda.stream(compute):
            torch.mm(a, b, out=r)
        t.log(0, "producer" if wait == "unrecorded" else "main", "launch", stream="C", op="matmul", writes="r")
        done.record(compute)
        t.log(0, "producer" if wait == "unrecorded" else "main", "record", event="done", stream="C")

    def consumer() -> None:
        if wait in ("event", "unrecorded"):
            side.wait_event(done)
            t.log(0, "consumer" if wait == "unrecorded" else "main", "wait_event", stream="S", event="done")
        with torch.cuda.stream(side):
            out.copy_(r)
        t.log(0, "consumer" if wait == "unrecorded" else "main", "launch", stream="S", op="copy", reads="r", writes="out")

    if wait == "unrecorded":
        # The waiting thread runs before the recording thread: the replayed schedule of the counterexample.
        waited = threading.Event()

        def consumer_thread() -> None:
            consumer()
            waited.set()

        def producer_thread() -> None:
            waited.wait()
            producer()

        ths = [threading.Thread(target=consumer_thread), threading.Thread(target=producer_thread)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
    else:
        producer()
        consumer()
    torch.cuda.synchronize()
    return "ok" if torch.allclose(out, ref, rtol=1e-4, atol=1e-3) else "wrong"


case("gpu-semantics", "missing-wait-event", True)(lambda t: matmul_then_side_copy(t, "none"))
case("gpu-semantics", "wait-event", False)(lambda t: matmul_then_side_copy(t, "event"))
case("gpu-semantics", "wait-unrecorded-event", True)(lambda t: matmul_then_side_copy(t, "unrecorded"))


# ---- gpu-semantics: work handles -------------------------------------------------------------------------------


def receive_then_cpu_read(t: Trial, backend: str) -> str:
    """An emulated irecv lands the peer's data in pinned host memory on a comm stream; the CPU then reads it."""
    comm = torch.cuda.Stream()
    src = torch.full((1 << 20,), 7.0, device=DEV)
    host = torch.zeros(1 << 20, pin_memory=True)
    torch.cuda.synchronize()
    t.gpu_delay(comm, "transfer", replay_ms=2.0)
    with torch.cuda.stream(comm):
        host.copy_(src, non_blocking=True)
    t.log(0, "main", "irecv", buf="host", backend=backend)
    if backend == "nccl":
        torch.cuda.current_stream().wait_stream(comm)  # NCCL wait(): orders the stream, the CPU runs on
    else:
        comm.synchronize()  # gloo wait(): blocks the CPU thread until the work is done
    t.log(0, "main", "wait", handle="recv")
    seen = float(host[-1].item())  # a host tensor: reading it does not synchronize any stream
    t.log(0, "main", "cpu_read", buf="host", value=seen)
    torch.cuda.synchronize()
    return "ok" if seen == 7.0 else "wrong"


case("gpu-semantics", "nccl-wait-does-not-block-cpu", True, note="NCCL emulated: wait() = stream.wait_stream(comm)")(
    lambda t: receive_then_cpu_read(t, "nccl")
)
case("gpu-semantics", "gloo-wait-blocks-cpu", False, note="gloo emulated: wait() blocks the CPU until done")(
    lambda t: receive_then_cpu_read(t, "gloo")
)


# ---- gpu-semantics: threads and flags ---------------------------------------------------------------------------


def worker_flag(t: Trial, set_before_start: bool) -> str:
    """Main starts a worker that computes a plan; main spins while `ongoing`, then uses the plan."""
    state = {"ongoing": set_before_start, "plan": None}

    def worker() -> None:
        t.cpu_delay("worker start", replay_ms=5.0)
        if not set_before_start:
            state["ongoing"] = True
            t.log(0, "worker", "set", flag="ongoing", value=True)
        plan = torch.arange(8, device=DEV).sum()
        torch.cuda.synchronize()
        state["plan"] = int(plan.item())
        state["ongoing"] = False
        t.log(0, "worker", "set", flag="ongoing", value=False)

    if set_before_start:
        t.log(0, "main", "set", flag="ongoing", value=True)
    th = threading.Thread(target=worker)
    th.start()
    t.log(0, "main", "start", thread="worker")
    while state["ongoing"]:
        time.sleep(0)
    plan = state["plan"]
    t.log(0, "main", "use_plan", present=plan is not None)
    th.join()
    return "ok" if plan == 28 else "wrong"


case("gpu-semantics", "flag-set-in-thread", True)(lambda t: worker_flag(t, False))
case("gpu-semantics", "flag-set-before-start", False)(lambda t: worker_flag(t, True))


def raising_worker(t: Trial, try_finally: bool, timeout_s: float = 0.5) -> str:
    """The worker raises before clearing `ongoing`; main polls the flag (a hang is caught by a timeout)."""
    state = {"ongoing": True, "error": None}

    def body() -> None:
        t.cpu_delay("worker compute", replay_ms=0.0)
        raise RuntimeError("plan computation failed")

    def worker() -> None:
        if try_finally:
            try:
                body()
            except RuntimeError as e:  # the thread's exception is reported, and the flag cleared
                state["error"] = str(e)
            finally:
                state["ongoing"] = False
                t.log(0, "worker", "set", flag="ongoing", value=False)
        else:
            try:
                body()
            except RuntimeError:
                t.log(0, "worker", "raise", reason="plan computation failed")
                return  # like an exception in a daemon thread: logged, nothing after it runs

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    deadline = time.perf_counter() + timeout_s
    while state["ongoing"]:
        if time.perf_counter() > deadline:
            return "hang"
        time.sleep(0.0005)
    th.join()
    return "ok" if state["error"] else "wrong"


case("gpu-semantics", "thread-raises-flag-stuck", True, trials=40)(lambda t: raising_worker(t, False))
case("gpu-semantics", "thread-raises-try-finally", False)(lambda t: raising_worker(t, True))


# ---- gpu-semantics: collectives and point-to-point over gloo processes ------------------------------------------

_GLOO_WORKER = r"""
import os, sys, datetime, torch, torch.distributed as dist
rank, world, port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                        timeout=datetime.timedelta(seconds=float(sys.argv[5])))
a, b = torch.ones(1024), torch.ones(1024)
try:
    if mode == "order-mismatch":
        if rank == 0:
            dist.all_reduce(a); dist.broadcast(b, 0)
        else:
            dist.broadcast(b, 0); dist.all_reduce(a)
    elif mode == "order-match":
        dist.all_reduce(a); dist.broadcast(b, 0)
    elif mode == "send-unmatched":
        if rank == 0:
            dist.isend(a, 1).wait()
        dist.barrier()
    elif mode == "send-matched":
        if rank == 0:
            dist.isend(a, 1).wait()
        else:
            dist.irecv(b, 0).wait()
        dist.barrier()
    print("DONE", flush=True)
except Exception as e:
    print("ERROR", type(e).__name__, str(e).splitlines()[0][:200], flush=True)
"""


def gloo_pair(t: Trial, mode: str, timeout_s: float = 4.0) -> str:
    port = str(20000 + t.rng.randrange(20000))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _GLOO_WORKER, str(r), "2", port, mode, str(timeout_s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outs = []
    hung = False
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout_s + 6)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            hung = True
        outs.append(out or "")
    for r, out in enumerate(outs):
        t.log(r, "main", "finished" if "DONE" in out else "blocked", detail=out.strip()[-160:])
    if hung or any("DONE" not in o for o in outs):
        # A gloo timeout error is how a hang shows itself here.
        return "hang"
    return "ok"


case("gpu-semantics", "collective-order-mismatch", True, trials=3, note="two gloo processes; a hang is a gloo timeout")(
    lambda t: gloo_pair(t, "order-mismatch")
)
case("gpu-semantics", "send-without-matching-recv", True, trials=3, note="two gloo processes; a hang is a gloo timeout")(
    lambda t: gloo_pair(t, "send-unmatched")
)


# ---- overlap-linear: chunked matmul on C, all-reduce on K, ordered by events -------------------------------------


def overlap_linear(t: Trial, k_waits_compute: bool, n: int = 9000, hidden: int = 2048, tp: int = 2) -> str:
    """Row-parallel linear with TP emulated on one GPU: each rank's partial product is summed on K (the all-reduce)."""
    x = torch.randn(n, hidden, device=DEV)
    w = torch.randn(hidden, hidden, device=DEV) / hidden**0.5
    bias = torch.randn(hidden, device=DEV)
    ref = x @ w + bias
    torch.cuda.synchronize()
    C, K = torch.cuda.Stream(), torch.cuda.Stream()
    shard = hidden // tp
    chunk = 5120 if n < 16384 else n // 3  # the PR's rule: 9000 rows give 2 chunks, as in the model's check configuration
    partial = torch.zeros(tp, n, hidden, device=DEV)
    out = torch.zeros(n, hidden, device=DEV)
    comm_done = []
    C.wait_stream(torch.cuda.current_stream())
    K.wait_stream(torch.cuda.current_stream())
    for i, start in enumerate(range(0, n, chunk)):
        end = min(n, start + chunk)
        t.gpu_delay(C, f"matmul {i}", replay_ms=1.0)
        with torch.cuda.stream(C):
            for r in range(tp):
                torch.mm(x[start:end, r * shard : (r + 1) * shard], w[r * shard : (r + 1) * shard], out=partial[r, start:end])
        ev = torch.cuda.Event()
        ev.record(C)
        t.log(0, "main", "launch", stream="C", op="matmul", chunk=i)
        if k_waits_compute:
            K.wait_event(ev)
            t.log(0, "main", "wait_event", stream="K", chunk=i)
        with torch.cuda.stream(K):
            torch.sum(partial[:, start:end], dim=0, out=out[start:end])
        t.log(0, "main", "all_reduce", stream="K", chunk=i)
        done = torch.cuda.Event()
        done.record(K)
        comm_done.append(done)
    for ev in comm_done:
        C.wait_event(ev)
    with torch.cuda.stream(C):
        result = out + bias
    torch.cuda.synchronize()
    return "ok" if torch.allclose(result, ref, rtol=1e-3, atol=1e-3) else "wrong"


case("overlap-linear", "fixed", False)(lambda t: overlap_linear(t, True))
case("overlap-linear", "comm-skips-compute-wait", True)(lambda t: overlap_linear(t, False))


# ---- pp-async-p2p: the sender's output buffer while the send is pending -------------------------------------------


def pp_send(t: Trial, variant: str) -> str:
    """Stage 0 sends micro-batch outputs to stage 1 (emulated: a copy on the comm stream reads the source).

    fixed: a fresh output per micro-batch, kept alive until its send is waited.
    deferred-wait-static-buffer (B4): one static output buffer; the wait of send i is deferred past the launch
      of i+1, which overwrites the buffer while send i still reads it.
    record-stream-current (B3): the output is freed after record_stream(current stream), which is its
      allocation stream, so the allocator hands its block to the next micro-batch while the send reads it.
    """
    comm = torch.cuda.Stream()
    main = torch.cuda.current_stream()
    recv = [torch.empty(N_ELEMS, device=DEV) for _ in range(2)]
    static = torch.empty(N_ELEMS, device=DEV)
    keep = []
    pending = None
    for i in range(2):
        if variant == "deferred-wait-static-buffer":
            out = static
        else:
            out = torch.empty(N_ELEMS, device=DEV)
        out.fill_(float(i + 1))  # the forward of micro-batch i
        t.log(0, "main", "launch", stream="C", op="forward", mb=i)
        if variant == "fixed" and pending is not None:
            main.wait_stream(comm)  # wait the previous send before reusing anything
        comm.wait_stream(main)
        t.gpu_delay(comm, f"send {i}", replay_ms=2.0)
        with torch.cuda.stream(comm):
            recv[i].copy_(out)
        t.log(0, "main", "isend", mb=i)
        pending = i
        if variant == "record-stream-current":
            out.record_stream(main)  # names the allocation stream: ignored
            del out
        elif variant == "fixed":
            keep.append(out)  # alive until the send is waited
    torch.cuda.synchronize()
    ok = all(bool(torch.all(recv[i] == float(i + 1))) for i in range(2))
    return "ok" if ok else "wrong"


case("pp-async-p2p", "fixed", False)(lambda t: pp_send(t, "fixed"))
case("pp-async-p2p", "b4-deferred-send-wait-static", True)(lambda t: pp_send(t, "deferred-wait-static-buffer"))
case("pp-async-p2p", "b3-record-stream-current", True, note="raw P2P copy: the communicator records nothing, as in the model's b3 variant")(lambda t: pp_send(t, "record-stream-current"))


# ---- eplb-staged-transfer: worker stream W fills the buffer, main stream M copies it out -------------------------


def staged_transfer(t: Trial, variant: str, layers: int = 3) -> str:
    """fixed: W synchronizes before publishing, M records `consumed` after its copy-out, W waits it.
    ready-after-stream-wait: the worker publishes after W.wait_stream (orders W only, not the CPU).
    no-consumed-event: the worker writes layer L+1 into the buffer before M's copy-out of L is done."""
    W = torch.cuda.Stream()
    M = torch.cuda.current_stream()
    buf = torch.empty(N_ELEMS, device=DEV)
    weights = [torch.zeros(N_ELEMS, device=DEV) for _ in range(layers)]
    slot = {"layer": None}
    consumed = [torch.cuda.Event() for _ in range(layers)]
    lock = threading.Lock()
    ready = threading.Semaphore(0)
    done_with = threading.Semaphore(0)

    def worker() -> None:
        for layer in range(layers):
            if layer > 0 and variant != "no-consumed-event":
                W.wait_event(consumed[layer - 1])
            elif layer > 0:
                pass  # the bug: no wait for M's copy-out of the previous layer
            t.gpu_delay(W, f"receive {layer}", replay_ms=2.0 if variant == "ready-after-stream-wait" else 0.0)
            with torch.cuda.stream(W):
                buf.fill_(float(layer + 1))  # the P2P receive of the layer's experts into the buffer
            t.log(0, "worker", "launch", stream="W", op="receive", layer=layer)
            if variant == "ready-after-stream-wait":
                W.wait_stream(W)  # orders only W: the CPU goes on at once
            else:
                W.synchronize()
            with lock:
                slot["layer"] = layer
            t.log(0, "worker", "publish", layer=layer)
            ready.release()
            if variant != "no-consumed-event":
                done_with.acquire()

    th = threading.Thread(target=worker)
    th.start()
    for layer in range(layers):
        ready.acquire()
        t.gpu_delay(M, f"copy-out {layer}", replay_ms=2.0 if variant == "no-consumed-event" else 0.0)
        weights[layer].copy_(buf)  # on M
        consumed[layer].record(M)
        t.log(0, "main", "copy_out", layer=layer)
        if variant != "no-consumed-event":
            done_with.release()
    th.join()
    torch.cuda.synchronize()
    ok = all(bool(torch.all(weights[i] == float(i + 1))) for i in range(layers))
    return "ok" if ok else "wrong"


case("eplb-staged-transfer", "fixed", False)(lambda t: staged_transfer(t, "fixed"))
case("eplb-staged-transfer", "ready-after-stream-wait", True)(lambda t: staged_transfer(t, "ready-after-stream-wait"))
case("eplb-staged-transfer", "no-consumed-event", True)(lambda t: staged_transfer(t, "no-consumed-event"))


# ---- eplb-async-rebalance: the `_compute_ongoing` flag and the raising compute thread -------------------------------

case("eplb-async-rebalance", "compute-flag-in-thread", True)(lambda t: worker_flag(t, False))
case("eplb-async-rebalance", "fixed", False)(lambda t: worker_flag(t, True))
case("eplb-async-rebalance", "no-try-finally", True, trials=40)(lambda t: raising_worker(t, False))



# ---- outputs for the ONNX oracle: small seeded inputs, float32, compared in TypeScript at 1e-5 ------------------
# Input conventions (kernels/gpu/oracle.ts regenerates the same tensors with kernels/random.ts):
#   row-parallel: x [n, k] = rng(seed), w [k, m] = rng(seed + 1), bias [m] = rng(seed + 2)
#   dp-padding:   xs[r] [c_r, h] = rng(seed + 10 + r); w1 [h, f] = rng(seed + 1), b1 [f] = rng(seed + 2),
#                 w2 [f, h] = rng(seed + 3), b2 [h] = rng(seed + 4)


def oracle_row_parallel(seed: int, n: int, k: int, m: int, tp: int, chunk: int) -> dict:
    """The fixed overlap-linear protocol on real streams: chunk matmuls on C, the TP sum on K after C's event."""
    x = random_tensor(seed, (n, k)).to(DEV)
    w = random_tensor(seed + 1, (k, m)).to(DEV)
    bias = random_tensor(seed + 2, (m,)).to(DEV)
    C, K = torch.cuda.Stream(), torch.cuda.Stream()
    bounds = [(i * k) // tp for i in range(tp + 1)]
    partial = torch.zeros(tp, n, m, device=DEV)
    out = torch.zeros(n, m, device=DEV)
    C.wait_stream(torch.cuda.current_stream())
    K.wait_stream(torch.cuda.current_stream())
    events = []
    for start in range(0, n, chunk):
        end = min(n, start + chunk)
        with torch.cuda.stream(C):
            for r in range(tp):
                torch.mm(x[start:end, bounds[r] : bounds[r + 1]], w[bounds[r] : bounds[r + 1]], out=partial[r, start:end])
        ev = torch.cuda.Event()
        ev.record(C)
        K.wait_event(ev)
        with torch.cuda.stream(K):
            torch.sum(partial[:, start:end], dim=0, out=out[start:end])
        done = torch.cuda.Event()
        done.record(K)
        events.append(done)
    for ev in events:
        C.wait_event(ev)
    with torch.cuda.stream(C):
        y = out + bias
    torch.cuda.synchronize()
    return {"kernel": "row-parallel", "seed": seed, "n": n, "k": k, "m": m, "tp": tp, "chunk": chunk, "y": y.flatten().tolist()}


def oracle_dp_padding(seed: int, counts: list[int], h: int, f: int) -> dict:
    """Pad every rank to max, gather (all-gather, or all-reduce of prefix-placed rows), FFN, unpad."""
    dp, mx, total = len(counts), max(counts), sum(counts)
    mode = "allGather" if 2 * total > mx * dp else "allReduce"
    xs = [random_tensor(seed + 10 + r, (c, h)).to(DEV) for r, c in enumerate(counts)]
    w1, b1 = random_tensor(seed + 1, (h, f)).to(DEV), random_tensor(seed + 2, (f,)).to(DEV)
    w2, b2 = random_tensor(seed + 3, (f, h)).to(DEV), random_tensor(seed + 4, (h,)).to(DEV)
    streams = [torch.cuda.Stream() for _ in range(dp)]
    if mode == "allGather":
        gathered = torch.zeros(mx * dp, h, device=DEV)
        offsets = [r * mx for r in range(dp)]
        for r, s in enumerate(streams):
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                padded = torch.zeros(mx, h, device=DEV)
                padded[: counts[r]] = xs[r]
                gathered[offsets[r] : offsets[r] + mx] = padded
    else:
        offsets = [sum(counts[:r]) for r in range(dp)]
        contributions = torch.zeros(dp, total, h, device=DEV)
        for r, s in enumerate(streams):
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                contributions[r, offsets[r] : offsets[r] + counts[r]] = xs[r]
    for s in streams:
        torch.cuda.current_stream().wait_stream(s)
    if mode == "allReduce":
        gathered = contributions.sum(dim=0)
    y = torch.relu(gathered @ w1 + b1) @ w2 + b2
    ys = [y[offsets[r] : offsets[r] + counts[r]].flatten().tolist() for r in range(dp)]
    torch.cuda.synchronize()
    return {"kernel": "dp-padding", "seed": seed, "counts": counts, "h": h, "f": f, "mode": mode, "ys": ys}


def oracle_outputs() -> list[dict]:
    return [
        oracle_row_parallel(101, 48, 32, 16, 2, 16),
        oracle_row_parallel(202, 50, 24, 8, 4, 16),
        oracle_dp_padding(303, [5, 3, 0, 4], 8, 16),
        oracle_dp_padding(404, [8, 0, 0, 1], 8, 16),
    ]

# ---- driver ---------------------------------------------------------------------------------------------------------


def run_case(name: str, trials: int, seed: int) -> dict:
    c = CASES[name]
    n = min(trials, c.trials) if c.trials else trials
    modes = ["replay"] if c.buggy else ["none", "random"]
    row = {
        "protocol": c.protocol,
        "variant": c.variant,
        "buggy": c.buggy,
        "note": c.note,
        "modes": {},
    }
    sample = None
    for mode in modes:
        counts: dict[str, int] = {}
        rng = random.Random(seed)
        t_start = time.perf_counter()
        for i in range(n):
            trial = Trial(name, mode, rng)
            try:
                outcome = c.run(trial)
            except Exception as e:  # an exception is an observation, not a harness failure
                outcome = f"exception: {type(e).__name__}: {str(e)[:120]}"
            counts[outcome] = counts.get(outcome, 0) + 1
            if sample is None or (c.buggy and outcome != "ok" and sample[1] == "ok"):
                sample = (trial.events, outcome)
        row["modes"][mode] = {
            "trials": n,
            "failures": n - counts.get("ok", 0),
            "outcomes": counts,
            "seconds": round(time.perf_counter() - t_start, 3),
        }
    row["trials"] = sum(m["trials"] for m in row["modes"].values())
    row["failures"] = sum(m["failures"] for m in row["modes"].values())
    row["sampleOutcome"] = sample[1] if sample else None
    row["sampleTrace"] = sample[0] if sample else []
    return row


def sanitizer_run(name: str) -> dict:
    """One run of the case under TORCH_CUDA_SANITIZER=1 (CSAN), in a child process."""
    env = dict(os.environ, TORCH_CUDA_SANITIZER="1")
    p = subprocess.run(
        [sys.executable, __file__, "--child", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = p.stdout + p.stderr
    return {
        "races": text.count("CSAN detected a possible data race"),
        "exit": p.returncode,
        "excerpt": "\n".join(line for line in text.splitlines() if "CSAN" in line or "data race" in line)[:600],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--trials", type=int, default=1000, help="trials per mode for fixed variants")
    ap.add_argument("--buggy-trials", type=int, default=200, help="trials for buggy variants (schedule replayed)")
    ap.add_argument("--cases", default="all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sanitizer", action="store_true")
    ap.add_argument("--child", default=None, help="internal: run one trial of a case (for the sanitizer)")
    args = ap.parse_args()
    if args.child:
        outcome = CASES[args.child].run(Trial(args.child, "replay" if CASES[args.child].buggy else "none", random.Random(1)))
        print("OUTCOME", outcome)
        return
    os.makedirs(args.out, exist_ok=True)
    names = list(CASES) if args.cases == "all" else args.cases.split(",")
    rows = []
    for name in names:
        t0 = time.perf_counter()
        row = run_case(name, args.buggy_trials if CASES[name].buggy else args.trials, args.seed)
        if args.sanitizer:
            try:
                row["sanitizer"] = sanitizer_run(name)
            except Exception as e:
                row["sanitizer"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        rows.append(row)
        print(f"{name:60s} trials={row['trials']:5d} failures={row['failures']:5d} {time.perf_counter() - t0:6.1f}s", flush=True)
    meta = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "trialsRequested": args.trials,
        "seed": args.seed,
        "emulation": "single GPU: ranks are streams/threads (gloo processes for collectives); NCCL P2P emulated by copies on a comm stream",
    }
    with open(os.path.join(args.out, "evidence.json"), "w") as f:
        json.dump({"meta": meta, "rows": [{k: v for k, v in r.items() if k != "sampleTrace"} for r in rows]}, f, indent=1)
    with open(os.path.join(args.out, "outputs.json"), "w") as f:
        json.dump({"meta": meta, "outputs": oracle_outputs()}, f)
    with open(os.path.join(args.out, "traces.jsonl"), "w") as f:
        for r in rows:
            for ev in r["sampleTrace"]:
                f.write(json.dumps({"case": f"{r['protocol']}:{r['variant']}", **ev}) + "\n")


if __name__ == "__main__":
    main()
