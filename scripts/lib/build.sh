# Shared by packaging/build-deb and scripts/quickstart, so that a release built for one serves the other
# (a different flag set would rebuild everything, minutes on a small machine).
# --static-swift-stdlib: no Swift runtime to install on the target, so dpkg-shlibdeps finds every shared library
# the binaries need in a Debian package. -z now with -z relro: full RELRO, Debian's default hardening for C.
RELEASE_BUILD=(swift build -c release --static-swift-stdlib -Xlinker -z -Xlinker now -Xlinker -z -Xlinker relro)
# Its own scratch path, not .build: SwiftPM locks a scratch path for the length of a command, and scripts/test compiles
# the release in the background while `swift test` runs from .build (CODERUNNER_RELEASE_SCRATCH overrides it).
RELEASE_SCRATCH=${CODERUNNER_RELEASE_SCRATCH:-.build-release}
# The parts of Package.swift a release holds (CODERUNNER_ONLY): what the packages ship ("controller" brings "pg", which
# the controller links for `serve --database`). Not the test-only parts: `swift build` compiles every target of the
# package, used or not.
RELEASE_PARTS=agent,controller
