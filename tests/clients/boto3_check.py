"""boto3 through wormgate: put, get, ranged get, head, list with pagination, multipart through
the transfer manager, copy, delete. Exits non-zero on the first mismatch."""

import hashlib
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def lock_checks(s3) -> None:
    """Object lock as botocore speaks it: CRC32 checksums on lock writes, versions and delete
    markers (a lock bucket is versioned), per-key errors."""
    import datetime

    from botocore.exceptions import ClientError

    bucket = "boto3-lock-check"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    v1 = s3.put_object(Bucket=bucket, Key="locked", Body=b"backup", ObjectLockMode="COMPLIANCE",
                       ObjectLockRetainUntilDate=until)["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="locked")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["VersionId"] == v1, head
    try:
        s3.delete_object(Bucket=bucket, Key="locked", VersionId=v1)
        raise AssertionError("a locked version was deleted")
    except ClientError as e:
        err = e.response["Error"]
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
        assert err["Code"] == "AccessDenied", err
        assert err["Message"] == "Access Denied because object protected by object lock.", err
    # Without a version id: a delete marker; the locked version stays, readable by its id.
    marker = s3.delete_object(Bucket=bucket, Key="locked")
    assert marker["DeleteMarker"] is True, marker
    listed = s3.list_object_versions(Bucket=bucket, Prefix="locked")
    assert [v["VersionId"] for v in listed["Versions"]] == [v1], listed
    assert [m["VersionId"] for m in listed["DeleteMarkers"]] == [marker["VersionId"]], listed
    assert s3.get_object(Bucket=bucket, Key="locked", VersionId=v1)["Body"].read() == b"backup"
    try:
        s3.get_object(Bucket=bucket, Key="locked")
        raise AssertionError("a deleted key was read")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e.response
    # The marker goes (it has no lock): the locked version is current again.
    s3.delete_object(Bucket=bucket, Key="locked", VersionId=marker["VersionId"])
    free = s3.put_object(Bucket=bucket, Key="free", Body=b"x")["VersionId"]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "free", "VersionId": free}, {"Key": "locked", "VersionId": v1}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["free"], out
    assert [(e["Key"], e["Code"]) for e in out.get("Errors", [])] == [("locked", "AccessDenied")], out
    later = until + datetime.timedelta(hours=1)
    s3.put_object_retention(Bucket=bucket, Key="locked",
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later})
    got = s3.get_object_retention(Bucket=bucket, Key="locked")["Retention"]
    assert got["Mode"] == "COMPLIANCE" and got["RetainUntilDate"] >= later.replace(microsecond=0), got
    try:
        s3.put_object_retention(Bucket=bucket, Key="locked",
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
        raise AssertionError("a COMPLIANCE retention was shortened")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied", e.response


def s3_hold(client, bucket: str):
    """The legal hold of `locked`, or None when it has none."""
    from botocore.exceptions import ClientError

    try:
        return client.get_object_legal_hold(Bucket=bucket, Key="locked")["LegalHold"]["Status"]
    except ClientError:
        return None


def sigv2_is_for_reads(endpoint: str) -> None:
    """A SigV2 presigned URL signs neither `retention` nor `legal-hold`: whoever holds a PUT URL
    could append one. wormgate accepts SigV2 for reads only."""
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    v2 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )
    bucket = "boto3-lock-check"
    get_url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "locked"})
    assert "AWSAccessKeyId=" in get_url and "Signature=" in get_url, get_url
    with urllib.request.urlopen(get_url) as r:
        assert r.read() == b"backup"
    put_url = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "locked"})
    for url in (put_url, put_url + "&legal-hold"):
        # As the URL was signed: no Content-Type (SigV2 signs it; urllib would add one).
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc)
        conn.request("PUT", f"{parts.path}?{parts.query}",
                     body=b"<LegalHold><Status>OFF</Status></LegalHold>")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        assert resp.status == 403 and "Signature Version 2" in body, (url, resp.status, body)
    # No legal hold was ever set on `locked`: the appended `&legal-hold` changed nothing.
    assert s3_hold(v2, bucket) is None


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
    lock_checks(s3)
    sigv2_is_for_reads(endpoint)
    print("boto3: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
