#!/usr/bin/env python3
"""Signs one control-plane POST with botocore's SigV4Auth, for tests/control_plane.rs.

Input: one JSON argument {access_key_id, secret_access_key, session_token, region, url, body,
amz_date}. Output: {"authorization": ..., "signed_headers": ...} on stdout. Needs botocore
(pip install botocore). Prints nothing secret beyond what the caller passed in.
"""
import datetime
import json
import sys

try:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:
    sys.stderr.write("No module named 'botocore': pip install botocore\n")
    sys.exit(2)


def main():
    args = json.loads(sys.argv[1])
    fixed = datetime.datetime.strptime(args["amz_date"], "%Y%m%dT%H%M%SZ")
    # SigV4Auth stamps the request with the current time; pin it to the test's time.
    botocore.auth.get_current_datetime = lambda *a, **k: fixed
    creds = Credentials(args["access_key_id"], args["secret_access_key"], args.get("session_token"))
    request = AWSRequest(
        method="POST",
        url=args["url"],
        data=args["body"].encode(),
        headers={"Content-Type": "application/json"},
    )
    botocore.auth.SigV4Auth(creds, "kinesisvideo", args["region"]).add_auth(request)
    authorization = request.headers["Authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0]
    json.dump({"authorization": authorization, "signed_headers": signed}, sys.stdout)


if __name__ == "__main__":
    main()
