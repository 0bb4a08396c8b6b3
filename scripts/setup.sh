#!/usr/bin/env bash
# Set up everything `search` needs on a fresh Debian machine with Python >= 3.11: the Debian
# packages the tests use, then a virtual environment in .venv with the project and its test extras.
# Safe to run again: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fashion-MNIST for --dataset fashion-mnist; Chromium and its driver for the report's browser test;
# PostgreSQL for the distributed-worker tests (they start their own server on loopback).
debian_packages=(dataset-fashion-mnist chromium chromium-driver postgresql)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
echo "setup: installing Python packages into .venv (first time: a few minutes)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: done"
