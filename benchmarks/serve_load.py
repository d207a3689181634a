"""`vqa serve` under load: closed-loop clients on loopback, each sending its next
question as soon as its last is answered, at 1, 4, 16 and 64 connections for a fixed
time each, against a run directory's server and an exported bundle's.

    python benchmarks/serve_load.py RUN_DIR DATA [--bundle BUNDLE] [--seconds 30]
                                    [--levels 1,4,16,64] [--out FILE]

DATA is the prepared dataset whose test images (PNG bytes, as uploaded) and questions
are asked. Each server is a fresh `vqa serve` process; before the clients start, every
question used is answered once, alone, and each reply under load must match that
answer. Prints, per level: answers/s, p50 and p99 latency, errors, wrong answers, the
server's resident memory before and after and its peak; writes JSON (default
experiments/results/serve-load.json). Asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_QUESTIONS = 64  # distinct image-question pairs the clients cycle through


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("data")
    parser.add_argument("--bundle", help="also load-test the server of this bundle")
    parser.add_argument("--seconds", type=float, default=30.0, help="per level")
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "serve-load.json"))
    args = parser.parse_args()

    from vqa.data.dataset import PreparedDataset

    dataset = PreparedDataset.load(args.data)
    test = dataset.split("test").head(_QUESTIONS)
    asked = [
        (Path(dataset.image_path(i)).read_bytes(), q)
        for i, q in zip(test["image_id"], test["question"])
    ]
    levels = [int(n) for n in args.levels.split(",")]
    report = {
        "data": args.data,
        "seconds_per_level": args.seconds,
        "cpu_cores": os.cpu_count(),
        "servers": {},
    }
    for name, model in (("run dir", args.run_dir), ("bundle", args.bundle)):
        if model is None:
            continue
        with served(model) as (port, pid):
            expected = [ask(port, image, question)[1]["answer"] for image, question in asked]
            rows = []
            for clients in levels:
                row = load(port, pid, asked, expected, clients, args.seconds)
                rows.append(row)
                print(
                    f"{name:8} {clients:3d} clients: {row['answers_per_s']:7.1f} answers/s, "
                    f"p50 {row['p50_ms']:7.1f} ms, p99 {row['p99_ms']:7.1f} ms, "
                    f"{row['errors']} errors, {row['wrong']} wrong, RSS "
                    f"{row['rss_before_mb']:.0f} -> {row['rss_after_mb']:.0f} MB "
                    f"(peak {row['peak_rss_mb']:.0f})",
                    flush=True,
                )
            report["servers"][name] = {"model": model, "levels": rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")


class served:
    """A `vqa serve MODEL --port 0` process: (port, pid) while in the block."""

    def __init__(self, model: str):
        self.model = model

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vqa", "serve", self.model, "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        line = self.proc.stdout.readline()
        match = re.search(r":(\d+)/", line)
        if not match:
            self.proc.kill()
            sys.exit(f"vqa serve {self.model} did not start: {line!r}")
        return int(match[1]), self.proc.pid

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


def _form(image: bytes, question: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="question"\r\n\r\n'
            f'{question}\r\n--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="q.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def ask(port: int, image: bytes, question: str, connection=None) -> tuple[int, dict]:
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body, kind = _form(image, question)
    try:
        connection.request("POST", "/api/answer", body, {"Content-Type": kind})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        if own:
            connection.close()


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status)[1]) / 1024


def load(port: int, pid: int, asked: list, expected: list, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors, wrong = [0], [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    rss_before = _rss_mb(pid)

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = offset
        while time.perf_counter() < stop:
            image, question = asked[i % len(asked)]
            start = time.perf_counter()
            try:
                status, reply = ask(port, image, question, connection)
            except (OSError, http.client.HTTPException, ValueError):
                status, reply = 0, {}
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            took = time.perf_counter() - start
            with lock:
                if status != 200:
                    errors[0] += 1
                else:
                    latencies.append(took)
                    wrong[0] += reply["answer"] != expected[i % len(asked)]
            i += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n * 7,)) for n in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    times = np.array(latencies) * 1000
    return {
        "clients": clients,
        "answers": len(latencies),
        "seconds": elapsed,
        "answers_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(times, 50)) if len(times) else None,
        "p99_ms": float(np.percentile(times, 99)) if len(times) else None,
        "errors": errors[0],
        "wrong": wrong[0],
        "rss_before_mb": rss_before,
        "rss_after_mb": _rss_mb(pid),
        "peak_rss_mb": _rss_mb(pid, "VmHWM"),
    }


if __name__ == "__main__":
    main()
