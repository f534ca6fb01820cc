"""Insert unique numbers through one PostgreSQL server until it fails; record the acknowledged ones.

Runs inside a test container with the app's virtualenv (psycopg 3):
    python writer.py --dsn postgresql://... --table promotion_probe --acked /tmp/acked [--seconds 120]
Each number is written to --acked only after its INSERT committed (autocommit), so the file lists
exactly the writes the server acknowledged. The writer stops at the first error.
"""

import argparse
import time

import psycopg


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--acked", required=True)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    statement = f"INSERT INTO {args.table} (n) VALUES (%s)"
    with psycopg.connect(args.dsn, autocommit=True, connect_timeout=5) as conn, \
            open(args.acked, "a", encoding="ascii") as acked:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                conn.execute(statement, (n,))
            except psycopg.Error as exc:
                print(f"stopped at {n}: {exc}".strip())
                return
            acked.write(f"{n}\n")
            acked.flush()


if __name__ == "__main__":
    main()
