#!/usr/bin/env python3
"""Process-level smoke test of the s3o-gateway demo with widely used S3 clients.

Starts `s3o-gateway demo` on a temp data folder and a free port, reads the endpoint, bucket
and credentials from the banner it prints, then with boto3: uploads (a single PUT and a
multipart upload through boto3's transfer manager), lists, downloads and compares bytes,
deletes; and with the AWS CLI, when it is installed next to boto3, runs the commands the
banner and the README show. Prints one `smoke: PASS` or `smoke: FAIL ...` line; exit code 0
only on PASS.

usage: smoke.py PATH/TO/s3o-gateway
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading


def fail(msg):
    print(f"smoke: FAIL {msg}", flush=True)
    sys.exit(1)


def start_demo(exe, data):
    proc = subprocess.Popen(
        [exe, "demo", "--data", data, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60) or proc.poll() is not None:
        proc.kill()
        fail("the demo did not print its banner:\n" + "\n".join(banner))
    text = "\n".join(banner)

    def field(name):
        m = re.search(rf"^\s*{name}\s*:\s*(\S+)", text, re.M)
        if not m:
            proc.kill()
            fail(f"no '{name}' in the banner:\n{text}")
        return m.group(1)

    m = re.search(r"serving on (http://\S+)", text)
    if not m:
        proc.kill()
        fail(f"no endpoint in the banner:\n{text}")
    return proc, {
        "endpoint": m.group(1),
        "bucket": field("bucket"),
        "access_key": field("access key"),
        "secret_key": field("secret key"),
        "banner": text,
    }


def boto3_round_trip(demo, work):
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=demo["endpoint"],
        aws_access_key_id=demo["access_key"],
        aws_secret_access_key=demo["secret_key"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    bucket = demo["bucket"]
    small_key = "smoke/hello wörld+1 %.txt"
    small = os.urandom(300 * 1024)
    s3.put_object(Bucket=bucket, Key=small_key, Body=small, ContentType="text/plain")

    big_key = "smoke/big/archive.bin"
    big_path = os.path.join(work, "big.bin")
    with open(big_path, "wb") as f:
        f.write(os.urandom(9 * 1024 * 1024))
    # 5 MiB parts: 9 MiB goes up as a two-part multipart upload.
    mp = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(big_path, bucket, big_key, Config=mp)

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="smoke/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    if keys != sorted([small_key, big_key]):
        fail(f"boto3 list: {keys}")
    delimited = s3.list_objects_v2(Bucket=bucket, Prefix="smoke/", Delimiter="/")
    prefixes = [p["Prefix"] for p in delimited.get("CommonPrefixes", [])]
    if prefixes != ["smoke/big/"]:
        fail(f"boto3 delimited list: {prefixes}")

    got = s3.get_object(Bucket=bucket, Key=small_key)
    if got["Body"].read() != small:
        fail("boto3 GET: bytes differ")
    if got["ETag"].strip('"') != hashlib.md5(small).hexdigest():
        fail(f"boto3 GET: ETag {got['ETag']} is not the MD5 of the body")
    head = s3.head_object(Bucket=bucket, Key=big_key)
    if not head["ETag"].strip('"').endswith("-2"):
        fail(f"boto3 HEAD: multipart ETag {head['ETag']} does not end in -2")
    back = os.path.join(work, "big.back")
    s3.download_file(bucket, big_key, back)
    if sha256(back) != sha256(big_path):
        fail("boto3 download: bytes differ")
    part = s3.get_object(Bucket=bucket, Key=big_key, Range="bytes=100-199")["Body"].read()
    with open(big_path, "rb") as f:
        f.seek(100)
        if part != f.read(100):
            fail("boto3 ranged GET: bytes differ")

    s3.delete_object(Bucket=bucket, Key=small_key)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": big_key}]})
    left = s3.list_objects_v2(Bucket=bucket, Prefix="smoke/").get("KeyCount", 0)
    if left != 0:
        fail(f"boto3: {left} objects left after delete")
    try:
        s3.head_object(Bucket=bucket, Key=small_key)
        fail("boto3: HEAD of a deleted object succeeded")
    except s3.exceptions.ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
            raise
    return boto3.__version__


def aws_cli_round_trip(demo, work, aws):
    """The commands the demo banner and the README show, verbatim in shape."""
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=demo["access_key"],
        AWS_SECRET_ACCESS_KEY=demo["secret_key"],
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("AWS_PROFILE", None)
    base = [aws, "--endpoint-url", demo["endpoint"]]
    src = os.path.join(work, "hello.md")
    body = b"# hello from the smoke test\n" + os.urandom(2048).hex().encode()
    with open(src, "wb") as f:
        f.write(body)
    url = f"s3://{demo['bucket']}/hello.md"

    def aws_run(*args):
        r = subprocess.run(base + list(args), env=env, capture_output=True, timeout=120)
        if r.returncode != 0:
            fail(f"aws {' '.join(args)}: {r.stderr.decode(errors='replace')}")
        return r.stdout

    aws_run("s3", "cp", src, url)
    if b"hello.md" not in aws_run("s3", "ls", f"s3://{demo['bucket']}/"):
        fail("aws s3 ls does not show hello.md")
    if aws_run("s3", "cp", url, "-") != body:
        fail("aws s3 cp to stdout: bytes differ")
    aws_run("s3", "rm", url)
    if b"hello.md" in aws_run("s3", "ls", f"s3://{demo['bucket']}/"):
        fail("aws s3 rm left hello.md")
    version = subprocess.run([aws, "--version"], capture_output=True, text=True)
    return (version.stdout or version.stderr).split()[0]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    if len(sys.argv) != 2:
        fail("usage: smoke.py PATH/TO/s3o-gateway")
    exe = sys.argv[1]
    work = tempfile.mkdtemp(prefix="s3o-smoke-")
    proc = None
    try:
        proc, demo = start_demo(exe, os.path.join(work, "data"))
        clients = [f"boto3 {boto3_round_trip(demo, work)}"]
        aws = shutil.which("aws", path=os.path.dirname(sys.executable))
        if aws:
            clients.append(aws_cli_round_trip(demo, work, aws))
        print(f"smoke: PASS ({', '.join(clients)} against {demo['endpoint']})", flush=True)
    except SystemExit:
        raise
    except Exception as e:  # any client error is a smoke failure, reported on one line
        fail(f"{type(e).__name__}: {e}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
