#!/usr/bin/env python3
"""Sets the values PVE App Store manages in AdGuardHome.yaml and keeps everything else.

Usage: agh_config.py <path>, with the admin password on standard input and AGH_USER,
AGH_WEB_PORT, AGH_DNS_PORT and AGH_UPSTREAMS in the environment. A missing file is created with
just these values (AdGuard Home fills in its defaults for the rest and skips its setup wizard);
the admin account replaces the web users of an existing file. The file is replaced atomically.
"""

import os
import re
import sys
import tempfile

import bcrypt
import yaml

# AdGuard Home v0.107.79 reads and writes configuration schema 34.
SCHEMA_VERSION = 34
BOOTSTRAP = ["9.9.9.10", "149.112.112.10", "2620:fe::10", "2620:fe::fe:10"]


def main() -> None:
    path = sys.argv[1]
    user = os.environ["AGH_USER"]
    web_port = int(os.environ["AGH_WEB_PORT"])
    dns_port = int(os.environ["AGH_DNS_PORT"])
    upstreams = [u for u in re.split(r"[\s,]+", os.environ.get("AGH_UPSTREAMS", "")) if u]
    password = sys.stdin.buffer.read()
    if len(password) < 8:
        sys.exit("agh_config.py: the password must be at least 8 characters")

    conf = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
    is_new = not conf

    # Keep the hash when the password did not change, so the file only changes when needed.
    old_hash = None
    for u in conf.get("users") or []:
        if isinstance(u, dict) and u.get("name") == user:
            old_hash = u.get("password")
    if isinstance(old_hash, str) and old_hash.startswith("$2"):
        try:
            same = bcrypt.checkpw(password, old_hash.encode())
        except ValueError:
            same = False
    else:
        same = False
    pw_hash = old_hash if same else bcrypt.hashpw(password, bcrypt.gensalt(rounds=10)).decode()

    http = conf.setdefault("http", {}) or {}
    conf["http"] = http
    host = "0.0.0.0"
    http["address"] = f"{host}:{web_port}"
    conf["users"] = [{"name": user, "password": pw_hash}]

    dns = conf.setdefault("dns", {}) or {}
    conf["dns"] = dns
    dns.setdefault("bind_hosts", ["0.0.0.0"])
    dns["port"] = dns_port
    if upstreams:
        dns["upstream_dns"] = upstreams
    if not dns.get("bootstrap_dns"):
        dns["bootstrap_dns"] = BOOTSTRAP
    if is_new:
        conf["schema_version"] = SCHEMA_VERSION

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".AdGuardHome.yaml.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(conf, f, sort_keys=False, default_flow_style=False, allow_unicode=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    main()
