#!/bin/sh
# SPDX-License-Identifier: MIT
# Run a test program as user nobody, to check what unprivileged callers get
# (no CAP_SYS_ADMIN: no frame numbers in pagemap, no /proc/PID/map_files).
id=65534
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: not root, so the normal run of this test is the unprivileged one"
	exit 77
fi
if ! command -v setpriv >/dev/null; then
	echo "SKIP: setpriv (util-linux) is not installed"
	exit 77
fi
if ! setpriv --reuid=$id --regid=$id --clear-groups true 2>/dev/null; then
	echo "SKIP: this setpriv cannot switch users (util-linux's can)"
	exit 77
fi
if ! setpriv --reuid=$id --regid=$id --clear-groups test -x "$1"; then
	echo "SKIP: $1 cannot be run by uid $id (a directory above it is private)"
	exit 77
fi
exec setpriv --reuid=$id --regid=$id --clear-groups "$@"
