#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's `kubernetes` source package into a
# cache directory outside the checkout (layer 3 of the Kubernetes tests); a no-op when both binaries are there.
#
#   scripts/build-kube.sh                 # into /var/cache/berth/kube-1.20.2 (BERTH_KUBE_DIR overrides)
#
# Needs root the first time only for apt: a deb-src entry for bookworm main (its own file under
# /etc/apt/sources.list.d/), golang-1.19-go and dpkg-dev. No build-dep: the source carries its vendor/ tree, and only
# the two binaries are built (without the in-tree cloud providers), with `go build` at the lowest CPU priority (about 15
# minutes on 2 idle cores, 2 GB of RAM; far longer on a loaded machine, where nice 19 gets little).
# Nothing from the source is kept but the two binaries; an interrupted build leaves <dir>.work (its Go build cache),
# from which the next run resumes.
set -euo pipefail

version=1.20.2
out=${BERTH_KUBE_DIR:-/var/cache/berth/kube-$version}
go=/usr/lib/go-1.19/bin/go
sources=/etc/apt/sources.list.d/berth-bookworm-src.sources

have_binaries() { [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ]; }
if have_binaries; then
  echo "build-kube: $out already holds kube-apiserver and kube-controller-manager v$version"
  exit 0
fi

mkdir -p "$(dirname "$out")"
# One build at a time (CI's background build and a developer's may overlap); the loser finds the binaries.
exec 9>"$out.lock"
flock 9
if have_binaries; then
  echo "build-kube: $out was built meanwhile"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
missing=()
[ -x "$go" ] || missing+=(golang-1.19-go)
command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version: 1\.20\.5+really1\.20\.2'; then
  cat >"$sources" <<'EOF'
# Added by Berth's scripts/build-kube.sh: the source of Debian's kubernetes package (kube-apiserver for tests).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -q
fi
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A fixed work directory beside the output, kept when a build is interrupted: its Go build cache lets the next run
# resume instead of starting over. The source is unpacked afresh each time (seconds); a stale .partial is dropped.
work=$out.work
rm -rf "$out.partial" "$work"/kubernetes-* "$work"/gopath
mkdir -p "$work"
cd "$work"
echo "build-kube: fetching Debian's kubernetes source into $work"
apt-get source -q kubernetes=1.20.5+really1.20.2-1.1+deb12u1 >/dev/null 2>&1 || apt-get source -q kubernetes >/dev/null
src=$(echo "$work"/kubernetes-*/)
grep -q '^go 1\.15$' "$src/go.mod" || {
  echo "build-kube: unexpected source (go.mod): $src" >&2
  exit 1
}
# Kubernetes 1.20 builds in GOPATH mode (hack/lib/init.sh: GO111MODULE=off) from inside a GOPATH that links the
# tree as k8s.io/kubernetes; its vendor/ (with links to staging/) then supplies every dependency.
mkdir -p "$work/gopath/src/k8s.io"
ln -s "$src" "$work/gopath/src/k8s.io/kubernetes"
cd "$work/gopath/src/k8s.io/kubernetes"

# What hack/lib/version.sh would stamp: the apiserver reports it on /version.
# In GOPATH mode the vendored packages' paths start with k8s.io/kubernetes/vendor/ (as in hack/lib/version.sh).
ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitVersion=v$version -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done
export GOCACHE=$work/gocache GOPATH=$work/gopath GO111MODULE=off GOFLAGS= CGO_ENABLED=0
# The OpenAPI definitions the API server serves are generated at build time (the Makefile's gen_openapi; Debian's
# `make` runs it): every package of the tree tagged `+k8s:openapi-gen=`, as build/root/Makefile.generated_files
# finds them (staging/src named as vendor/), into pkg/generated/openapi.
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  echo "build-kube: generating the OpenAPI definitions ($(date -u +%H:%M:%S))"
  nice -n 19 "$go" build -o "$work/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen
  # Without pipefail: grep exits 1 for a batch of files with no tag.
  inputs=$(
    set +o pipefail
    find -H . \( -path './_*' -o -path './.*' -o -path ./vendor -o -path ./debian \) -prune -o -type f -name '*.go' -print |
    sed 's|^\./staging/src|vendor|; s|^\./||' | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' |
    grep -v '^vendor/k8s.io/\(code-generator\|sample-apiserver\)/' | xargs -n1 dirname | LC_ALL=C sort -u |
    sed 's|^|k8s.io/kubernetes/|' | paste -sd,
  )
  [ -n "$inputs" ] || {
    echo "build-kube: no package asks for OpenAPI definitions: unexpected source" >&2
    exit 1
  }
  nice -n 19 "$work/openapi-gen" --logtostderr -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$work/openapi-violations.report"
fi

mkdir -p "$out.partial"
for cmd in kube-apiserver kube-controller-manager; do
  echo "build-kube: go build k8s.io/kubernetes/cmd/$cmd ($(date -u +%H:%M:%S))"
  # `providerless` leaves out the in-tree cloud providers (AWS, Azure, GCE, vSphere, OpenStack SDKs): the tests
  # need none, and they are the bulk of the compile.
  nice -n 19 "$go" build -trimpath -tags providerless -ldflags "$ldflags" -o "$out.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
echo "v$version from Debian source kubernetes $(dpkg-parsechangelog -S Version 2>/dev/null || echo 1.20.5+really1.20.2)," \
  "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $("$go" version)" >"$out.partial/BUILD-INFO"
rm -rf "$out"
mv "$out.partial" "$out"
cd /
rm -rf "$work"
echo "build-kube: done: $out ($(date -u +%H:%M:%S))"
