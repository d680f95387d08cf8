"""boto3 through wormgate: put, get, ranged get, head, list with pagination, multipart through
the transfer manager, copy, delete. Exits non-zero on the first mismatch."""

import hashlib
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def main() -> int:
    endpoint = os.environ["WORMGATE_URL"]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    bucket = "boto3-check"
    s3.create_bucket(Bucket=bucket)

    body = os.urandom(1_000_003)
    s3.put_object(Bucket=bucket, Key="one/object.bin", Body=body, Metadata={"job": "nightly"})
    got = s3.get_object(Bucket=bucket, Key="one/object.bin")["Body"].read()
    assert got == body, "GET differs from PUT"
    part = s3.get_object(Bucket=bucket, Key="one/object.bin", Range="bytes=10-19")["Body"].read()
    assert part == body[10:20], "ranged GET differs"
    head = s3.head_object(Bucket=bucket, Key="one/object.bin")
    assert head["ContentLength"] == len(body), head
    assert head["Metadata"] == {"job": "nightly"}, head["Metadata"]

    # Multipart through the transfer manager (5 MiB parts).
    big = os.urandom(12 * 1024 * 1024 + 17)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "boto3-big.bin")
    with open(path, "wb") as f:
        f.write(big)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(path, bucket, "multi/big.bin", Config=cfg)
    s3.download_file(bucket, "multi/big.bin", path + ".back", Config=cfg)
    with open(path + ".back", "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(big).digest(), "multipart differs"

    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"many/{i}", Body=b"x" * i)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 2}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == [f"many/{i}" for i in range(5)], keys

    s3.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "one/object.bin"})
    assert s3.get_object(Bucket=bucket, Key="copy.bin")["Body"].read() == body

    # DeleteObjects: botocore sends a CRC32 checksum, not Content-MD5.
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"many/{i}"} for i in range(5)]})
    assert len(out.get("Deleted", [])) == 5, out
    s3.delete_object(Bucket=bucket, Key="copy.bin")
    left = s3.list_objects_v2(Bucket=bucket, Prefix="many/").get("KeyCount")
    assert left == 0, left
    os.remove(path)
    os.remove(path + ".back")
    print("boto3: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
