"""What the remote tests check with the services' own clients, independently of bica-remote.

    check.py s3-uploads ENDPOINT BUCKET PREFIX      multipart uploads in progress under PREFIX
    check.py s3-head ENDPOINT BUCKET KEY            "present SIZE" or "absent"
    check.py az-mkcontainer CONNECTION NAME         create a container (Azurite)
    check.py az-head CONNECTION CONTAINER BLOB      "present SIZE" or "absent"
    check.py az-uncommitted CONNECTION CONTAINER BLOB   uncommitted blocks of BLOB
    check.py az-sas ACCOUNT KEY CONTAINER           a container SAS token (read, write, list, delete)
    check.py gcs-mkbucket ENDPOINT NAME             create a bucket (fake-gcs-server's JSON API)
    check.py gcs-upload ENDPOINT BUCKET KEY FILE    upload FILE with its sha256 as metadata, as
                                                    bica-remote would (JSON API: the emulator
                                                    lacks the XML API that object_store writes with)

S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment.
"""

import json
import sys
import urllib.request


def s3(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def main(argv):
    cmd = argv[1]
    if cmd == "s3-uploads":
        _, _, endpoint, bucket, prefix = argv
        r = s3(endpoint).list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        print(len(r.get("Uploads", [])))
    elif cmd == "s3-head":
        _, _, endpoint, bucket, key = argv
        try:
            r = s3(endpoint).head_object(Bucket=bucket, Key=key)
            print("present", r["ContentLength"])
        except Exception as e:  # botocore raises ClientError with a 404 for a missing key
            if "404" in str(e) or "Not Found" in str(e):
                print("absent")
            else:
                raise
    elif cmd == "az-sas":
        import datetime

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        _, _, account, key, container = argv
        print(
            generate_container_sas(
                account,
                container,
                account_key=key,
                permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True, add=True, create=True),
                expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2),
            )
        )
    elif cmd.startswith("az-"):
        from azure.storage.blob import BlobServiceClient

        svc = BlobServiceClient.from_connection_string(argv[2])
        if cmd == "az-mkcontainer":
            try:
                svc.create_container(argv[3])
            except Exception as e:
                if "ContainerAlreadyExists" not in str(e):
                    raise
        elif cmd == "az-head":
            blob = svc.get_blob_client(argv[3], argv[4])
            if blob.exists():
                print("present", blob.get_blob_properties().size)
            else:
                print("absent")
        elif cmd == "az-uncommitted":
            blob = svc.get_blob_client(argv[3], argv[4])
            try:
                _, uncommitted = blob.get_block_list("uncommitted")
                print(len(uncommitted))
            except Exception as e:
                if "BlobNotFound" in str(e):
                    print(0)
                else:
                    raise
    elif cmd == "gcs-mkbucket":
        _, _, endpoint, name = argv
        req = urllib.request.Request(
            endpoint + "/storage/v1/b",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(req).read()
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise
    elif cmd == "gcs-upload":
        import hashlib

        _, _, endpoint, bucket, key, path = argv
        data = open(path, "rb").read()
        meta = {"name": key, "metadata": {"sha256": hashlib.sha256(data).hexdigest()}}
        boundary = "bica-test-boundary-7f3a"
        body = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            + json.dumps(meta)
            + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(
            f"{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=multipart",
            data=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
            method="POST",
        )
        urllib.request.urlopen(req).read()
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
