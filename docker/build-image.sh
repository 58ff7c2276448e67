#!/usr/bin/env bash
# `make image`: build the quizroom image with BuildKit, on any machine. When the Dockerfile's base image is neither
# present nor pullable (no image registry reachable), a stand-in is made from Debian's packages first
# (docker/standin-base.sh) under the very same name, so the Dockerfile itself never changes. The host's CA bundle
# goes to the builder as a BuildKit secret, for networks that intercept TLS; it never reaches the image.
#   IMAGE      tag to build (default quizroom)
#   DOCKER     docker command (default: the first one that can build with BuildKit)
#   CA_BUNDLE  CA bundle for the builder's pip (default: the system's, when present; `none`: do not pass one)
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-quizroom}

buildkit_capable() {  # a CLI with the buildx plugin, or one from before BuildKit moved into it (< 23)
    "$@" buildx version >/dev/null 2>&1 && return 0
    local version
    version=$("$@" version --format '{{.Client.Version}}' 2>/dev/null) || return 1
    [ "${version%%.*}" -lt 23 ] 2>/dev/null
}
if [ -n "${DOCKER:-}" ]; then
    read -r -a docker <<<"$DOCKER"
else
    docker=(docker)
    if ! buildkit_capable docker && [ -x /usr/bin/docker ] && buildkit_capable /usr/bin/docker; then
        docker=(/usr/bin/docker)  # e.g. Debian's docker.io beside a newer CLI that lacks buildx
    fi
fi

started=$SECONDS
base=$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)
if ! "${docker[@]}" image inspect "$base" >/dev/null 2>&1; then
    if ! "${docker[@]}" pull --quiet "$base" >/dev/null 2>&1; then
        echo "build-image: $base cannot be pulled here; making a stand-in from Debian's packages"
        DOCKER="${docker[*]}" docker/standin-base.sh "$base"
    fi
fi

secret=()
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ "$ca" != none ] && [ -s "$ca" ]; then
    secret=(--secret "id=ca_bundle,src=$ca")
fi
DOCKER_BUILDKIT=1 "${docker[@]}" build --progress=plain "${secret[@]}" -t "$image" . >"${BUILD_LOG:-/dev/stderr}" 2>&1 \
    || { [ -n "${BUILD_LOG:-}" ] && tail -n 40 "$BUILD_LOG" >&2; exit 1; }
size=$("${docker[@]}" image inspect --format '{{.Size}}' "$image")
echo "build-image: $image built in $((SECONDS - started)) s, $((size / 1000000)) MB (on $base)"
