#!/usr/bin/env python3
"""Balances calls over orca-lb test backends with gRPC's own weighted_round_robin.

The client is grpcio (gRPC C-core) with the stock `weighted_round_robin` policy
(gRFC A58), weighing backends by the ORCA reports they send: per call in the
`endpoint-load-metrics-bin` trailer (`--mode per_call`) or out of band on
`xds.service.orca.v3.OpenRcaService/StreamCoreMetrics` (`--mode oob`).

It calls `orca_lb.testing.v1.Greeter/SayHello` without generated stubs: the
request is encoded by hand and the reply's `backend` (field 2) is read with a
minimal protobuf parser. After a warm-up that gives the policy its first
weights, it makes `--calls` measured calls from `--concurrency` threads and
prints one JSON line:

    {"mode": "per_call", "calls": 2000, "counts": {"fast": 1600, "slow": 400},
     "warmup_counts": {...}, "elapsed_s": 4.2}

Any RPC error ends the run with a non-zero exit status and a message on stderr.

Needs grpcio: `pip install -r tests/interop/requirements.txt`.
"""

import argparse
import collections
import json
import sys
import threading
import time

try:
    import grpc
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.stderr.write(
        f"wrr_client.py: cannot import grpc ({e}); "
        "run `pip install -r tests/interop/requirements.txt`\n"
    )
    sys.exit(3)

METHOD = "/orca_lb.testing.v1.Greeter/SayHello"


# --- a few lines of protobuf ---------------------------------------------------


def encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def hello_request(name):
    """`HelloRequest { name = 1 }`: the other fields stay at their defaults."""
    data = name.encode("utf-8")
    return b"\x0a" + encode_varint(len(data)) + data


def reply_backend(buf):
    """Field 2 (`backend`, a string) of a `HelloReply`."""
    pos = 0
    backend = None
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = decode_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = decode_varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated length-delimited field")
            if field == 2:
                backend = bytes(buf[pos : pos + n]).decode("utf-8")
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != len(buf):
        raise ValueError("truncated fixed-width field")
    if not backend:
        raise ValueError(f"reply has no backend field: {bytes(buf)!r}")
    return backend


# --- the client ----------------------------------------------------------------


def service_config(oob):
    return {
        "loadBalancingConfig": [
            {
                "weighted_round_robin": {
                    "blackoutPeriod": "0s",
                    "weightUpdatePeriod": "0.1s",
                    "enableOobLoadReport": oob,
                    "oobReportingPeriod": "0.05s",
                }
            }
        ]
    }


def open_channel(targets, oob):
    target = "ipv4:" + ",".join(targets)
    options = [
        # The ipv4: resolver returns no service config; this one is the default.
        ("grpc.service_config", json.dumps(service_config(oob))),
        ("grpc.service_config_disable_resolution", 1),
        # Otherwise the authority is the whole target list ("a:1,b:2"), which
        # is not a valid :authority: hyper's HTTP/2 server resets the stream
        # with PROTOCOL_ERROR.
        ("grpc.default_authority", "localhost"),
        # A subchannel pool of its own: nothing shared with other channels.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    return grpc.insecure_channel(target, options=options)


class Failed(Exception):
    pass


def run_calls(call, calls, concurrency, deadline_s):
    """Makes `calls` calls from `concurrency` threads; returns counts per backend.

    Raises `Failed` naming the first RPC error (the other workers stop soon
    after).
    """
    request = hello_request("wrr")
    lock = threading.Lock()
    next_call = [0]
    counts = collections.Counter()
    errors = []

    def worker():
        local = collections.Counter()
        while True:
            with lock:
                if errors or next_call[0] >= calls:
                    break
                next_call[0] += 1
            try:
                reply = call(request, timeout=deadline_s, wait_for_ready=True)
                local[reply_backend(reply)] += 1
            except grpc.RpcError as e:
                with lock:
                    errors.append(
                        f"RPC failed: {e.code().name}: {e.details()!r}"
                    )
                break
            except ValueError as e:
                with lock:
                    errors.append(f"bad reply: {e}")
                break
        with lock:
            counts.update(local)

    threads = [
        threading.Thread(target=worker, name=f"wrr-worker-{i}", daemon=True)
        for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise Failed(errors[0])
    return dict(counts)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", required=True, help="host:port,host:port (IPv4)")
    p.add_argument("--mode", choices=["per_call", "oob"], required=True)
    p.add_argument("--calls", type=int, default=2000, help="measured calls")
    p.add_argument("--concurrency", type=int, default=4, help="worker threads")
    p.add_argument("--warmup-calls", type=int, default=200)
    p.add_argument(
        "--settle-s",
        type=float,
        default=0.3,
        help="pause after the warm-up so that the weights are recomputed",
    )
    p.add_argument("--deadline-s", type=float, default=10.0, help="per-call deadline")
    args = p.parse_args()

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if len(targets) < 2:
        p.error("--targets needs at least two host:port")
    if args.calls <= 0 or args.concurrency <= 0 or args.warmup_calls < 0:
        p.error("--calls and --concurrency must be positive, --warmup-calls >= 0")

    channel = open_channel(targets, args.mode == "oob")
    try:
        grpc.channel_ready_future(channel).result(timeout=args.deadline_s)
    except grpc.FutureTimeoutError:
        sys.stderr.write(
            f"wrr_client.py: channel to {','.join(targets)} not ready "
            f"after {args.deadline_s}s\n"
        )
        return 1
    call = channel.unary_unary(
        METHOD, request_serializer=None, response_deserializer=None
    )

    try:
        warmup = run_calls(call, args.warmup_calls, args.concurrency, args.deadline_s)
        time.sleep(args.settle_s)
        start = time.monotonic()
        counts = run_calls(call, args.calls, args.concurrency, args.deadline_s)
        elapsed = time.monotonic() - start
    except Failed as e:
        sys.stderr.write(f"wrr_client.py: {e}\n")
        return 1
    finally:
        channel.close()

    print(
        json.dumps(
            {
                "mode": args.mode,
                "calls": args.calls,
                "counts": counts,
                "warmup_counts": warmup,
                "elapsed_s": round(elapsed, 3),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
