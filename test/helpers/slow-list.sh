#!/bin/sh
# Command wrapper for test/server/firewall-nftables.test.ts: `slow-list.sh MARK CMD ARGS…` runs CMD ARGS…; while the
# file MARK exists, a command with a `list` argument (the backend's read side) starts 1.5 s late.
mark=$1
shift
if [ -e "$mark" ]; then
  case " $* " in *" list "*) sleep 1.5 ;; esac
fi
exec "$@"
