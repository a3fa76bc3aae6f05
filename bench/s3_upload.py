"""Benchmark: streaming a dump-sized stream into S3 with Holdfast's S3 target,
side by side with boto3's plain ``upload_fileobj`` (what ``aws s3 cp - s3://…``
does), against moto's HTTP S3 server on 127.0.0.1.

Both uploads get the same bytes (a generated stream of ``--size-gb``, made of
random 1 MiB blocks so it cannot be deduplicated or compressed away), the same
part size and the same concurrency, and each runs in its own child process so
its peak RSS is the kernel's own figure (``ru_maxrss``). Prints time,
throughput, peak RSS and the ratios.

    python bench/s3_upload.py --size-gb 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

MIB = 1024 * 1024
CHILD = r"""
import json, os, resource, sys, time
mode, endpoint, bucket, key, size, part, concurrency = sys.argv[1:8]
size, part, concurrency = int(size), int(part), int(concurrency)
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                  AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_S3=endpoint)
block = os.urandom(1024 * 1024)

def chunks():
    for index in range(size // len(block)):
        # Vary each block cheaply so no two parts are identical.
        yield index.to_bytes(8, "big") + block[8:]

started = time.monotonic()
if mode == "holdfast":
    from backup.storage.s3 import S3Storage
    storage = S3Storage("bench", f"s3://{bucket}/bench?part_size={part}&concurrency={concurrency}")
    info = storage.put(key, chunks())
    stored = info.size
else:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from backup.streams import as_file
    client = boto3.client("s3", endpoint_url=endpoint)
    client.upload_fileobj(as_file(chunks()), bucket, key, Config=TransferConfig(
        multipart_threshold=part, multipart_chunksize=part, max_concurrency=concurrency))
    stored = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
elapsed = time.monotonic() - started
print(json.dumps({"seconds": elapsed, "bytes": stored,
                  "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import ThreadedMotoServer; import time; "
         f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}); s.start(); "
         "time.sleep(10**6)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.2)
    server.kill()
    raise SystemExit("moto server did not start")


def run(mode: str, endpoint: str, bucket: str, size: int, part: int, concurrency: int) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", CHILD, mode, endpoint, bucket, f"{mode}.bin", str(size),
         str(part), str(concurrency)], check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    size = int(options.size_gb * 1024) * MIB
    part = options.part_mib * MIB
    port = free_port()
    server = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        client.create_bucket(Bucket="bench")
        results = {}
        for mode in ("upload_fileobj", "holdfast"):
            results[mode] = run(mode, endpoint, "bench", size, part, options.concurrency)
            client.delete_object(Bucket="bench", Key=f"bench/{mode}.bin"
                                 if mode == "holdfast" else f"{mode}.bin")
        print(f"\nS3 upload of {size / MIB:,.0f} MiB to moto on 127.0.0.1, part "
              f"{options.part_mib} MiB, concurrency {options.concurrency}")
        for mode, figures in results.items():
            assert figures["bytes"] == size, figures
            print(f"  {mode:15s}: {figures['seconds']:6.1f} s  "
                  f"{size / MIB / figures['seconds']:7.1f} MiB/s  peak RSS "
                  f"{figures['max_rss_kib'] / 1024:7.1f} MiB")
        base, ours = results["upload_fileobj"], results["holdfast"]
        print(f"  ratio holdfast/upload_fileobj: time {ours['seconds'] / base['seconds']:.2f}x, "
              f"peak RSS {ours['max_rss_kib'] / base['max_rss_kib']:.2f}x")
        print(f"  bound part x (concurrency + 1) = "
              f"{options.part_mib * (options.concurrency + 1)} MiB; own peak RSS of this "
              f"process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
