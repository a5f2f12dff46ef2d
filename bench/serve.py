"""phg serve under load while versions are rotated in (LANGUAGE §14), loopback only, bounded in time:

- a chain of signed records v1 ... v(R+1) of the rigid-registration example, each with its own
  rotation (so every version answers a probe differently);
- `phg serve` started as a user would (a process of its own, with --state);
- C clients (threads, one keep-alive connection each) posting the same probe batch until the end,
  each response checked: a 200, naming a version, and its outputs exactly that version's
  (computed beforehand with the model class), so a response that mixed two versions, or named
  one and was computed by another, is counted;
- phases: before (no rotation), during (R rotations, one after another, by a client of their own)
  and after; latency p50 / p99 and throughput per phase.

    python -m bench serve [--clients 64] [--rotations 200] [--seconds 60]

With --learn, training while serving instead: `phg serve --learn` is fed a drifting stream of
rigid-registration samples (the rotation turns steadily, 0.6 rad over the run) at /observe while
a probe measures the served model's error against the current truth (beside the error of the
first version, never updated), a few clients predict all along, and at the end every version the
server rotated in is checked by `phg verify`; --png draws the error over time (needs matplotlib).

    python -m bench serve --learn [--seconds 60] [--png serve-learn.png]

`--seconds` bounds the whole run: before and after take a sixth of it each, the rotations the rest,
spread evenly over it (they stop where that time is up; the count activated is printed).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _versions(folder: Path, count: int):
    """(records, parameters, expected outputs on the probe) of versions 1 ... count."""
    import phg
    from phg.shell import records as R

    source = folder / "rigid.phg"
    shutil.copy(ROOT / "examples" / "rigid_registration.phg", source)
    program = phg.load(source)
    cert = json.loads(json.dumps(phg.check(program).to_dict()))
    kernels = phg.build(program)
    module = R.sha256(Path(kernels.__file__).read_bytes())
    model = kernels.RigidRegistration()
    probe = np.random.default_rng(0).normal(size=(8, 3))
    records, params, outputs = [], [], []
    for v in range(count):
        angle = 0.01 * (v + 1)
        p = {"R": np.array([np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0]), "t": np.array([0.1, 0.0, -0.1])}
        records.append(R.make(model="RigidRegistration", source_sha256=program.sha256, cert=cert, params=p,
                              module_sha256=module, previous=records[-1] if records else None))
        model.params = p
        params.append(p)
        outputs.append(model.predict(x=probe)["p"].tolist())
    (folder / "r1.json").write_text(json.dumps(records[0]))
    np.savez(folder / "p1.npz", **params[0])
    return source, probe, records, params, outputs


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.failed = 0
        self.wrong = 0
        self.errors: list[str] = []


def _client(port, body, outputs, phase, stop, tally: Tally):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        start = time.perf_counter()
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            took = time.perf_counter() - start
            doc = json.loads(data)
            ok = r.status == 200
            right = ok and (outputs is None or 1 <= doc.get("version", 0) <= len(outputs) and
                            doc["outputs"]["p"] == outputs[doc["version"] - 1])
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with tally.lock:
                tally.failed += 1
                tally.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.latency[phase[0]].append(took)
            tally.failed += not ok
            tally.wrong += ok and not right
            if not ok:
                tally.errors.append(f"{r.status}: {data[:200]!r}")
    conn.close()


def main(argv: list[str]) -> int:
    from phg.shell import records as R

    ap = argparse.ArgumentParser(prog="python -m bench serve")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--rotations", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--learn", action="store_true", help="train while serving on a drifting stream")
    ap.add_argument("--png", help="--learn: draw the error over time here")
    args = ap.parse_args(argv)
    if args.learn:
        return _learn(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source, probe, records, params, outputs = _versions(folder, args.rotations + 1)
        port = free_port()
        env = {**os.environ, "PHG_ADMIN_TOKEN": TOKEN}
        env.pop("PHG_FAULT", None)
        proc = subprocess.Popen([sys.executable, "-c", "from phg.shell.cli import main; raise SystemExit(main())",
                                 "serve", str(source), "--release", str(folder / "r1.json"), "--params",
                                 str(folder / "p1.npz"), "--state", str(folder / "state"), "--port", str(port)],
                                env=env, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 180
            while True:
                if proc.poll() is not None:
                    print(proc.stderr.read())
                    return 1
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/health")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    print("phg serve did not start")
                    return 1
                time.sleep(0.2)
            return _load(args, port, probe, records, params, outputs, R)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _load(args, port, probe, records, params, outputs, R) -> int:
    body = json.dumps({"inputs": {"x": probe.tolist()}}).encode()
    tally, stop, phase = Tally(), threading.Event(), ["before"]
    threads = [threading.Thread(target=_client, args=(port, body, outputs, phase, stop, tally), daemon=True)
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    spans = {}
    sixth = args.seconds / 6
    t0 = time.perf_counter()
    time.sleep(sixth)
    spans["before"] = time.perf_counter() - t0
    phase[0] = "during"
    t1 = time.perf_counter()
    admin = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rotated, refused = 0, []
    pace = 4 * sixth / max(1, len(records) - 1)           # the rotations spread over the middle
    for v in range(1, len(records)):
        if time.perf_counter() - t1 > 4 * sixth:
            break
        time.sleep(max(0.0, t1 + (v - 1) * pace - time.perf_counter()))
        admin.request("POST", "/rotate", json.dumps({"release": records[v], "params": R.encode_params(params[v])}),
                      {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        r = admin.getresponse()
        data = r.read()
        if r.status == 200:
            rotated += 1
        else:
            refused.append(f"{r.status} {data[:200]!r}")
    time.sleep(max(0.0, t1 + 4 * sixth - time.perf_counter()))
    spans["during"] = time.perf_counter() - t1
    phase[0] = "after"
    t2 = time.perf_counter()
    time.sleep(sixth)
    spans["after"] = time.perf_counter() - t2
    stop.set()
    for t in threads:
        t.join(timeout=60)
    requests = sum(len(v) for v in tally.latency.values())
    print(f"{args.clients} clients, {requests:,} requests in {sum(spans.values()):.1f} s; "
          f"{rotated} of {len(records) - 1} rotations activated ({len(refused)} refused)")
    print("\n| phase | seconds | requests | throughput (req/s) | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|---|")
    for name, lat in tally.latency.items():
        a = np.array(lat) * 1e3
        p50, p99 = (f"{np.percentile(a, q):.1f}" if len(a) else "-" for q in (50, 99))
        print(f"| {name} | {spans[name]:.1f} | {len(a):,} | {len(a) / spans[name]:.0f} | {p50} | {p99} |")
    print(f"\nfailed requests: {tally.failed}; responses that disagree with the version they name: {tally.wrong}")
    for e in (tally.errors + refused)[:5]:
        print("  e.g.", e)
    return 0 if tally.failed == 0 and tally.wrong == 0 and rotated == len(records) - 1 else 1


def _start(folder: Path, source: Path, port: int, extra: list[str]) -> subprocess.Popen | None:
    env = {**os.environ, "PHG_ADMIN_TOKEN": TOKEN}
    env.pop("PHG_FAULT", None)
    proc = subprocess.Popen([sys.executable, "-c", "from phg.shell.cli import main; raise SystemExit(main())",
                             "serve", str(source), "--release", str(folder / "r1.json"), "--params",
                             str(folder / "p1.npz"), "--state", str(folder / "state"), "--port", str(port), *extra],
                            env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    print(proc.stderr.read() if proc.poll() is not None else "phg serve did not start")
    proc.kill()
    return None


def _post(port: int, path: str, doc: dict, token: str | None = None) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    c.request("POST", path, json.dumps(doc), headers)
    r = c.getresponse()
    return r.status, json.loads(r.read())


def _learn(args) -> int:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from phg.shell.cli import main as phg_main

    seconds = args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source, probe, records, params, outputs = _versions(folder, 1)
        import phg
        truth_model = phg.build(phg.load(source)).RigidRegistration()
        shift = np.array([0.1, 0.0, -0.1])

        def truth(angle: float, x: np.ndarray) -> np.ndarray:
            truth_model.params = {"R": np.array([np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0]), "t": shift}
            return truth_model.predict(x=x)["p"]

        port = free_port()
        proc = _start(folder, source, port, ["--learn", "--learn-every", "0.5", "--window", "2048",
                                              "--learn-steps", "100"])
        if proc is None:
            return 1
        rng = np.random.default_rng(1)
        stop, t0 = threading.Event(), time.perf_counter()
        angle = lambda: 0.01 + 0.6 * min(1.0, (time.perf_counter() - t0) / seconds)  # noqa: E731
        failures = []

        def feed():
            while not stop.is_set():
                x = rng.normal(size=(128, 3))
                y = truth(angle(), x) + rng.normal(scale=0.01, size=x.shape)
                status, doc = _post(port, "/observe", {"inputs": {"x": x.tolist(), "y": y.tolist()}}, TOKEN)
                if status != 200:
                    failures.append(f"/observe {status} {doc}")
                time.sleep(0.1)

        tally = Tally()
        body = json.dumps({"inputs": {"x": probe.tolist()}}).encode()
        clients = [threading.Thread(target=_client, args=(port, body, None, ["during"], stop, tally), daemon=True)
                   for _ in range(8)]
        feeder = threading.Thread(target=feed, daemon=True)
        for t in [feeder, *clients]:
            t.start()
        trace = []              # (seconds, truth angle, served version, served error, first version's error)
        first = np.array(outputs[0])
        try:
            while time.perf_counter() - t0 < seconds:
                a = angle()
                status, doc = _post(port, "/predict", {"inputs": {"x": probe.tolist()}})
                want = truth(a, probe)
                if status != 200:
                    failures.append(f"/predict {status} {doc}")
                else:
                    rms = lambda p: float(np.sqrt(np.mean((np.array(p) - want) ** 2)))  # noqa: E731
                    trace.append((time.perf_counter() - t0, a, doc["version"], rms(doc["outputs"]["p"]), rms(first)))
                time.sleep(0.25)
        finally:
            stop.set()
            for t in [feeder, *clients]:
                t.join(timeout=60)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        # the versions the learner rotated in (version 1 is the bench's own record, made without paths)
        versions = sorted((folder / "state" / "versions").glob("v*.json"), key=lambda p: int(p.stem[1:]))[1:]
        verified = 0
        for record in versions:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                verified += phg_main(["verify", str(record)]) == 0
        t = np.array(trace)
        print(f"{seconds:.0f} s of a stream turning 0.6 rad; {len(versions)} versions rotated in by the learner, "
              f"{verified} of them verified by phg verify (signature, expiry, source, certificate, module, "
              "parameters)")
        print("\n| seconds | truth angle (rad) | served version | served RMS error | first version's RMS error |")
        print("|---|---|---|---|---|")
        for row in t[np.linspace(0, len(t) - 1, 9).astype(int)]:
            print(f"| {row[0]:.0f} | {row[1]:.3f} | {int(row[2])} | {row[3]:.4f} | {row[4]:.4f} |")
        print(f"\nfailed requests: {tally.failed + len(failures)} (of {sum(map(len, tally.latency.values())):,} "
              f"predictions by 8 clients, {len(t)} probes and the stream's posts)")
        for e in (failures + tally.errors)[:5]:
            print("  e.g.", e)
        if args.png:
            _plot(t, args.png)
        return 0 if not failures and tally.failed == 0 and verified == len(versions) else 1


def _plot(t: np.ndarray, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--png needs matplotlib: pip install matplotlib")
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(t[:, 0], t[:, 3], label="served model (phg serve --learn)")
    ax.plot(t[:, 0], t[:, 4], "--", label="version 1, never updated")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RMS error against the current truth (m)")
    ax.set_yscale("log")
    twin = ax.twinx()
    twin.plot(t[:, 0], t[:, 1], ":", color="gray", label="truth's rotation angle")
    twin.set_ylabel("rotation angle (rad)")
    changes = t[1:, 0][np.diff(t[:, 2]) != 0]
    for c in changes:
        ax.axvline(c, color="green", alpha=0.15, linewidth=0.8)
    ax.set_title("Rigid registration served while its stream drifts (green: a version rotated in)")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")
