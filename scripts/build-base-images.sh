#!/usr/bin/env bash
# Builds, once, the root filesystem of the Node image that the Docker tests and bench/deploy run their Node apps
# on (no image can be pulled here): Debian bookworm from `debootstrap --variant=minbase`, from the Debian mirror
# apt is configured with, plus this machine's node binary. The result is a tar in the cache directory
# ($BERTH_IMAGE_CACHE, default /var/cache/berth: outside the checkout, kept between runs); when it is there this
# does nothing. The tests import the part of it a Node app needs (node, the libraries it links, dash as /bin/sh:
# `test/docker-host.ts`) into their engine once (`docker import`, a few seconds), tagged by a hash of its inputs.
# Needs root and Debian's debootstrap package; takes a few minutes and about 150 MB.
set -euo pipefail

cache="${BERTH_IMAGE_CACHE:-/var/cache/berth}"
out="$cache/node-bookworm-rootfs.tar"
if [ -s "$out" ]; then
  echo "build-base-images: $out is there"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "build-base-images: debootstrap not found (Debian package debootstrap)" >&2; exit 1; }
node_bin="$(command -v node)"

# The first Debian archive apt knows (a deb822 .sources file or a sources.list line).
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security;
              grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}') | grep -m1 '/debian$' || true)"
fi
[ -n "$mirror" ] || { echo "build-base-images: no Debian mirror in apt's sources; set DEBIAN_MIRROR" >&2; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/rootfs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "build-base-images: debootstrap bookworm from $mirror"
# libstdc++6: node links it dynamically; ca-certificates: apps that call HTTPS services.
debootstrap --variant=minbase --include=libstdc++6,ca-certificates bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
install -m 0755 "$node_bin" "$work/rootfs/usr/local/bin/node"
# What an image does not need: apt's lists and caches, docs.
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"* "$work/rootfs/usr/share/doc/"* "$work/rootfs/usr/share/man/"*
tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"
echo "build-base-images: $out ($(du -h "$out" | cut -f1)), node $("$node_bin" --version)"
