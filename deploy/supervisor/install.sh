#!/usr/bin/env bash
# Debian's supervisor runs the local stack's processes (deploy/stack.sh).
set -euo pipefail
command -v supervisord >/dev/null && command -v supervisorctl >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq supervisor >/dev/null
