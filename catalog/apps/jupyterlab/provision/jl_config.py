"""Prints the Jupyter Server configuration for the jupyterlab scripts.

  python -c "$(cat jl_config.py)" PORT ROOT_DIR TERMINALS(true|false)

Reads the password from standard input and puts only its argon2 hash (made by Jupyter Server's
own `passwd`) into the JSON it prints. Run with the JupyterLab venv's Python.
"""

import json
import sys

from jupyter_server.auth import passwd


def main(argv):
    if len(argv) != 4 or argv[3] not in ("true", "false"):
        sys.exit(__doc__)
    port, root_dir, terminals = int(argv[1]), argv[2], argv[3] == "true"
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        sys.exit("ERROR: the password read from standard input is shorter than 8 characters")
    config = {
        "ServerApp": {
            "ip": "0.0.0.0",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "root_dir": root_dir,
            # The server listens on the container's address; the password guards it.
            "allow_remote_access": True,
            "terminals_enabled": terminals,
        },
        # No token: the login page asks for the password only.
        "IdentityProvider": {"token": ""},
        "PasswordIdentityProvider": {
            "hashed_password": passwd(password),
            "password_required": True,
            "allow_password_change": False,
        },
    }
    sys.stdout.write(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv)
