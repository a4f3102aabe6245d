# `pip install .`: builds the extension with CMake (python/CMakeLists.txt). LIBTUNE_PREFIX=<prefix of an
# installed libtune> links that instead of compiling the C++ core again.
import os
import subprocess
import sys
from pathlib import Path

import pybind11
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The extension's CMake project (it builds or finds the C++ core one level up).
HERE = Path(__file__).resolve().parent / "python"


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        prefix = os.environ.get("LIBTUNE_PREFIX", "")
        # One CMake build tree per mode, so switching between them never reuses a stale cache.
        build_dir = Path(self.build_temp).resolve() / ("cmake-installed" if prefix else "cmake-source")
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DLIBTUNE_PREFIX={prefix}",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
        subprocess.run(["cmake", "-S", str(HERE), "-B", str(build_dir), *args], check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "_libtune", "-j", jobs], check=True)


# setuptools' default build folder, ./build, is the C++ build tree: keep its files in a corner of it.
setup(
    ext_modules=[CMakeExtension("libtune._libtune")],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": "build/python-package"}},
)
