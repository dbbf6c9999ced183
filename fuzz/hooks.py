"""schemathesis check for berthd: no 5xx unless dockerd answers the same
call with a 5xx of its own (listed below, each with why)."""

import re

import schemathesis

# (method, path regex, body regex, why): 5xx answers that are Docker's own
# behaviour, not berth's faults.
ALLOWED = [
    ("GET", r"^/v1\.43/containers/[^/]+/top$", r"ps", "dockerd answers 500 when ps rejects ps_args"),
    ("POST", r"^/v1\.43/images/create$", r"registry|pull|connect|resolv|dns|lookup|network", "a pull from a registry this isolated host cannot reach fails as dockerd's does"),
    ("POST", r"^/v1\.43/images/[^/]+/push$", r"registry|push|connect|resolv|dns|lookup|network", "a push to an unreachable registry"),
    ("POST", r"^/v1\.43/auth$", r"registry|connect|resolv|dns|lookup|network", "a login to an unreachable registry"),
    ("*", r"^/v1\.43/(swarm|nodes|services|tasks|secrets|configs)(/|$)", r"swarm", "dockerd answers 503 on a node that is not part of a swarm"),
]


@schemathesis.check
def no_undocumented_5xx(ctx, response, case):
    """A 5xx answer must be one dockerd gives for the same call."""
    if response.status_code < 500:
        return
    path = response.request.url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[-1].split("?", 1)[0]
    body = response.text or ""
    for method, path_re, body_re, _why in ALLOWED:
        if (method in ("*", case.method.upper())
                and re.search(path_re, path)
                and re.search(body_re, body, re.IGNORECASE)):
            return
    raise AssertionError(f"{case.method.upper()} {path} answered {response.status_code}: {body[:300]}")
