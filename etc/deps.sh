#!/bin/sh
# deps.sh build|test|bench - install the Debian 12 packages assetd needs.
#
# As root, missing packages are installed with apt-get; otherwise the one
# apt-get line to run is printed and the script fails. "test" also installs
# the S3 test server from the npm registry into tests/.deps/ (once).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kind=${1:-build}

build="make gcc pkg-config libssh-dev libcurl4-openssl-dev libssl-dev
libsqlite3-dev libarchive-dev liblzma-dev libzstd-dev zlib1g-dev libmicrohttpd-dev libvips-dev libexif-dev
openssh-client"
test="$build libcmocka-dev python3 python3-pytest python3-paramiko
python3-boto3 rsync curl xz-utils zstd nodejs sqlite3 libimage-exiftool-perl
imagemagick libvips-tools clang libclang-rt-14-dev groff-base man-db systemd"
bench="$test openssh-server rclone awscli nginx-light wrk hyperfine tar time
python3-cryptography linux-perf valgrind"

case "$kind" in
build) want=$build ;;
test) want=$test ;;
bench) want=$bench ;;
*) echo "usage: deps.sh build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "deps: installing$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	else
		echo "deps: missing packages; run as root:"
		echo "  apt-get install -y$missing"
		exit 1
	fi
fi

if [ "$kind" != build ]; then
	# nodejs may come from a vendor repository that bundles npm.
	if ! command -v npm >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ]; then
			apt-get install -y -qq npm >/dev/null
		else
			echo "deps: npm missing; run as root: apt-get install -y npm"
			exit 1
		fi
	fi
	dir="$here/../tests/.deps/s3rver"
	if [ ! -f "$dir/node_modules/@20minutes/s3rver/package.json" ]; then
		echo "deps: installing @20minutes/s3rver@4.0.4 (npm)"
		mkdir -p "$dir"
		npm install --silent --no-audit --no-fund --prefix "$dir" \
			@20minutes/s3rver@4.0.4 >/dev/null
	fi
	if [ ! -f "$dir/start.js" ]; then
		echo "require('@20minutes/s3rver/lib/cli').parseAsync(process.argv);" \
			>"$dir/start.js"
	fi
fi
