#!/bin/sh
# An app that ignores SIGINT and SIGTERM and has a grandchild that ignores them too (ignored
# signals stay ignored across fork and exec). Only SIGKILL to the whole process group stops
# both: a test for kill_timeout. Prints "grandchild <pid>" and, when GRANDCHILD_PID_FILE is
# set, writes the grandchild's pid there.
trap '' INT TERM
sleep 100000 &
echo "grandchild $!"
if [ -n "$GRANDCHILD_PID_FILE" ]; then
  echo "$!" > "$GRANDCHILD_PID_FILE"
fi
while :; do
  sleep 1
done
