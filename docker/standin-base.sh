#!/usr/bin/env bash
# Make a stand-in for a Debian-based image that cannot be pulled (a machine that reaches Debian's packages but no
# image registry): debootstrap bookworm into a folder, add what the image is expected to carry, `docker import` it
# and tag it with the very name the Dockerfile uses, so that the same Dockerfile builds unchanged here and wherever
# a registry is reachable. Known names:
#   python:3.11*-slim-bookworm   Debian's python3 (3.11), pip that installs into /usr/local, `python` on PATH
#   debian:bookworm-slim         the bare minimal system (the base of docker/standins/*)
# Usage: docker/standin-base.sh IMAGE   (root; debootstrap from Debian's packages; about 2 minutes)
# An image already present is left alone. docs/operations.md ("Building the image without a registry") says more.
set -euo pipefail

image=${1:?usage: standin-base.sh IMAGE}
docker=${DOCKER:-docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if $docker image inspect "$image" >/dev/null 2>&1; then
    echo "standin-base: $image is present"
    exit 0
fi
case "$image" in
    python:3.11*-slim-bookworm)
        include=python3,python3-pip,python-is-python3,ca-certificates,netbase,tzdata
        cmd='["python3"]' ;;
    debian:bookworm-slim)
        include=ca-certificates,netbase,tzdata
        cmd='["bash"]' ;;
    *) echo "standin-base: no recipe for $image" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "standin-base: debootstrap needs root" >&2; exit 2; }
if ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/quizroom-standin.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
started=$SECONDS
echo "standin-base: debootstrap bookworm ($include) for $image"
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# What Debian's own slim images do: no documentation, manual pages or translations, now or in later installs.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
if [[ $image == python:* ]]; then
    # The official image's pip installs into /usr/local as root; Debian marks its Python externally managed.
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
fi
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/{man,info}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/tmp/* "$root"/root/.cache
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
: >"$root/etc/machine-id"

python_version=$(chroot "$root" python3 -c 'import platform; print(platform.python_version())' 2>/dev/null || true)
tar --numeric-owner --xattrs -C "$root" -c . | $docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    ${python_version:+--change "ENV PYTHON_VERSION=$python_version"} \
    --change "LABEL org.quizroom.standin=\"made locally from Debian bookworm packages by docker/standin-base.sh\"" \
    --change "CMD $cmd" \
    - "$image" >/dev/null
size=$($docker image inspect --format '{{.Size}}' "$image")
echo "standin-base: $image made in $((SECONDS - started)) s, $((size / 1000000)) MB${python_version:+, Python $python_version}"
