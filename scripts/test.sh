#!/usr/bin/env bash
# Set up the machine and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
npm test
