# Cross build of the whole server for arm64 on an amd64 Debian host, against Debian's multiarch arm64 packages
# (`scripts/install-deps.sh --build-only --target-arch arm64` installs them in /usr beside the host's tools).
# The container's build stage uses this so an arm64 image is compiled at native speed, not under emulation.
# (cmake/aarch64-linux-gnu.cmake is the kernels-only cross build of the tests, which needs no libraries.)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Libraries and package configs from /usr/lib/aarch64-linux-gnu; programs (protoc, grpc_cpp_plugin) are the host's.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
