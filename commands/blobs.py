"""Content-addressed blob store: bytes are kept once under their SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Stores the bytes (once) and returns their hash."""

    def get(self, digest: str) -> bytes: ...

    def exists(self, digest: str) -> bool: ...


class DirectoryBlobStore:
    """Blobs as files `ab/cd/abcd…` under a directory; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a blob hash: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        digest = content_hash(data)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
        return digest

    def get(self, digest: str) -> bytes:
        return self._path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def count(self) -> int:
        return sum(1 for p in self.root.glob("*/*/*") if p.is_file())


class S3BlobStore:
    """Blobs as objects in an S3-compatible bucket (MinIO, Ceph, AWS), keyed by hash."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str) -> None:
        import boto3  # only the production profile needs it

        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name="us-east-1",  # MinIO and Ceph accept any region; boto3 insists on one
        )
        try:  # a fresh deployment: the bucket is ours to make
            self.client.head_bucket(Bucket=bucket)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=bucket)

    def put(self, data: bytes) -> str:
        digest = content_hash(data)
        if not self.exists(digest):
            self.client.put_object(Bucket=self.bucket, Key=digest, Body=data)
        return digest

    def get(self, digest: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=digest)["Body"].read()

    def exists(self, digest: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=digest)
        except self.client.exceptions.ClientError:
            return False
        return True
