#!/bin/sh
# The sample app's build step (run by post-deploy in the new release).
set -e
echo "built version $(cat VERSION) of the sample app at $(date -u +%H:%M:%S)" > built.txt
cat built.txt
