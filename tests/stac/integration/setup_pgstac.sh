#!/usr/bin/env bash
# Install what the pgstac integration tests need (tests/stac/integration/), idempotently:
#   - PostgreSQL 15 with PostGIS 3 (Debian package postgresql-15-postgis-3; needs root for apt-get),
#   - pypgstac + stac-fastapi-pgstac + uvicorn in their own venv (pypgstac pins an older
#     cachetools than the project's environment allows).
# The tests start and stop the services themselves (a throw-away cluster on a loopback port).
#
# Usage: bash tests/stac/integration/setup_pgstac.sh      (env: PGSTAC_VENV, default /tmp/pgstac-venv)
# Then:  PGSTAC_VENV=/tmp/pgstac-venv pytest -m integration tests/stac
set -euo pipefail

PGSTAC_VENV="${PGSTAC_VENV:-/tmp/pgstac-venv}"
PG_MAJOR="${PG_MAJOR:-15}"
PYPGSTAC_VERSION="${PYPGSTAC_VERSION:-0.10.0}"
STAC_FASTAPI_PGSTAC_VERSION="${STAC_FASTAPI_PGSTAC_VERSION:-7.2.0}"

started=$(date +%s)

if [ ! -f "/usr/share/postgresql/${PG_MAJOR}/extension/postgis.control" ] || [ ! -x "/usr/lib/postgresql/${PG_MAJOR}/bin/initdb" ]; then
    if [ "$(id -u)" != "0" ]; then
        echo "setup_pgstac: PostgreSQL ${PG_MAJOR} with PostGIS is missing and this is not root; install postgresql-${PG_MAJOR}-postgis-3" >&2
        exit 1
    fi
    echo "setup_pgstac: installing postgresql-${PG_MAJOR}-postgis-3"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-${PG_MAJOR}" "postgresql-${PG_MAJOR}-postgis-3" >/dev/null
fi

if [ ! -x "${PGSTAC_VENV}/bin/pypgstac" ] || [ ! -x "${PGSTAC_VENV}/bin/uvicorn" ] \
    || ! "${PGSTAC_VENV}/bin/python" -c "import stac_fastapi.pgstac.app" 2>/dev/null; then
    echo "setup_pgstac: creating ${PGSTAC_VENV}"
    python3 -m venv "${PGSTAC_VENV}"
    "${PGSTAC_VENV}/bin/pip" install -q --disable-pip-version-check \
        "pypgstac[psycopg]==${PYPGSTAC_VERSION}" "stac-fastapi-pgstac==${STAC_FASTAPI_PGSTAC_VERSION}" uvicorn
fi

"${PGSTAC_VENV}/bin/pypgstac" --version >/dev/null
echo "setup_pgstac: ready in $(( $(date +%s) - started )) s (PGSTAC_VENV=${PGSTAC_VENV}, PostgreSQL ${PG_MAJOR})"
