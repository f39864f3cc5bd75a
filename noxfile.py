"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``bench``, ``integration``, ``frameworks``."""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
# torch is pinned in every environment we build: 2.13.0 resolves to a CPU
# wheel on machines without CUDA, where an unpinned torch pulls gigabytes of
# CUDA packages.
CONSTRAINTS = ("-c", str(ROOT / ".ci" / "constraints.txt"))

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str) -> None:
    session.install(*CONSTRAINTS, "torch==2.13.0")
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite and the doctests (pytest's exit code 5, no tests, fails)."""
    _install(session, "all,test")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py", "conftest.py")
    session.run(
        "ruff", "format", "--check", "src", "tests", "benchmarks", "examples", "noxfile.py", "conftest.py"
    )


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """Mypy (strict) on src/."""
    _install(session, "all")
    session.install("mypy>=1.10", "types-PyYAML", "types-requests")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation (offline, on the sample world)."""
    _install(session, "all,docs")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print their tables (not a timed test)."""
    _install(session, "all,test")
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session(python="3.11")
def integration(session: nox.Session) -> None:
    """Tests that need the integration services (pgstac, ...); later issues add to it.

    The set-up script installs PostgreSQL + PostGIS with apt when missing (root)
    and builds pypgstac + stac-fastapi-pgstac in their own venv (pypgstac pins
    an older cachetools).
    """
    _install(session, "all,test")
    env = {"PGSTAC_VENV": str(Path(session.cache_dir) / "pgstac-venv"), "TERRAPIPE_INTEGRATION": "1"}
    session.run("bash", "tests/stac/integration/setup_pgstac.sh", external=True, env=env)
    session.run("pytest", "-m", "integration", "tests", *session.posargs, env=env)


@nox.session(python="3.11")
def frameworks(session: nox.Session) -> None:
    """The Keras, TensorFlow (CPU) and JAX (CPU) adapters' tests and tutorial (heavy wheels, kept out of ``tests``).

    ``TERRAPIPE_FRAMEWORKS=1`` turns the adapters tests' skip on a missing
    framework into a failure, so this session cannot pass without them.
    """
    _install(session, "all,test,frameworks")
    env = {
        "TERRAPIPE_FRAMEWORKS": "1",
        "KERAS_BACKEND": "torch",  # test_keras runs the JAX backend in a subprocess of its own
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",  # two CPU devices: batches really sharded
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    session.run("pytest", "tests/adapters", "-p", "no:cacheprovider", *session.posargs, env=env)
