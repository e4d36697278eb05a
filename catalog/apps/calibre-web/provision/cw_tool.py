"""Helper for the calibre-web scripts; run with the Calibre-Web venv's Python as root.

  cw_tool.py new-library LIBRARY_DIR SCHEMA_SQL
      Creates LIBRARY_DIR/metadata.db, an empty Calibre library, from Calibre's schema file.
  cw_tool.py apply APP_DB LIBRARY_DIR PORT USERNAME UPLOADS(true|false)
      Points Calibre-Web's settings database at the library, sets the port and the upload switch,
      and gives the first admin account USERNAME and the password read from standard input
      (stored as a werkzeug hash, like Calibre-Web does itself).

Only the standard library and werkzeug (a Calibre-Web dependency) are used. Calibre-Web must be
stopped while `apply` runs: it reads its settings at start.
"""

import os
import sqlite3
import sys
import tempfile
import uuid

ROLE_ADMIN = 1


def fail(message):
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)


def new_library(library_dir, schema_file):
    target = os.path.join(library_dir, "metadata.db")
    if os.path.exists(target):
        print(f"{target} exists; left as it is")
        return
    with open(schema_file, encoding="utf-8") as handle:
        schema = handle.read()
    fd, tmp = tempfile.mkstemp(prefix=".metadata.", suffix=".db", dir=library_dir)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        conn.executescript(schema)
        # Calibre and Calibre-Web identify a library by this id; Calibre creates it on first use.
        conn.execute("INSERT INTO library_id (uuid) VALUES (?)", (str(uuid.uuid4()),))
        conn.commit()
        conn.close()
        os.chmod(tmp, 0o664)
        os.replace(tmp, target)
    except Exception as exc:  # leave nothing half-written behind
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail(f"could not create {target}: {exc}")
    print(f"Created the empty Calibre library {target}")


def apply(app_db, library_dir, port, username, uploads):
    from werkzeug.security import generate_password_hash

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        fail("the password read from standard input is shorter than 8 characters")
    if not os.path.isfile(app_db):
        fail(f"{app_db} does not exist; start Calibre-Web once to create it")
    conn = sqlite3.connect(app_db)
    try:
        cur = conn.cursor()
        if cur.execute("SELECT count(*) FROM settings").fetchone()[0] < 1:
            fail(f"{app_db} has no settings row")
        cur.execute(
            "UPDATE settings SET config_calibre_dir = ?, config_port = ?, config_uploading = ?",
            (library_dir, int(port), 1 if uploads == "true" else 0),
        )
        row = cur.execute(
            "SELECT id, name FROM user WHERE role & ? ORDER BY id LIMIT 1", (ROLE_ADMIN,)
        ).fetchone()
        if row is None:
            fail("no admin account found in the settings database")
        admin_id, old_name = row
        clash = cur.execute(
            "SELECT id FROM user WHERE lower(name) = lower(?) AND id != ?", (username, admin_id)
        ).fetchone()
        if clash:
            fail(f"another account is already called '{username}'")
        cur.execute(
            "UPDATE user SET name = ?, password = ? WHERE id = ?",
            (username, generate_password_hash(password), admin_id),
        )
        conn.commit()
    finally:
        conn.close()
    renamed = f" (renamed from '{old_name}')" if old_name != username else ""
    print(f"Admin account '{username}'{renamed} has the new password; library {library_dir}, "
          f"port {port}, uploads {'on' if uploads == 'true' else 'off'}")


def main(argv):
    if len(argv) == 4 and argv[1] == "new-library":
        new_library(argv[2], argv[3])
    elif len(argv) == 7 and argv[1] == "apply" and argv[6] in ("true", "false"):
        apply(*argv[2:])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv)
