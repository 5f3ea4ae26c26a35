#!/bin/sh
# Command wrapper for test/server/firewall-nftables.test.ts and firewall-iptables.test.ts: `slow-list.sh MARK CMD
# ARGS…` runs CMD ARGS…; while the file MARK exists, a command of the backend's read side (`nft … list …`,
# `iptables -w -S`) starts 1.5 s late.
mark=$1
shift
if [ -e "$mark" ]; then
  case " $* " in *" list "* | *" -S "*) sleep 1.5 ;; esac
fi
exec "$@"
