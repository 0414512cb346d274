#!/usr/bin/env bash
# Start Debian's PostgreSQL on loopback and create the test role and database (idempotent).
# Tests read the URL from NAS_TEST_POSTGRES_URL, defaulting to the one printed below.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null; then
    echo "postgresql is not installed: apt-get install postgresql" >&2
    exit 1
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 30); do
    pg_isready -h 127.0.0.1 -q && break
    sleep 1
done
as_postgres() { su postgres -c "psql -q -v ON_ERROR_STOP=1 -tc \"$1\""; }
as_postgres "SELECT 1 FROM pg_roles WHERE rolname='nas'" | grep -q 1 \
    || as_postgres "CREATE ROLE nas LOGIN PASSWORD 'nas' CREATEDB"
as_postgres "SELECT 1 FROM pg_database WHERE datname='nas_test'" | grep -q 1 \
    || su postgres -c "createdb -O nas nas_test"
echo "postgresql ready: postgresql+psycopg://nas:nas@127.0.0.1:5432/nas_test"
