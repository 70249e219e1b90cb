#!/usr/bin/env bash
# Install the system packages whose programs the test suite starts for real, if missing:
# git (with git-daemon and git-http-backend in git-core), sshd, openssl for the
# throwaway CA of the https tests, and Debian's chromium with its matching chromedriver
# for the `cas serve` browser tests (no browser can be downloaded any other way here);
# a Java runtime for the pyspark tests; node and npm for Azurite, the Azure Blob emulator
# of the az:// remote tests (below); gawk, busybox and original-awk besides Debian's mawk, and
# shellcheck, for the hook's tests (tests/test_hook.py).
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# pyspark's tests start a local JVM: Spark 4 runs on Java 17 (or 21)
java -version >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v npm >/dev/null || need+=(nodejs npm)
# restic: a peer in `make bench` (benchmarks/bench_peers.py), from Debian as the issue asks
command -v restic >/dev/null || need+=(restic)
# the pre-receive hook is sh + awk: its tests run it under each awk a server may have as awk
command -v gawk >/dev/null || need+=(gawk)
command -v busybox >/dev/null || need+=(busybox)
command -v original-awk >/dev/null || need+=(original-awk)
# the hook files (casstore/remote/hooks/) are linted as POSIX sh by tests/test_hook.py
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing system packages: ${need[*]} (install them, or run make test as root)" >&2
        exit 2
    fi
    echo "installing ${need[*]}" >&2
    # openjdk's postinst links its man page there: slim Debian images lack the directory
    mkdir -p /usr/share/man/man1
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Azurite from npm into .ci/node (git-ignored), where tests/servers.py looks for it.
# Pinned: 3.36 and later need node 22; Debian's node is 20.
azurite_version=3.35.0
node_dir="$(cd "$(dirname "$0")" && pwd)/node"
if ! grep -qs "\"version\": \"$azurite_version\"" "$node_dir/node_modules/azurite/package.json"; then
    echo "installing azurite@$azurite_version into $node_dir" >&2
    npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >/dev/null
fi
