#!/usr/bin/env bash
# The Python package as a user gets it: installs libtune into a scratch prefix, pip-installs
# the repository root (`pip install .`) against it into a venv (offline: build tools and NumPy/pytest come from Debian
# through --system-site-packages), then runs the pytest suite.
#   python_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
python=${LIBTUNE_PYTHON:-/usr/bin/python3}
venv=$build/venv prefix=$build/python-prefix
[[ -x $venv/bin/python ]] || "$python" -m venv --system-site-packages "$venv"
cmake --install "$build" --prefix "$prefix" > /dev/null
LIBTUNE_PREFIX=$prefix CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$venv/bin/pip" install -q --no-build-isolation --no-index --no-deps "$src"
cd "$build"  # not the source tree: the installed package is what gets imported
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$src/python/tests"
