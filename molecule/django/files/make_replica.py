"""Stand in for a streaming replica of the demo's SQLite database: a copy of the primary that
also holds one note the primary does not, so that a read shows which database served it.

    make_replica.py PRIMARY REPLICA NOTE_ID NOTE_TEXT

Prints "created" when it wrote REPLICA, nothing when REPLICA already holds that note.
"""

import os
import sqlite3
import sys


def holds_note(path, note_id, text):
    if not os.path.exists(path):
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT text FROM core_note WHERE id = ?", (note_id,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row == (text,)


def main(primary, replica, note_id, text):
    note_id = int(note_id)
    if holds_note(replica, note_id, text):
        return 0
    # Built beside the replica and renamed over it: the app never opens a half-made copy.
    tmp = f"{replica}.tmp"
    source = sqlite3.connect(f"file:{primary}?mode=ro", uri=True)
    copy = sqlite3.connect(tmp)
    try:
        source.backup(copy)
        copy.execute(
            "INSERT INTO core_note (id, text, created) VALUES (?, ?, '2026-01-01 00:00:00')",
            (note_id, text),
        )
        copy.commit()
    finally:
        copy.close()
        source.close()
    os.replace(tmp, replica)
    print("created")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
