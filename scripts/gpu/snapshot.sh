#!/usr/bin/env bash
# Here, before the GPU calls: pack the project as it is to run into .gpu/src.tgz (tracked and
# untracked files, not the ignored ones), so every call of the session runs this exact code.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .gpu
{ git ls-files; git ls-files --others --exclude-standard; } | sort -u | while read -r f; do [ -e "$f" ] && echo "$f"; done \
  | tar czf .gpu/src.tgz -T -
echo ".gpu/src.tgz: $(du -h .gpu/src.tgz | cut -f1)"
