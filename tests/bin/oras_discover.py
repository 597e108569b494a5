"""What `oras discover` shows, with oras-py (the ORAS client that installs without Go).

Usage: oras_discover.py <host>/<repository>:<tag> <user> <password>

Resolves the tag to its digest (a manifest GET, through Harbor's proxy cache), then lists the
referrers of that digest from the referrers API, with oras-py's own token handling, and prints
them as `oras discover` does: by artifactType. Exits 1 when either step fails.
"""

import sys

import oras.provider


def main() -> int:
    reference, user, password = sys.argv[1:4]
    name, tag = reference.rsplit(":", 1)
    host, repository = name.split("/", 1)
    registry = oras.provider.Registry(host, insecure=True)
    registry.auth.set_basic_auth(user, password)

    manifest = registry.do_request(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"},
    )
    if manifest.status_code != 200:
        print(f"resolving {reference}: {manifest.status_code} {manifest.text}", file=sys.stderr)
        return 1
    digest = manifest.headers["Docker-Content-Digest"]

    referrers = registry.do_request(f"http://{host}/v2/{repository}/referrers/{digest}")
    content_type = referrers.headers.get("Content-Type", "")
    if referrers.status_code != 200 or content_type != "application/vnd.oci.image.index.v1+json":
        print(f"referrers of {digest}: {referrers.status_code} {content_type}", file=sys.stderr)
        return 1
    by_type: dict = {}
    for descriptor in referrers.json()["manifests"]:
        by_type.setdefault(descriptor.get("artifactType", "(none)"), []).append(descriptor["digest"])

    print(f"{name}@{digest}")
    types = sorted(by_type)
    for i, artifact_type in enumerate(types):
        last_type = i == len(types) - 1
        print(f"{'└──' if last_type else '├──'} {artifact_type}")
        for j, referrer in enumerate(by_type[artifact_type]):
            branch = "    " if last_type else "│   "
            leaf = "└──" if j == len(by_type[artifact_type]) - 1 else "├──"
            print(f"{branch}{leaf} {referrer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
