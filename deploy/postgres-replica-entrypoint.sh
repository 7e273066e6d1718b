#!/bin/bash
# The read replica: on first start, a base backup of the primary (pg_basebackup -R writes
# standby.signal and primary_conninfo), then a hot standby that streams the primary's WAL.
set -euo pipefail
export PGPASSWORD="${REPLICATION_PASSWORD}"
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
  until pg_basebackup -h "${PRIMARY_HOST}" -U replicator -D "${PGDATA}" -R -X stream -c fast; do
    echo "waiting for the primary at ${PRIMARY_HOST}"
    rm -rf "${PGDATA:?}"/*
    sleep 2
  done
  chmod 700 "${PGDATA}"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
