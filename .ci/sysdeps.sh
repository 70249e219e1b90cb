#!/usr/bin/env bash
# Install the system packages whose programs the test suite starts for real, if missing:
# git (with git-daemon and git-http-backend in git-core), sshd, openssl for the
# throwaway CA of the https tests, and Debian's chromium with its matching chromedriver
# for the `cas serve` browser tests (no browser can be downloaded any other way here),
# and a Java runtime for the pyspark tests.
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
